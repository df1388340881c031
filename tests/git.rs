//! `smimekit-git` as git's `gpg.x509.program`, driven by the real `git`: signed commits and tags, their
//! verification (`verify-commit`, `verify-tag`, `log --show-signature`, `%G?`), `gpg.minTrustLevel`, a tampered
//! object, an expired ID, and the signature checked by `openssl cms` over the payload git signed.
//!
//! Every git runs with `GIT_CONFIG_GLOBAL`/`GIT_CONFIG_NOSYSTEM` isolation and a temporary smimekit home.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Env, fixture, text};

fn git_program() -> PathBuf {
    assert_cmd::cargo::cargo_bin("smimekit-git")
}

/// A git repository whose signing program is smimekit-git with `env`'s home.
struct Repo {
    env: Env,
    dir: PathBuf,
}

impl Repo {
    /// A home holding Alice's ID (no passphrase) and the fixture root as a trust anchor, and a repository
    /// committing as Alice with x509 signing.
    fn alice() -> Repo {
        let env = Env::new();
        env.import_np("p12/alice-modern.p12");
        env.trust_root();
        Repo::with_env(env, "Alice", "alice@example.com")
    }

    fn with_env(env: Env, name: &str, email: &str) -> Repo {
        let dir = env.path("repo");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(env.path("gitconfig"), "").unwrap();
        let r = Repo { env, dir };
        r.ok(&["init", "-q", "-b", "main"]);
        r.ok(&["config", "user.name", name]);
        r.ok(&["config", "user.email", email]);
        r.ok(&["config", "gpg.format", "x509"]);
        r.ok(&[
            "config",
            "gpg.x509.program",
            git_program().to_str().unwrap(),
        ]);
        r
    }

    /// `git ARGS` in the repository, isolated from the user's and the system's git and smimekit settings.
    fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_home(args, &self.env.home())
    }

    /// As [`Repo::cmd`], with smimekit-git using `home`.
    fn cmd_home(&self, args: &[&str], home: &Path) -> Command {
        let mut c = Command::new("git");
        c.current_dir(&self.dir)
            .args(args)
            .env("GIT_CONFIG_GLOBAL", self.env.path("gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.env.dir.path())
            .env("XDG_CONFIG_HOME", self.env.path("xdg"))
            .env("SMIMEKIT_HOME", home)
            .env_remove("SMIMEKIT_CONFIG")
            .env_remove("SMIMEKIT_PASSPHRASE")
            .env_remove("SMIMEKIT_PASSPHRASE_FILE")
            .env_remove("SMIMEKIT_GIT_SIGNING_KEY")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env("GIT_COMMITTER_DATE", "2026-11-25T09:00:00Z")
            .env("GIT_AUTHOR_DATE", "2026-11-25T09:00:00Z")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "git {args:?} failed:\nstdout: {}\nstderr: {}",
            text(&o.stdout),
            text(&o.stderr)
        );
        o
    }

    /// A signed commit of one new file; returns its hash.
    fn signed_commit(&self, msg: &str) -> String {
        std::fs::write(self.dir.join("file.txt"), msg).unwrap();
        self.ok(&["add", "file.txt"]);
        self.ok(&["commit", "-q", "-S", "-m", msg]);
        text(&self.ok(&["rev-parse", "HEAD"]).stdout)
            .trim()
            .to_string()
    }

    fn cat(&self, rev: &str) -> Vec<u8> {
        self.ok(&["cat-file", "commit", rev]).stdout
    }
}

fn alice_fingerprint() -> String {
    common::fingerprint_of("pki/alice.pem").to_ascii_uppercase()
}

/// Splits a signed commit object into (payload git signed, PEM signature): the `gpgsig` header and its
/// continuation lines are the signature; everything else, in order, is the payload.
fn split_commit(obj: &[u8]) -> (Vec<u8>, String) {
    let s = String::from_utf8(obj.to_vec()).unwrap();
    let (head, body) = s.split_once("\n\n").unwrap();
    let mut payload = String::new();
    let mut sig = String::new();
    let mut in_sig = false;
    for line in head.lines() {
        if let Some(rest) = line.strip_prefix("gpgsig ") {
            in_sig = true;
            sig.push_str(rest);
            sig.push('\n');
        } else if in_sig && line.starts_with(' ') {
            sig.push_str(&line[1..]);
            sig.push('\n');
        } else {
            in_sig = false;
            payload.push_str(line);
            payload.push('\n');
        }
    }
    payload.push('\n');
    payload.push_str(body);
    (payload.into_bytes(), sig)
}

#[test]
fn signed_commit_and_tag_verify_with_git() {
    if !common::have(&["git"]) {
        return;
    }
    let r = Repo::alice();
    let head = r.signed_commit("first");
    let obj = text(&r.cat(&head));
    assert!(
        obj.contains("gpgsig -----BEGIN SIGNED MESSAGE-----"),
        "{obj}"
    );
    let v = r.ok(&["verify-commit", "HEAD"]);
    assert!(
        text(&v.stderr).contains("Good signature from \"CN=Alice\""),
        "{}",
        text(&v.stderr)
    );
    // %G? good, %GF the signer's fingerprint (VALIDSIG), %GT the trust level: your own ID is ultimate.
    let f = text(&r.ok(&["log", "-1", "--format=%G?|%GF|%GT|%GS"]).stdout);
    assert_eq!(
        f.trim(),
        format!("G|{}|ultimate|CN=Alice", alice_fingerprint())
    );
    let log = text(&r.ok(&["log", "-1", "--show-signature"]).stdout);
    assert!(log.contains("Good signature from"), "{log}");

    r.ok(&["tag", "-s", "-m", "release 1", "v1"]);
    let tag = text(&r.ok(&["cat-file", "tag", "v1"]).stdout);
    assert!(tag.contains("-----BEGIN SIGNED MESSAGE-----"), "{tag}");
    let v = r.ok(&["verify-tag", "v1"]);
    assert!(text(&v.stderr).contains("Good signature"));
}

#[test]
fn key_is_resolved_from_signingkey_fingerprint_or_ident() {
    if !common::have(&["git"]) {
        return;
    }
    let r = Repo::alice();
    // No user.signingkey: git passes the committer ident "Alice <alice@example.com>".
    r.signed_commit("by ident");
    // Then git.signing-key of smimekit's configuration (here from the environment) decides, not the ident.
    std::fs::write(r.dir.join("file.txt"), "cfg").unwrap();
    r.ok(&["add", "file.txt"]);
    let o = r
        .cmd(&["commit", "-q", "-S", "-m", "configured key"])
        .env("SMIMEKIT_GIT_SIGNING_KEY", "carol@example.com")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("carol@example.com"),
        "{}",
        text(&o.stderr)
    );
    let o = r
        .cmd(&["commit", "-q", "-S", "-m", "configured key"])
        .env("SMIMEKIT_GIT_SIGNING_KEY", &alice_fingerprint()[..20])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    // A fingerprint prefix with 0x, as gpg users write key IDs.
    let fp = alice_fingerprint();
    r.ok(&["config", "user.signingkey", &format!("0x{}", &fp[..16])]);
    r.signed_commit("by fingerprint");
    r.ok(&["verify-commit", "HEAD"]);
    // An address no ID has: signing fails and no commit is made.
    r.ok(&["config", "user.signingkey", "nobody@example.com"]);
    std::fs::write(r.dir.join("file.txt"), "x").unwrap();
    r.ok(&["add", "file.txt"]);
    let o = r.run(&["commit", "-q", "-S", "-m", "no key"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("no digital ID matches git's signing key"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn min_trust_level_follows_the_verdict() {
    if !common::have(&["git"]) {
        return;
    }
    let r = Repo::alice();
    r.signed_commit("trust levels");
    // Bob trusts the same root but Alice's ID is not his: fully, not ultimate.
    let bob = Env::new();
    bob.trust_root();
    let verify = |level: &str, home: &Path| {
        r.cmd_home(
            &[
                "-c",
                &format!("gpg.minTrustLevel={level}"),
                "verify-commit",
                "HEAD",
            ],
            home,
        )
        .output()
        .unwrap()
        .status
        .success()
    };
    assert!(verify("fully", &bob.home()));
    assert!(!verify("ultimate", &bob.home()));
    assert!(verify("ultimate", &r.env.home()));
    let gt = r
        .cmd_home(&["log", "-1", "--format=%G?|%GT"], &bob.home())
        .output()
        .unwrap();
    assert_eq!(text(&gt.stdout).trim(), "G|fully");

    // A home that trusts nothing the signature chains to (and the system store does not know the test
    // root): the bytes verify, the signature is not valid. git shows U and verify-commit fails.
    let stranger = Env::new();
    stranger.init_home();
    let o = r
        .cmd_home(&["verify-commit", "HEAD"], &stranger.home())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("NOT valid"), "{}", text(&o.stderr));
    let gt = r
        .cmd_home(&["log", "-1", "--format=%G?|%GT"], &stranger.home())
        .output()
        .unwrap();
    assert_eq!(text(&gt.stdout).trim(), "U|undefined");
}

#[test]
fn tampered_commit_fails() {
    if !common::have(&["git"]) {
        return;
    }
    let r = Repo::alice();
    let head = r.signed_commit("honest message");
    let obj = r.cat(&head);
    let forged = String::from_utf8(obj)
        .unwrap()
        .replace("honest message", "forged message");
    let mut c = r.cmd(&["hash-object", "-t", "commit", "-w", "--stdin"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(forged.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let forged_id = text(&out.stdout).trim().to_string();
    assert_eq!(forged_id.len(), 40);
    let o = r.run(&["verify-commit", &forged_id]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("BAD signature"),
        "{}",
        text(&o.stderr)
    );
    let g = text(&r.ok(&["log", "-1", "--format=%G?", &forged_id]).stdout);
    assert_eq!(g.trim(), "B");
}

#[test]
fn signature_verifies_with_openssl_over_the_payload() {
    if !common::have(&["git", "openssl"]) {
        return;
    }
    let r = Repo::alice();
    let head = r.signed_commit("for openssl");
    let (payload, pem) = split_commit(&r.cat(&head));
    assert!(pem.starts_with("-----BEGIN SIGNED MESSAGE-----"));
    use base64::Engine;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let sig = r.env.write_file("sig.der", &der);
    let data = r.env.write_file("payload", &payload);
    let (rc, _, err) = common::external(
        "openssl",
        &[
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            sig.to_str().unwrap(),
            "-content",
            data.to_str().unwrap(),
            "-CAfile",
            fixture("pki/root.pem").to_str().unwrap(),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        None,
    );
    assert_eq!(rc, 0, "openssl cms -verify: {err}");
    // The same signature over other bytes does not verify.
    let other = r
        .env
        .write_file("payload2", &[payload.as_slice(), b"x"].concat());
    let (rc, _, _) = common::external(
        "openssl",
        &[
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            sig.to_str().unwrap(),
            "-content",
            other.to_str().unwrap(),
            "-CAfile",
            fixture("pki/root.pem").to_str().unwrap(),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        None,
    );
    assert_ne!(rc, 0);
}

#[test]
fn expired_id_refuses_to_sign() {
    if !common::have(&["git"]) {
        return;
    }
    let env = Env::new();
    env.import_np("p12/grace-expired.p12");
    let r = Repo::with_env(env, "Grace", "grace@example.com");
    std::fs::write(r.dir.join("file.txt"), "x").unwrap();
    r.ok(&["add", "file.txt"]);
    let o = r.run(&["commit", "-q", "-S", "-m", "expired"]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("expired"), "{err}");
    // No commit was made.
    assert!(
        !r.run(&["rev-parse", "--verify", "-q", "HEAD"])
            .status
            .success()
    );
}

#[test]
fn protected_key_is_unlocked_from_the_environment() {
    if !common::have(&["git", "setsid"]) {
        return;
    }
    let env = Env::new();
    env.import("p12/alice-modern.p12");
    env.trust_root();
    let r = Repo::with_env(env, "Alice", "alice@example.com");
    std::fs::write(r.dir.join("file.txt"), "x").unwrap();
    r.ok(&["add", "file.txt"]);
    // Without a passphrase source and without a terminal (setsid: no controlling terminal, so no prompt
    // even when the tests run in one): a clear error, no commit.
    let with_env = r.cmd(&["commit", "-q", "-S", "-m", "locked"]);
    let mut c = Command::new("setsid");
    c.arg("-w").arg("git").args(with_env.get_args());
    c.current_dir(&r.dir).stdin(Stdio::null());
    for (k, v) in with_env.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let o = c.output().unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("passphrase"),
        "{}",
        text(&o.stderr)
    );
    let o = r
        .cmd(&["commit", "-q", "-S", "-m", "unlocked"])
        .env("SMIMEKIT_PASSPHRASE", common::PASSPHRASE)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    r.ok(&["verify-commit", "HEAD"]);
}

#[test]
fn status_protocol_lines() {
    let env = Env::new();
    env.import_np("p12/alice-modern.p12");
    env.trust_root();
    let run = |args: &[&str], stdin: &[u8]| {
        use std::io::Write;
        let mut c = Command::new(git_program());
        c.args(args)
            .env("SMIMEKIT_HOME", env.home())
            .env("XDG_CONFIG_HOME", env.path("xdg"))
            .env_remove("SMIMEKIT_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    };
    let o = run(
        &["--status-fd=2", "-bsau", "alice@example.com"],
        b"payload\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    // BEGIN_SIGNING first, so SIG_CREATED is at the start of a line after a newline (what git searches).
    assert!(
        err.starts_with("[GNUPG:] BEGIN_SIGNING\n[GNUPG:] SIG_CREATED D 1 8 00 "),
        "{err}"
    );
    assert!(err.trim_end().ends_with(&alice_fingerprint()), "{err}");
    let pem = o.stdout;
    assert!(pem.starts_with(b"-----BEGIN SIGNED MESSAGE-----\n"));
    let sig = env.write_file("sig.pem", &pem);
    let o = run(
        &["--status-fd=1", "--verify", sig.to_str().unwrap(), "-"],
        b"payload\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let st = text(&o.stdout);
    let fp = alice_fingerprint();
    assert!(st.starts_with("[GNUPG:] NEWSIG\n"), "{st}");
    assert!(
        st.contains(&format!("\n[GNUPG:] GOODSIG {fp} CN=Alice\n")),
        "{st}"
    );
    assert!(st.contains(&format!("\n[GNUPG:] VALIDSIG {fp} ")), "{st}");
    assert!(st.contains("\n[GNUPG:] TRUST_ULTIMATE 0 shell\n"), "{st}");
    // Other bytes: BADSIG, exit 1.
    let o = run(
        &["--status-fd=1", "--verify", sig.to_str().unwrap(), "-"],
        b"payload!\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains(&format!("\n[GNUPG:] BADSIG {fp} ")));
    assert!(!text(&o.stdout).contains("GOODSIG"));
    // Not a signature: ERRSIG, exit 2.
    let junk = env.write_file(
        "junk.pem",
        b"-----BEGIN SIGNED MESSAGE-----\nAAAA\n-----END SIGNED MESSAGE-----\n",
    );
    let o = run(
        &["--status-fd=1", "--verify", junk.to_str().unwrap(), "-"],
        b"payload\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stdout).contains("\n[GNUPG:] ERRSIG "),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn expired_signer_is_expkeysig_and_fails() {
    // A signature made while Grace's certificate was valid (the fixture vector), checked now that it has
    // expired: the bytes verify, the verdict does not.
    let env = Env::new();
    env.trust_root();
    let msg = std::fs::read(fixture("msg/expired-grace.eml")).unwrap();
    let (content, der) = common::split_signed(&msg);
    let sig = env.write_file("sig.der", &der);
    let o = Command::new(git_program())
        .args(["--status-fd=1", "--verify", sig.to_str().unwrap(), "-"])
        .env("SMIMEKIT_HOME", env.home())
        .env("XDG_CONFIG_HOME", env.path("xdg"))
        .env_remove("SMIMEKIT_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&content)?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let st = text(&o.stdout);
    assert!(st.contains("\n[GNUPG:] EXPKEYSIG "), "{st}");
    assert!(!st.contains("GOODSIG"), "{st}");
    assert!(text(&o.stderr).contains("expired"), "{}", text(&o.stderr));
}
