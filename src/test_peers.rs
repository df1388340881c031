//! Unit tests that run a peer program (`openssl`, `gpgsm`): the same rule as the integration tests'
//! `common::have`. A missing program skips the test with one line per program; under
//! `SMIMEKIT_REQUIRE_PEERS=1` (set by `.ci/run`) it is a failure, so CI never passes by skipping.

use std::path::Path;
use std::sync::Mutex;

/// Programs already reported missing in this test binary (one line each).
static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn installed(prog: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| {
        Path::new(&d)
            .join(prog)
            .metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Whether every program in `tools` is installed; see the module documentation for what happens otherwise.
pub fn have(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !installed(t)).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("SMIMEKIT_REQUIRE_PEERS").is_none_or(|v| v != "1"),
        "peer tool(s) {missing:?} not installed, and SMIMEKIT_REQUIRE_PEERS=1 makes that a failure (.ci/run installs them)"
    );
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    for t in missing {
        if !said.iter().any(|s| s == t) {
            said.push(t.to_owned());
            // Straight to standard error: libtest captures eprintln! of passing tests.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "smimekit unit tests: `{t}` is not installed: the tests that need it are skipped (.ci/run installs it)"
            );
        }
    }
    false
}
