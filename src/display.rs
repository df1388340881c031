//! Showing text a message or certificate controls to a person: one escaping rule for every report, and the
//! display of internationalised domains (homographs).
//!
//! Every attacker-controlled field (DN parts, addresses, display names, Subject, file names) is shown on one
//! line through [`field`]: control characters (line feeds included), bidirectional overrides and other
//! invisible format characters are written as visible escapes, so a certificate's CN cannot add a fake report
//! line and U+202E cannot reorder what the reader sees.

/// Is `c` a character that changes how surrounding text is displayed without being seen itself: bidi
/// controls, zero-width characters, other Unicode format characters (general category Cf) and line/paragraph
/// separators?
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

/// One escaped character, or `None` to keep it.
fn escape_char(c: char, keep_newline: bool) -> Option<String> {
    match c {
        '\n' if keep_newline => None,
        '\n' => Some("\\n".into()),
        '\r' => Some("\\r".into()),
        '\t' => Some("\\t".into()),
        c if c.is_control() => Some(format!("\\x{:02x}", c as u32)),
        c if is_invisible(c) => Some(format!("<U+{:04X}>", c as u32)),
        _ => None,
    }
}

/// An attacker-controlled field for a one-line report slot: every control, bidi and format character escaped
/// visibly (`\n`, `\x1b`, `<U+202E>`). The single escaping function of every report.
pub fn field(s: &str) -> String {
    escape(s, false)
}

/// A whole report made of lines: like [`field`], but line feeds (the report's own structure) are kept. Used
/// as the last step before printing, so nothing that slipped through [`field`] acts on the terminal.
pub fn text(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, keep_newline: bool) -> String {
    if !s.chars().any(|c| c.is_control() || is_invisible(c)) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match escape_char(c, keep_newline) {
            Some(e) => out.push_str(&e),
            None => out.push(c),
        }
    }
    out
}

/// The script class of a letter, for mixed-script detection; `None` for digits, hyphens and other
/// characters every script uses.
fn script(c: char) -> Option<&'static str> {
    Some(match c as u32 {
        0x30..=0x39 | 0x2D | 0x2E | 0x5F => return None,
        0x41..=0x5A | 0x61..=0x7A | 0xC0..=0x24F | 0x1E00..=0x1EFF => "Latin",
        0x370..=0x3FF | 0x1F00..=0x1FFF => "Greek",
        0x400..=0x52F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => "Cyrillic",
        0x530..=0x58F => "Armenian",
        0x590..=0x5FF => "Hebrew",
        0x600..=0x6FF | 0x750..=0x77F => "Arabic",
        0x10A0..=0x10FF => "Georgian",
        0x13A0..=0x13FF => "Cherokee",
        0x3040..=0x30FF | 0x3400..=0x9FFF => "CJK",
        0xAC00..=0xD7AF => "Hangul",
        _ => "other",
    })
}

/// The scripts a domain label mixes, when it mixes more than one (Latin with CJK/Hangul is common and allowed
/// by registries, so only mixtures that involve Latin, Greek or Cyrillic look-alikes are reported).
fn mixed_scripts(label: &str) -> Option<Vec<&'static str>> {
    let mut seen: Vec<&'static str> = Vec::new();
    for s in label.chars().filter_map(script) {
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    let confusable = seen
        .iter()
        .filter(|s| {
            matches!(
                **s,
                "Latin" | "Greek" | "Cyrillic" | "Armenian" | "Cherokee"
            )
        })
        .count();
    (seen.len() > 1 && confusable >= 2).then_some(seen)
}

/// An address's internationalised domain: (U-label form, A-label form, mixed scripts), or `None` for a plain
/// ASCII domain.
fn idn_forms(addr: &str) -> Option<(String, String, Option<Vec<&'static str>>)> {
    let (local, domain) = addr.rsplit_once('@')?;
    let lower = domain.to_ascii_lowercase();
    if domain.is_ascii() && !lower.split('.').any(|l| l.starts_with("xn--")) {
        return None;
    }
    let ascii = idna::domain_to_ascii(domain).ok()?;
    let (unicode, r) = idna::domain_to_unicode(&ascii);
    r.ok()?;
    let mut mixed: Vec<&'static str> = Vec::new();
    for label in unicode.split('.') {
        for s in mixed_scripts(label).unwrap_or_default() {
            if !mixed.contains(&s) {
                mixed.push(s);
            }
        }
    }
    Some((
        format!("{local}@{unicode}"),
        format!("{local}@{ascii}"),
        (!mixed.is_empty()).then_some(mixed),
    ))
}

/// An address for display: escaped like [`field`]; an internationalised domain is shown in both forms
/// (`alice@bücher.example [A-label: alice@xn--bcher-kva.example]`), and a domain whose labels mix
/// look-alike scripts is marked, so `exаmple.com` with a Cyrillic "а" never passes for `example.com`.
pub fn address(addr: &str) -> String {
    match idn_forms(addr) {
        None => field(addr),
        Some((u, a, mixed)) => {
            let mut s = format!("{} [A-label: {}]", field(&u), field(&a));
            if let Some(m) = mixed {
                s += &format!(" [MIXED SCRIPTS: {}]", m.join("+"));
            }
            s
        }
    }
}

/// Addresses for display, comma-separated, each as [`address`] shows it.
pub fn addresses(list: &[String]) -> String {
    list.iter()
        .map(|a| address(a))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A warning when `addr`'s domain mixes look-alike scripts (a homograph of another domain), else `None`.
pub fn homograph_warning(addr: &str) -> Option<String> {
    let (u, a, mixed) = idn_forms(addr)?;
    let m = mixed?;
    Some(format!(
        "the address {} has a domain that mixes scripts ({}): it displays as {} and may imitate another domain; compare the A-label",
        field(&a),
        m.join("+"),
        field(&u)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_one_line_and_visible() {
        assert_eq!(field("Eve\n  E-mail: x"), "Eve\\n  E-mail: x");
        assert_eq!(field("a\u{202E}b\x1b[2J"), "a<U+202E>b\\x1b[2J");
        assert_eq!(field("Zoë"), "Zoë");
        assert_eq!(text("line\nnext\u{200B}"), "line\nnext<U+200B>");
    }

    #[test]
    fn homographs_show_the_a_label_and_are_flagged() {
        let s = address("alice@xn--exmple-4nf.com");
        assert!(s.contains("alice@xn--exmple-4nf.com"), "{s}");
        assert!(s.contains("exаmple.com"), "{s}");
        assert!(s.contains("MIXED SCRIPTS: Latin+Cyrillic"), "{s}");
        assert!(homograph_warning("alice@exаmple.com").is_some());
        // A single-script IDN is shown in both forms but not flagged.
        let s = address("user@bücher.example");
        assert!(s.contains("xn--bcher-kva") && !s.contains("MIXED"), "{s}");
        assert!(homograph_warning("user@bücher.example").is_none());
        assert_eq!(address("alice@example.com"), "alice@example.com");
    }
}
