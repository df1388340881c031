//! `check-server --login`: logging in over TLS with an account's user and login secret, against the Postfix
//! (SASL through Dovecot) of the send tests.

mod common;
mod support_mail;

use common::Env;
use serde_json::Value;
use support_mail::{LOGIN_SECRET, LOGIN_USER, Postfix};

#[test]
fn login_with_account_succeeds_and_a_wrong_secret_is_a_named_problem() {
    if !common::have(Postfix::TOOLS) {
        return;
    }
    let pf = Postfix::start();
    let e = Env::new();
    let ca = common::fixture("server/ca.pem");
    let port = pf.starttls_port.to_string();
    let add = |name: &str, secret: &str| {
        let f = e.write_file(&format!("secret-{name}"), secret.as_bytes());
        e.ok(&[
            "account",
            "add",
            name,
            "--server",
            "localhost",
            "--port",
            &port,
            "--tls",
            "starttls",
            "--user",
            LOGIN_USER,
            "--from",
            LOGIN_USER,
            "--ca",
            ca.to_str().unwrap(),
            "--login-command",
            &format!("cat {}", f.display()),
        ]);
    };
    add("work", LOGIN_SECRET);
    add("wrong", "not-the-secret");
    let run = |login: &str| {
        let out = e.run(&[
            "check-server",
            "localhost",
            "--port",
            &port,
            "--protocol",
            "submission",
            "--ca",
            ca.to_str().unwrap(),
            "--no-system-trust",
            "--login",
            login,
            "--json",
        ]);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|err| panic!("{err}: {}", common::text(&out.stderr)));
        (out.status.code(), v["ports"][0].clone())
    };
    let (_, p) = run("work");
    assert_eq!(p["login"]["ok"], true, "{p:#}");
    assert_eq!(p["login"]["user"], LOGIN_USER, "{p:#}");
    let (code, p) = run("wrong");
    assert_eq!(code, Some(1), "{p:#}");
    assert_eq!(p["login"]["ok"], false, "{p:#}");
    let codes: Vec<&str> = p["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"login_failed"), "{p:#}");
    // The secret never appears in the report.
    assert!(!p.to_string().contains("not-the-secret"));
}
