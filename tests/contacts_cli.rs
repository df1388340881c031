//! `smimekit contact …` end to end, with certificates made by the openssl CLI in a temporary folder.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Std;

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(env.path("certs")).unwrap();
        env.write("certs/ext.cnf", EXT);
        env
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn write(&self, p: &str, data: &str) {
        std::fs::write(self.path(p), data).unwrap();
    }
    fn cert(&self, name: &str) -> String {
        self.path(&format!("certs/{name}"))
            .to_str()
            .unwrap()
            .to_string()
    }
    fn openssl(&self, args: &[&str]) {
        let o = Std::new("openssl")
            .args(args)
            .current_dir(self.path("certs"))
            .output()
            .expect("openssl CLI");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    /// A self-signed root `name`.
    fn root(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }
    /// A certificate `name` issued by `issuer` with the extension section `section` of ext.cnf.
    fn issue(&self, name: &str, issuer: &str, section: &str, days: &str, key: &str) {
        self.openssl(&[
            "req",
            "-newkey",
            key,
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{issuer}.pem"),
            "-CAkey",
            &format!("{issuer}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            days,
            "-extfile",
            "ext.cnf",
            "-extensions",
            section,
        ]);
    }
    fn cmd(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        cargo_bin_cmd!("smimekit")
            .arg("--home")
            .arg(self.path("home"))
            .arg("--batch")
            .args(args)
            .assert()
    }
    fn ok(&self, args: &[&str]) -> (String, String) {
        let a = self.cmd(args).success();
        let o = a.get_output();
        (
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    }
    fn fails(&self, args: &[&str]) -> String {
        let a = self.cmd(args).code(2);
        String::from_utf8_lossy(&a.get_output().stderr).to_string()
    }
    /// The arguments of `contact add` for files of the certs folder.
    fn add_args(&self, certs: &[&str]) -> Vec<String> {
        let mut a = vec!["contact".to_string(), "add".to_string()];
        a.extend(certs.iter().map(|c| self.cert(c)));
        a
    }
    /// `contact add` of files of the certs folder, which must succeed; returns (stdout, stderr).
    fn add(&self, certs: &[&str]) -> (String, String) {
        let a = self.add_args(certs);
        self.ok(&a.iter().map(String::as_str).collect::<Vec<_>>())
    }
    /// `contact add` of files of the certs folder, which must exit 2; returns stderr.
    fn add_fails(&self, certs: &[&str]) -> String {
        let a = self.add_args(certs);
        self.fails(&a.iter().map(String::as_str).collect::<Vec<_>>())
    }
    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args).0).unwrap()
    }
    /// Every file of the contacts store with its content.
    fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(p: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            let Ok(rd) = std::fs::read_dir(p) else { return };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        let mut v = Vec::new();
        walk(&self.path("home/contacts"), &mut v);
        v.sort();
        v
    }
    /// Root, intermediate, and leaves alice (RSA), bob (EC, DER copy), carol, a second alice, a signing-only
    /// dave, and a certificate without an address.
    ///
    /// Made at test time, unlike the committed `fixtures/`, because these tests need relative validity that a
    /// committed file cannot keep: carol expires in 20 days (the "expires soon" flag) and alice2 must be
    /// strictly newer than alice.
    fn pki(&self) {
        self.root("root");
        self.openssl(&["ecparam", "-name", "prime256v1", "-out", "p256.pem"]);
        self.issue("inter", "root", "ca", "1000", "rsa:2048");
        self.issue("alice", "inter", "alice", "300", "rsa:2048");
        // alice2 must be strictly newer (notBefore has one-second resolution): selection prefers the newest.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        self.issue("alice2", "inter", "alice", "400", "rsa:2048");
        self.issue("bob", "inter", "bob", "300", "ec:p256.pem");
        self.issue("carol", "inter", "carol", "20", "rsa:2048");
        self.issue("dave", "inter", "dave", "300", "rsa:2048");
        self.issue("noaddr", "inter", "noaddr", "300", "rsa:2048");
        self.openssl(&[
            "x509", "-in", "bob.pem", "-outform", "DER", "-out", "bob.der",
        ]);
        self.openssl(&[
            "crl2pkcs7",
            "-nocrl",
            "-certfile",
            "carol.pem",
            "-certfile",
            "inter.pem",
            "-certfile",
            "root.pem",
            "-outform",
            "DER",
            "-out",
            "carol.p7b",
        ]);
        self.openssl(&[
            "crl2pkcs7",
            "-nocrl",
            "-certfile",
            "dave.pem",
            "-certfile",
            "inter.pem",
            "-outform",
            "PEM",
            "-out",
            "dave.p7c",
        ]);
    }
}

const EXT: &str = "\
[ca]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
[alice]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=emailProtection
subjectAltName=email:Alice@Example.com
[bob]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=emailProtection
subjectAltName=email:bob@example.org
[carol]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=emailProtection
subjectAltName=email:carol@example.net
[dave]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=emailProtection
subjectAltName=email:dave@example.net
[noaddr]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
";

fn fps(list: &Value) -> Vec<String> {
    list["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["fingerprint"].as_str().unwrap().to_string())
        .collect()
}

fn fingerprint_of(env: &Env, file: &str) -> String {
    let o = Std::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(env.cert(file))
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    s.trim()
        .split('=')
        .nth(1)
        .unwrap()
        .replace(':', "")
        .to_lowercase()
}

#[test]
fn add_pem_der_and_p7b_then_list() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = Env::new();
    env.pki();
    let (out, err) = env.add(&["alice.pem", "bob.der", "carol.p7b", "dave.p7c"]);
    assert_eq!(out.matches("added").count(), 4, "{out}");
    assert!(out.contains("intermediate"), "{out}");
    assert!(
        err.contains("root"),
        "the root is named as not stored: {err}"
    );
    let v = env.json(&["contact", "list", "--json"]);
    assert_eq!(fps(&v).len(), 4);
    // The intermediate is kept once, the root never (certs-only input never adds trust).
    let inter = v["intermediates"].as_array().unwrap();
    assert_eq!(inter.len(), 1);
    assert_eq!(
        inter[0]["fingerprint"].as_str().unwrap(),
        fingerprint_of(&env, "inter.pem")
    );
    assert!(fps(&v).contains(&fingerprint_of(&env, "bob.pem")));
    let carol = v["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["emails"][0] == "carol@example.net")
        .unwrap();
    assert_eq!(carol["status"], "expires soon");
    assert_eq!(carol["expires_soon"], true);
    assert_eq!(carol["meta"]["provenance"][0]["source"], "file");
    let dave = v["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["emails"][0] == "dave@example.net")
        .unwrap();
    assert_eq!(dave["can_encrypt"], false);
    // Human listing flags the soon-expiring one.
    let (out, _) = env.ok(&["contact", "list"]);
    assert!(out.contains("[EXPIRES SOON]"), "{out}");
    assert!(out.contains("signing only"), "{out}");
    // Adding again changes nothing but the provenance.
    let (out, _) = env.add(&["alice.pem"]);
    assert!(out.contains("already present"), "{out}");
}

#[test]
fn show_explains_the_choice_and_prefer_pins() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = Env::new();
    env.pki();
    env.ok(&["trust", "add", &env.cert("root.pem")]);
    env.add(&["inter.pem", "alice.pem"]);
    let (_, err) = env.add(&["alice2.pem"]);
    assert!(err.contains("certificate changed"), "key change: {err}");
    let a1 = fingerprint_of(&env, "alice.pem");
    let a2 = fingerprint_of(&env, "alice2.pem");

    let v = env.json(&["contact", "show", "ALICE@example.COM", "--json"]);
    assert_eq!(v["certificates"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["selection"]["chosen"]["fingerprint"].as_str().unwrap(),
        a2
    );
    assert_eq!(v["selection"]["chosen"]["chain_trusted"], true);
    let (out, _) = env.ok(&["contact", "show", "alice@example.com"]);
    assert!(out.contains(&format!("* {a2}")), "{out}");
    assert!(out.contains("used for encryption"), "{out}");

    env.ok(&["contact", "prefer", "alice@example.com", &a1[..12]]);
    let v = env.json(&["contact", "show", "alice@example.com", "--json"]);
    assert_eq!(
        v["selection"]["chosen"]["fingerprint"].as_str().unwrap(),
        a1
    );
    assert!(
        v["selection"]["reason"]
            .as_str()
            .unwrap()
            .contains("pinned")
    );
    let out = env.path("out.pem");
    env.ok(&[
        "contact",
        "export",
        "alice@example.com",
        "-o",
        out.to_str().unwrap(),
    ]);
    let pem = std::fs::read_to_string(&out).unwrap();
    let a1_pem = std::fs::read_to_string(env.cert("alice.pem")).unwrap();
    assert_eq!(pem.trim(), a1_pem.trim());

    // Pinning another address's certificate is refused.
    env.add(&["bob.der"]);
    let b = fingerprint_of(&env, "bob.pem");
    let err = env.fails(&["contact", "prefer", "alice@example.com", &b]);
    assert!(
        err.contains("is for bob@example.org, not alice@example.com"),
        "{err}"
    );
    env.ok(&["contact", "prefer", "alice@example.com", "--clear"]);
    let v = env.json(&["contact", "show", "alice@example.com", "--json"]);
    assert_eq!(
        v["selection"]["chosen"]["fingerprint"].as_str().unwrap(),
        a2
    );
    // An EC key-agreement certificate is usable for encryption.
    let v = env.json(&["contact", "show", "bob@example.org", "--json"]);
    assert_eq!(v["selection"]["chosen"]["fingerprint"].as_str().unwrap(), b);
}

#[test]
fn signing_only_contact_cannot_be_exported_for_encryption() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = Env::new();
    env.pki();
    env.add(&["dave.pem"]);
    let out = env.path("dave-out.pem");
    let err = env.fails(&[
        "contact",
        "export",
        "dave@example.net",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(err.contains("keyEncipherment"), "{err}");
    assert!(!out.exists());
    let (out, _) = env.ok(&["contact", "show", "dave@example.net"]);
    assert!(out.contains("not used"), "{out}");
    let err = env.fails(&["contact", "show", "nobody@example.net"]);
    assert!(
        err.contains("no certificate for nobody@example.net"),
        "{err}"
    );
    assert!(err.contains("smimekit contact add FILE"), "{err}");
}

#[test]
fn remove_by_address_and_fingerprint() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = Env::new();
    env.pki();
    env.add(&["alice.pem", "alice2.pem", "bob.der"]);
    // --batch without --yes: confirmation needed, nothing removed.
    let before = env.snapshot();
    let err = env.fails(&["contact", "remove", "alice@example.com"]);
    assert!(err.contains("needs confirmation"), "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(before, env.snapshot());
    env.ok(&["contact", "remove", "Alice@EXAMPLE.com", "--yes"]);
    let v = env.json(&["contact", "list", "--json"]);
    assert_eq!(fps(&v), vec![fingerprint_of(&env, "bob.pem")]);
    let b = fingerprint_of(&env, "bob.pem");
    env.ok(&["contact", "remove", &b[..10], "--yes"]);
    let v = env.json(&["contact", "list", "--json"]);
    assert!(fps(&v).is_empty());
    // The certificate files are gone too.
    let files: Vec<_> = env
        .snapshot()
        .into_iter()
        .filter(|(p, _)| {
            p.extension().is_some_and(|e| e == "pem")
                && !p.to_string_lossy().contains("intermediates")
        })
        .collect();
    assert!(files.is_empty(), "{files:?}");
    let err = env.fails(&["contact", "remove", "alice@example.com", "--yes"]);
    assert!(
        err.contains("no contact certificate for alice@example.com"),
        "{err}"
    );
}

#[test]
fn bad_files_exit_2_and_change_nothing() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = Env::new();
    env.pki();
    env.add(&["bob.der"]);
    let before = env.snapshot();
    assert!(!before.is_empty());
    env.write("certs/garbage.pem", "not a certificate\n");
    env.write(
        "certs/empty.pem",
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
    );
    let cases: &[(&[&str], &str)] = &[
        (&["alice.pem", "garbage.pem"], "neither a certificate"),
        (&["alice.pem", "empty.pem"], "damaged"),
        (&["alice.pem", "noaddr.pem"], "no e-mail address"),
        (&["root.pem"], "CA certificates are not contacts"),
        (&["alice.key"], "private key"),
        (&["alice.pem", "missing.pem"], "missing.pem"),
    ];
    for (files, msg) in cases {
        let err = env.add_fails(files);
        assert!(err.contains(msg), "{files:?}: {err}");
        assert!(err.contains("smimekit: hint:"), "{files:?}: no hint: {err}");
        assert_eq!(before, env.snapshot(), "{files:?} changed the store");
    }
    let err = env.add_fails(&["root.pem"]);
    assert!(err.contains("smimekit trust add"), "{err}");
}

#[test]
fn crash_before_the_index_is_replaced_leaves_the_store_as_it_was() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = Env::new();
    env.pki();
    env.add(&["bob.der"]);
    let before = env.snapshot();
    // The process dies between writing the new index to a temp file and renaming it.
    cargo_bin_cmd!("smimekit")
        .env("SMIMEKIT_TEST_CRASH_BEFORE_RENAME", "index.json")
        .arg("--home")
        .arg(env.path("home"))
        .args(env.add_args(&["alice.pem"]))
        .assert()
        .failure();
    // The certificate file may be there, but without an index entry it is ignored.
    let v = env.json(&["contact", "list", "--json"]);
    assert_eq!(fps(&v), vec![fingerprint_of(&env, "bob.pem")]);
    let index = |snap: &[(PathBuf, Vec<u8>)]| {
        snap.iter()
            .find(|(p, _)| p.ends_with("index.json"))
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(index(&before), index(&env.snapshot()));
    // And the add succeeds afterwards.
    env.add(&["alice.pem"]);
    let v = env.json(&["contact", "list", "--json"]);
    assert_eq!(fps(&v).len(), 2);
}
