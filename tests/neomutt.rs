//! `contrib/neomutt/smimekit.rc`: every `smime_*_command` template run through `sh -c` with its expandos
//! filled as neomutt's `ncrypt/smime.c` fills them, checked against what neomutt expects of its output
//! (DER signature on stdout and nothing on stderr; `Verification successful` as the first stderr line; filters
//! for encrypt and decrypt; certificates extracted from a signed message and imported as contacts).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Env, text};

/// The `set smime_*_command = "…"` lines of the rc file.
fn templates() -> HashMap<String, String> {
    let rc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/neomutt/smimekit.rc"),
    )
    .unwrap();
    let mut m = HashMap::new();
    for line in rc.lines() {
        let Some(rest) = line.strip_prefix("set ") else {
            continue;
        };
        let Some((name, value)) = rest.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if name.starts_with("smime_") && name.ends_with("_command") {
            let v = value.trim().trim_matches('"').to_string();
            m.insert(name.to_string(), v);
        }
    }
    m
}

/// neomutt's expansion: each `%x` replaced by its value (neomutt passes temporary file names, which have no
/// characters a shell would split).
fn expand(t: &str, vals: &[(char, &str)]) -> String {
    let mut out = String::new();
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let k = chars.next().unwrap();
            let v = vals
                .iter()
                .find(|(x, _)| *x == k)
                .unwrap_or_else(|| panic!("%{k} used in {t:?} but not filled"));
            out.push_str(v.1);
        } else {
            out.push(c);
        }
    }
    out
}

struct Mutt {
    env: Env,
    t: HashMap<String, String>,
    index: std::path::PathBuf,
}

impl Mutt {
    fn new() -> Mutt {
        let env = Env::new();
        env.import_np("p12/alice-modern.p12");
        env.trust_root();
        Mutt {
            index: env.path("nm"),
            env,
            t: templates(),
        }
    }

    /// `sh -c TEMPLATE` with the expandos, `stdin`, and `smimekit` on PATH using this home.
    fn run(&self, name: &str, vals: &[(char, &str)], stdin: &[u8]) -> Output {
        use std::io::Write;
        let t = self
            .t
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not set in smimekit.rc"));
        let cmd = expand(t, vals);
        let bin = assert_cmd::cargo::cargo_bin("smimekit");
        let path = format!(
            "{}:{}",
            bin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .env("PATH", path)
            .env("SMIMEKIT_HOME", self.env.home())
            .env("XDG_CONFIG_HOME", self.env.path("xdg"))
            .env_remove("SMIMEKIT_CONFIG")
            .env_remove("SMIMEKIT_PASSPHRASE")
            .current_dir(self.env.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    fn alice_fp(&self) -> String {
        common::fingerprint_of("pki/alice.pem")
    }
    fn key(&self) -> String {
        format!("{}/keys/{}", self.index.display(), self.alice_fp())
    }
    fn cert(&self, fp: &str) -> String {
        format!("{}/certificates/{}", self.index.display(), fp)
    }
    fn index(&self) {
        self.env
            .ok(&["neomutt", "index", self.index.to_str().unwrap()]);
    }
}

/// An entity as neomutt writes it before signing or encrypting (LF line ends).
const ENTITY: &[u8] =
    b"Content-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 7bit\n\nHello from neomutt.\n";

fn first_line(b: &[u8]) -> String {
    text(b).lines().next().unwrap_or("").to_string()
}

#[test]
fn index_maps_hashes_to_ids_and_certificates() {
    let m = Mutt::new();
    m.env.ok(&["contact", "add", &common::fx("pki/bob.pem")]);
    m.index();
    let keys = std::fs::read_to_string(m.index.join("keys/.index")).unwrap();
    let fp = m.alice_fp();
    assert_eq!(keys, format!("alice@example.com {fp} smimekit ? t es\n"));
    let certs = std::fs::read_to_string(m.index.join("certificates/.index")).unwrap();
    let bob = common::fingerprint_of("pki/bob.pem");
    assert!(certs.contains(&format!("alice@example.com {fp} smimekit ? t es\n")));
    // Bob's only certificate is the one smimekit would encrypt to: `t`, so neomutt uses it without asking.
    assert!(
        certs.contains(&format!("bob@example.org {bob} smimekit ? t es\n")),
        "{certs}"
    );
    // Each hash names a certificate file holding that certificate.
    let c = openssl::x509::X509::from_pem(&std::fs::read(m.cert(&bob)).unwrap()).unwrap();
    let got: String = c
        .digest(openssl::hash::MessageDigest::sha256())
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(got, bob);
}

#[test]
fn sign_then_verify_through_the_templates() {
    if !common::have(&["openssl"]) {
        return;
    }
    let m = Mutt::new();
    m.index();
    let ent = m.env.write_file("entity", ENTITY);
    let e = ent.to_str().unwrap();
    let key = m.key();
    let cert = m.cert(&m.alice_fp());
    // neomutt writes the passphrase and a newline (empty: the ID has none).
    let o = m.run(
        "smime_sign_command",
        &[
            ('f', e),
            ('k', &key),
            ('c', &cert),
            ('i', &cert),
            ('d', "sha256"),
        ],
        b"\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        o.stderr.is_empty(),
        "stderr must be empty: {}",
        text(&o.stderr)
    );
    assert_eq!(o.stdout.first(), Some(&0x30), "DER expected");
    let sig = m.env.write_file("entity.sig", &o.stdout);
    let s = sig.to_str().unwrap();
    // openssl agrees (it canonicalises the entity to CRLF, as S/MIME requires).
    let (rc, _, err) = common::external(
        "openssl",
        &[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            s,
            "-content",
            e,
            "-CAfile",
            &common::fx("pki/root.pem"),
            "-out",
            "/dev/null",
        ],
        None,
    );
    assert_eq!(rc, 0, "{err}");
    let ca = format!("-CAfile {}", common::fx("pki/root.pem"));
    let o = m.run(
        "smime_verify_command",
        &[('s', s), ('f', e), ('C', &ca)],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(first_line(&o.stderr).eq_ignore_ascii_case("verification successful"));
    // The same signature over a changed entity.
    let bad = m
        .env
        .write_file("entity2", &[ENTITY, b"P.S. added\n"].concat());
    let o = m.run(
        "smime_verify_command",
        &[('s', s), ('f', bad.to_str().unwrap()), ('C', &ca)],
        b"",
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(!first_line(&o.stderr).eq_ignore_ascii_case("verification successful"));
    assert!(
        text(&o.stderr).contains("message digest mismatch"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn encrypt_then_decrypt_through_the_templates() {
    if !common::have(&["openssl"]) {
        return;
    }
    let m = Mutt::new();
    m.env.ok(&["contact", "add", &common::fx("pki/bob.pem")]);
    m.index();
    let ent = m.env.write_file("entity", ENTITY);
    let certs = format!(
        "{} {}",
        m.cert(&m.alice_fp()),
        m.cert(&common::fingerprint_of("pki/bob.pem"))
    );
    let o = m.run(
        "smime_encrypt_command",
        &[('f', ent.to_str().unwrap()), ('a', "aes256"), ('c', &certs)],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    let der = o.stdout;
    assert_eq!(der.first(), Some(&0x30));
    // Bob (a contact) can read it with openssl; the content is the canonical entity.
    let d = m.env.write_file("enc.der", &der);
    let (rc, plain, err) = common::external(
        "openssl",
        &[
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            d.to_str().unwrap(),
            "-inkey",
            &common::fx("pki/bob.key"),
            "-recip",
            &common::fx("pki/bob.pem"),
        ],
        None,
    );
    assert_eq!(rc, 0, "{err}");
    assert_eq!(
        plain,
        ENTITY.iter().fold(Vec::new(), |mut v, &b| {
            if b == b'\n' {
                v.push(b'\r');
            }
            v.push(b);
            v
        })
    );
    // neomutt hands decrypt the part's body as it is in the message: base64.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let body = m.env.write_file("body", b64.as_bytes());
    let key = m.key();
    let cert = m.cert(&m.alice_fp());
    let o = m.run(
        "smime_decrypt_command",
        &[('f', body.to_str().unwrap()), ('k', &key), ('c', &cert)],
        b"\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("Content-Type: text/plain; charset=us-ascii\r\n"),
        "{out}"
    );
    assert!(out.ends_with("Hello from neomutt.\r\n"), "{out}");
    // 3DES is never used, whatever neomutt asks for.
    let o = m.run(
        "smime_encrypt_command",
        &[('f', ent.to_str().unwrap()), ('a', "des3"), ('c', &certs)],
        b"",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
}

#[test]
fn opaque_verify_and_certificate_import_through_the_templates() {
    let m = Mutt::new();
    let msg = common::simple_message("Alice <alice@example.com>", "opaque hello\r\n");
    let opaque = m.env.sign(&msg, &["--opaque"]);
    let body = common::opaque_der(&opaque);
    let f = m.env.write_file("opaque.p7m", &body);
    let ca = format!("-CAfile {}", common::fx("pki/root.pem"));
    let o = m.run(
        "smime_verify_opaque_command",
        &[('s', f.to_str().unwrap()), ('C', &ca)],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(first_line(&o.stderr).eq_ignore_ascii_case("verification successful"));
    assert!(text(&o.stdout).contains("opaque hello"));

    // <extract-keys> on a signed message: pk7out, then get_cert, then the signer's address, then import.
    let signed = m.env.sign(&msg, &[]);
    let mf = m.env.write_file("signed.eml", &signed);
    let o = m.run("smime_pk7out_command", &[('f', mf.to_str().unwrap())], b"");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(!o.stdout.is_empty());
    let pk7 = m.env.write_file("pk7", &o.stdout);
    let o = m.run(
        "smime_get_cert_command",
        &[('f', pk7.to_str().unwrap())],
        b"",
    );
    assert!(text(&o.stdout).contains("-----BEGIN CERTIFICATE-----"));
    let certs = m.env.write_file("certs.pem", &o.stdout);
    let signer = m.env.path("signer.pem");
    let o = m.run(
        "smime_get_signer_cert_command",
        &[('f', mf.to_str().unwrap()), ('c', signer.to_str().unwrap())],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = m.run(
        "smime_get_cert_email_command",
        &[('f', signer.to_str().unwrap())],
        b"",
    );
    assert_eq!(text(&o.stdout), "alice@example.com\n");

    // Import into a home that does not know Alice: she becomes a contact (neomutt sends a label line).
    let bob = Mutt {
        env: Env::new(),
        t: templates(),
        index: std::path::PathBuf::new(),
    };
    bob.env.init_home();
    let o = bob.run(
        "smime_import_cert_command",
        &[('f', certs.to_str().unwrap())],
        b"alice\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let list = text(&bob.env.ok(&["contact", "list"]).stdout);
    assert!(list.contains("alice@example.com"), "{list}");
}

/// A real neomutt composes a message to Bob with `crypt_autosign` and `crypt_autoencrypt` and sends it through
/// the rc file's templates: on a pseudo-terminal (`script`), keys typed ahead (accept To, accept Subject, `y`
/// to send, an empty passphrase), a `$sendmail` that writes the message to a file. Bob decrypts what neomutt
/// sent with his own ID and finds Alice's valid signature inside.
#[test]
fn real_neomutt_sends_a_signed_and_encrypted_message() {
    if !common::have(&["neomutt", "script", "timeout"]) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let m = Mutt::new();
    m.env.ok(&["contact", "add", &common::fx("pki/bob.pem")]);
    m.index();
    let dir = m.env.dir.path();
    let sent = m.env.path("sent.eml");
    let sendmail = m.env.path("sendmail.sh");
    std::fs::write(
        &sendmail,
        format!("#!/bin/sh\ncat > '{}'\n", sent.display()),
    )
    .unwrap();
    std::fs::set_permissions(&sendmail, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/neomutt/smimekit.rc"),
    )
    .unwrap()
    .replace("~/.local/share/smimekit-neomutt", m.index.to_str().unwrap());
    let rc = format!(
        "{rc}\nset smime_default_key = \"{}\"\nset from = \"alice@example.com\"\nset sendmail = \"{}\"\n\
         set crypt_autoencrypt = yes\nset crypt_autosign = yes\nset smime_is_default = yes\nset smime_self_encrypt = yes\n\
         set record = \"\"\nset folder = \"{}\"\n",
        m.alice_fp(),
        sendmail.display(),
        dir.display()
    );
    let rcf = m.env.write_file("neomuttrc", rc.as_bytes());
    let draft = m.env.write_file(
        "draft",
        b"From: alice@example.com\nTo: bob@example.org\nSubject: from neomutt\n\nsecret body\n",
    );
    let bin = assert_cmd::cargo::cargo_bin("smimekit");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let keys = "sleep 3; printf '\\r'; sleep 2; printf '\\r'; sleep 2; printf y; sleep 2; printf '\\r'; sleep 5";
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "({keys}) | timeout 25 script -qec \"neomutt -n -F {} -H {}\" /dev/null",
            rcf.display(),
            draft.display()
        ))
        .current_dir(dir)
        .env("PATH", path)
        .env("HOME", dir)
        .env("TERM", "vt100")
        .env("EDITOR", "true")
        .env("SMIMEKIT_HOME", m.env.home())
        .env("XDG_CONFIG_HOME", m.env.path("xdg"))
        .env_remove("SMIMEKIT_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let msg = std::fs::read(&sent).unwrap_or_else(|_| {
        panic!(
            "neomutt sent nothing; its screen:\n{}",
            text(&o.stdout)
                .chars()
                .rev()
                .take(2000)
                .collect::<String>()
                .chars()
                .rev()
                .collect::<String>()
        )
    });
    let ct = common::header(&msg, "Content-Type").unwrap();
    assert!(
        ct.contains("pkcs7-mime") && ct.contains("enveloped-data"),
        "{ct}"
    );
    assert!(!text(&msg).contains("secret body"));
    // Bob, with his own ID in his own home, reads it.
    let bob = Env::new();
    bob.import_np("p12/bob.p12");
    bob.trust_root();
    let f = bob.write("sent.eml", &msg);
    let out = bob.ok(&["decrypt", &f]);
    assert!(
        text(&out.stdout).contains("secret body"),
        "{}",
        text(&out.stdout)
    );
    let report = text(&out.stderr);
    assert!(report.contains("Signer 1: valid"), "{report}");
    assert!(report.contains("alice@example.com"), "{report}");
}
