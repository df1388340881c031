//! Revocation with real components: the test CA of `fixtures/revocation/` (made by
//! `fixtures/make-revocation.py`), whose certificates name CRL and OCSP URLs on 127.0.0.1 fixed ports. The test
//! starts, on 127.0.0.1 only: an HTTP server (47180) serving the CRLs and an expired OCSP answer, and two OCSP
//! responders (47181: the CA's delegated responder; 47182: a responder certified by another CA) that hand each
//! request to the `openssl ocsp` responder (`-index`, `-rsigner`, `-nmin`; `openssl ocsp -port` would listen
//! on every interface). Port 47183 must stay closed (responder down). Servers stop on drop; every wait has a
//! timeout.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Env, fixture, text};

/// The servers use fixed ports: one test at a time.
static PORTS: Mutex<()> = Mutex::new(());

fn rev(name: &str) -> PathBuf {
    fixture(&format!("revocation/{name}"))
}

#[derive(Clone, Copy)]
enum Role {
    Http,
    Ocsp(&'static str),
}

struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn start() -> Servers {
    let stop = Arc::new(AtomicBool::new(false));
    let dir = tempfile::tempdir().unwrap();
    if TcpStream::connect_timeout(&"127.0.0.1:47183".parse().unwrap(), Duration::from_secs(1))
        .is_ok()
    {
        panic!("port 47183 is in use: the revocation tests need it closed (responder down)");
    }
    let mut threads = Vec::new();
    for (port, role) in [
        (47180, Role::Http),
        (47181, Role::Ocsp("ocsp-responder")),
        (47182, Role::Ocsp("rogue-responder")),
    ] {
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
            panic!(
                "port {port} is busy ({e}): the revocation tests need 127.0.0.1:47180-47183 free"
            )
        });
        l.set_nonblocking(true).unwrap();
        let stop = stop.clone();
        let work = dir.path().to_path_buf();
        threads.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        n += 1;
                        let _ = serve(s, role, &work, n, &stop);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
    }
    Servers {
        stop,
        threads,
        _dir: dir,
    }
}

fn serve(
    mut s: TcpStream,
    role: Role,
    work: &std::path::Path,
    n: usize,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let k = s.read(&mut chunk)?;
        if k == 0 || buf.len() > 65536 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..k]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut body = buf[head_end + 4..].to_vec();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    while body.len() < len {
        let k = s.read(&mut chunk)?;
        if k == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..k]);
    }
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let reply = |s: &mut TcpStream, ct: &str, data: &[u8]| -> std::io::Result<()> {
        s.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                data.len()
            )
            .as_bytes(),
        )?;
        s.write_all(data)
    };
    match role {
        Role::Http => match path.as_str() {
            "/ca.crl" | "/wrongkey.crl" | "/expired.crl" => reply(
                &mut s,
                "application/pkix-crl",
                &std::fs::read(rev(&path[1..])).unwrap(),
            ),
            "/ocsp" => reply(
                &mut s,
                "application/ocsp-response",
                &std::fs::read(rev("ocsp-expired.der")).unwrap(),
            ),
            "/big.crl" => {
                // No Content-Length: the client must stop reading at its own cap.
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nConnection: close\r\n\r\n")?;
                let zeros = vec![0u8; 1 << 20];
                for _ in 0..25 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    s.write_all(&zeros)?;
                }
                Ok(())
            }
            _ => s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        },
        Role::Ocsp(signer) => {
            let req = work.join(format!("{signer}-{n}.req"));
            let resp = work.join(format!("{signer}-{n}.resp"));
            std::fs::write(&req, &body)?;
            let st = std::process::Command::new("openssl")
                .args(["ocsp", "-index"])
                .arg(rev("index.txt"))
                .arg("-rsigner")
                .arg(rev(&format!("{signer}.pem")))
                .arg("-rkey")
                .arg(rev(&format!("{signer}.key")))
                .arg("-CA")
                .arg(rev("root.pem"))
                .args(["-nmin", "60", "-reqin"])
                .arg(&req)
                .arg("-respout")
                .arg(&resp)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()?;
            assert!(st.success(), "openssl ocsp failed to answer");
            reply(&mut s, "application/ocsp-response", &std::fs::read(&resp)?)
        }
    }
}

/// `verify` of the fixture message `name` against the test root, without harvesting.
fn verify(env: &Env, name: &str, extra: &[&str]) -> (i32, String, serde_json::Value) {
    let msg = rev(&format!("{name}.eml"));
    let root = rev("root.pem");
    let mut args = vec![
        "verify",
        msg.to_str().unwrap(),
        "--no-system-trust",
        "--ca",
        root.to_str().unwrap(),
        "--no-harvest",
    ];
    args.extend_from_slice(extra);
    if !extra.contains(&"--offline") {
        // Fetching is asked for: verify goes to the network (here: the loopback servers) only with --online.
        args.push("--online");
    }
    // The JSON report comes from a run in a fresh home (the text run below is the one that fills the cache).
    let fresh = Env::new();
    let mut jargs = args.clone();
    jargs.insert(0, "--json");
    let json = if extra.contains(&"--offline") {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&fresh.run(&jargs).stdout).unwrap_or(serde_json::Value::Null)
    };
    let t0 = Instant::now();
    let o = env.run(&args);
    assert!(t0.elapsed() < Duration::from_secs(20), "{name}: too slow");
    (
        o.status.code().unwrap_or(-1),
        text(&o.stdout) + &text(&o.stderr),
        json,
    )
}

fn leaf_revocation(j: &serde_json::Value) -> &serde_json::Value {
    &j["signers"][0]["revocation"][0]
}

#[test]
fn ocsp_verdicts() {
    if !common::have(&["openssl"]) {
        return;
    }
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let _s = start();
    let env = Env::new();

    let (code, out, j) = verify(&env, "ocsp-good", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Revocation:    good (ocsp http://127.0.0.1:47181"),
        "{out}"
    );
    let r = leaf_revocation(&j);
    assert_eq!(r["status"], "good", "{j}");
    assert!(r["source"].as_str().unwrap().starts_with("ocsp"), "{r}");
    assert!(r["checked_at"].is_string(), "{r}");

    let (code, out, j) = verify(&env, "ocsp-revoked", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("REVOKED on 2020-01-01T00:00:00Z (keyCompromise"),
        "{out}"
    );
    let r = leaf_revocation(&j);
    assert_eq!(r["status"], "revoked");
    assert_eq!(r["reason"], "keyCompromise");
    assert_eq!(r["revoked_at"], "2020-01-01T00:00:00Z");

    // "unknown" is not "good": a warning under prefer, a failure under require.
    let (code, out, j) = verify(&env, "ocsp-unknown", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Warning:       revocation unknown for the signer's certificate: the OCSP responder http://127.0.0.1:47181 does not know the certificate"), "{out}");
    assert_eq!(leaf_revocation(&j)["status"], "unknown");
    let (code, out, _) = verify(&env, "ocsp-unknown", &["--revocation", "require"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("could not be established (--revocation require)"),
        "{out}"
    );

    let (code, out, _) = verify(&env, "ocsp-down", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("revocation unknown") && out.contains("cannot fetch http://127.0.0.1:47183/"),
        "{out}"
    );
    let (code, _, _) = verify(&env, "ocsp-down", &["--revocation", "require"]);
    assert_eq!(code, 1);

    let (code, out, _) = verify(&env, "ocsp-expired", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("is out of date (valid until 2020-01-02T00:00:00Z)"),
        "{out}"
    );

    let (code, out, j) = verify(&env, "ocsp-rogue", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is not signed by the issuer O=smimekit revocation tests, CN=Revocation Test Root CA or a responder it authorised"), "{out}");
    assert_eq!(leaf_revocation(&j)["status"], "unknown");
    assert!(
        !out.contains("error:"),
        "no raw OpenSSL error in the report: {out}"
    );

    // Good and revoked answers are cached: offline, they still decide.
    let (code, out, _) = verify(&env, "ocsp-revoked", &["--offline"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ocsp (cached)"), "{out}");
    let (code, out, _) = verify(&env, "ocsp-good", &["--offline"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("good (ocsp (cached)"), "{out}");
}

#[test]
fn crl_verdicts() {
    if !common::have(&["openssl"]) {
        return;
    }
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let _s = start();
    let env = Env::new();

    let (code, out, j) = verify(&env, "crl-good", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Revocation:    good (crl http://127.0.0.1:47180/ca.crl"),
        "{out}"
    );
    assert!(
        leaf_revocation(&j)["source"]
            .as_str()
            .unwrap()
            .contains("number 7"),
        "{j}"
    );

    let (code, out, _) = verify(&env, "crl-kc-before", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("REVOKED on 2020-01-01T00:00:00Z (keyCompromise"),
        "{out}"
    );

    let (code, out, j) = verify(&env, "crl-superseded-before", &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(leaf_revocation(&j)["reason"], "superseded");

    // Superseded after the signing time: the key was not compromised; valid, with both times stated.
    let (code, out, j) = verify(&env, "crl-superseded-after", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("(superseded), after the claimed signing time"),
        "{out}"
    );
    assert_eq!(leaf_revocation(&j)["status"], "revoked");

    // keyCompromise invalidates whatever the signing time claims.
    let (code, out, _) = verify(&env, "crl-kc-after", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("(keyCompromise) (signed at"), "{out}");

    // The CA's own CRL, now cached, covers every certificate it issued: the bad-CRL cases start from an empty
    // cache.
    let env2 = Env::new();
    let (code, out, _) = verify(&env2, "crl-wrongkey", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("the CRL at http://127.0.0.1:47180/wrongkey.crl is not signed by the issuer"),
        "{out}"
    );
    let (code, _, _) = verify(&env2, "crl-wrongkey", &["--revocation", "require"]);
    assert_eq!(code, 1);

    let (code, out, _) = verify(&env2, "crl-expired", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("is past its nextUpdate (2020-01-31T00:00:00Z)"),
        "{out}"
    );

    let (code, out, _) = verify(&env2, "crl-big", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("the CRL at http://127.0.0.1:47180/big.crl is larger than 20 MiB"),
        "{out}"
    );

    // The fetched CRL is cached: offline, it still decides; cleared, nothing is known.
    let (code, out, _) = verify(&env, "crl-kc-before", &["--offline"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("crl cache"), "{out}");
    let l = env.ok(&["--json", "crl", "list"]);
    let j: serde_json::Value = serde_json::from_slice(&l.stdout).unwrap();
    assert_eq!(j["crls"][0]["number"], "7", "{j}");
    assert_eq!(j["crls"][0]["revoked"], 5, "{j}");
    env.ok(&["crl", "clear", "--yes"]);
    let (code, out, _) = verify(&env, "crl-kc-before", &["--offline"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("offline, and nothing about it is in the cache"),
        "{out}"
    );
}

/// No servers: everything offline, from CRL files.
#[test]
fn crl_files_offline_and_policy_off() {
    let env = Env::new();
    let crl = rev("ca.crl");
    // --crl for one command.
    let (code, out, _) = verify(
        &env,
        "crl-kc-before",
        &["--offline", "--crl", crl.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("crl file"), "{out}");
    // crl add: kept in the cache.
    env.ok(&["crl", "add", crl.to_str().unwrap()]);
    let (code, out, _) = verify(&env, "crl-kc-before", &["--offline"]);
    assert_eq!(code, 1, "{out}");
    let (code, out, _) = verify(&env, "crl-good", &["--offline"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("good (crl cache"), "{out}");
    // --at before a keyCompromise revocation: still fatal (the key may have been stolen earlier).
    let (code, out, _) = verify(
        &env,
        "crl-kc-after",
        &["--offline", "--at", "2026-01-01T00:00:00Z"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("keyCompromise"), "{out}");
    // Policy off: not checked, and said so.
    let (code, out, j) = verify(&env, "crl-kc-before", &["--revocation", "off"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("revocation not checked"), "{out}");
    assert_eq!(leaf_revocation(&j)["status"], "not_checked");
    // An out-of-date CRL file is not used.
    let (code, out, _) = verify(
        &Env::new(),
        "crl-expired",
        &[
            "--offline",
            "--revocation",
            "require",
            "--crl",
            rev("expired.crl").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("out of date"), "{out}");
    // A file that is not a CRL: an error, nothing added.
    let before = env.snapshot();
    let o = env.run(&["crl", "add", rev("root.pem").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("not a CRL"), "{}", text(&o.stderr));
    assert_eq!(before, env.snapshot());
}

/// encrypt refuses a revoked recipient certificate and names why; a good one is used. Offline: no servers.
#[test]
fn encrypt_refuses_revoked_recipient() {
    let env = Env::new();
    env.ok(&["trust", "add", rev("root.pem").to_str().unwrap()]);
    env.ok(&["crl", "add", rev("ca.crl").to_str().unwrap()]);
    let msg =
        b"From: me@example.test\r\nTo: crl-kc-before@example.test\r\nSubject: x\r\n\r\nhello\r\n";
    let revoked = rev("crl-kc-before.pem");
    let o = env.run_stdin(
        &[
            "encrypt",
            "--no-self",
            "--offline",
            "--cert",
            revoked.to_str().unwrap(),
        ],
        msg,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("REVOKED on 2020-01-01T00:00:00Z (keyCompromise)"),
        "{}",
        text(&o.stderr)
    );
    assert!(o.stdout.is_empty(), "nothing is written");
    let good = rev("crl-good.pem");
    let msg = b"From: me@example.test\r\nTo: crl-good@example.test\r\nSubject: x\r\n\r\nhello\r\n";
    let o = env.run_stdin(
        &[
            "encrypt",
            "--no-self",
            "--offline",
            "--cert",
            good.to_str().unwrap(),
        ],
        msg,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // With revocation off the revoked certificate would be used: the refusal above is revocation's doing.
    let msg =
        b"From: me@example.test\r\nTo: crl-kc-before@example.test\r\nSubject: x\r\n\r\nhello\r\n";
    let o = env.run_stdin(
        &[
            "encrypt",
            "--no-self",
            "--revocation",
            "off",
            "--cert",
            revoked.to_str().unwrap(),
        ],
        msg,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // Listings show what the cache knows, without the network.
    env.ok(&[
        "contact",
        "add",
        revoked.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    let l = text(&env.ok(&["contact", "list"]).stdout);
    let line = l.lines().find(|l| l.contains("crl-kc-before@")).unwrap();
    assert!(line.contains("[REVOKED]"), "{l}");
    assert!(
        !l.lines()
            .find(|l| l.contains("crl-good@"))
            .unwrap()
            .contains("REVOKED"),
        "{l}"
    );
    let show = text(
        &env.ok(&["contact", "show", "crl-kc-before@example.test"])
            .stdout,
    );
    assert!(
        show.contains("revocation: REVOKED on 2020-01-01T00:00:00Z (keyCompromise"),
        "{show}"
    );
    let j: serde_json::Value = serde_json::from_slice(
        &env.ok(&["--json", "contact", "show", "crl-good@example.test"])
            .stdout,
    )
    .unwrap();
    assert_eq!(j["certificates"][0]["revocation"]["status"], "good", "{j}");
}

/// decrypt's inner verify checks revocation too, and `id list/show` flag a revoked ID from the cache. Offline.
#[test]
fn decrypt_inner_verify_and_id_listing() {
    if !common::have(&["openssl"]) {
        return;
    }
    let env = Env::new();
    let (cert, key) = (rev("crl-kc-before.pem"), rev("crl-kc-before.key"));
    let p12 = env.path("id.p12");
    let pass = format!("pass:{}", common::P12_PASSWORD);
    let (rc, _, err) = common::external(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-in",
            cert.to_str().unwrap(),
            "-inkey",
            key.to_str().unwrap(),
            "-passout",
            &pass,
            "-out",
            p12.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(rc, 0, "{err}");
    env.ok(&["id", "import", p12.to_str().unwrap(), "--no-passphrase"]);
    // The message the revoked key signed, encrypted to it by openssl.
    let (rc, sealed, err) = common::external(
        "openssl",
        &[
            "cms",
            "-encrypt",
            "-aes-256-cbc",
            "-in",
            rev("crl-kc-before.eml").to_str().unwrap(),
            cert.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(rc, 0, "{err}");
    let root = rev("root.pem");
    let crl = rev("ca.crl");
    let args = [
        "decrypt",
        "--offline",
        "--no-system-trust",
        "--no-harvest",
        "--ca",
        root.to_str().unwrap(),
        "--crl",
        crl.to_str().unwrap(),
    ];
    let o = env.run_stdin(&args, &sealed);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("REVOKED on 2020-01-01T00:00:00Z (keyCompromise)"),
        "{}",
        text(&o.stderr)
    );
    // Not yet known to the cache: the listing says nothing; once the CRL is added, [REVOKED].
    assert!(!text(&env.ok(&["id", "list"]).stdout).contains("REVOKED"));
    env.ok(&["trust", "add", root.to_str().unwrap()]);
    env.ok(&["crl", "add", crl.to_str().unwrap()]);
    let l = text(&env.ok(&["id", "list"]).stdout);
    assert!(l.contains("[REVOKED]"), "{l}");
    let show = text(&env.ok(&["id", "show", "crl-kc-before@example.test"]).stdout);
    assert!(
        show.contains("Revocation     REVOKED on 2020-01-01T00:00:00Z (keyCompromise"),
        "{show}"
    );
}

/// `crl update` fetches the http:// distribution points of the contacts' certificates into the cache; verify
/// then decides from the cache with nothing from the network.
#[test]
fn crl_update_fetches_the_distribution_points() {
    if !common::have(&["openssl"]) {
        return;
    }
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let _s = start();
    let env = Env::new();
    env.ok(&["trust", "add", rev("root.pem").to_str().unwrap()]);
    env.ok(&["contact", "add", rev("crl-good.pem").to_str().unwrap()]);
    let before: serde_json::Value =
        serde_json::from_slice(&env.ok(&["--json", "crl", "list"]).stdout).unwrap();
    assert_eq!(before["crls"].as_array().unwrap().len(), 0, "{before}");
    let o = env.ok(&["crl", "update"]);
    let said = text(&o.stdout) + &text(&o.stderr);
    assert!(
        said.contains("fetched http://127.0.0.1:47180/ca.crl"),
        "{said}"
    );
    let after: serde_json::Value =
        serde_json::from_slice(&env.ok(&["--json", "crl", "list"]).stdout).unwrap();
    let crls = after["crls"].as_array().unwrap();
    assert_eq!(crls.len(), 1, "{after}");
    assert_eq!(crls[0]["number"], "7", "{after}");
    // The cached CRL revokes crl-kc-before: verify says so offline (the default).
    let (code, out, _) = verify(&env, "crl-kc-before", &["--offline"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("REVOKED"), "{out}");
}
