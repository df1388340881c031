//! Helpers shared by the integration tests: a temporary home, the binary, fixtures, and peers (openssl, gpgsm).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use tempfile::TempDir;

/// The fixture password of every PKCS#12 file in fixtures/p12.
pub const P12_PASSWORD: &str = "test-password";
/// The passphrase the tests give IDs in their store.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// Path of a committed fixture.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// Whether CI demands every peer tool and the corpus (`SMIMEKIT_REQUIRE_PEERS=1`, set by `.ci/run`): then a
/// missing one fails the test instead of skipping it, so CI can never pass by skipping.
pub fn peers_required() -> bool {
    std::env::var_os("SMIMEKIT_REQUIRE_PEERS").is_some_and(|v| v == "1")
}

/// Prints `line` on the real standard error (past libtest's capture), once per `cargo test` run: the test
/// binaries of one run share a parent (cargo), so a marker file named after it and `key` dedupes them.
pub fn say_once(key: &str, line: &str) {
    use std::io::Write;
    let ppid = std::os::unix::process::parent_id();
    let marker = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("said-{ppid}-{key}"));
    if std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .is_ok()
    {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

/// Whether `prog` (a name looked up on PATH plus /usr/sbin and /sbin, or a path) can be run.
pub fn tool_path(prog: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if prog.contains('/') {
        let p = PathBuf::from(prog);
        return runnable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/lib/postfix/sbin"].map(PathBuf::from))
        .map(|d| d.join(prog))
        .find(|p| runnable(p))
}

/// Whether every program in `tools` is installed. When one is missing: under `SMIMEKIT_REQUIRE_PEERS=1` this
/// panics (CI installs them all); otherwise it prints one line per program per `cargo test` run and returns
/// false, and the caller returns early: `if !common::have(&["cmsutil"]) { return; }`.
pub fn have(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| tool_path(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !peers_required(),
        "peer tool(s) {missing:?} not installed, and SMIMEKIT_REQUIRE_PEERS=1 makes that a failure (.ci/run installs them)"
    );
    for t in missing {
        say_once(
            &format!("tool-{t}"),
            &format!(
                "smimekit tests: `{t}` is not installed: the tests that need it are skipped (.ci/run installs it)"
            ),
        );
    }
    false
}

/// The shared third-party corpus, if present: `$SMIMEKIT_CORPUS`, else `../shared/corpus` next to the
/// checkout, else `../../shared/corpus` (a git worktree under `wt/NAME`).
pub fn corpus_root_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(p) = std::env::var_os("SMIMEKIT_CORPUS") {
        return Some(PathBuf::from(p)).filter(|p| p.is_dir());
    }
    ["../shared/corpus", "../../shared/corpus"]
        .iter()
        .map(|r| root.join(r))
        .find(|p| p.is_dir())
}

/// Whether the corpus is present. When it is not: under `SMIMEKIT_REQUIRE_PEERS=1` this panics; otherwise it
/// prints one line per `cargo test` run saying where it looked, and the caller returns early.
pub fn have_corpus() -> bool {
    if corpus_root_dir().is_some() {
        return true;
    }
    let looked = match std::env::var_os("SMIMEKIT_CORPUS") {
        Some(p) => format!("SMIMEKIT_CORPUS={}", p.to_string_lossy()),
        None => format!(
            "{}/../shared/corpus",
            env!("CARGO_MANIFEST_DIR").trim_end_matches('/')
        ),
    };
    assert!(
        !peers_required(),
        "the third-party corpus is missing ({looked}), and SMIMEKIT_REQUIRE_PEERS=1 makes that a failure"
    );
    say_once(
        "corpus",
        &format!(
            "smimekit tests: no third-party corpus at {looked}: the corpus tests are skipped (set SMIMEKIT_CORPUS=DIR to run them)"
        ),
    );
    false
}

/// Path of a file of the shared third-party corpus (callers check `have_corpus()` first).
pub fn corpus(rel: &str) -> PathBuf {
    corpus_root_dir()
        .expect("the third-party corpus is missing: call common::have_corpus() first")
        .join(rel)
}

/// A free port on 127.0.0.1 for a server a test starts. Taken below Linux's ephemeral range (32768–60999), so
/// that between this check and the server's own bind no outgoing connection of another test can take it as its
/// local port (a port from `bind(:0)` comes from that range and was taken so: Postfix then failed to listen);
/// a counter keeps the ports of one test process distinct.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(7))) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
}

/// A temporary home and working folder.
pub struct Env {
    pub dir: TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    /// Creates the (empty) home folder, as a home made earlier and since emptied: commands that only use a
    /// home's contents refuse a home that does not exist.
    pub fn init_home(&self) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(self.home())
            .unwrap();
    }
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// `smimekit --home HOME --batch ARGS` with the test secrets in the environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("smimekit").unwrap();
        c.arg("--home").arg(self.home()).arg("--batch").args(args);
        c.env("SMIMEKIT_PASSWORD", P12_PASSWORD)
            .env("SMIMEKIT_PASSPHRASE", PASSPHRASE);
        c.env_remove("SMIMEKIT_HOME");
        // No configuration file or setting from the developer's environment (config.toml, SMIMEKIT_DIGEST…).
        c.env("XDG_CONFIG_HOME", self.dir.path().join("xdg"));
        for v in [
            "SMIMEKIT_CONFIG",
            "SMIMEKIT_PASSPHRASE_FILE",
            "SMIMEKIT_SIGN_ID",
            "SMIMEKIT_DIGEST",
            "SMIMEKIT_SIGN_FORM",
            "SMIMEKIT_CIPHER_POLICY",
            "SMIMEKIT_REVOCATION",
            "SMIMEKIT_GIT_SIGNING_KEY",
        ] {
            c.env_remove(v);
        }
        c
    }
    /// Runs smimekit and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }
    /// Runs smimekit with `stdin` as standard input.
    pub fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }
    /// Runs smimekit and asserts exit 0.
    pub fn ok(&self, args: &[&str]) -> Output {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "smimekit {args:?} failed:\nstdout: {}\nstderr: {}",
            text(&o.stdout),
            text(&o.stderr)
        );
        o
    }
    /// Imports a fixture PKCS#12 into the home.
    pub fn import(&self, p12: &str) {
        self.ok(&["id", "import", fixture(p12).to_str().unwrap()]);
    }
    /// Every file under the home with its contents, for "the store did not change" checks.
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        fn walk(d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            let Ok(rd) = std::fs::read_dir(d) else { return };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.file_name().unwrap() != "lock" {
                    out.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        walk(&self.home(), &mut out);
        out.sort();
        out
    }
}

/// Lossy text of bytes.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Runs an external program; returns (exit code, stdout, stderr).
pub fn external(prog: &str, args: &[&str], stdin: Option<&[u8]>) -> (i32, Vec<u8>, String) {
    use std::io::Write;
    let mut c = Command::new(prog);
    c.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e} (CI installs it with apt-get)"));
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    (o.status.code().unwrap_or(-1), o.stdout, text(&o.stderr))
}

/// A temporary GNUPGHOME whose daemons (gpg-agent, dirmngr) are stopped when dropped.
pub struct Gpg {
    pub dir: TempDir,
}

impl Gpg {
    pub fn new() -> Gpg {
        let dir = tempfile::Builder::new()
            .prefix("gpg")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::write(dir.path().join("gpgsm.conf"), "disable-crl-checks\n").unwrap();
        std::fs::write(
            dir.path().join("gpg-agent.conf"),
            "allow-loopback-pinentry\n",
        )
        .unwrap();
        Gpg { dir }
    }
    /// Runs gpgsm with this home, the passphrase on fd 0 when given.
    pub fn gpgsm(&self, args: &[&str], passphrase: Option<&str>) -> (i32, Vec<u8>, String) {
        let mut full: Vec<&str> = vec![
            "--homedir",
            self.dir.path().to_str().unwrap(),
            "--batch",
            "--pinentry-mode",
            "loopback",
        ];
        if passphrase.is_some() {
            full.extend(["--passphrase-fd", "0"]);
        }
        full.extend(args);
        external("gpgsm", &full, passphrase.map(|p| p.as_bytes()))
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.dir.path())
            // gpgsm also starts dirmngr (certificate lookups): stop every daemon of this home.
            .args(["--kill", "all"])
            .status();
    }
}

// ---- message helpers (sign/verify/inspect tests) ----

/// `--no-system-trust --ca fixtures/pki/root.pem --no-harvest`: the verify options of the fixture MANIFEST.
pub fn fixture_trust() -> Vec<String> {
    vec![
        "--no-system-trust".into(),
        "--ca".into(),
        fixture("pki/root.pem").to_str().unwrap().into(),
        "--no-harvest".into(),
    ]
}

impl Env {
    /// Imports a fixture PKCS#12 stored without a passphrase (signing then skips the 600k-iteration KDF).
    pub fn import_np(&self, p12: &str) {
        self.ok(&[
            "id",
            "import",
            fixture(p12).to_str().unwrap(),
            "--no-passphrase",
        ]);
    }
    /// Writes `data` to a file in the working folder and returns its path as a string.
    pub fn write(&self, name: &str, data: &[u8]) -> String {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p.to_str().unwrap().to_string()
    }
    /// `smimekit verify FILE --json` with the fixture trust (root.pem only, no harvest) plus `extra`;
    /// returns (exit code, parsed JSON report if any, stdout, stderr).
    pub fn verify_json(
        &self,
        file: &str,
        extra: &[&str],
    ) -> (i32, Option<serde_json::Value>, String) {
        let mut args: Vec<String> = vec!["--json".into(), "verify".into(), file.into()];
        args.extend(fixture_trust());
        args.extend(extra.iter().map(|s| s.to_string()));
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let o = self.run(&a);
        let (j, err) = json_outcome(&o);
        (o.status.code().unwrap_or(-1), j, err)
    }
    /// Signs `msg` with `args` (e.g. `["--opaque"]`) and returns the signed message; asserts exit 0.
    pub fn sign(&self, msg: &[u8], args: &[&str]) -> Vec<u8> {
        let input = self.write("to-sign.eml", msg);
        let out = self.path("signed.eml");
        let _ = std::fs::remove_file(&out);
        let mut a = vec!["sign", input.as_str(), "-o", out.to_str().unwrap()];
        a.extend(args);
        self.ok(&a);
        std::fs::read(&out).unwrap()
    }
}

/// The JSON report of a `--json` run, and its standard error with an `{"error": …}` document (the one JSON
/// document of a failed command) turned back into the `smimekit: error:` / `hint:` lines it stands for, after
/// checking its shape. A report is `None` when the command failed.
pub fn json_outcome(o: &Output) -> (Option<serde_json::Value>, String) {
    let j: Option<serde_json::Value> = serde_json::from_slice(&o.stdout)
        .ok()
        .or_else(|| serde_json::from_slice(&o.stderr).ok());
    match j {
        Some(v) if v.get("error").is_some() => {
            let e = &v["error"];
            assert!(
                e["kind"].is_string() && e["message"].is_string(),
                "error document without kind/message: {v}"
            );
            assert_ne!(
                o.status.code(),
                Some(0),
                "an error document with exit 0: {v}"
            );
            let mut err = format!("smimekit: error: {}\n", e["message"].as_str().unwrap());
            if let Some(h) = e["hint"].as_str() {
                err += &format!("smimekit: hint: {h}\n");
            }
            if let Some(d) = e["detail"].as_str() {
                err += &format!("smimekit: detail: {d}\n");
            }
            (None, err + &text(&o.stderr))
        }
        j => (j, text(&o.stderr)),
    }
}

/// A small RFC 5322 message (CRLF) from `from`.
pub fn simple_message(from: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: Bob <bob@example.org>\r\nSubject: test message\r\nDate: Wed, 25 Nov 2026 09:00:00 +0000\r\nMessage-ID: <t1@test.smimekit>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}"
    )
    .into_bytes()
}

/// The header value of the top-level field `name` (unfolded), if present.
pub fn header(msg: &[u8], name: &str) -> Option<String> {
    let head_end = find(msg, b"\r\n\r\n")
        .or_else(|| find(msg, b"\n\n"))
        .unwrap_or(msg.len());
    let head = text(&msg[..head_end])
        .replace("\r\n", "\n")
        .replace("\n\t", " ")
        .replace("\n ", " ");
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Splits a multipart/signed message into (the exact signed entity bytes, the DER of the smime.p7s part).
/// A strict RFC 2046 split: delimiters are CRLF "--" boundary at the start of a line.
pub fn split_signed(msg: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let ct = header(msg, "content-type").expect("Content-Type");
    assert!(ct.contains("multipart/signed"), "{ct}");
    let b = ct
        .split("boundary=")
        .nth(1)
        .expect("boundary")
        .trim_start_matches('"')
        .split(['"', ';'])
        .next()
        .unwrap()
        .to_string();
    let crlf = find(msg, b"\r\n").is_some();
    let nl: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let delim = [nl, b"--", b.as_bytes()].concat();
    let first = find(msg, &delim[nl.len()..]).expect("first delimiter");
    let rest = &msg[first + delim.len() - nl.len()..];
    let rest = &rest[nl.len()..]; // line end after the delimiter
    let end1 = find(rest, &delim).expect("second delimiter");
    let part1 = rest[..end1].to_vec();
    let rest2 = &rest[end1 + delim.len() + nl.len()..];
    let end2 = find(rest2, &delim).expect("closing delimiter");
    let part2 = &rest2[..end2];
    let sep = [nl, nl].concat();
    let body = &part2[find(part2, &sep).expect("part 2 header end") + sep.len()..];
    let b64: Vec<u8> = body
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .expect("base64 p7s");
    (part1, der)
}

/// The DER of an opaque (application/pkcs7-mime, base64) message.
pub fn opaque_der(msg: &[u8]) -> Vec<u8> {
    let sep: &[u8] = if find(msg, b"\r\n\r\n").is_some() {
        b"\r\n\r\n"
    } else {
        b"\n\n"
    };
    let body = &msg[find(msg, sep).unwrap() + sep.len()..];
    let b64: Vec<u8> = body
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .expect("base64 p7m")
}

/// `openssl cms -verify -CAfile root.pem -purpose smimesign` on an S/MIME message; (exit code, content, stderr).
pub fn openssl_verify(msg: &[u8]) -> (i32, Vec<u8>, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("m.eml");
    std::fs::write(&f, msg).unwrap();
    external(
        "openssl",
        &[
            "cms",
            "-verify",
            "-CAfile",
            fixture("pki/root.pem").to_str().unwrap(),
            "-purpose",
            "smimesign",
            "-in",
            f.to_str().unwrap(),
        ],
        None,
    )
}

/// `openssl cms -cmsout -print` of a DER CMS.
pub fn openssl_print(der: &[u8]) -> String {
    let (rc, out, err) = external(
        "openssl",
        &["cms", "-cmsout", "-print", "-inform", "DER"],
        Some(der),
    );
    assert_eq!(rc, 0, "{err}");
    text(&out)
}

/// SHA-256 fingerprint (lower-case hex) of a PEM certificate fixture.
pub fn fingerprint_of(pem_fixture: &str) -> String {
    let c = openssl::x509::X509::from_pem(&std::fs::read(fixture(pem_fixture)).unwrap()).unwrap();
    c.digest(openssl::hash::MessageDigest::sha256())
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Gpg {
    /// Imports the fixture root and intermediate and marks the root trusted (trustlist.txt, flag S).
    pub fn trust_fixture_root(&self) {
        let (rc, _, err) = self.gpgsm(
            &[
                "--import",
                fixture("pki/root.pem").to_str().unwrap(),
                fixture("pki/inter.pem").to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(rc, 0, "gpgsm --import: {err}");
        let c = openssl::x509::X509::from_pem(&std::fs::read(fixture("pki/root.pem")).unwrap())
            .unwrap();
        let fp: Vec<String> = c
            .digest(openssl::hash::MessageDigest::sha1())
            .unwrap()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        std::fs::write(
            self.dir.path().join("trustlist.txt"),
            format!("{} S\n", fp.join(":")),
        )
        .unwrap();
    }
    /// `gpgsm --verify SIG DATA` on a detached signature; (exit code, stderr).
    pub fn verify_detached(&self, sig_der: &[u8], data: &[u8]) -> (i32, String) {
        let s = self.dir.path().join("sig.p7s");
        let d = self.dir.path().join("data");
        std::fs::write(&s, sig_der).unwrap();
        std::fs::write(&d, data).unwrap();
        let (rc, _, err) = self.gpgsm(
            &["--verify", s.to_str().unwrap(), d.to_str().unwrap()],
            None,
        );
        (rc, err)
    }
}

// ---- encryption / contacts helpers ----

impl Env {
    /// Trusts the fixture root.
    pub fn trust_root(&self) {
        self.ok(&["trust", "add", fixture("pki/root.pem").to_str().unwrap()]);
    }
    /// Writes `data` to a file of the working folder and returns its path.
    pub fn write_file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p
    }
    /// Runs smimekit with an explicit passphrase in the environment.
    pub fn run_with_passphrase(&self, args: &[&str], passphrase: &str) -> Output {
        self.cmd(args)
            .env("SMIMEKIT_PASSPHRASE", passphrase)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// Path of a fixture as a `String` (for argument lists).
pub fn fx(rel: &str) -> String {
    fixture(rel).to_str().unwrap().to_string()
}

/// Path as `&str`.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A simple RFC 5322 text message (CRLF line ends).
pub fn message(from: &str, to: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\n{extra_headers}Subject: test message\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <t-{}@tests.smimekit.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n",
        std::process::id()
    );
    for l in body.lines() {
        m.push_str(l);
        m.push_str("\r\n");
    }
    m.into_bytes()
}

/// The header block of a message (up to the first empty line), as text.
pub fn headers(msg: &[u8]) -> String {
    let t = text(msg);
    let end = t
        .find("\r\n\r\n")
        .or_else(|| t.find("\n\n"))
        .unwrap_or(t.len());
    t[..end].to_string()
}

/// The DER inside an `application/pkcs7-mime` message (its base64 body).
pub fn p7m_der(msg: &[u8]) -> Vec<u8> {
    let t = text(msg);
    let start = t
        .find("\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| t.find("\n\n").map(|i| i + 2))
        .expect("no body");
    let b64: String = t[start..]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    openssl::base64::decode_block(&b64).expect("body is not base64")
}

/// Wraps a DER CMS structure as an `application/pkcs7-mime` message, as a mail client would.
pub fn wrap_p7m(der: &[u8], smime_type: &str, from: &str, to: &str) -> Vec<u8> {
    let b64 = openssl::base64::encode_block(der);
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: wrapped\r\nMIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type={smime_type}; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=smime.p7m\r\n\r\n"
    );
    for chunk in b64.as_bytes().chunks(64) {
        m.push_str(std::str::from_utf8(chunk).unwrap());
        m.push_str("\r\n");
    }
    m.into_bytes()
}

/// Runs the `openssl` CLI.
pub fn openssl(args: &[&str], stdin: Option<&[u8]>) -> (i32, Vec<u8>, String) {
    external("openssl", args, stdin)
}

/// Asserts an exit code, printing the output on failure.
pub fn assert_code(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: expected exit {code}\nstdout: {}\nstderr: {}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

impl Gpg {
    /// Imports files (certificates, or a PKCS#12 with `passphrase`).
    pub fn import(&self, files: &[&str], passphrase: Option<&str>) {
        let mut args = vec!["--import"];
        args.extend(files);
        let (rc, _, err) = self.gpgsm(&args, passphrase);
        assert_eq!(rc, 0, "gpgsm --import {files:?}: {err}");
    }
    /// Trusts a root certificate given by its SHA-1 fingerprint (trustlist.txt, "relax": no CRL/OCSP).
    pub fn trust(&self, root_pem: &Path) {
        let c = openssl::x509::X509::from_pem(&std::fs::read(root_pem).unwrap()).unwrap();
        let fp = c.digest(openssl::hash::MessageDigest::sha1()).unwrap();
        let hex: Vec<String> = fp.iter().map(|b| format!("{b:02X}")).collect();
        std::fs::write(
            self.dir.path().join("trustlist.txt"),
            format!("{} S relax\n", hex.join(":")),
        )
        .unwrap();
    }
}

/// Asserts that two [`Env::snapshot`]s are equal, naming only the files that differ.
pub fn assert_same_store(before: &[(PathBuf, Vec<u8>)], after: &[(PathBuf, Vec<u8>)], what: &str) {
    let mut diffs = Vec::new();
    for (p, d) in before {
        match after.iter().find(|(q, _)| q == p) {
            None => diffs.push(format!("removed {}", p.display())),
            Some((_, e)) if e != d => diffs.push(format!(
                "changed {}:\n--- before\n{}\n--- after\n{}",
                p.display(),
                text(d),
                text(e)
            )),
            _ => {}
        }
    }
    for (p, _) in after {
        if !before.iter().any(|(q, _)| q == p) {
            diffs.push(format!("added {}", p.display()));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what} changed the store:\n{}",
        diffs.join("\n")
    );
}

/// A verify vector of `fixtures/msg/MANIFEST.tsv` (the rows not under `enc/`).
pub struct VerifyVector {
    /// The file under `fixtures/msg/`.
    pub file: String,
    /// The checklist case (T03…).
    pub case: String,
    /// The exit code a correct verify gives.
    pub expect: i32,
    /// Why, in the MANIFEST's words.
    pub why: String,
}

/// The verify vectors of `fixtures/msg/MANIFEST.tsv`.
pub fn verify_vectors() -> Vec<VerifyVector> {
    std::fs::read_to_string(fixture("msg/MANIFEST.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty() && !l.starts_with("enc/"))
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, '\t').collect();
            VerifyVector {
                file: f[0].into(),
                case: f[1].into(),
                expect: f[2].parse().expect("expect_exit"),
                why: f.get(3).copied().unwrap_or("").into(),
            }
        })
        .collect()
}
