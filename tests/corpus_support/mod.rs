//! The corpus runner: reads `tests/corpus_expectations.tsv`, runs each row against the binary and checks the
//! exit code and the `expect` column. Used by `tests/corpus.rs` only.
//!
//! ## The TSV
//! Columns: `folder file command args key expect_exit expect tag why` (tab-separated; `#` lines are comments).
//! - `folder`/`file`: the corpus folder and the file inside it (as in that folder's MANIFEST.tsv).
//! - `command`: `verify` | `decrypt` | `inspect` | `import`.
//! - `args`: extra arguments, whitespace-separated; `{corpus}` is the corpus root. The runner adds the file,
//!   `-o OUT` (verify/decrypt) and `--json` when a check needs it. Two tokens change the input instead:
//!   `{wrap:SMIME-TYPE}` turns a bare CMS file (DER, PEM `-----BEGIN CMS/PKCS7-----`, gpgsm armor) into the
//!   RFC 5322 message a mail client would hold (`application/pkcs7-mime; smime-type=SMIME-TYPE`, base64, no
//!   From) since the commands read mail, not bare CMS; `{mbox}` drops an mbox `From ` separator line.
//! - `key`: decrypt: identities to import into the folder's home first, space-separated, each `P12#PASSWORD`
//!   (empty password: `P12#`) or `KEY+CERT` (PEM/DER key and certificate, packed into a PKCS#12 here);
//!   import: `#PASSWORD` of the file (empty: `#`). Identities are imported once per home, without a passphrase.
//! - `expect_exit`: 0, 1 or 2.
//! - `expect`: `;`-separated checks, all must hold (`-` = none):
//!   `content~TEXT` the output file (OUT) contains TEXT (line endings normalised; OUT is written on exit 0, and
//!   by decrypt on exit 1 for a weak cipher);
//!   `stdout~TEXT`, `stderr~TEXT`, `any~TEXT` (stdout or stderr), case-insensitive;
//!   `status=V` / `signers=N` the JSON status / number of signers;
//!   `json.PATH=V`, `json.PATH~TEXT` a JSON value (dotted path, numeric indexes);
//!   `signer[SEL].PATH=V`, `signer[SEL].PATH~TEXT` a field of a signer: SEL is an index, `*` (every signer) or
//!   text found in the signer's `emails`/`subject` (case-insensitive).
//!   `=` compares case-insensitively with the value's text (`true`, `3`, `valid`); `~` looks for TEXT in the
//!   value's text (arrays/objects: their JSON), case-insensitive. In every `~`, `a|b` means a or b.
//! - `tag`: `-`, or `crl` / `policy`: the verdict depends on CRL or certificate-policy processing; a mismatch
//!   is reported, not failed.
//! - `why`: what a correct tool concludes and why (from the MANIFEST).
//!
//! Uncovered MANIFEST rows are listed in comment lines `#skip<TAB>folder<TAB>file<TAB>reason`.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::common::{Env, corpus, text};

pub const TSV: &str = "tests/corpus_expectations.tsv";

#[derive(Debug, Clone)]
pub struct Row {
    pub line: usize,
    pub folder: String,
    pub file: String,
    pub command: String,
    pub args: String,
    pub key: String,
    pub expect_exit: i32,
    pub expect: String,
    pub tag: String,
    pub why: String,
}

#[derive(Debug, Clone)]
pub struct Skip {
    pub line: usize,
    pub folder: String,
    pub file: String,
    pub reason: String,
}

pub struct Expectations {
    pub rows: Vec<Row>,
    pub skips: Vec<Skip>,
}

/// The corpus root (`common::corpus_root_dir`; tests check `common::have_corpus()` first).
pub fn corpus_dir() -> PathBuf {
    corpus("")
}

/// A path inside the corpus.
pub fn corpus_path(rel: &str) -> PathBuf {
    corpus_dir().join(rel)
}

/// The corpus root as a string (no trailing slash).
pub fn corpus_root() -> String {
    let s = corpus_dir().to_string_lossy().to_string();
    s.trim_end_matches('/').to_string()
}

fn expand(s: &str) -> String {
    s.replace("{corpus}", &corpus_root())
}

/// Reads and parses the TSV (panics on a malformed line, naming it).
pub fn load() -> Expectations {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(TSV);
    let data = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows = Vec::new();
    let mut skips = Vec::new();
    for (i, line) in data.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("#skip\t") {
            let f: Vec<&str> = rest.split('\t').collect();
            assert!(
                f.len() == 3 && !f[2].trim().is_empty(),
                "{TSV}:{n}: a #skip line needs folder, file and a reason"
            );
            skips.push(Skip {
                line: n,
                folder: f[0].into(),
                file: f[1].into(),
                reason: f[2].into(),
            });
            continue;
        }
        if line.starts_with('#') || line.starts_with("folder\t") {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            f.len(),
            9,
            "{TSV}:{n}: expected 9 tab-separated columns, got {}: {line}",
            f.len()
        );
        let expect_exit: i32 = f[5]
            .parse()
            .unwrap_or_else(|_| panic!("{TSV}:{n}: expect_exit {:?}", f[5]));
        assert!(
            (0..=2).contains(&expect_exit),
            "{TSV}:{n}: expect_exit must be 0, 1 or 2"
        );
        assert!(
            ["verify", "decrypt", "inspect", "import"].contains(&f[2]),
            "{TSV}:{n}: unknown command {:?}",
            f[2]
        );
        assert!(
            ["-", "crl", "policy"].contains(&f[7]),
            "{TSV}:{n}: unknown tag {:?}",
            f[7]
        );
        let dash = |s: &str| {
            if s == "-" {
                String::new()
            } else {
                s.to_string()
            }
        };
        rows.push(Row {
            line: n,
            folder: f[0].into(),
            file: f[1].into(),
            command: f[2].into(),
            args: dash(f[3]),
            key: dash(f[4]),
            expect_exit,
            expect: dash(f[6]),
            tag: dash(f[7]),
            why: f[8].into(),
        });
    }
    Expectations { rows, skips }
}

/// The `file` column of a folder's MANIFEST.tsv.
pub fn manifest_files(folder: &str) -> Vec<String> {
    let data = std::fs::read_to_string(corpus_path(folder).join("MANIFEST.tsv")).unwrap();
    data.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

/// The corpus folders (those with a MANIFEST.tsv).
pub fn folders() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(corpus_path(""))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("MANIFEST.tsv").is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------- checks

fn norm(s: &str) -> String {
    s.replace("\r\n", "\n").to_lowercase()
}

fn contains_any(hay: &str, needles: &str) -> bool {
    let hay = norm(hay);
    needles.split('|').any(|n| hay.contains(&norm(n)))
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn json_path<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let mut cur = v;
    if path.is_empty() {
        return Some(cur);
    }
    for part in path.split('.') {
        cur = match part.parse::<usize>() {
            Ok(i) if cur.is_array() => cur.get(i)?,
            _ => cur.get(part)?,
        };
    }
    Some(cur)
}

/// `PATH=V` or `PATH~T` against one value.
fn check_value(root: &serde_json::Value, spec: &str) -> Result<(), String> {
    let (path, op, want) = split_op(spec).ok_or_else(|| format!("malformed check {spec:?}"))?;
    let got = json_path(root, path).ok_or_else(|| format!("{path} is missing"))?;
    let gt = value_text(got);
    let ok = if op == '=' {
        want.split('|').any(|w| gt.eq_ignore_ascii_case(w))
    } else {
        contains_any(&gt, want)
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{path} is {gt}, wanted {op}{want}"))
    }
}

fn split_op(spec: &str) -> Option<(&str, char, &str)> {
    let i = spec.find(['=', '~'])?;
    Some((&spec[..i], spec.as_bytes()[i] as char, &spec[i + 1..]))
}

/// The checks of a row that need `--json`.
pub fn needs_json(expect: &str) -> bool {
    expect.split(';').map(str::trim).any(|c| {
        c.starts_with("status=")
            || c.starts_with("signers=")
            || c.starts_with("json.")
            || c.starts_with("signer[")
    })
}

/// Evaluates every check; returns the failures.
pub fn evaluate(expect: &str, stdout: &str, stderr: &str, content: Option<&[u8]>) -> Vec<String> {
    let mut fails = Vec::new();
    let mut json: Option<Result<serde_json::Value, String>> = None;
    let mut get_json = || -> Result<serde_json::Value, String> {
        json.get_or_insert_with(|| {
            serde_json::from_str(stdout.trim())
                .map_err(|e| format!("stdout is not JSON ({e}): {}", short(stdout, 300)))
        })
        .clone()
    };
    for c in expect.split(';').map(str::trim).filter(|c| !c.is_empty()) {
        let r: Result<(), String> = if let Some(t) = c.strip_prefix("content~") {
            match content {
                None => Err("no output file was written".into()),
                Some(b) if contains_any(&text(b), t) => Ok(()),
                Some(b) => Err(format!("output lacks {t:?}: {}", short(&text(b), 200))),
            }
        } else if let Some(t) = c.strip_prefix("stdout~") {
            if contains_any(stdout, t) {
                Ok(())
            } else {
                Err(format!("stdout lacks {t:?}"))
            }
        } else if let Some(t) = c.strip_prefix("stderr~") {
            if contains_any(stderr, t) {
                Ok(())
            } else {
                Err(format!("stderr lacks {t:?}"))
            }
        } else if let Some(t) = c.strip_prefix("any~") {
            if contains_any(stdout, t) || contains_any(stderr, t) {
                Ok(())
            } else {
                Err(format!("output lacks {t:?}"))
            }
        } else if let Some(v) = c.strip_prefix("status=") {
            get_json().and_then(|j| check_value(&j, &format!("status={v}")))
        } else if let Some(n) = c.strip_prefix("signers=") {
            get_json().and_then(|j| {
                let got = j.get("signers").and_then(|s| s.as_array()).map(|a| a.len());
                if got.map(|g| g.to_string()) == Some(n.to_string()) {
                    Ok(())
                } else {
                    Err(format!("signers: {got:?}, wanted {n}"))
                }
            })
        } else if let Some(spec) = c.strip_prefix("json.") {
            get_json().and_then(|j| check_value(&j, spec))
        } else if let Some(rest) = c.strip_prefix("signer[") {
            get_json().and_then(|j| check_signer(&j, rest))
        } else {
            Err(format!("unknown check {c:?}"))
        };
        if let Err(e) = r {
            fails.push(format!("check `{c}`: {e}"));
        }
    }
    fails
}

fn check_signer(j: &serde_json::Value, rest: &str) -> Result<(), String> {
    let close = rest.find(']').ok_or("missing ]")?;
    let sel = &rest[..close];
    let spec = rest[close + 1..]
        .strip_prefix('.')
        .ok_or("expected ].PATH")?;
    let signers = j
        .get("signers")
        .and_then(|s| s.as_array())
        .ok_or("no signers array")?;
    let chosen: Vec<&serde_json::Value> = if sel == "*" {
        signers.iter().collect()
    } else if let Ok(i) = sel.parse::<usize>() {
        signers.get(i).into_iter().collect()
    } else {
        signers
            .iter()
            .filter(|s| {
                let mut t = s.get("emails").map(|e| e.to_string()).unwrap_or_default();
                t.push_str(&s.get("subject").map(value_text).unwrap_or_default());
                t.to_lowercase().contains(&sel.to_lowercase())
            })
            .collect()
    };
    if chosen.is_empty() {
        let who: Vec<String> = signers
            .iter()
            .map(|s| value_text(s.get("subject").unwrap_or(&serde_json::Value::Null)))
            .collect();
        return Err(format!("no signer matches [{sel}] (signers: {who:?})"));
    }
    for s in chosen {
        check_value(s, spec)?;
    }
    Ok(())
}

pub fn short(s: &str, n: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= n {
        s.replace('\n', " | ")
    } else {
        format!(
            "{}…",
            s.chars().take(n).collect::<String>().replace('\n', " | ")
        )
    }
}

// ---------------------------------------------------------------- running

/// One folder's home with the identities imported so far.
pub struct Home {
    pub env: Env,
    imported: HashSet<String>,
    counter: usize,
}

impl Home {
    pub fn new() -> Home {
        Home {
            env: Env::new(),
            imported: HashSet::new(),
            counter: 0,
        }
    }

    fn tmp(&mut self, name: &str) -> PathBuf {
        self.counter += 1;
        self.env.path(&format!("{}-{name}", self.counter))
    }

    fn password_file(&mut self, pw: &str) -> PathBuf {
        let p = self.tmp("pw");
        std::fs::write(&p, pw).unwrap();
        p
    }

    /// Imports one identity spec (`P12#PW` or `KEY+CERT`); Err names what failed.
    pub fn ensure_identity(&mut self, spec: &str) -> Result<(), String> {
        if self.imported.contains(spec) {
            return Ok(());
        }
        let (p12, pw): (PathBuf, String) = if let Some((file, pw)) = spec.split_once('#') {
            (PathBuf::from(expand(file)), pw.to_string())
        } else if let Some((key, cert)) = spec.split_once('+') {
            let der = pack_p12(&expand(key), &expand(cert), crate::common::P12_PASSWORD)?;
            let p = self.tmp("id.p12");
            std::fs::write(&p, der).unwrap();
            (p, crate::common::P12_PASSWORD.to_string())
        } else {
            return Err(format!("malformed key spec {spec:?}"));
        };
        let pwf = self.password_file(&pw);
        let o = self.env.run(&[
            "id",
            "import",
            p12.to_str().unwrap(),
            "--no-passphrase",
            "--password-file",
            pwf.to_str().unwrap(),
        ]);
        if o.status.code() != Some(0) {
            return Err(format!(
                "importing {spec} failed: {}",
                short(&text(&o.stderr), 400)
            ));
        }
        self.imported.insert(spec.to_string());
        Ok(())
    }
}

/// A PKCS#12 (DER) of a PEM/DER private key and certificate.
pub fn pack_p12(key: &str, cert: &str, password: &str) -> Result<Vec<u8>, String> {
    use openssl::pkey::PKey;
    use openssl::x509::X509;
    let kb = std::fs::read(key).map_err(|e| format!("{key}: {e}"))?;
    let cb = std::fs::read(cert).map_err(|e| format!("{cert}: {e}"))?;
    let pkey = PKey::private_key_from_pem(&kb)
        .or_else(|_| PKey::private_key_from_der(&kb))
        .or_else(|_| PKey::private_key_from_pkcs8(&kb))
        .map_err(|e| format!("{key}: no private key: {e}"))?;
    let x509 = X509::from_pem(&cb)
        .or_else(|_| X509::from_der(&cb))
        .map_err(|e| format!("{cert}: no certificate: {e}"))?;
    let p12 = openssl::pkcs12::Pkcs12::builder()
        .name("corpus")
        .pkey(&pkey)
        .cert(&x509)
        .build2(password)
        .map_err(|e| format!("PKCS#12 of {key}: {e}"))?;
    p12.to_der().map_err(|e| e.to_string())
}

/// The outcome of one row.
pub enum Outcome {
    Pass,
    Fail(String),
}

/// The DER of a bare CMS file: DER as is, else the base64 between `-----BEGIN …-----` and `-----END` (armor
/// header lines and any text before the armor are skipped).
pub fn cms_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use base64::Engine;
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let t = String::from_utf8_lossy(bytes);
    let start = t.find("-----BEGIN ").ok_or("neither DER nor armored")?;
    let body = &t[start..];
    let body = &body[body.find('\n').ok_or("truncated armor")? + 1..];
    let end = body.find("-----END").ok_or("armor without END line")?;
    let b64: String = body[..end]
        .lines()
        .filter(|l| !l.contains(':'))
        .flat_map(|l| l.trim().chars())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("bad base64 in armor: {e}"))
}

/// An RFC 5322 message carrying `der` as `application/pkcs7-mime; smime-type=SMIME-TYPE` (CRLF, base64).
pub fn wrap_cms(der: &[u8], smime_type: &str) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut m = format!(
        "MIME-Version: 1.0\r\nSubject: corpus CMS object\r\nContent-Type: application/pkcs7-mime; smime-type={smime_type}; name=smime.p7m\r\n\
         Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=smime.p7m\r\n\r\n"
    );
    for chunk in b64.as_bytes().chunks(76) {
        m.push_str(std::str::from_utf8(chunk).unwrap());
        m.push_str("\r\n");
    }
    m.into_bytes()
}

/// The input file of a row: the corpus file, or a wrapped / mbox-stripped copy of it.
fn input_for(home: &mut Home, row: &Row, file: &Path) -> Result<PathBuf, String> {
    let wrap = row
        .args
        .split_whitespace()
        .find_map(|t| t.strip_prefix("{wrap:").and_then(|t| t.strip_suffix('}')));
    let mbox = row.args.split_whitespace().any(|t| t == "{mbox}");
    if wrap.is_none() && !mbox {
        return Ok(file.to_path_buf());
    }
    let mut bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    if mbox && bytes.starts_with(b"From ") {
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| i + 1)
            .unwrap_or(bytes.len());
        bytes.drain(..nl);
    }
    if let Some(t) = wrap {
        bytes = wrap_cms(
            &cms_der(&bytes).map_err(|e| format!("{}: {e}", file.display()))?,
            t,
        );
    }
    let p = home.tmp(file.file_name().unwrap().to_str().unwrap());
    std::fs::write(&p, bytes).unwrap();
    Ok(p)
}

/// The command-line part of a row's args (without the input tokens), `{corpus}` expanded.
fn cli_args(row: &Row) -> Vec<String> {
    row.args
        .split_whitespace()
        .filter(|t| !(t.starts_with("{wrap:") || *t == "{mbox}"))
        .map(expand)
        .collect()
}

/// Runs one row in `home`.
pub fn run_row(home: &mut Home, row: &Row) -> Outcome {
    let file = match input_for(home, row, &corpus_path(&row.folder).join(&row.file)) {
        Ok(f) => f,
        Err(e) => return Outcome::Fail(e),
    };
    let file_s = file.to_string_lossy().to_string();
    let json = needs_json(&row.expect);
    let out = home.tmp("out");
    let mut args: Vec<String> = Vec::new();
    match row.command.as_str() {
        "verify" | "decrypt" => {
            if row.command == "decrypt" {
                for spec in row.key.split_whitespace() {
                    if let Err(e) = home.ensure_identity(spec) {
                        return Outcome::Fail(e);
                    }
                }
            }
            args.extend([
                row.command.clone(),
                file_s.clone(),
                "-o".into(),
                out.to_string_lossy().to_string(),
            ]);
        }
        "inspect" => args.extend(["inspect".to_string(), file_s.clone()]),
        "import" => {
            let pw = row.key.strip_prefix('#').unwrap_or("");
            let pwf = home.password_file(pw);
            args.extend([
                "id".to_string(),
                "import".into(),
                file_s.clone(),
                "--no-passphrase".into(),
                "--password-file".into(),
                pwf.to_string_lossy().to_string(),
            ]);
        }
        c => return Outcome::Fail(format!("unknown command {c}")),
    }
    if json {
        args.push("--json".into());
    }
    args.extend(cli_args(row));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = home.env.cmd(&argv).stdin(Stdio::null()).output().unwrap();
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    let code = o.status.code().unwrap_or(-1);
    let shown = format!(
        "{} {}",
        row.command,
        expand(&row.args).replace(&corpus_root(), "{corpus}")
    );
    if code != row.expect_exit {
        return Outcome::Fail(format!(
            "[{}] expected exit {}, got {code}; stderr: {}; stdout: {}",
            shown.trim(),
            row.expect_exit,
            short(&stderr, 300),
            short(&stdout, 300)
        ));
    }
    let content = std::fs::read(&out).ok();
    let fails = evaluate(&row.expect, &stdout, &stderr, content.as_deref());
    if fails.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(format!(
            "[{}] exit {code} as expected, but {}; stderr: {}",
            shown.trim(),
            fails.join("; "),
            short(&stderr, 200)
        ))
    }
}

/// Runs the rows of `folder` whose command is in `commands` (and which `filter` accepts) in one home; panics
/// with one report listing every failure. Rows tagged `crl`/`policy` are summarised, not failed.
pub fn run_folder(folder: &str, commands: &[&str], filter: &dyn Fn(&Row) -> bool) {
    let ex = load();
    let rows: Vec<&Row> = ex
        .rows
        .iter()
        .filter(|r| r.folder == folder && commands.contains(&r.command.as_str()) && filter(r))
        .collect();
    assert!(!rows.is_empty(), "no rows for {folder} {commands:?}");
    let mut home = Home::new();
    // Imports first (they may provide identities later rows rely on), then the rest in TSV order.
    let mut ordered: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.command == "import")
        .collect();
    ordered.extend(rows.iter().copied().filter(|r| r.command != "import"));
    let mut failures = Vec::new();
    let mut tagged: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
    let mut passed = 0;
    for row in &ordered {
        match run_row(&mut home, row) {
            Outcome::Pass => {
                passed += 1;
                if !row.tag.is_empty() {
                    tagged.entry(row.tag.clone()).or_default().0 += 1;
                }
            }
            Outcome::Fail(msg) => {
                let line = format!(
                    "{}:{} {}: {msg}\n      why: {}",
                    TSV, row.line, row.file, row.why
                );
                if row.tag.is_empty() {
                    failures.push(line);
                } else {
                    tagged.entry(row.tag.clone()).or_default().1.push(line);
                }
            }
        }
    }
    eprintln!(
        "{folder} {commands:?}: {passed}/{} rows as expected",
        ordered.len()
    );
    for (tag, (ok, bad)) in &tagged {
        eprintln!(
            "  [{tag}] {ok}/{} rows tagged '{tag}' as expected; {} differ (not failed: {tag} processing is not required):",
            ok + bad.len(),
            bad.len()
        );
        for b in bad {
            eprintln!("    {b}");
        }
    }
    if !failures.is_empty() {
        panic!(
            "{folder} {commands:?}: {} of {} rows failed:\n  {}",
            failures.len(),
            ordered.len(),
            failures.join("\n  ")
        );
    }
}

/// Every MANIFEST row is either covered by a row or listed in a `#skip` line with a reason, and nothing else
/// is listed. Returns the problems.
pub fn coverage_problems() -> Vec<String> {
    let ex = load();
    let mut problems = Vec::new();
    let covered: BTreeSet<(String, String)> = ex
        .rows
        .iter()
        .map(|r| (r.folder.clone(), r.file.clone()))
        .collect();
    let mut skipped: BTreeSet<(String, String)> = BTreeSet::new();
    for s in &ex.skips {
        if !skipped.insert((s.folder.clone(), s.file.clone())) {
            problems.push(format!(
                "{TSV}:{}: {} {} is skipped twice",
                s.line, s.folder, s.file
            ));
        }
    }
    let mut in_manifest: BTreeSet<(String, String)> = BTreeSet::new();
    for folder in folders() {
        for file in manifest_files(&folder) {
            let k = (folder.clone(), file.clone());
            let c = covered.contains(&k);
            let s = skipped.contains(&k);
            if !c && !s {
                problems.push(format!("{folder}/{file}: in MANIFEST.tsv but neither tested nor listed with a reason (#skip)"));
            }
            if c && s {
                problems.push(format!(
                    "{folder}/{file}: both tested and listed as skipped"
                ));
            }
            in_manifest.insert(k);
        }
    }
    for k in covered.union(&skipped) {
        if !in_manifest.contains(k) {
            problems.push(format!(
                "{}/{}: not a row of that folder's MANIFEST.tsv",
                k.0, k.1
            ));
        }
    }
    problems
}

/// Static sanity of the rows: files and `{corpus}` paths exist, checks parse, decrypt rows name a key.
pub fn row_problems() -> Vec<String> {
    let ex = load();
    let mut problems = Vec::new();
    for r in &ex.rows {
        let at = format!("{TSV}:{} {}/{}", r.line, r.folder, r.file);
        if !corpus_path(&r.folder).join(&r.file).is_file() {
            problems.push(format!("{at}: file does not exist"));
        }
        for tok in r
            .args
            .split_whitespace()
            .chain(r.key.split_whitespace().flat_map(|k| k.split(['+', '#'])))
        {
            if tok.starts_with("{corpus}") && !Path::new(&expand(tok)).exists() {
                problems.push(format!("{at}: {tok} does not exist"));
            }
        }
        if r.command == "decrypt" && r.key.is_empty() && r.expect_exit == 0 {
            problems.push(format!(
                "{at}: a decrypt row expected to succeed needs a key"
            ));
        }
        if r.command == "import" && !r.key.starts_with('#') {
            problems.push(format!("{at}: an import row's key column is #PASSWORD"));
        }
        if r.why.trim().is_empty() {
            problems.push(format!("{at}: no why"));
        }
        for c in r.expect.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            let known = [
                "content~", "stdout~", "stderr~", "any~", "status=", "signers=", "json.", "signer[",
            ];
            if !known.iter().any(|k| c.starts_with(k)) {
                problems.push(format!("{at}: unknown check {c:?}"));
            }
        }
        if r.expect.contains("content~")
            && (r.expect_exit == 2 || (r.expect_exit == 1 && r.command != "decrypt"))
        {
            problems.push(format!(
                "{at}: content is only written on success (or by a weak-cipher decrypt, exit 1)"
            ));
        }
    }
    problems
}
