//! Command-line parsing and dispatch. Every command parses its arguments, obtains secrets, calls the
//! library and prints; the work is in `smimekit::*`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use smimekit::Error;

mod contact;
mod demo;
mod id;
mod message;
mod output;
mod scan;
mod secrets;
mod trust;

/// smimekit — sign, verify, encrypt and decrypt e-mail with S/MIME, and manage digital IDs.
#[derive(Parser)]
#[command(name = "smimekit", version, about, long_about = None, max_term_width = 110)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Args, Clone)]
pub struct Global {
    /// The smimekit home folder (default: $SMIMEKIT_HOME, else the platform data folder).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Never prompt: a missing secret or confirmation is an error.
    #[arg(long, global = true)]
    pub batch: bool,
    /// Read the PKCS#12 password from FILE (else $SMIMEKIT_PASSWORD, else a prompt).
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Read the ID passphrase from FILE (else $SMIMEKIT_PASSPHRASE, else a prompt).
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Machine-readable output (stable field names, see the README).
    #[arg(long, global = true)]
    pub json: bool,
}

impl Global {
    /// The secret sources named by these options.
    pub fn secrets(&self) -> secrets::Sources {
        secrets::Sources {
            password_file: self.password_file.clone(),
            passphrase_file: self.passphrase_file.clone(),
            batch: self.batch,
        }
    }
    /// Opens the home.
    pub fn home(&self) -> anyhow::Result<smimekit::home::Home> {
        let root = smimekit::home::Home::resolve(self.home.as_deref())?;
        Ok(smimekit::home::Home::open(&root)?)
    }
}

/// Reads an input file given on the command line (a certificate, a PKCS#12 file), naming it in the error.
fn read_file(p: &std::path::Path) -> smimekit::Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| Error::io("read", p, e))
}

/// Asks before a destructive command (`doing`, e.g. "deleting alice@example.com"): `--yes` skips the question,
/// `--batch` without `--yes` is refused, otherwise the terminal asks `question` and wants "yes". False when
/// the answer was something else: nothing is to be done.
fn confirm(g: &Global, yes: bool, doing: &str, question: &str) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if g.batch {
        return Err(Error::usage(format!("{doing} needs confirmation"))
            .hint("add --yes to confirm (--batch never asks)")
            .into());
    }
    let answer = rpassword::prompt_password(format!("{question} Type 'yes': ")).map_err(|_| {
        Error::usage("cannot ask for confirmation: no terminal").hint("add --yes to confirm")
    })?;
    Ok(answer.trim() == "yes")
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Manage your digital IDs (private key + certificate).
    #[command(subcommand)]
    Id(id::IdCommand),
    /// Show the whole story in throw-away homes: two test IDs, sign, verify, encrypt, decrypt.
    Demo,
    /// Sign a message (multipart/signed, or opaque with --opaque).
    Sign(message::SignArgs),
    /// Verify a signed message: integrity, trust, validity, purpose and From address, per signer.
    Verify(message::VerifyArgs),
    /// Encrypt a message to its recipients (To, Cc) and yourself.
    Encrypt(message::EncryptArgs),
    /// Decrypt a message (and verify it if it is signed inside).
    Decrypt(message::DecryptArgs),
    /// Show the S/MIME layers, algorithms, signers and recipients of a message (no secrets needed).
    Inspect(message::InspectArgs),
    /// Verify every message of Maildirs, mbox files and folders in parallel; summary, or JSON lines.
    Scan(scan::ScanArgs),
    /// Manage your own trust anchors (root certificates you trust besides the system's).
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// Manage your correspondents' certificates (to encrypt to them).
    #[command(subcommand)]
    Contact(contact::ContactCommand),
}

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            e.exit()
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return 2;
        }
        Err(e) => {
            // Usage errors in the same form as every other error: what is wrong, then what to do.
            let text = e.render().to_string();
            let mut lines = text.lines().filter(|l| !l.trim().is_empty());
            let first = lines.next().unwrap_or("invalid command line");
            eprintln!("smimekit: error: {}", first.trim_start_matches("error: "));
            for l in lines
                .filter(|l| l.trim_start().starts_with("tip:") || l.contains("possible values"))
            {
                eprintln!("smimekit: hint: {}", l.trim().trim_start_matches("tip: "));
            }
            eprintln!(
                "smimekit: hint: see 'smimekit --help' and 'smimekit COMMAND --help' for the options"
            );
            return 2;
        }
    };
    smimekit::secret::protect_process();
    // OpenSSL's legacy provider (RC2, DES) is loaded where it is needed (PKCS#12 files, old mail), not here.
    let result = match &cli.command {
        Command::Id(c) => id::run(&cli.global, c),
        Command::Trust(c) => trust::run(&cli.global, c),
        Command::Demo => demo::run(&cli.global),
        Command::Sign(a) => message::run_sign(&cli.global, a),
        Command::Verify(a) => message::run_verify(&cli.global, a),
        Command::Encrypt(a) => message::run_encrypt(&cli.global, a),
        Command::Decrypt(a) => message::run_decrypt(&cli.global, a),
        Command::Inspect(a) => message::run_inspect(&cli.global, a),
        Command::Scan(a) => scan::run(&cli.global, a),
        Command::Contact(c) => contact::run(&cli.global, c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            report_error(&e);
            2
        }
    }
}

fn report_error(e: &anyhow::Error) {
    if let Some(err) = e.downcast_ref::<Error>() {
        eprintln!("smimekit: error: {}", output::clean(&err.to_string()));
        if let Some(h) = err.hint_text() {
            eprintln!("smimekit: hint: {}", output::clean(h));
        }
    } else {
        eprintln!("smimekit: error: {}", output::clean(&format!("{e:#}")));
    }
}
