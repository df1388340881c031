//! `smimekit scan`: Maildir, mbox (with `>From ` quoting and offsets), nested folders, torn and unreadable
//! files, a signed-and-encrypted message, verdicts identical to `smimekit verify` per message, and harvesting
//! that leaves the same contacts as `verify` run on each message.
//!
//! Unreadable files: the tests run as root, where `chmod 000` does not stop a read, so unreadable entries are
//! made another way: a dangling symbolic link and a named pipe (a special file scan refuses to read).

mod common;

use std::path::Path;

use common::{Env, fixture, fixture_trust, text};
use serde_json::Value;

/// `smimekit --json scan ARGS… --no-system-trust --ca root.pem` (plus `--no-harvest` unless `harvest`);
/// returns (exit code, message lines, summary line).
fn scan(e: &Env, paths: &[&Path], extra: &[&str], harvest: bool) -> (i32, Vec<Value>, Value) {
    let mut args: Vec<String> = vec!["--json".into(), "scan".into()];
    args.extend(paths.iter().map(|p| p.to_str().unwrap().to_string()));
    args.extend(
        fixture_trust()
            .into_iter()
            .filter(|a| !harvest || a != "--no-harvest"),
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let o = e.run(&a);
    let mut lines: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let summary = lines
        .pop()
        .unwrap_or_else(|| panic!("no output; stderr: {}", text(&o.stderr)));
    assert_eq!(summary["kind"], "summary", "the last line is the summary");
    (o.status.code().unwrap_or(-1), lines, summary)
}

fn copy(src: &str, dst: &Path) {
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(fixture(src), dst).unwrap();
}

fn line_for<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["path"].as_str().unwrap().ends_with(name))
        .unwrap_or_else(|| panic!("no line for {name}"))
}

/// Every committed message vector: scan's verdict is the one `smimekit verify` gives that message alone.
#[test]
fn verdicts_agree_with_verify_on_every_fixture() {
    let e = Env::new();
    let dir = e.path("vectors");
    let mut names = Vec::new();
    for sub in ["msg", "msg/enc"] {
        for f in std::fs::read_dir(fixture(sub)).unwrap().flatten() {
            let n = f.file_name().to_string_lossy().to_string();
            if n.ends_with(".eml") {
                let rel = format!("{sub}/{n}");
                copy(&rel, &dir.join(rel.replace('/', "_")));
                names.push(rel.replace('/', "_"));
            }
        }
    }
    assert!(names.len() > 60, "the fixtures are there");
    let (code, lines, summary) = scan(&e, &[&dir], &[], false);
    assert_eq!(lines.len(), names.len(), "one line per message");
    assert_eq!(code, 1, "some vectors fail verification");
    for n in &names {
        let l = line_for(&lines, n);
        let p = dir.join(n);
        let (vcode, _, _) = e.verify_json(p.to_str().unwrap(), &[]);
        let expected = match vcode {
            0 => Some("valid"),
            1 => Some("invalid"),
            _ => None,
        };
        match expected {
            Some(v) => {
                assert_eq!(l["kind"], "signed", "{n}: {l}");
                assert_eq!(l["verdict"], v, "{n}: verify exits {vcode}, scan says {l}");
            }
            None => assert!(
                l["verdict"] != "valid" && l["verdict"] != "invalid",
                "{n}: verify exits {vcode} (not a verdict), scan says {l}"
            ),
        }
    }
    // The summary counts what the lines say.
    let count = |v: &str| lines.iter().filter(|l| l["verdict"] == v).count();
    assert_eq!(summary["verdicts"]["valid"], count("valid"));
    assert_eq!(summary["verdicts"]["invalid"], count("invalid"));
    assert_eq!(summary["messages"], names.len());
    // The LF/white-space diagnosis and weak algorithms reach the summary.
    assert!(
        summary["weak"]["SHA-1 digest"].as_u64() >= Some(1),
        "{summary}"
    );
    assert!(summary["signers"].as_array().unwrap().len() >= 5);
    assert!(
        summary["expiring"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["emails"][0] == "grace@example.com" && s["status"] == "expired"),
        "{summary}"
    );
}

/// A Maildir (cur/ and new/, tmp/ ignored, a Maildir++ subfolder), nested plain folders, and an mbox whose
/// second message needs `>From ` unquoting to verify; mbox offsets point at each `From ` line.
#[test]
fn maildir_mbox_and_nested_folders() {
    let e = Env::new();
    let root = e.path("mail");
    let md = root.join("Maildir");
    copy("msg/valid-rsa-alice.eml", &md.join("cur/1.host:2,S"));
    copy("msg/bad-body-flipped.eml", &md.join("new/2.host"));
    copy("msg/valid-ecdsa-carol.eml", &md.join("tmp/3.host")); // being delivered: not read
    // Altered in transit: the signed text's final line end lost (verify: "it would match after 'final CRLF
    // added'").
    let alice = std::fs::read(fixture("msg/valid-rsa-alice.eml")).unwrap();
    let cut = common::find(&alice, b"Alice\r\n\r\n------=_smimekit").unwrap() + 5;
    let altered = [&alice[..cut], &alice[cut + 2..]].concat();
    std::fs::write(md.join("new/5.host"), altered).unwrap();
    std::fs::write(md.join("dovecot-uidlist"), b"3 V1 N4\n").unwrap(); // not mail
    copy("msg/valid-pss-alice.eml", &md.join(".Sent/cur/4.host:2,S"));
    std::fs::create_dir_all(md.join(".Sent/new")).unwrap();
    copy("msg/valid-ecdsa-carol.eml", &root.join("a/b/c/deep.eml"));
    copy("msg/valid-ecdsa-carol.eml", &root.join("a/b/notes.txt")); // not a message file name
    // mbox: alice (valid), the openssl-signed message whose signed part has a "From here" line (quoted in
    // the mbox as ">From here": valid only once unquoted), then a tampered one.
    let m1 = std::fs::read(fixture("msg/valid-rsa-alice.eml")).unwrap();
    let m2 = std::fs::read(fixture("msg/openssl-8bit-signed.eml")).unwrap();
    assert!(
        common::find(&m2, b"\nFrom ").is_some(),
        "the vector has a From line"
    );
    let m3 = std::fs::read(fixture("msg/bad-body-flipped.eml")).unwrap();
    let mut mbox = Vec::new();
    let mut offsets = Vec::new();
    for m in [&m1, &m2, &m3] {
        offsets.push(mbox.len());
        mbox.extend_from_slice(b"From alice@example.com Wed Nov 25 09:00:00 2026\n");
        let mut quoted = Vec::new();
        for line in m.split_inclusive(|&b| b == b'\n') {
            let n = line.iter().take_while(|&&b| b == b'>').count();
            if line[n..].starts_with(b"From ") {
                quoted.push(b'>');
            }
            quoted.extend_from_slice(line);
        }
        mbox.extend_from_slice(&quoted);
        if !mbox.ends_with(b"\n") {
            mbox.push(b'\n');
        }
        mbox.push(b'\n');
    }
    assert!(common::find(&mbox, b"\n>From here").is_some());
    std::fs::write(root.join("archive.mbox"), &mbox).unwrap();

    let (code, lines, summary) = scan(&e, &[&root], &[], false);
    assert_eq!(code, 1, "three tampered messages");
    let prefix = root.to_str().unwrap();
    let paths: Vec<&str> = lines
        .iter()
        .map(|l| l["path"].as_str().unwrap().strip_prefix(prefix).unwrap())
        .collect();
    assert_eq!(lines.len(), 8, "{paths:?}");
    assert!(
        !paths
            .iter()
            .any(|p| p.contains("/tmp/") || p.ends_with("uidlist") || p.ends_with(".txt"))
    );
    assert_eq!(line_for(&lines, "cur/1.host:2,S")["verdict"], "valid");
    assert_eq!(line_for(&lines, "new/2.host")["verdict"], "invalid");
    let altered = line_for(&lines, "new/5.host");
    assert_eq!(altered["verdict"], "invalid");
    assert_eq!(
        altered["would_match_after"], "final CRLF added",
        "{altered}"
    );
    assert!(line_for(&lines, "new/2.host")["would_match_after"].is_null());
    assert_eq!(line_for(&lines, ".Sent/cur/4.host:2,S")["verdict"], "valid");
    assert_eq!(line_for(&lines, "a/b/c/deep.eml")["verdict"], "valid");
    let mb: Vec<&Value> = lines
        .iter()
        .filter(|l| l["path"].as_str().unwrap().ends_with("archive.mbox"))
        .collect();
    assert_eq!(mb.len(), 3);
    for (l, off) in mb.iter().zip(&offsets) {
        assert_eq!(l["offset"], *off as u64, "{l}");
    }
    assert_eq!(mb[0]["verdict"], "valid");
    assert_eq!(mb[1]["verdict"], "valid", ">From unquoted: {}", mb[1]);
    assert_eq!(mb[2]["verdict"], "invalid");
    assert!(mb[0]["message_id"].as_str().unwrap().contains('@'));
    assert_eq!(summary["verdicts"]["valid"], 5);
    assert_eq!(summary["verdicts"]["invalid"], 3);
    assert_eq!(summary["would_match_after_change"], 1);

    // --since after every Date: everything is skipped, and an all-skipped scan succeeds.
    let (code, lines, summary) = scan(&e, &[&root], &["--since", "2100-01-01"], false);
    assert_eq!((code, lines.len()), (0, 0), "{summary}");
    assert_eq!(summary["skipped"], 8);
    // One worker gives the same lines in the same order.
    let (_, one, _) = scan(&e, &[&root], &["--jobs", "1"], false);
    let (_, many, _) = scan(&e, &[&root], &["--jobs", "4"], false);
    assert_eq!(one, many);
}

/// A torn message, a dangling link and a named pipe are per-message errors; the rest is still verified.
#[test]
fn torn_and_unreadable_files_do_not_stop_the_scan() {
    let e = Env::new();
    let dir = e.path("box");
    copy("msg/valid-rsa-alice.eml", &dir.join("a-good.eml"));
    let full = std::fs::read(fixture("msg/valid-rsa-alice.eml")).unwrap();
    std::fs::write(dir.join("b-torn.eml"), &full[..full.len() / 2]).unwrap();
    std::os::unix::fs::symlink(dir.join("missing.eml"), dir.join("c-dangling.eml")).unwrap();
    let fifo = dir.join("d-pipe.eml");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(dir.join("e-empty.eml"), b"").unwrap();
    let (code, lines, summary) = scan(&e, &[&dir], &[], false);
    assert_eq!(code, 1, "errors are reported, the scan finishes: {summary}");
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(line_for(&lines, "a-good.eml")["verdict"], "valid");
    let torn = line_for(&lines, "b-torn.eml");
    assert_eq!(torn["kind"], "signed");
    assert_eq!(torn["verdict"], "error", "{torn}");
    for n in ["c-dangling.eml", "d-pipe.eml", "e-empty.eml"] {
        let l = line_for(&lines, n);
        assert_eq!(l["kind"], "error", "{l}");
        assert!(!l["reasons"][0].as_str().unwrap().is_empty());
    }
    assert_eq!(summary["errors"], 3);
    // A path that does not exist stops the scan before it starts.
    let o = e.run(&["scan", e.path("nowhere").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("smimekit: error:"));
}

/// Signed, then encrypted: listed as encrypted (cipher, recipients, which ID opens it), never verified or
/// counted as signed, no passphrase asked.
#[test]
fn signed_and_encrypted_message_is_listed_not_opened() {
    let e = Env::new();
    e.import_np("p12/bob.p12");
    let dir = e.path("box");
    copy("msg/enc/sign-then-encrypt.eml", &dir.join("se.eml"));
    copy("msg/enc/not-for-bob.eml", &dir.join("other.eml"));
    let (code, lines, summary) = scan(&e, &[&dir], &[], false);
    assert_eq!(code, 0, "no signed message failed: {summary}");
    let se = line_for(&lines, "se.eml");
    assert_eq!(se["kind"], "encrypted");
    assert!(se["verdict"].is_null());
    let enc = &se["encrypted"];
    assert!(
        enc["cipher"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("aes"),
        "{se}"
    );
    assert!(!enc["recipients"].as_array().unwrap().is_empty());
    assert!(enc["opened_by"].as_str().unwrap().contains("bob"), "{se}");
    assert!(line_for(&lines, "other.eml")["encrypted"]["opened_by"].is_null());
    assert_eq!(summary["encrypted"], 2);
    assert_eq!(summary["encrypted_for_you"], 1);
    assert_eq!(summary["signed"], 0);
}

/// The contacts index without the times that differ between two runs.
fn contacts_state(e: &Env) -> (Vec<String>, Value) {
    let dir = e.home().join("contacts");
    let mut files = Vec::new();
    for sub in ["", "intermediates"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            for f in rd.flatten() {
                let n = f.file_name().to_string_lossy().to_string();
                if n.ends_with(".pem") {
                    files.push(format!("{sub}/{n}"));
                }
            }
        }
    }
    files.sort();
    let mut idx: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("seen_at");
                m.remove("added_at");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut idx);
    (files, idx)
}

/// Harvest: scan leaves exactly the contacts that `verify` run on each message in turn leaves (certificates,
/// intermediates, capabilities, preferences, provenance), written once at the end.
#[test]
fn harvest_is_the_same_as_verify_per_message() {
    let messages = [
        "msg/caps-aes256cbc-only.eml",
        "msg/valid-rsa-alice.eml",
        "msg/valid-ecdsa-carol.eml",
        "msg/g-eve-carrying-alice-cert.eml",
        "msg/sa-signing-time-2099.eml",
        "msg/bad-body-flipped.eml",
        "msg/untrusted-mallet.eml",
        "msg/valid-judy-mixedcase.eml",
        "msg/caps-none.eml",
    ];
    let by_verify = Env::new();
    let by_scan = Env::new();
    let dir = by_scan.path("box");
    for (i, m) in messages.iter().enumerate() {
        let p = dir.join(format!("{i:02}.eml"));
        copy(m, &p);
        let o = by_verify.run(&[
            "verify",
            p.to_str().unwrap(),
            "--no-system-trust",
            "--ca",
            fixture("pki/root.pem").to_str().unwrap(),
        ]);
        assert!(o.status.code() != Some(2), "{m}: {}", text(&o.stderr));
    }
    let (code, _, summary) = scan(&by_scan, &[&dir], &[], true);
    assert_eq!(code, 1, "two messages do not verify");
    let added = summary["contacts"]["added"].as_array().unwrap();
    assert!(added.len() >= 3, "{summary}");
    let (vf, vi) = contacts_state(&by_verify);
    let (sf, si) = contacts_state(&by_scan);
    assert_eq!(vf, sf, "the same certificate files");
    assert_eq!(vi, si, "the same index (times aside)");
    // Scanning again adds nothing new.
    let (_, _, again) = scan(&by_scan, &[&dir], &[], true);
    assert_eq!(again["contacts"]["added"].as_array().unwrap().len(), 0);
    // --no-harvest writes nothing.
    let e = Env::new();
    let (_, _, s) = scan(&e, &[&dir], &[], false);
    assert!(s["contacts"].is_null());
    assert!(!e.home().join("contacts/index.json").exists());
}

/// Ctrl-C: the workers stop, the summary says so, exit 2, and nothing is written to the contacts.
#[test]
fn interrupt_stops_cleanly_and_writes_nothing() {
    let e = Env::new();
    let dir = e.path("big");
    std::fs::create_dir_all(&dir).unwrap();
    let m = std::fs::read(fixture("msg/valid-rsa-alice.eml")).unwrap();
    for i in 0..4000 {
        std::fs::write(dir.join(format!("{i:05}.eml")), &m).unwrap();
    }
    let mut args: Vec<String> = vec!["--json".into(), "scan".into(), dir.to_str().unwrap().into()];
    args.extend(fixture_trust().into_iter().filter(|a| a != "--no-harvest"));
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let mut child = e
        .cmd(&a)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first JSON lines arrive once the scan is under way (written in 64 KiB pieces, about 300 of the 4,000
    // messages): Ctrl-C then lands in the middle of the scan, with the handler installed.
    use std::io::{BufRead, Read};
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "the scan wrote nothing");
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    let o = child.wait_with_output().unwrap();
    let summary: Value =
        serde_json::from_str(rest.lines().last().expect("a summary line")).unwrap();
    assert_eq!(summary["interrupted"], true, "{summary}");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(summary["messages"].as_u64().unwrap() < 4000);
    assert!(summary["contacts"].is_null());
    assert!(text(&o.stderr).contains("interrupted"));
    assert!(
        !e.home().join("contacts/index.json").exists(),
        "nothing written"
    );
}

/// A scan whose standard output is closed fails (exit 2) before the contacts change: nothing is harvested.
#[test]
fn closed_standard_output_fails_before_harvesting() {
    use std::os::unix::process::CommandExt;
    let e = Env::new();
    let dir = e.path("box");
    std::fs::create_dir_all(&dir).unwrap();
    copy("msg/valid-rsa-alice.eml", &dir.join("1.eml"));
    let root = fixture("pki/root.pem");
    let mut c = e.cmd(&[
        "scan",
        dir.to_str().unwrap(),
        "--no-system-trust",
        "--ca",
        root.to_str().unwrap(),
    ]);
    // SAFETY: close(2) is async-signal-safe; the child starts with descriptor 1 closed (`>&-`).
    unsafe {
        c.pre_exec(|| {
            libc::close(1);
            Ok(())
        });
    }
    let o = c
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("standard output"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        !e.home().join("contacts").join("index.json").exists(),
        "no contact was written"
    );
}
