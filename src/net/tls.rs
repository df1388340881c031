//! The TLS connector of the project: one place where smimekit opens TLS, over the `openssl` crate.
//!
//! Rules (RFC 8314, RFC 9325, RFC 9525): TLS 1.2 or newer unless a caller asks for a probe of older versions;
//! SNI sent for a host name; the host name checked against the certificate's subjectAltName only (never the
//! subject CN, no partial wildcards), an IP address against an IP SAN; trust = the system store plus the extra
//! anchors given (`--ca`, the account's); no ALPN (ALPACA).
//!
//! The handshake itself never fails because of the certificate: verification problems are *recorded* (every
//! one, with its depth) and returned in a [`Handshake`] together with the negotiated version, the cipher and
//! the peer chain as the server sent it. A checker reports them; a sender calls [`Handshake::require_trusted`],
//! which refuses unless the chain verified or the leaf matches a fingerprint the user accepted explicitly.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use openssl::hash::MessageDigest;
use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode, SslVersion};
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::{X509, X509VerifyResult};

use crate::error::{Error, ErrorKind, Result};

/// The oldest TLS version a connection for sending mail accepts.
pub const MIN_VERSION: SslVersion = SslVersion::TLS1_2;

/// How to build a connector.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// Trust anchors besides the system store (`--ca`, an account's anchors).
    pub extra_anchors: Vec<X509>,
    /// Leave out the system store (tests, or a checker that wants "against these anchors only").
    pub no_system_store: bool,
    /// Oldest protocol version to offer; `None` = [`MIN_VERSION`]. Only a checker probing a server passes an
    /// older one (which also lowers OpenSSL's security level so the old handshake can happen at all).
    pub min_version: Option<SslVersion>,
    /// Newest protocol version to offer; `None` = the newest OpenSSL knows (a checker probing one version).
    pub max_version: Option<SslVersion>,
}

/// One problem found while verifying the server's chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyProblem {
    /// Which check failed.
    pub check: Check,
    /// Depth in the chain (0 = the server's certificate).
    pub depth: u32,
    /// OpenSSL's verification code (`X509_V_ERR_*`).
    pub code: i32,
    /// OpenSSL's text for it.
    pub text: String,
}

/// The check a verification problem belongs to, in words a user can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The certificate is its own issuer and is not a trusted anchor.
    SelfSigned,
    /// The chain does not lead to a trusted root (unknown root, or an intermediate the server did not send).
    Chain,
    /// The certificate is not valid for the host name (or IP address) connected to.
    HostName,
    /// A certificate in the chain has expired.
    Expired,
    /// A certificate in the chain is not valid yet.
    NotYetValid,
    /// Any other verification failure (signature, purpose, constraints…).
    Other,
}

impl Check {
    /// A short phrase for reports and errors.
    pub fn describe(self) -> &'static str {
        match self {
            Check::SelfSigned => "the certificate is self-signed and not trusted",
            Check::Chain => "the certificate chain does not lead to a trusted root",
            Check::HostName => "the certificate is not valid for this host name",
            Check::Expired => "a certificate in the chain has expired",
            Check::NotYetValid => "a certificate in the chain is not valid yet",
            Check::Other => "the certificate chain did not verify",
        }
    }
    fn from_code(code: i32) -> Check {
        use openssl_sys as f;
        match code {
            f::X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT | f::X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN => {
                Check::SelfSigned
            }
            f::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
            | f::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
            | f::X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
            | f::X509_V_ERR_CERT_UNTRUSTED => Check::Chain,
            f::X509_V_ERR_HOSTNAME_MISMATCH | f::X509_V_ERR_IP_ADDRESS_MISMATCH => Check::HostName,
            f::X509_V_ERR_CERT_HAS_EXPIRED => Check::Expired,
            f::X509_V_ERR_CERT_NOT_YET_VALID => Check::NotYetValid,
            _ => Check::Other,
        }
    }
}

/// What a completed handshake established.
#[derive(Clone)]
pub struct Handshake {
    /// The host name (or IP address) the certificate was checked against; also the SNI sent for a name.
    pub host: String,
    /// Negotiated protocol, e.g. `TLSv1.3`.
    pub version: String,
    /// Negotiated cipher suite (OpenSSL name), e.g. `TLS_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The certificates as the server sent them, the server's own first.
    pub peer_chain: Vec<X509>,
    /// The chain OpenSSL built to an anchor (empty when none was found).
    pub verified_chain: Vec<X509>,
    /// Every verification problem; empty means the chain, host name and validity all verified.
    pub problems: Vec<VerifyProblem>,
}

impl Handshake {
    /// True when the chain verified to a trusted anchor, for this host name, within its validity.
    pub fn verified(&self) -> bool {
        self.problems.is_empty() && !self.peer_chain.is_empty()
    }
    /// SHA-256 of the server's certificate (DER), the value `--insecure-accept-fingerprint` compares.
    pub fn fingerprint_sha256(&self) -> Option<[u8; 32]> {
        let leaf = self.peer_chain.first()?;
        let d = leaf.digest(MessageDigest::sha256()).ok()?;
        d.as_ref().try_into().ok()
    }
    /// Refuses the connection unless it verified, or the server's certificate has the `accepted` SHA-256
    /// fingerprint (the user's explicit, loudly named exception). The error names the failed check.
    pub fn require_trusted(&self, accepted: Option<&[u8; 32]>) -> Result<()> {
        if self.verified() {
            return Ok(());
        }
        let fp = self.fingerprint_sha256();
        if let (Some(want), Some(got)) = (accepted, fp.as_ref())
            && want == got
        {
            return Ok(());
        }
        let first = self.problems.first();
        let what = first.map_or("the server sent no certificate", |p| p.check.describe());
        let fp_hex = fp.map(|f| hex(&f)).unwrap_or_default();
        let accepted_note = if accepted.is_some() {
            " (and the fingerprint given with --insecure-accept-fingerprint does not match)"
        } else {
            ""
        };
        let mut e = Error::new(
            ErrorKind::Network,
            format!(
                "{}: the server's certificate is not trusted: {what}{accepted_note}",
                self.host
            ),
        )
        .hint(format!(
            "run `smimekit check-server {}` to see the chain; add the issuing CA with --ca FILE, or, if you \
             have checked this certificate another way, pass --insecure-accept-fingerprint {fp_hex}",
            self.host
        ));
        if let Some(p) = first {
            e = e.detail(format!("depth {}: {}", p.depth, p.text));
        }
        Err(e)
    }
}

/// Lower-case hex, for fingerprints.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a SHA-256 fingerprint given as 64 hex digits, with or without `:` separators.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32]> {
    let clean: String = s.chars().filter(|c| *c != ':').collect();
    let bad = || {
        Error::usage(format!("not a SHA-256 fingerprint: {s}"))
            .hint("give the 64 hex digits printed in the certificate error")
    };
    if clean.len() != 64 || !clean.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&clean[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// A configured TLS client; cheap to reuse for several connections.
pub struct Connector {
    inner: SslConnector,
}

impl Connector {
    /// Builds a connector from `opts`.
    pub fn new(opts: &TlsOptions) -> Result<Connector> {
        let ossl = |e| Error::crypto("cannot set up TLS", e);
        let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(ossl)?;
        if opts.no_system_store {
            // The builder loaded the system store; replace it with an empty one.
            let store = openssl::x509::store::X509StoreBuilder::new().map_err(ossl)?;
            b.set_cert_store(store.build());
        }
        {
            let ctx = &mut b;
            for a in &opts.extra_anchors {
                ctx.cert_store_mut().add_cert(a.clone()).map_err(ossl)?;
            }
            let min = opts.min_version.unwrap_or(MIN_VERSION);
            if opts.min_version.is_some() {
                // OpenSSL 3 refuses TLS < 1.2 at the default security level; a probe must be able to see them.
                ctx.set_security_level(0);
                let _ = ctx.set_cipher_list("DEFAULT:@SECLEVEL=0");
            }
            ctx.set_min_proto_version(Some(min)).map_err(ossl)?;
            ctx.set_max_proto_version(opts.max_version).map_err(ossl)?;
        }
        let inner = b.build();
        Ok(Connector { inner })
    }

    /// Performs the handshake over `stream` for `host` (a DNS name or an IP address). Succeeds whatever the
    /// certificate: verification problems are in the returned [`Handshake`]. Fails only when no TLS session
    /// could be set up (protocol version, cipher, the peer closing…), with the reason.
    pub fn connect<S: Read + Write>(
        &self,
        host: &str,
        stream: S,
    ) -> Result<(SslStream<S>, Handshake)> {
        let ossl = |e| Error::crypto("cannot set up TLS", e);
        let mut cfg = self.inner.configure().map_err(ossl)?;
        cfg.set_verify_hostname(false); // done below, with stricter flags
        // Ask for a stapled OCSP response (RFC 6066 status_request): check-server reports it from the stream's
        // `ocsp_status()`; nothing else reads it, and a server that does not staple simply sends none.
        cfg.set_status_type(openssl::ssl::StatusType::OCSP)
            .map_err(ossl)?;
        let problems: Arc<Mutex<Vec<VerifyProblem>>> = Arc::default();
        let sink = problems.clone();
        cfg.set_verify_callback(SslVerifyMode::PEER, move |ok, ctx| {
            if !ok {
                let code = ctx.error();
                let p = VerifyProblem {
                    check: Check::from_code(code.as_raw()),
                    depth: ctx.error_depth(),
                    code: code.as_raw(),
                    text: code.error_string().to_string(),
                };
                if let Ok(mut v) = sink.lock()
                    && !v.contains(&p)
                {
                    v.push(p);
                }
            }
            // Record and go on: the caller decides (a sender refuses, a checker reports).
            true
        });
        {
            let param = cfg.param_mut();
            param.set_hostflags(
                X509CheckFlags::NO_PARTIAL_WILDCARDS | X509CheckFlags::NEVER_CHECK_SUBJECT,
            );
            match host.parse::<std::net::IpAddr>() {
                Ok(ip) => param.set_ip(ip).map_err(ossl)?,
                Err(_) => param.set_host(host).map_err(ossl)?,
            }
        }
        // SNI is sent for a name, never for an address (RFC 6066 §3); into_ssl does that.
        let ssl = cfg.into_ssl(host).map_err(ossl)?;
        let s = match ssl.connect(stream) {
            Ok(s) => s,
            Err(e) => return Err(handshake_error(host, e)),
        };
        let mut problems = problems.lock().map(|v| v.clone()).unwrap_or_default();
        // Belt and braces: a result OpenSSL kept that the callback did not see.
        let r = s.ssl().verify_result();
        if r != X509VerifyResult::OK && problems.is_empty() {
            problems.push(VerifyProblem {
                check: Check::from_code(r.as_raw()),
                depth: 0,
                code: r.as_raw(),
                text: r.error_string().to_string(),
            });
        }
        let chain = |c: Option<&openssl::stack::StackRef<X509>>| {
            c.map(|st| st.iter().map(|x| x.to_owned()).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let hs = Handshake {
            host: host.to_string(),
            version: s.ssl().version_str().to_string(),
            cipher: s
                .ssl()
                .current_cipher()
                .map(|c| c.name().to_string())
                .unwrap_or_default(),
            peer_chain: chain(s.ssl().peer_cert_chain()),
            verified_chain: if problems.is_empty() {
                chain(s.ssl().verified_chain())
            } else {
                Vec::new()
            },
            problems,
        };
        Ok((s, hs))
    }
}

/// Why a handshake failed, in words; the OpenSSL stack goes to the detail line.
fn handshake_error<S>(host: &str, e: openssl::ssl::HandshakeError<S>) -> Error {
    use openssl::ssl::HandshakeError as H;
    let (text, io_timeout) = match &e {
        H::SetupFailure(st) => (st.to_string(), false),
        H::Failure(m) | H::WouldBlock(m) => {
            let err = m.error();
            let timeout = err.io_error().is_some_and(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                )
            });
            (err.to_string(), timeout)
        }
    };
    let low = text.to_ascii_lowercase();
    let (msg, hint) = if io_timeout {
        (
            "the server did not complete the TLS handshake in time".to_string(),
            "check the port: is TLS spoken there (465 implicit TLS, 587 STARTTLS)?",
        )
    } else if low.contains("unsupported protocol")
        || low.contains("protocol version")
        || low.contains("no protocols available")
    {
        (
            "the server offers only TLS versions older than 1.2, which smimekit refuses"
                .to_string(),
            "ask the server's administrator to enable TLS 1.2 or 1.3; `smimekit check-server` shows what it offers",
        )
    } else if low.contains("wrong version number") || low.contains("packet length too long") {
        (
            "the server does not speak TLS on this port".to_string(),
            "use --tls starttls for a STARTTLS port (587), implicit TLS for 465",
        )
    } else if low.contains("eof") || low.contains("unexpected eof") || low.contains("syscall") {
        (
            "the server closed the connection during the TLS handshake".to_string(),
            "check the port and that the server offers TLS 1.2 or newer",
        )
    } else {
        (
            "the TLS handshake failed".to_string(),
            "`smimekit check-server` shows what the server offers",
        )
    };
    Error::new(ErrorKind::Network, format!("{host}: {msg}"))
        .hint(hint)
        .detail(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::pkey::PKey;
    use openssl::ssl::{SslAcceptor, SslMethod};
    use openssl::x509::X509NameBuilder;
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    use std::net::{TcpListener, TcpStream};

    /// A self-made CA and a server certificate for `san` (DNS names and IPs), valid from `days_from` to
    /// `days_to` relative to today.
    fn pki(
        san: &[&str],
        days_from: i64,
        days_to: i64,
    ) -> (X509, X509, PKey<openssl::pkey::Private>) {
        pki_cn(san[0], san, days_from, days_to)
    }

    fn pki_cn(
        cn: &str,
        san: &[&str],
        days_from: i64,
        days_to: i64,
    ) -> (X509, X509, PKey<openssl::pkey::Private>) {
        let now = time_now();
        let mk_name = |cn: &str| {
            let mut n = X509NameBuilder::new().unwrap();
            n.append_entry_by_text("CN", cn).unwrap();
            n.build()
        };
        let ca_key = PKey::ec_gen("prime256v1").unwrap();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let ca_name = mk_name(&format!("Test CA for {cn}"));
        b.set_subject_name(&ca_name).unwrap();
        b.set_issuer_name(&ca_name).unwrap();
        b.set_pubkey(&ca_key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(now - 86400).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(now + 86400 * 3650).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.sign(&ca_key, MessageDigest::sha256()).unwrap();
        let ca = b.build();
        let key = PKey::ec_gen("prime256v1").unwrap();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let sn = openssl::bn::BigNum::from_u32(7)
            .unwrap()
            .to_asn1_integer()
            .unwrap();
        b.set_serial_number(&sn).unwrap();
        b.set_subject_name(&mk_name(cn)).unwrap();
        b.set_issuer_name(ca.subject_name()).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(now + days_from * 86400).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(now + days_to * 86400).unwrap())
            .unwrap();
        let mut alt = SubjectAlternativeName::new();
        for s in san {
            if s.parse::<std::net::IpAddr>().is_ok() {
                alt.ip(s);
            } else {
                alt.dns(s);
            }
        }
        let ext = alt.build(&b.x509v3_context(Some(&ca), None)).unwrap();
        b.append_extension(ext).unwrap();
        b.sign(&ca_key, MessageDigest::sha256()).unwrap();
        (ca, b.build(), key)
    }

    fn time_now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// Serves one TLS handshake on a loopback port with `cert`; `max` caps the server's version.
    fn serve(cert: X509, key: PKey<openssl::pkey::Private>, max: Option<SslVersion>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut a = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
            a.set_certificate(&cert).unwrap();
            a.set_private_key(&key).unwrap();
            if max.is_some() {
                a.set_security_level(0);
                a.set_cipher_list("DEFAULT:@SECLEVEL=0").unwrap();
                a.set_min_proto_version(Some(SslVersion::TLS1)).unwrap();
                a.set_max_proto_version(max).unwrap();
            }
            let a = a.build();
            if let Ok((s, _)) = l.accept() {
                s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .unwrap();
                if let Ok(mut t) = a.accept(s) {
                    let _ = t.write_all(b"x");
                }
            }
        });
        port
    }

    fn client(ca: &X509, host: &str, port: u16) -> Result<Handshake> {
        let c = Connector::new(&TlsOptions {
            extra_anchors: vec![ca.clone()],
            no_system_store: true,
            ..Default::default()
        })?;
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        c.connect(host, tcp).map(|(_, h)| h)
    }

    #[test]
    fn verified_handshake_reports_version_cipher_and_chain() {
        let (ca, cert, key) = pki(&["localhost", "127.0.0.1"], -1, 365);
        let h = client(&ca, "localhost", serve(cert.clone(), key, None)).unwrap();
        assert!(h.verified(), "{:?}", h.problems);
        assert!(h.version == "TLSv1.3" || h.version == "TLSv1.2");
        assert!(!h.cipher.is_empty());
        assert_eq!(h.peer_chain[0].to_der().unwrap(), cert.to_der().unwrap());
        assert!(h.require_trusted(None).is_ok());
        assert_eq!(h.verified_chain.len(), 2);
    }

    #[test]
    fn ip_address_is_checked_against_ip_san() {
        let (ca, cert, key) = pki(&["localhost", "127.0.0.1"], -1, 365);
        let h = client(&ca, "127.0.0.1", serve(cert, key, None)).unwrap();
        assert!(h.verified(), "{:?}", h.problems);
    }

    #[test]
    fn wrong_host_name_is_a_host_name_problem_and_refused() {
        let (ca, cert, key) = pki(&["wrong.example.test"], -1, 365);
        let h = client(&ca, "localhost", serve(cert, key, None)).unwrap();
        assert!(!h.verified());
        assert_eq!(h.problems[0].check, Check::HostName);
        let e = h.require_trusted(None).unwrap_err();
        assert!(e.message().contains("not valid for this host name"), "{e}");
        assert!(e.hint_text().unwrap().contains("check-server"));
    }

    #[test]
    fn no_cn_fallback() {
        // The CN says localhost but the SAN does not: RFC 9525 forbids falling back to the CN.
        let (ca, cert, key) = pki_cn("localhost", &["other.test"], -1, 365);
        let h = client(&ca, "localhost", serve(cert, key, None)).unwrap();
        assert_eq!(h.problems[0].check, Check::HostName);
    }

    #[test]
    fn unknown_root_and_expired_are_named() {
        let (_ca, cert, key) = pki(&["localhost"], -1, 365);
        let (other_ca, _, _) = pki(&["x"], -1, 365);
        let h = client(&other_ca, "localhost", serve(cert, key, None)).unwrap();
        assert_eq!(h.problems[0].check, Check::Chain);

        let (ca, cert, key) = pki(&["localhost"], -30, -1);
        let h = client(&ca, "localhost", serve(cert, key, None)).unwrap();
        assert!(
            h.problems.iter().any(|p| p.check == Check::Expired),
            "{:?}",
            h.problems
        );
        assert!(
            h.require_trusted(None)
                .unwrap_err()
                .message()
                .contains("expired")
        );
    }

    #[test]
    fn accepted_fingerprint_overrides_only_when_equal() {
        let (_ca, cert, key) = pki(&["localhost"], -1, 365);
        let (other_ca, _, _) = pki(&["x"], -1, 365);
        let h = client(&other_ca, "localhost", serve(cert.clone(), key, None)).unwrap();
        let fp: [u8; 32] = cert
            .digest(MessageDigest::sha256())
            .unwrap()
            .as_ref()
            .try_into()
            .unwrap();
        assert!(h.require_trusted(Some(&fp)).is_ok());
        let mut wrong = fp;
        wrong[0] ^= 1;
        assert!(h.require_trusted(Some(&wrong)).is_err());
        assert_eq!(parse_fingerprint(&hex(&fp)).unwrap(), fp);
    }

    #[test]
    fn tls_1_1_only_server_is_refused_with_reason() {
        let (ca, cert, key) = pki(&["localhost"], -1, 365);
        let port = serve(cert, key, Some(SslVersion::TLS1_1));
        let e = client(&ca, "localhost", port).err().expect("must fail");
        assert!(
            e.message().contains("older than 1.2"),
            "{e} {:?}",
            e.detail_text()
        );
    }
}
