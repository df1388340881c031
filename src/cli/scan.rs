//! `smimekit scan`: arguments, then [`smimekit::scan`] does the work; this prints the per-message lines
//! (`--json`) or the failures, and the summary.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use clap::Args;
use smimekit::ids::IdStore;
use smimekit::scan::{self, Kind, MessageReport, Summary};

use super::Global;
use super::message::{TrustArgs, verify_options};
use super::output;

/// `smimekit scan`.
#[derive(Args)]
pub struct ScanArgs {
    /// Maildir folders, mbox files, folders of message files (searched recursively) or message files.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Do not add the signers of valid messages to the contacts.
    #[arg(long)]
    pub no_harvest: bool,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub jobs: Option<u16>,
    /// Only messages dated (Date: header) at or after this time (a date or RFC 3339); messages without a
    /// readable Date are scanned.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Validate at this time (RFC 3339 or a date) instead of the start of the scan.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Also trust these anchors (PEM or DER; repeatable).
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// Do not trust the system's certificate store.
    #[arg(long)]
    pub no_system_trust: bool,
    /// Revocation checking from the cache and the CRLs the messages carry (a scan never fetches): off, prefer or
    /// require. Default: `revocation.check` of the configuration file, else prefer.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub revocation: Option<super::message::RevocationArg>,
}

/// Set by Ctrl-C: the workers stop between messages and nothing is written.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Runs `scan`.
pub fn run(g: &Global, a: &ScanArgs) -> Result<i32> {
    let home = g.home()?;
    let trust = TrustArgs {
        at: a.at.clone(),
        ca: a.ca.clone(),
        no_system_trust: a.no_system_trust,
        no_harvest: a.no_harvest,
        force_output: false,
        no_address_check: false,
        // The revocation cache and the CRLs the messages carry: a scan never reaches the network.
        revocation: a.revocation,
        offline: true,
        online: false,
        crl: Vec::new(),
    };
    let since = a.since.as_deref().map(scan::parse_since).transpose()?;
    let mut opts = scan::ScanOptions::new(
        verify_options(&home, &trust)?,
        !a.no_harvest,
        a.jobs.map_or(0, usize::from),
    );
    for id in IdStore::new(&home).list()? {
        opts.own_ids.push(id.fingerprint.clone());
        opts.ids
            .push((format!("your ID {}", id.label()), id.cert.clone()));
    }
    opts.since = since;
    opts.cancel = Some(&INTERRUPTED);
    scan::stop_on_interrupt(&INTERRUPTED);
    let plan = scan::plan(&a.paths)?;
    let total = plan.len();
    if g.json {
        // One JSON line per message, then the summary line: that is this command's JSON output (an error after
        // the first line is text on standard error, never a second kind of document on standard output).
        output::json_written();
    }
    let mut out = Lines::default();
    // On a terminal only, and never under --json or --batch (the progress module decides).
    let spinner = super::progress::Spinner::start(&format!("scanning {total} messages"));
    let outcome = scan::run(&plan, &opts, &mut |r: &MessageReport| {
        if g.json {
            out.push(serde_json::to_string(r).expect("serialize a report") + "\n");
        } else if let Some(line) = failure_line(r) {
            out.push(output::clean(&line) + "\n");
        }
    });
    drop(spinner);
    let mut summary = outcome.summary;
    // The per-message lines are written before the contacts change: a scan whose output could not be written
    // in full fails (exit 2) without having changed the store.
    out.write();
    if let Some(e) = out.failed.take() {
        return Err(e);
    }
    // A standard output closed from the start (`>&-`) is known before anything is written.
    drop(output::stdout()?);
    if !a.no_harvest && !summary.interrupted {
        let lock = home.lock()?;
        summary.contacts = Some(scan::commit_harvest(&home, &lock, outcome.harvest)?);
    }
    if g.json {
        out.push(serde_json::to_string(&summary)? + "\n");
    } else {
        out.push(output::clean(&render(&summary)));
    }
    out.finish()?;
    if summary.interrupted {
        output::warn(
            "interrupted: the counts cover the messages done so far; nothing was written to the contacts",
        );
    }
    Ok(summary.exit_code())
}

/// Output written in large pieces (a line per message adds up). A failed write (a closed standard output, a
/// broken pipe) is kept and reported when the scan ends: its output was not written in full (exit 2).
#[derive(Default)]
struct Lines {
    buf: String,
    failed: Option<anyhow::Error>,
}

impl Lines {
    fn push(&mut self, s: String) {
        self.buf += &s;
        if self.buf.len() >= 1 << 16 {
            self.write();
        }
    }
    fn write(&mut self) {
        if !self.buf.is_empty()
            && self.failed.is_none()
            && let Err(e) = output::print(&self.buf)
        {
            self.failed = Some(e);
        }
        self.buf.clear();
    }
    fn finish(mut self) -> Result<()> {
        self.write();
        self.failed.map_or(Ok(()), Err)
    }
}

/// The line of a message that needs attention (text mode): not valid, not readable.
fn failure_line(r: &MessageReport) -> Option<String> {
    let what = match (r.kind, r.verdict) {
        (Kind::Signed, Some("invalid")) => "INVALID",
        (Kind::Signed, Some("valid")) | (Kind::Encrypted | Kind::Plain, _) => return None,
        (Kind::Signed, _) => "NOT VERIFIABLE",
        (Kind::Error, _) => "UNREADABLE",
    };
    let at = match r.offset {
        Some(o) => format!("{} (offset {o})", r.path),
        None => r.path.clone(),
    };
    Some(format!(
        "{what}: {at}: {}",
        r.reasons.first().map_or("", String::as_str)
    ))
}

fn render(s: &Summary) -> String {
    let mut t = String::new();
    let rate = if s.seconds > 0.0 {
        s.messages as f64 / s.seconds
    } else {
        0.0
    };
    t += &format!(
        "Scanned {} message{} in {:.2} s ({rate:.0} messages/s){}\n",
        s.messages,
        if s.messages == 1 { "" } else { "s" },
        s.seconds,
        if s.interrupted { ", INTERRUPTED" } else { "" }
    );
    let v = &s.verdicts;
    t += &format!(
        "  signed:      {} (valid {}, of which weak {}; invalid {}; not verifiable {})\n",
        s.signed, v.valid, v.valid_weak, v.invalid, v.error
    );
    t += &format!(
        "  encrypted:   {} ({} to one of your IDs)\n",
        s.encrypted, s.encrypted_for_you
    );
    t += &format!("  plain:       {}\n", s.plain);
    t += &format!("  unreadable:  {}\n", s.errors);
    if s.skipped > 0 {
        t += &format!("  skipped:     {} (dated before --since)\n", s.skipped);
    }
    if !s.signers.is_empty() {
        t += &format!("Signers ({}):\n", s.signers.len());
        for sg in &s.signers {
            t += &format!(
                "  {}  {}  {} message{}, {} valid\n",
                &sg.fingerprint[..16.min(sg.fingerprint.len())],
                if sg.emails.is_empty() {
                    sg.subject.clone()
                } else {
                    sg.emails.join(", ")
                },
                sg.messages,
                if sg.messages == 1 { "" } else { "s" },
                sg.valid
            );
        }
    }
    if !s.expiring.is_empty() {
        t += "Signer certificates expired or expiring within 30 days:\n";
        for sg in &s.expiring {
            t += &format!(
                "  {}  {}  {} {}\n",
                &sg.fingerprint[..16.min(sg.fingerprint.len())],
                sg.emails.join(", "),
                sg.status,
                sg.not_after
            );
        }
    }
    if !s.weak.is_empty() {
        t += "Weak algorithms:\n";
        for (w, n) in &s.weak {
            t += &format!("  {w}: {n} message{}\n", if *n == 1 { "" } else { "s" });
        }
    }
    if s.would_match_after_change > 0 {
        t += &format!(
            "Altered in transit: {} message{} would have matched after a line-end or white-space change\n",
            s.would_match_after_change,
            if s.would_match_after_change == 1 {
                ""
            } else {
                "s"
            }
        );
    }
    match &s.contacts {
        None => t += "Contacts: not changed\n",
        Some(h) => {
            t += &format!(
                "Contacts: {} added{}\n",
                h.added.len(),
                if h.key_changes.is_empty() {
                    String::new()
                } else {
                    format!(", {} key change(s)", h.key_changes.len())
                }
            );
            for fp in &h.added {
                t += &format!("  added {}\n", &fp[..16.min(fp.len())]);
            }
            for k in &h.key_changes {
                t += &format!("  WARNING: {k}\n");
            }
            for n in &h.notes {
                t += &format!("  Note: {n}\n");
            }
        }
    }
    t
}
