//! Header fields: our own bounded field splitter, with mail-parser for the values (RFC 2047 encoded words,
//! RFC 2231 parameters, folding, address lists and groups).
//!
//! Field boundaries are found here, not by mail-parser, so each [`Field`] carries its exact raw bytes. Fields
//! that must occur at most once (Content-Type, Content-Transfer-Encoding, From, Sender) are errors when
//! repeated: two parsers choosing different copies is how parser-differential attacks work (T52, T21).

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use mail_parser::parsers::MessageStream;
use mail_parser::{Address, HeaderValue};

use crate::error::{Error, Result};
use crate::limits::{MAX_HEADER_BYTES, MAX_HEADER_FIELDS};

/// One header field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field name as written (without trailing whitespace before the colon).
    pub name: String,
    /// The whole field: name, colon, value, folded continuation lines and the final line end (if present).
    pub raw: &'a [u8],
    /// The value unfolded, trimmed and with RFC 2047 encoded words decoded (for display and simple fields).
    pub value: String,
}

impl<'a> Field<'a> {
    /// True if the field is called `name` (ASCII case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
    /// The raw bytes after the colon, up to and including the final line end.
    pub fn raw_value(&self) -> &'a [u8] {
        let raw: &'a [u8] = self.raw;
        match memchr::memchr(b':', raw) {
            Some(i) => &raw[i + 1..],
            None => &[],
        }
    }
}

/// The raw value, terminated by a line end as mail-parser's value parsers require.
fn terminated(raw_value: &[u8]) -> Cow<'_, [u8]> {
    if raw_value.ends_with(b"\n") {
        Cow::Borrowed(raw_value)
    } else {
        let mut v = raw_value.to_vec();
        v.extend_from_slice(b"\r\n");
        Cow::Owned(v)
    }
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Parses a header section (as in [`Entity::header`](super::Entity::header)) into its fields.
///
/// Each field starts on a line that does not begin with a space or tab; following lines that do are folded
/// continuations. Errors: a header section over [`MAX_HEADER_BYTES`], more than [`MAX_HEADER_FIELDS`] fields, a line
/// that is not a field (no colon, or an invalid field name such as an mbox `From ` line), a continuation line
/// with no field before it, an empty line, or a bare CR (which canonicalisation would turn into a line end).
pub fn parse_headers(header: &[u8]) -> Result<Vec<Field<'_>>> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(super::split::header_too_large(header.len()));
    }
    // Line starts; the last line may lack its line end.
    let mut spans: Vec<(usize, usize)> = Vec::new(); // (field start, field end)
    let mut line_start = 0;
    let mut line_no = 0usize;
    while line_start < header.len() {
        line_no += 1;
        let line_end = match memchr::memchr(b'\n', &header[line_start..]) {
            Some(i) => line_start + i + 1,
            None => header.len(),
        };
        let line = &header[line_start..line_end];
        if line == b"\n" || line == b"\r\n" {
            return Err(
                Error::bad_input(format!("line {line_no} of the header section is empty")).hint(
                    "the header section ends at the first empty line; pass only the header section",
                ),
            );
        }
        if is_wsp(line[0]) {
            match spans.last_mut() {
                Some(span) => span.1 = line_end,
                None => {
                    return Err(Error::bad_input(
                        "the header section starts with a continuation line (a line beginning with a space)",
                    )
                    .hint("the message is malformed or does not start with a header"));
                }
            }
        } else {
            if spans.len() >= MAX_HEADER_FIELDS {
                return Err(Error::limit(format!(
                    "the header section has more than {MAX_HEADER_FIELDS} fields"
                ))
                .hint("this is not a normal e-mail message"));
            }
            spans.push((line_start, line_end));
        }
        line_start = line_end;
    }
    let mut fields = Vec::with_capacity(spans.len());
    for (i, (start, end)) in spans.into_iter().enumerate() {
        let raw = &header[start..end];
        // A bare CR would become a line end when canonicalised, turning one field into two.
        if let Some(cr) = memchr::memchr_iter(b'\r', raw).find(|&i| raw.get(i + 1) != Some(&b'\n'))
        {
            let shown = String::from_utf8_lossy(&raw[..cr.min(60)]).into_owned();
            return Err(Error::bad_input(format!(
                "header field {} (\"{shown}…\") contains a bare CR",
                i + 1
            ))
            .hint("the message is malformed, possibly on purpose: do not trust what it displays"));
        }
        let name = field_name(raw).ok_or_else(|| {
            let first = raw.split(|&b| b == b'\n').next().unwrap_or_default();
            let shown: String = String::from_utf8_lossy(&first[..first.len().min(60)])
                .trim_end()
                .into();
            let e = Error::bad_input(format!(
                "header field {} is not a valid field: \"{shown}\"",
                i + 1
            ));
            if raw.starts_with(b"From ") {
                e.hint("remove the mbox \"From \" separator line before the message header")
            } else {
                e.hint("a header field is a name, a colon and a value; the message is malformed")
            }
        })?;
        let colon = memchr::memchr(b':', raw).unwrap_or(raw.len());
        let value = match MessageStream::new(&terminated(&raw[colon + 1..])).parse_unstructured() {
            HeaderValue::Text(t) => t.trim().to_string(),
            _ => String::new(),
        };
        fields.push(Field { name, raw, value });
    }
    Ok(fields)
}

/// The field name: printable ASCII except colon (RFC 5322 ftext), optionally followed by spaces (obsolete syntax).
fn field_name(raw: &[u8]) -> Option<String> {
    let colon = memchr::memchr(b':', raw)?;
    let mut name = &raw[..colon];
    while let [rest @ .., last] = name {
        if is_wsp(*last) {
            name = rest;
        } else {
            break;
        }
    }
    if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
        return None;
    }
    Some(String::from_utf8_lossy(name).into_owned())
}

/// The one field called `name`, if any; an error if there are several.
fn single<'f, 'a>(fields: &'f [Field<'a>], name: &str) -> Result<Option<&'f Field<'a>>> {
    let mut found = fields.iter().filter(|f| f.is(name));
    let first = found.next();
    let extra = found.count();
    if extra > 0 {
        return Err(Error::bad_input(format!(
            "the header has {} {name} fields; only one is allowed",
            extra + 1
        ))
        .hint("the message is malformed, possibly on purpose: do not trust what it displays"));
    }
    Ok(first)
}

/// A parsed Content-Type (or Content-Disposition) value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentType {
    /// Lowercase `type/subtype`, e.g. `multipart/signed`.
    pub mime: String,
    /// Parameters in order: lowercase names, values with RFC 2231 continuations and charsets decoded.
    pub params: Vec<(String, String)>,
}

impl ContentType {
    /// The value of parameter `name` (ASCII case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The top-level type, e.g. `multipart`.
    pub fn main_type(&self) -> &str {
        self.mime.split('/').next().unwrap_or_default()
    }
    /// True if the type is `multipart/*`.
    pub fn is_multipart(&self) -> bool {
        self.main_type() == "multipart"
    }
    /// The default of RFC 2045 §5.2: `text/plain; charset=us-ascii`.
    pub fn default_text() -> Self {
        ContentType {
            mime: "text/plain".into(),
            params: vec![("charset".into(), "us-ascii".into())],
        }
    }

    /// Parses the raw value of a Content-Type field (the bytes after the colon).
    ///
    /// Errors: no `type/subtype`, a repeated parameter, a `multipart/*` type without a usable boundary.
    pub fn parse(raw_value: &[u8]) -> Result<ContentType> {
        let (main, sub, params) = parse_with_params(raw_value, "Content-Type")?;
        let is_token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
        };
        let sub = sub.unwrap_or_default();
        if !is_token(&main) || !is_token(&sub) {
            return Err(Error::bad_input(format!(
                "the Content-Type \"{}\" has no valid type/subtype",
                shown(raw_value)
            ))
            .hint("the message is malformed"));
        }
        let mime = format!("{main}/{sub}").to_ascii_lowercase();
        let ct = ContentType { mime, params };
        if ct.is_multipart() {
            let b = ct.param("boundary").unwrap_or_default();
            if b.is_empty() || b.len() > 200 || b.bytes().any(|c| c.is_ascii_control()) {
                return Err(Error::bad_input(format!(
                    "the {} Content-Type has no usable boundary parameter",
                    ct.mime
                ))
                .hint("the message is malformed"));
            }
        }
        Ok(ct)
    }
}

/// A raw value for an error message: lossy UTF-8, whitespace collapsed.
fn shown(raw_value: &[u8]) -> String {
    String::from_utf8_lossy(raw_value)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// (type, subtype, parameters) of a Content-Type or Content-Disposition value.
type ParsedParams = (String, Option<String>, Vec<(String, String)>);

/// Parses a Content-Type or Content-Disposition value: (type, subtype, parameters with lowercase names).
/// A repeated parameter is an error.
fn parse_with_params(raw_value: &[u8], what: &str) -> Result<ParsedParams> {
    let value = terminated(raw_value);
    let ct = match MessageStream::new(&value).parse_content_type() {
        HeaderValue::ContentType(ct) => ct,
        _ => {
            return Err(Error::bad_input(format!(
                "the {what} \"{}\" cannot be parsed",
                shown(raw_value)
            ))
            .hint("the message is malformed"));
        }
    };
    let mut params: Vec<(String, String)> = Vec::new();
    for a in ct.attributes.unwrap_or_default() {
        let name = a.name.to_ascii_lowercase();
        if params.iter().any(|(n, _)| *n == name) {
            return Err(
                Error::bad_input(format!("the {what} has two \"{name}\" parameters")).hint(
                    "the message is malformed, possibly on purpose: do not trust what it displays",
                ),
            );
        }
        params.push((name, a.value.into_owned()));
    }
    Ok((
        ct.c_type.into_owned(),
        ct.c_subtype.map(|s| s.into_owned()),
        params,
    ))
}

/// The Content-Disposition of a header, or `None` if there is none. [`ContentType::mime`] then holds the
/// disposition type in lowercase (`attachment`, `inline`), and the parameters are decoded as for Content-Type
/// (e.g. `filename`). Two Content-Disposition fields are an error.
pub fn content_disposition(fields: &[Field<'_>]) -> Result<Option<ContentType>> {
    let Some(f) = single(fields, "Content-Disposition")? else {
        return Ok(None);
    };
    let (main, _, params) = parse_with_params(f.raw_value(), "Content-Disposition")?;
    Ok(Some(ContentType {
        mime: main.to_ascii_lowercase(),
        params,
    }))
}

/// A 7-bit replacement (with its CRLF) for a `Content-*` field whose value holds raw UTF-8: parameters of
/// Content-Type and Content-Disposition become RFC 2231 `name*=utf-8''…` (with continuations when long), any
/// other field becomes RFC 2047 encoded words. `None` if the field is ASCII, not valid UTF-8, or not `Content-*`.
pub(crate) fn encode_field_7bit(f: &Field<'_>) -> Result<Option<Vec<u8>>> {
    if f.raw.is_ascii()
        || std::str::from_utf8(f.raw).is_err()
        || !f.name.to_ascii_lowercase().starts_with("content-")
    {
        return Ok(None);
    }
    let mut out = format!("{}:", f.name);
    if f.is("Content-Type") || f.is("Content-Disposition") {
        let (main, sub, params) = parse_with_params(f.raw_value(), &f.name)?;
        if !main.is_ascii() || sub.as_deref().is_some_and(|s| !s.is_ascii()) {
            return Ok(None);
        }
        out.push(' ');
        out.push_str(&main);
        if let Some(sub) = sub {
            out.push('/');
            out.push_str(&sub);
        }
        for (name, value) in params {
            out.push_str(";\r\n\t");
            if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                out.push_str(&format!(
                    "{name}=\"{}\"",
                    value.replace('\\', "\\\\").replace('"', "\\\"")
                ));
                continue;
            }
            let mut pct = String::new();
            for b in value.bytes() {
                if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                    pct.push(b as char);
                } else {
                    pct.push_str(&format!("%{b:02X}"));
                }
            }
            if pct.len() <= 60 {
                out.push_str(&format!("{name}*=utf-8''{pct}"));
                continue;
            }
            // RFC 2231 continuations of at most 60 characters, never splitting a %XX.
            let mut rest = pct.as_str();
            let mut n = 0;
            while !rest.is_empty() {
                let mut cut = rest.len().min(60);
                if let Some(p) = rest[..cut].rfind('%').filter(|&p| p + 3 > cut) {
                    cut = p;
                }
                if n > 0 {
                    out.push_str(";\r\n\t");
                }
                let charset = if n == 0 { "utf-8''" } else { "" };
                out.push_str(&format!("{name}*{n}*={charset}{}", &rest[..cut]));
                rest = &rest[cut..];
                n += 1;
            }
        }
    } else {
        // Encoded words of at most 45 bytes of text each (72 characters), split at character boundaries.
        let mut word = String::new();
        let mut words = Vec::new();
        for c in f.value.chars() {
            if word.len() + c.len_utf8() > 45 {
                words.push(std::mem::take(&mut word));
            }
            word.push(c);
        }
        if !word.is_empty() {
            words.push(word);
        }
        for (i, w) in words.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { "\r\n " });
            out.push_str(&format!(
                "=?utf-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            ));
        }
    }
    out.push_str("\r\n");
    Ok(Some(out.into_bytes()))
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.mime)?;
        for (n, v) in &self.params {
            write!(
                f,
                "; {n}=\"{}\"",
                v.replace('\\', "\\\\").replace('"', "\\\"")
            )?;
        }
        Ok(())
    }
}

/// The value of the first field called `name` (case-insensitive), for fields that are only shown (Subject,
/// Date, Message-ID): unlike [`content_type`] or [`from`], a repeated field is not an error here.
pub fn field_value(fields: &[Field<'_>], name: &str) -> Option<String> {
    fields.iter().find(|f| f.is(name)).map(|f| f.value.clone())
}

/// The Content-Type of a header, or `None` if there is none (the caller then applies the RFC 2045 default,
/// [`ContentType::default_text`]). Two Content-Type fields are an error (T52).
pub fn content_type(fields: &[Field<'_>]) -> Result<Option<ContentType>> {
    match single(fields, "Content-Type")? {
        Some(f) => ContentType::parse(f.raw_value()).map(Some),
        None => Ok(None),
    }
}

/// The Content-Transfer-Encoding, lowercase and without comments, or `None` if absent (meaning `7bit`).
/// Two Content-Transfer-Encoding fields are an error.
pub fn content_transfer_encoding(fields: &[Field<'_>]) -> Result<Option<String>> {
    let Some(f) = single(fields, "Content-Transfer-Encoding")? else {
        return Ok(None);
    };
    // Drop (comments), then take the token.
    let mut v = String::new();
    let mut depth = 0usize;
    for c in f.value.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => v.push(c),
            _ => {}
        }
    }
    let v = v.trim().to_ascii_lowercase();
    Ok((!v.is_empty()).then_some(v))
}

/// One mailbox of an address field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name, RFC 2047 decoded, whitespace runs collapsed; never used for comparisons.
    pub display: Option<String>,
    /// The addr-spec, e.g. `alice@example.com`: the only part to compare against certificates.
    pub addr: String,
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.display {
            Some(d) => write!(f, "\"{}\" <{}>", d.replace('"', "'"), self.addr),
            None => write!(f, "<{}>", self.addr),
        }
    }
}

/// A plausible addr-spec: `local@domain` with exactly one `@`, no whitespace, brackets, quotes, commas or
/// controls (quoted local parts are not accepted).
fn is_addr_spec(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let bad = |c: char| c.is_whitespace() || c.is_control() || "<>\",;()[]\\".contains(c);
    !local.is_empty()
        && !domain.is_empty()
        && !local.contains(bad)
        && !domain.contains(bad)
        && !domain.contains('@')
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

fn clean_display(name: Option<&str>) -> Option<String> {
    let d = name?.split_whitespace().collect::<Vec<_>>().join(" ");
    let d: String = d.chars().filter(|c| !c.is_control()).collect();
    (!d.is_empty()).then_some(d)
}

/// Every mailbox of one address field (groups flattened). Entries without a valid addr-spec are returned with
/// `Err(shown text)`.
///
/// mail-parser glues stray tokens together (`<eve@evil.example> alice@example.com` gives
/// `eve@evil.examplealice@example.com`), so an address is accepted only if it also occurs verbatim in the
/// unfolded field: what we compare is what the header says.
fn mailboxes(field: &Field<'_>) -> Vec<std::result::Result<Mailbox, String>> {
    let unfolded: Vec<u8> = field
        .raw_value()
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    let value = terminated(field.raw_value());
    let addrs = match MessageStream::new(&value).parse_address() {
        HeaderValue::Address(Address::List(l)) => l,
        HeaderValue::Address(Address::Group(g)) => {
            g.into_iter().flat_map(|g| g.addresses).collect()
        }
        _ => Vec::new(),
    };
    addrs
        .into_iter()
        .map(|a| {
            let addr = a.address.as_deref().unwrap_or_default().trim();
            if is_addr_spec(addr) && memchr::memmem::find(&unfolded, addr.as_bytes()).is_some() {
                Ok(Mailbox {
                    display: clean_display(a.name.as_deref()),
                    addr: addr.to_string(),
                })
            } else {
                Err(
                    format!("{} {}", a.name.as_deref().unwrap_or_default(), addr)
                        .trim()
                        .to_string(),
                )
            }
        })
        .collect()
}

/// The single mailbox of the single field `name`.
fn single_mailbox(fields: &[Field<'_>], name: &str) -> Result<Option<Mailbox>> {
    let Some(f) = single(fields, name)? else {
        return Ok(None);
    };
    let mut boxes = mailboxes(f);
    match boxes.len() {
        1 => match boxes.pop() {
            Some(Ok(m)) => Ok(Some(m)),
            _ => Err(Error::bad_input(format!("the {name} field \"{}\" has no valid address", f.value))
                .hint("the message is malformed")),
        },
        0 => Err(Error::bad_input(format!("the {name} field \"{}\" has no address", f.value))
            .hint("the message is malformed")),
        n => Err(Error::unsupported(format!(
            "the {name} field has {n} mailboxes ({}); a signed message needs exactly one author",
            f.value
        ))
        .hint("a From with several authors needs a Sender field; ask the sender to use a single From address")),
    }
}

/// The author: the mailbox of the single From field, or `None` if there is no From field.
///
/// Errors: two From fields (RFC 5322 §3.6), a From with several mailboxes (naming them), or none, or one
/// without a valid addr-spec. Group syntax is flattened. The display name is never taken for the address (T21).
pub fn from(fields: &[Field<'_>]) -> Result<Option<Mailbox>> {
    single_mailbox(fields, "From")
}

/// Why the single field `name` (From or Sender) is ambiguous, or `None`: an `@` outside quoted strings,
/// comments and the angle-bracketed address, beside an angle address, or a second one beside a bare address
/// (`alice@example.com <eve@evil.example>`, the group `alice@example.com: eve@evil.example;`). The strict
/// parser takes the addr-spec, common mail clients show or take the other one: such a field binds nothing.
/// Several fields are left to [`from`] (an error of its own).
pub fn ambiguous_address(fields: &[Field<'_>], name: &str) -> Option<String> {
    let mut found = fields.iter().filter(|f| f.is(name));
    let f = found.next()?;
    if found.next().is_some() {
        return None;
    }
    let v = f.raw_value();
    let (mut quoted, mut escaped, mut comment, mut angle) = (false, false, 0usize, false);
    let (mut outside_at, mut angles) = (0usize, 0usize);
    for &b in v {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if quoted || comment > 0 => escaped = true,
            b'"' if comment == 0 && !angle => quoted = !quoted,
            b'(' if !quoted && !angle => comment += 1,
            b')' if !quoted && !angle && comment > 0 => comment -= 1,
            b'<' if !quoted && comment == 0 => {
                angle = true;
                angles += 1;
            }
            b'>' if !quoted && comment == 0 => angle = false,
            b'@' if !quoted && comment == 0 && !angle => outside_at += 1,
            // Several mailboxes: `from` refuses those on its own.
            b',' if !quoted && comment == 0 && !angle => return None,
            _ => {}
        }
    }
    let ambiguous = if angles > 0 {
        outside_at > 0
    } else {
        outside_at > 1
    };
    ambiguous.then(|| {
        format!(
            "the {name} field \"{}\" is ambiguous: an unquoted '@' outside the address (in a display or group name) makes mail programs read another sender than the strict address",
            crate::display::field(String::from_utf8_lossy(v).replace(['\r', '\n'], "").trim())
        )
    })
}

/// The mailbox of the single Sender field, or `None` if there is none (same rules as [`from`]).
pub fn sender(fields: &[Field<'_>]) -> Result<Option<Mailbox>> {
    single_mailbox(fields, "Sender")
}

/// All mailboxes with a valid addr-spec in the fields called `names` (e.g. `&["to", "cc"]`), in header order,
/// groups flattened. Entries without a valid address are skipped.
pub fn addresses(fields: &[Field<'_>], names: &[&str]) -> Vec<Mailbox> {
    fields
        .iter()
        .filter(|f| names.iter().any(|n| f.is(n)))
        .flat_map(|f| mailboxes(f).into_iter().filter_map(|m| m.ok()))
        .collect()
}

/// What an entity looks like from its Content-Type alone. Only a hint: the CMS content type decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layer {
    /// `multipart/signed`: the first part is signed, the second holds the signature.
    MultipartSigned {
        /// The boundary parameter.
        boundary: String,
        /// The protocol parameter, lowercase (should be `application/pkcs7-signature`).
        protocol: Option<String>,
        /// The micalg parameter, lowercase (advisory: the SignerInfo digest algorithm decides).
        micalg: Option<String>,
    },
    /// `application/pkcs7-mime` or `application/x-pkcs7-mime`, or `application/octet-stream` named `*.p7m`.
    Pkcs7Mime {
        /// The smime-type parameter, lowercase, if present.
        smime_type: Option<String>,
    },
    /// Anything else: not an S/MIME layer.
    Other,
}

/// Classifies a Content-Type as an S/MIME layer (see [`Layer`]).
pub fn classify(ct: &ContentType) -> Layer {
    let lower = |n: &str| ct.param(n).map(|v| v.trim().to_ascii_lowercase());
    match ct.mime.as_str() {
        "multipart/signed" => match ct.param("boundary") {
            Some(b) => Layer::MultipartSigned {
                boundary: b.to_string(),
                protocol: lower("protocol"),
                micalg: lower("micalg"),
            },
            None => Layer::Other,
        },
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => Layer::Pkcs7Mime {
            smime_type: lower("smime-type"),
        },
        "application/octet-stream" if lower("name").is_some_and(|n| n.ends_with(".p7m")) => {
            Layer::Pkcs7Mime {
                smime_type: lower("smime-type"),
            }
        }
        _ => Layer::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn fields(h: &'static str) -> Vec<Field<'static>> {
        parse_headers(h.as_bytes()).unwrap()
    }

    #[test]
    fn fields_raw_and_value() {
        let h = "Subject: =?utf-8?q?caf=C3=A9?= au\r\n lait\r\nX-A : b\nTo: x@y\r\n";
        let f = fields(h);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].name, "Subject");
        assert_eq!(f[0].raw, b"Subject: =?utf-8?q?caf=C3=A9?= au\r\n lait\r\n");
        assert_eq!(f[0].value, "café au lait");
        assert_eq!(f[1].name, "X-A");
        assert_eq!(f[1].value, "b");
        assert_eq!(f[2].raw, b"To: x@y\r\n");
        // last field without a line end
        let f = fields("A: 1\r\nB: two");
        assert_eq!(f[1].value, "two");
        assert_eq!(f[1].raw, b"B: two");
    }

    #[test]
    fn bad_fields() {
        assert!(
            parse_headers(b"From alice@example.com Mon Jan  1 12:00:00 2024\r\nA: b\r\n").is_err()
        );
        assert!(parse_headers(b" folded: first\r\n").is_err());
        assert!(parse_headers(b"no colon here\r\n").is_err());
        assert!(parse_headers(b": empty name\r\n").is_err());
        assert!(parse_headers(b"A: 1\r\n\r\nB: 2\r\n").is_err());
        assert!(parse_headers(b"Subject: a\rContent-Type: text/html\r\n").is_err());
        assert!(parse_headers(b"").unwrap().is_empty());
    }

    #[test]
    fn limits() {
        let h = "A: b\r\n".repeat(MAX_HEADER_FIELDS + 1);
        assert_eq!(
            parse_headers(h.as_bytes()).unwrap_err().kind(),
            ErrorKind::Limit
        );
        let h = "A: b\r\n".repeat(MAX_HEADER_FIELDS);
        assert_eq!(
            parse_headers(h.as_bytes()).unwrap().len(),
            MAX_HEADER_FIELDS
        );
        let mut big = b"A: ".to_vec();
        big.resize(MAX_HEADER_BYTES + 1, b'x');
        assert_eq!(parse_headers(&big).unwrap_err().kind(), ErrorKind::Limit);
    }

    #[test]
    fn content_type_params() {
        let f = fields(
            "Content-Type: Multipart/Signed; Protocol=\"application/pkcs7-signature\";\r\n\tmicalg=SHA-256; boundary=\"----=_Part_1\"\r\n",
        );
        let ct = content_type(&f).unwrap().unwrap();
        assert_eq!(ct.mime, "multipart/signed");
        assert_eq!(ct.param("protocol"), Some("application/pkcs7-signature"));
        assert_eq!(ct.param("BOUNDARY"), Some("----=_Part_1"));
        assert_eq!(
            classify(&ct),
            Layer::MultipartSigned {
                boundary: "----=_Part_1".into(),
                protocol: Some("application/pkcs7-signature".into()),
                micalg: Some("sha-256".into())
            }
        );
        // RFC 2231 continuations and charset
        let f = fields(
            "Content-Type: application/octet-stream;\r\n name*0*=utf-8''caf%C3%A9;\r\n name*1=\".p7m\"\r\n",
        );
        let ct = content_type(&f).unwrap().unwrap();
        assert_eq!(ct.param("name"), Some("café.p7m"));
        assert_eq!(classify(&ct), Layer::Pkcs7Mime { smime_type: None });
        let f = fields("Content-Type: application/x-pkcs7-mime; smime-type=Enveloped-Data\r\n");
        let ct = content_type(&f).unwrap().unwrap();
        assert_eq!(
            classify(&ct),
            Layer::Pkcs7Mime {
                smime_type: Some("enveloped-data".into())
            }
        );
        assert_eq!(classify(&ContentType::default_text()), Layer::Other);
        assert!(content_type(&fields("Subject: x\r\n")).unwrap().is_none());
    }

    #[test]
    fn content_type_errors() {
        let dup =
            fields("Content-Type: multipart/signed; boundary=a\r\nContent-Type: text/plain\r\n");
        let e = content_type(&dup).unwrap_err();
        assert!(e.message().contains("2 Content-Type"), "{e:?}");
        assert!(
            content_type(&fields(
                "content-type: text/plain\r\nCONTENT-TYPE: text/html\r\n"
            ))
            .is_err()
        );
        assert!(
            content_type(&fields(
                "Content-Type: multipart/mixed; boundary=a; boundary=b\r\n"
            ))
            .is_err()
        );
        assert!(content_type(&fields("Content-Type: multipart/mixed\r\n")).is_err());
        assert!(content_type(&fields("Content-Type: text\r\n")).is_err());
    }

    #[test]
    fn utf8_content_fields_are_encoded() {
        let long = "Überlänge-".repeat(12);
        let h = format!(
            "Content-Type: text/plain; charset=utf-8; name=\"Grüße.txt\"\r\nContent-Disposition: attachment; filename=\"{long}.txt\"; size=3\r\nContent-Description: Prüfbericht über die Prüfung der Prüfer, mit Überlänge und Umlauten\r\nSubject: Grüße\r\n"
        );
        let h: &'static str = Box::leak(h.into_boxed_str());
        let f = fields(h);
        let enc: Vec<Vec<u8>> = f
            .iter()
            .map(|f| {
                encode_field_7bit(f)
                    .unwrap()
                    .unwrap_or_else(|| f.raw.to_vec())
            })
            .collect();
        assert!(enc[..3].iter().all(|e| e.is_ascii()));
        assert!(!enc[3].is_ascii()); // not a Content-* field: left alone
        let all: Vec<u8> = enc.concat();
        let back = parse_headers(&all).unwrap();
        let ct = content_type(&back).unwrap().unwrap();
        assert_eq!(ct.param("name"), Some("Grüße.txt"));
        assert_eq!(ct.param("charset"), Some("utf-8"));
        let cd = content_disposition(&back).unwrap().unwrap();
        assert_eq!(cd.mime, "attachment");
        assert_eq!(cd.param("filename"), Some(format!("{long}.txt").as_str()));
        assert_eq!(cd.param("size"), Some("3"));
        assert_eq!(back[2].value, f[2].value);
        assert!(all.split(|&b| b == b'\n').all(|l| l.len() <= 100));
        assert!(
            encode_field_7bit(&fields("Content-Type: text/plain\r\n")[0])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn transfer_encoding() {
        let f = fields("Content-Transfer-Encoding: Base64 (comment)\r\n");
        assert_eq!(
            content_transfer_encoding(&f).unwrap().as_deref(),
            Some("base64")
        );
        assert_eq!(
            content_transfer_encoding(&fields("A: b\r\n")).unwrap(),
            None
        );
        let f = fields("Content-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: 7bit\r\n");
        assert!(content_transfer_encoding(&f).is_err());
    }

    #[test]
    fn from_single_mailbox() {
        let m = from(&fields("From: Alice Example <alice@example.com>\r\n"))
            .unwrap()
            .unwrap();
        assert_eq!(
            m,
            Mailbox {
                display: Some("Alice Example".into()),
                addr: "alice@example.com".into()
            }
        );
        let m = from(&fields("From: alice@example.com\r\n"))
            .unwrap()
            .unwrap();
        assert_eq!(
            m,
            Mailbox {
                display: None,
                addr: "alice@example.com".into()
            }
        );
        assert!(from(&fields("Subject: x\r\n")).unwrap().is_none());
    }

    #[test]
    fn two_from_fields() {
        let e = from(&fields(
            "From: alice@example.com\r\nFrom: eve@evil.example\r\n",
        ))
        .unwrap_err();
        assert!(e.message().contains("2 From"), "{e:?}");
    }

    #[test]
    fn from_with_several_mailboxes() {
        let e = from(&fields("From: alice@example.com, eve@evil.example\r\n")).unwrap_err();
        assert!(e.message().contains("2 mailboxes"), "{e:?}");
        assert!(e.message().contains("eve@evil.example"), "{e:?}");
        assert!(from(&fields("From: undisclosed:;\r\n")).is_err());
        assert!(from(&fields("From: Alice\r\n")).is_err());
    }

    #[test]
    fn display_name_trick() {
        for h in [
            "From: \"alice@example.com\" <eve@evil.example>\r\n",
            "From: \"alice@example.com                                  \" <eve@evil.example>\r\n",
            "From: =?utf-8?q?alice=40example=2Ecom?= <eve@evil.example>\r\n",
        ] {
            let m = from(&fields(Box::leak(h.to_string().into_boxed_str())))
                .unwrap()
                .unwrap();
            assert_eq!(m.addr, "eve@evil.example", "{h}");
            assert_eq!(m.display.as_deref(), Some("alice@example.com"), "{h}");
        }
    }

    #[test]
    fn unquoted_at_outside_the_address_is_ambiguous() {
        for h in [
            "From: alice@example.com <eve@evil.example>\r\n",
            "From: alice@example.com: eve@evil.example;\r\n",
            "From: alice@example.com: Eve <eve@evil.example>;\r\n",
            "From: alice@example.com eve@evil.example\r\n",
        ] {
            let f = fields(Box::leak(h.to_string().into_boxed_str()));
            assert!(ambiguous_address(&f, "From").is_some(), "{h}");
        }
        for h in [
            "From: \"alice@example.com\" <eve@evil.example>\r\n",
            "From: Alice <alice@example.com>\r\n",
            "From: alice@example.com\r\n",
            "From: eve@evil.example (alice@example.com)\r\n",
            "From: =?utf-8?q?alice=40example=2Ecom?= <eve@evil.example>\r\n",
            "From: Team: Alice <alice@example.com>;\r\n",
        ] {
            let f = fields(Box::leak(h.to_string().into_boxed_str()));
            assert!(ambiguous_address(&f, "From").is_none(), "{h}");
        }
    }

    #[test]
    fn glued_or_odd_addresses_are_rejected() {
        for h in [
            "From: <eve@evil.example> alice@example.com\r\n",
            "From: Alice <alice@example.com> <eve@evil.example>\r\n",
            "From: alice@example.com@evil.example\r\n",
            "From: \"eve@evil.example\"@example.com\r\n",
            "From: <>\r\n",
            "From: .alice@example.com\r\n",
        ] {
            let f = parse_headers(h.as_bytes()).unwrap();
            assert!(from(&f).is_err(), "{h}: {:?}", from(&f));
        }
        let m = from(&fields("From: <alice@exam> ple.com\r\n"))
            .unwrap()
            .unwrap();
        assert_eq!(m.addr, "alice@exam");
        // a comment is a display name, never the address
        let f = fields("From: eve@evil.example (alice@example.com)\r\n");
        let m = from(&f).unwrap().unwrap();
        assert_eq!(m.addr, "eve@evil.example");
        // an encoded display name that contains an address stays a display name
        let f =
            fields("From: =?utf-8?q?Alice_=3Calice=40example=2Ecom=3E?= <eve@evil.example>\r\n");
        let m = from(&f).unwrap().unwrap();
        assert_eq!(
            (m.display.as_deref(), m.addr.as_str()),
            (Some("Alice <alice@example.com>"), "eve@evil.example")
        );
    }

    #[test]
    fn encoded_display_names() {
        let m = from(&fields(
            "From: =?UTF-8?B?QWxpY2Ugw4lsaXNl?= <alice@example.com>\r\n",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(m.display.as_deref(), Some("Alice Élise"));
        assert_eq!(m.addr, "alice@example.com");
        let m = from(&fields(
            "From: =?iso-8859-1?q?J=F6rg?=\r\n  M\r\n <j@example.de>\r\n",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(m.display.as_deref(), Some("Jörg M"));
    }

    #[test]
    fn groups_sender_and_lists() {
        let f = fields(
            "From: Team: Alice <alice@example.com>;\r\nSender: eve@evil.example\r\nTo: a@x.example, B <b@y.example>\r\nCc: Friends: c@z.example, d@z.example;\r\nTo: broken\r\n",
        );
        assert_eq!(from(&f).unwrap().unwrap().addr, "alice@example.com");
        assert_eq!(sender(&f).unwrap().unwrap().addr, "eve@evil.example");
        let all: Vec<String> = addresses(&f, &["to", "cc"])
            .into_iter()
            .map(|m| m.addr)
            .collect();
        assert_eq!(
            all,
            ["a@x.example", "b@y.example", "c@z.example", "d@z.example"]
        );
    }
}
