//! `smimekit trace [FILE] [--trust-from HOST]`: the hops a received message took, and whether each used TLS.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use smimekit::input;
use smimekit::trace::{self, Hop, TlsState, Trust};

use super::Global;
use super::output;

/// Arguments of `trace`.
#[derive(Args)]
pub struct TraceArgs {
    /// The message as received (its header section is enough); standard input if absent or "-".
    pub file: Option<PathBuf>,
    /// The first server you trust (your provider's receiving server, as it writes its name in "by"): fields
    /// written before the message reached it are shown as claims.
    #[arg(long, value_name = "HOST")]
    pub trust_from: Option<String>,
}

/// Runs `trace`; exit 0 when every network hop recorded TLS, 1 otherwise.
pub fn run(g: &Global, a: &TraceArgs) -> Result<i32> {
    let path = a.file.as_deref().filter(|p| p.as_os_str() != "-");
    let raw = input::read(path)?;
    let r = trace::trace(&raw, a.trust_from.as_deref())?;
    if g.json {
        output::json(&r)?;
        return Ok(r.exit_code());
    }
    let mut s = String::new();
    for h in &r.hops {
        s += &hop_text(h);
    }
    s += &format!("\nNote: {}\n", r.note);
    let mark = if r.exit_code() == 0 { "✓" } else { "✗" };
    s += &format!("Verdict: {mark} {}\n", r.verdict_text);
    output::print(&output::clean(&s))?;
    Ok(r.exit_code())
}

fn hop_text(h: &Hop) -> String {
    let mut s = format!("Hop {}: {}", h.hop, h.route());
    if let Some(ip) = &h.from_ip
        && h.from.as_deref() != Some(ip.as_str())
    {
        s += &format!(" (from address {ip})");
    }
    s += match h.trust {
        Trust::Trusted => "  [trusted]",
        Trust::Claim => "  [claim: could be forged]",
        Trust::Unchecked => "",
    };
    s += "\n";
    if let Some(w) = &h.with {
        s += &format!("  with:  {w}\n");
    }
    if let Some(id) = &h.id {
        s += &format!("  id:    {id}\n");
    }
    if let Some(t) = &h.time {
        s += &format!("  time:  {t}");
        if let Some(d) = h.delay_seconds {
            s += &format!(" (+{d} s)");
        }
        s += "\n";
    }
    let tls = match h.tls {
        TlsState::Yes => {
            let mut t = "✓ yes".to_string();
            if let Some(v) = &h.tls_version {
                t += &format!(", {v}");
            }
            if let Some(c) = &h.tls_cipher {
                t += &format!(", {c}");
            }
            t
        }
        TlsState::No => "✗ no TLS recorded".into(),
        TlsState::Unknown => "! not recorded by this server".into(),
        TlsState::Local => "- local hand-off (no network)".into(),
    };
    s += &format!("  TLS:   {tls}");
    if let Some(e) = &h.tls_evidence {
        s += &format!("  [{e}]");
    }
    s += "\n";
    s += &format!(
        "  auth:  {}\n",
        if h.authenticated {
            "authenticated submission"
        } else {
            "not recorded"
        }
    );
    s
}
