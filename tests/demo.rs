//! The README's first command: `smimekit demo` runs the whole story and ends with a valid signature.

mod common;

use common::*;

#[test]
fn demo_runs_the_whole_story() {
    let env = Env::new();
    let o = env.ok(&["demo"]);
    let out = text(&o.stdout);
    for needle in [
        "Step 5",
        "harvested 1 certificate",
        "aes-256-gcm",
        "integrity: authenticated",
        "Demo complete",
    ] {
        assert!(out.contains(needle), "missing '{needle}' in:\n{out}");
    }
    assert_eq!(out.matches("VALID signature").count(), 2, "{out}");
}
