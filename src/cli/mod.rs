//! Command-line parsing and dispatch. Every command parses its arguments, obtains secrets, calls the
//! library and prints; the work is in `smimekit::*`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use smimekit::Error;

mod account;
mod check;
mod completions;
mod config;
mod contact;
mod crl;
mod demo;
mod id;
mod message;
mod neomutt;
mod output;
mod progress;
mod scan;
mod secrets;
mod send;
mod signer;
mod trace;
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

/// Options every command accepts (the secret files: where they apply, see [`command`]).
#[derive(Args, Clone)]
pub struct Global {
    /// The smimekit home folder (default: $SMIMEKIT_HOME, else the platform data folder).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Never prompt: a missing secret or confirmation is an error.
    #[arg(long, global = true)]
    pub batch: bool,
    /// Read the PKCS#12 password from FILE (else $SMIMEKIT_PASSWORD, else a prompt); also accepted after
    /// the name of each command that reads a PKCS#12 file.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Read the ID passphrase from FILE (else $SMIMEKIT_PASSPHRASE, else a prompt); also accepted after the
    /// name of each command that opens or protects a key.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Machine-readable output (stable field names, see the README).
    #[arg(long, global = true)]
    pub json: bool,
    /// The configuration file (default: $SMIMEKIT_CONFIG, else $XDG_CONFIG_HOME/smimekit/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The effective settings, once the configuration is loaded (`config::apply`).
    #[arg(skip)]
    pub settings: Option<smimekit::config::Config>,
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
    /// The home folder these options name (not opened).
    pub fn home_path(&self) -> anyhow::Result<PathBuf> {
        Ok(smimekit::home::Home::resolve(self.home.as_deref())?)
    }
    /// Opens the home, creating it if it does not exist.
    pub fn home(&self) -> anyhow::Result<smimekit::home::Home> {
        let root = smimekit::home::Home::resolve(self.home.as_deref())?;
        Ok(smimekit::home::Home::open(&root)?)
    }
}

/// Reads a certificate (or chain) file given on the command line, naming it in the error; one over
/// [`smimekit::limits::MAX_CERT_FILE`] is refused before it is read.
fn read_file(p: &std::path::Path) -> smimekit::Result<Vec<u8>> {
    smimekit::input::read_bounded(p, smimekit::limits::MAX_CERT_FILE, "certificate file")
}

/// Reads a PKCS#12 file given on the command line; one over [`smimekit::limits::MAX_P12_FILE`] is refused
/// before it is read.
fn read_p12_file(p: &std::path::Path) -> smimekit::Result<Vec<u8>> {
    smimekit::input::read_bounded(p, smimekit::limits::MAX_P12_FILE, "PKCS#12 file")
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
    /// Show the effective configuration and where each setting came from.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// The commands neomutt's smime_*_command settings run (contrib/neomutt/smimekit.rc).
    #[command(subcommand)]
    Neomutt(neomutt::NeomuttCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the manual page, or write one page per command with -o DIR.
    Man(completions::ManArgs),
    /// Show the servers a received message passed and whether each hop used TLS (Received fields).
    Trace(trace::TraceArgs),
    /// Check a mail server's TLS: versions, certificate chain, host name, expiry, STARTTLS, login before TLS.
    CheckServer(check::CheckServerArgs),
    /// Submit a message over TLS (465 implicit / 587 STARTTLS), signed and/or encrypted on the way.
    Send(Box<send::SendArgs>),
    /// Sending accounts: add, list, show, remove, test.
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// Manage the revocation cache: CRLs (list, add, update, clear) and cached OCSP answers.
    #[command(subcommand)]
    Crl(crl::CrlCommand),
}

impl Command {
    /// Whether the command only uses what a home already holds: run on a home that does not exist (a mistyped
    /// `--home`), it says so instead of creating an empty one. Commands that add things (`id new`, `id import`,
    /// `id restore`, `trust add`, `contact add`), `verify` (which harvests) and `inspect`/`demo` (which need no
    /// home) may run without one.
    fn needs_existing_home(&self) -> bool {
        match self {
            Command::Id(c) => !matches!(
                c,
                id::IdCommand::New { .. }
                    | id::IdCommand::Import { .. }
                    | id::IdCommand::Restore { .. }
            ),
            Command::Trust(c) => !matches!(c, trust::TrustCommand::Add { .. }),
            Command::Contact(c) => !matches!(c, contact::ContactCommand::Add { .. }),
            Command::Sign(_) | Command::Encrypt(_) | Command::Decrypt(_) => true,
            Command::Demo
            | Command::Verify(_)
            | Command::Inspect(_)
            | Command::Config(_)
            | Command::Neomutt(_)
            | Command::Completions(_)
            | Command::Man(_)
            | Command::Send(_)
            | Command::Account(_) => false,
            Command::Crl(_) | Command::Trace(_) | Command::CheckServer(_) | Command::Scan(_) => {
                false
            }
        }
    }
}

/// Refuses a command that only uses the home's contents when the home does not exist.
fn check_home_exists(g: &Global, c: &Command) -> anyhow::Result<()> {
    if !c.needs_existing_home() {
        return Ok(());
    }
    let root = g.home_path()?;
    if root.exists() {
        return Ok(());
    }
    Err(Error::new(
        smimekit::ErrorKind::Store,
        format!("there is no smimekit home at {}", root.display()),
    )
    .hint("check --home and $SMIMEKIT_HOME; a home is created by 'smimekit id new', 'id import' or 'id restore'")
    .into())
}

/// Secret options a command never uses: (subcommand path, option id). Such an option is hidden from
/// that command's help and refused if given, so each command offers only what applies to it.
const UNUSED_SECRET_OPTIONS: &[(&[&str], &str)] = &[
    (&["sign"], "password_file"),
    (&["encrypt"], "password_file"),
    (&["decrypt"], "password_file"),
    (&["verify"], "password_file"),
    (&["verify"], "passphrase_file"),
    (&["inspect"], "password_file"),
    (&["inspect"], "passphrase_file"),
    (&["demo"], "password_file"),
    (&["demo"], "passphrase_file"),
    (&["id", "list"], "password_file"),
    (&["id", "list"], "passphrase_file"),
    (&["id", "show"], "password_file"),
    (&["id", "show"], "passphrase_file"),
    (&["id", "delete"], "password_file"),
    (&["id", "delete"], "passphrase_file"),
    (&["id", "new"], "password_file"),
    (&["id", "install-cert"], "password_file"),
    (&["id", "install-cert"], "passphrase_file"),
];

/// Whether the command at `path` uses the secret option `arg` (every command does unless listed as unused).
fn uses(path: &[&str], arg: &str) -> bool {
    if matches!(path.first(), Some(&("trust" | "contact"))) {
        return false;
    }
    !UNUSED_SECRET_OPTIONS
        .iter()
        .any(|(p, a)| *a == arg && *p == path)
}

/// The clap command: the secret options are offered by each command that uses them (and, for scripts,
/// before the command name), so a command's help shows only what applies to it.
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory;
    add_secret_options(Cli::command(), &[])
}

fn add_secret_options(mut cmd: clap::Command, path: &[&str]) -> clap::Command {
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    if path.is_empty() || !subs.is_empty() {
        for n in subs {
            let mut p = path.to_vec();
            p.push(n.as_str());
            let p: Vec<&str> = p;
            let owned: Vec<String> = p.iter().map(|x| x.to_string()).collect();
            cmd = cmd.mut_subcommand(&n, move |s| {
                let p: Vec<&str> = owned.iter().map(String::as_str).collect();
                add_secret_options(s, &p)
            });
        }
        return cmd;
    }
    if uses(path, "password_file") {
        cmd = cmd.arg(
            clap::Arg::new("password_file")
                .long("password-file")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help(
                    "Read the PKCS#12 password from FILE (else $SMIMEKIT_PASSWORD, else a prompt)",
                ),
        );
    }
    if uses(path, "passphrase_file") {
        cmd = cmd.arg(
            clap::Arg::new("passphrase_file")
                .long("passphrase-file")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help(
                    "Read the ID passphrase from FILE (else $SMIMEKIT_PASSPHRASE, else a prompt)",
                ),
        );
    }
    cmd
}

/// Takes the secret options given after the command name into `g`; refuses one given before the command
/// name to a command that never uses it.
fn take_secret_options(m: &clap::ArgMatches, g: &mut Global) -> Result<(), Error> {
    let mut path = Vec::new();
    let mut cur = m;
    while let Some((name, sub)) = cur.subcommand() {
        path.push(name.to_owned());
        cur = sub;
    }
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    for (arg, flag) in [
        ("password_file", "--password-file"),
        ("passphrase_file", "--passphrase-file"),
    ] {
        let slot = if arg == "password_file" {
            &mut g.password_file
        } else {
            &mut g.passphrase_file
        };
        if let Ok(Some(v)) = cur.try_get_one::<PathBuf>(arg) {
            *slot = Some(v.clone());
        } else if slot.is_some() && !uses(&path, arg) {
            return Err(
                Error::usage(format!("'smimekit {}' does not use {flag}", path.join(" ")))
                    .hint("leave it out: this command needs no such secret"),
            );
        }
    }
    Ok(())
}

/// Fills the options a command left unset from the configuration (file < environment < flag: an option
/// given on the command line is kept).
fn apply_settings(cli: &mut Cli) {
    use message::{CipherPolicyArg, RevocationArg};
    use smimekit::config::{CipherPolicyName, RevocationCheck};
    let Some(cfg) = cli.global.settings.as_ref() else {
        return;
    };
    let rev = match cfg.revocation_check.value {
        RevocationCheck::Off => RevocationArg::Off,
        RevocationCheck::Prefer => RevocationArg::Prefer,
        RevocationCheck::Require => RevocationArg::Require,
    };
    let cipher = match cfg.cipher_policy.value {
        CipherPolicyName::Compatible => CipherPolicyArg::Compatible,
        CipherPolicyName::Modern => CipherPolicyArg::Modern,
    };
    let fetch = cfg.revocation_fetch.value;
    match &mut cli.command {
        Command::Verify(a) => {
            a.trust.revocation.get_or_insert(rev);
            a.trust.online |= fetch && !a.trust.offline;
        }
        Command::Decrypt(a) => {
            a.trust.revocation.get_or_insert(rev);
            a.trust.online |= fetch && !a.trust.offline;
        }
        Command::Scan(a) => {
            a.revocation.get_or_insert(rev);
        }
        Command::Encrypt(a) => {
            a.revocation.get_or_insert(rev);
            a.online |= fetch && !a.offline;
            a.cipher_policy.get_or_insert(cipher);
        }
        _ => {}
    }
}

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    use clap::FromArgMatches;
    let parsed = command().try_get_matches().and_then(|m| {
        let mut cli = Cli::from_arg_matches(&m)?;
        if let Err(e) = take_secret_options(&m, &mut cli.global) {
            output::init(cli.global.json);
            output::error(&e.into());
            std::process::exit(2);
        }
        Ok(cli)
    });
    let mut cli = match parsed {
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
            let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            // The first line, with the indented lines that complete it (e.g. the missing arguments).
            let mut first = all
                .first()
                .copied()
                .unwrap_or("invalid command line")
                .to_owned();
            let more: Vec<&str> = all
                .iter()
                .skip(1)
                .take_while(|l| l.starts_with(' ') && !l.trim_start().starts_with("tip:"))
                .map(|l| l.trim())
                .collect();
            if !more.is_empty() {
                first = format!("{} {}", first.trim_end(), more.join(", "));
            }
            let lines = all.into_iter().skip(1);
            let mut hints: Vec<String> = lines
                .filter(|l| l.trim_start().starts_with("tip:") || l.contains("possible values"))
                .map(|l| l.trim().trim_start_matches("tip: ").to_owned())
                .collect();
            hints
                .push("see 'smimekit --help' and 'smimekit COMMAND --help' for the options".into());
            output::init(std::env::args_os().any(|a| a == "--json"));
            output::error(
                &Error::usage(first.trim_start_matches("error: ").to_owned())
                    .hint(hints.join("; "))
                    .into(),
            );
            return 2;
        }
    };
    output::init(cli.global.json);
    smimekit::secret::protect_process();
    // Completions and manual pages need no settings (and must work with a broken configuration file).
    if !matches!(cli.command, Command::Completions(_) | Command::Man(_))
        && let Err(e) = config::apply(&mut cli.global)
    {
        output::error(&e);
        return 2;
    }
    apply_settings(&mut cli);
    progress::configure(&cli.global);
    // OpenSSL's legacy provider (RC2, DES) is loaded where it is needed (PKCS#12 files, old mail), not here.
    let result = check_home_exists(&cli.global, &cli.command).and_then(|_| match &cli.command {
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
        Command::Config(c) => config::run(&cli.global, c),
        Command::Neomutt(c) => neomutt::run(&cli.global, c),
        Command::Completions(a) => completions::run_completions(a),
        Command::Man(a) => completions::run_man(a),
        Command::Trace(a) => trace::run(&cli.global, a),
        Command::CheckServer(a) => check::run(&cli.global, a),
        Command::Send(a) => send::run(&cli.global, a),
        Command::Account(c) => account::run(&cli.global, c),
        Command::Crl(c) => crl::run(&cli.global, c),
    });
    let result = result.map_err(|e| secrets::explain_empty(&cli.global.secrets(), e));
    match result.and_then(|code| output::finish(code).map(|_| code)) {
        Ok(code) => code,
        Err(e) => {
            output::error(&e);
            2
        }
    }
}
