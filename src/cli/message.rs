//! The message verbs: `sign`, `verify`, `encrypt`, `decrypt`, `inspect`. Input is a message file or standard
//! input; output is `-o FILE` (written atomically, only on success) or standard output (written only once the
//! whole result is ready). The report goes to standard output, or to standard error when standard output
//! carries the message.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, ValueEnum};
use openssl::x509::X509;
use smimekit::contacts::ContactStore;
use smimekit::home::Home;
use smimekit::ids::IdStore;
use smimekit::ossl::enveloped::ContentCipher;
use smimekit::ossl::signed::Digest;
use smimekit::smime::{decrypt, encrypt, harvest, inspect, sign, verify};
use smimekit::trust::TrustStore;
use smimekit::{Error, cert, input, mime};

use super::Global;
use super::id::unlock;
use super::output;

/// Digest choices.
#[derive(Clone, Copy, ValueEnum)]
pub enum DigestArg {
    /// SHA-256 (default).
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// Content-cipher choices.
#[derive(Clone, Copy, ValueEnum)]
pub enum CipherArg {
    /// AES-256-GCM (AuthEnvelopedData).
    #[value(name = "aes-256-gcm", alias = "aes256-gcm")]
    Aes256Gcm,
    /// AES-128-GCM (AuthEnvelopedData).
    #[value(name = "aes-128-gcm", alias = "aes128-gcm")]
    Aes128Gcm,
    /// AES-256-CBC (EnvelopedData; no integrity protection) for old clients.
    #[value(name = "aes-256-cbc", alias = "aes256-cbc")]
    Aes256Cbc,
    /// AES-128-CBC (EnvelopedData; no integrity protection).
    #[value(name = "aes-128-cbc", alias = "aes128-cbc")]
    Aes128Cbc,
}

/// Revocation policies (see [`smimekit::revocation::Policy`]).
#[derive(Clone, Copy, ValueEnum)]
pub enum RevocationArg {
    /// Do not check; reports say "revocation not checked".
    Off,
    /// Check (network allowed); an unknown status is a warning.
    Prefer,
    /// Check; an unknown status fails (exit 1) or refuses the recipient.
    Require,
}

impl From<RevocationArg> for smimekit::revocation::Policy {
    fn from(a: RevocationArg) -> Self {
        match a {
            RevocationArg::Off => smimekit::revocation::Policy::Off,
            RevocationArg::Prefer => smimekit::revocation::Policy::Prefer,
            RevocationArg::Require => smimekit::revocation::Policy::Require,
        }
    }
}

/// Cipher-policy choices (see [`encrypt::CipherPolicy`]).
#[derive(Clone, Copy, ValueEnum)]
pub enum CipherPolicyArg {
    /// AES-256-CBC when a recipient's capabilities are unknown: every client opens it (the default).
    Compatible,
    /// AES-256-GCM when a recipient's capabilities are unknown (Thunderbird and Outlook cannot open it).
    Modern,
}

impl From<CipherPolicyArg> for encrypt::CipherPolicy {
    fn from(a: CipherPolicyArg) -> Self {
        match a {
            CipherPolicyArg::Compatible => encrypt::CipherPolicy::Compatible,
            CipherPolicyArg::Modern => encrypt::CipherPolicy::Modern,
        }
    }
}

/// `smimekit sign`.
#[derive(Args)]
pub struct SignArgs {
    /// The message (RFC 5322); standard input if absent or "-".
    pub file: Option<PathBuf>,
    /// Write the signed message here (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// The ID to sign with (e-mail or fingerprint); default: the ID matching From:, else the only ID.
    #[arg(long = "as", value_name = "ID")]
    pub as_id: Option<String>,
    /// Opaque signed-data (application/pkcs7-mime) instead of multipart/signed.
    #[arg(long)]
    pub opaque: bool,
    /// Digest algorithm [default: sign.digest of the configuration, else sha256].
    #[arg(long, value_enum)]
    pub digest: Option<DigestArg>,
    /// RSASSA-PSS (salt length = digest length) instead of PKCS#1 v1.5 for RSA keys.
    #[arg(long)]
    pub pss: bool,
}

/// Trust options shared by verify and decrypt.
#[derive(Args, Clone)]
pub struct TrustArgs {
    /// Validate at this time (RFC 3339 or a date) instead of now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Also trust these anchors (PEM or DER; repeatable).
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// Do not trust the system's certificate store.
    #[arg(long)]
    pub no_system_trust: bool,
    /// Do not add the signer's certificate to the contacts.
    #[arg(long)]
    pub no_harvest: bool,
    /// Write the content even when verification fails (it is NOT verified).
    #[arg(long)]
    pub force_output: bool,
    /// Do not compare the From (or Sender) with the signer's certificate: the verdict is about the signer
    /// alone, so a message without From or Sender can be valid. Nothing is harvested then.
    #[arg(long)]
    pub no_address_check: bool,
    /// Revocation checking: off, prefer (check; unknown is a warning) or require (unknown fails). Default:
    /// `revocation.check` of the configuration file, else prefer.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub revocation: Option<RevocationArg>,
    /// Use only cached and added CRLs, CRLs the message carries and cached OCSP answers: nothing goes to the
    /// network (the default, unless --online or `revocation.fetch = true` in the configuration).
    #[arg(long, conflicts_with = "online")]
    pub offline: bool,
    /// Also fetch CRLs and OCSP answers over the network, from the URLs in the certificates (OCSP tells the
    /// responder which certificate you check).
    #[arg(long)]
    pub online: bool,
    /// Also use this CRL (DER or PEM) for this command (repeatable).
    #[arg(long, value_name = "FILE")]
    pub crl: Vec<PathBuf>,
}

/// `smimekit verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The message; standard input if absent or "-".
    pub file: Option<PathBuf>,
    /// Write the signed content as a message (outer headers + signed entity), only if the signature is valid.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// `smimekit encrypt`.
#[derive(Args)]
pub struct EncryptArgs {
    /// The message; standard input if absent or "-".
    pub file: Option<PathBuf>,
    /// Write the encrypted message here (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Also encrypt to this address (repeatable; To and Cc are always included).
    #[arg(long, value_name = "ADDRESS")]
    pub to: Vec<String>,
    /// Also encrypt to this certificate (repeatable).
    #[arg(long, value_name = "FILE")]
    pub cert: Vec<PathBuf>,
    /// Sign first, then encrypt (RFC 8551 §3.7).
    #[arg(long)]
    pub sign: bool,
    /// Your ID (for --sign and your own copy); default: the ID matching From:.
    #[arg(long = "as", value_name = "ID")]
    pub as_id: Option<String>,
    /// Content cipher (default: chosen from the recipients' capabilities and the cipher policy).
    #[arg(long, value_enum)]
    pub cipher: Option<CipherArg>,
    /// What to use when a recipient's capabilities are unknown: compatible (AES-256-CBC, which every client
    /// opens; the default) or modern (AES-256-GCM). Recipients who advertised their ciphers get what they
    /// advertised under either policy; --cipher overrides both.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub cipher_policy: Option<CipherPolicyArg>,
    /// Do not encrypt a copy to yourself.
    #[arg(long)]
    pub no_self: bool,
    /// Revocation checking of the recipients' certificates: off, prefer or require. Default:
    /// `revocation.check` of the configuration file, else prefer.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub revocation: Option<RevocationArg>,
    /// Use only cached revocation data: nothing goes to the network (the default, unless --online or
    /// `revocation.fetch = true` in the configuration).
    #[arg(long, conflicts_with = "online")]
    pub offline: bool,
    /// Also fetch CRLs and OCSP answers for the recipients' certificates over the network.
    #[arg(long)]
    pub online: bool,
    /// RSA-OAEP (SHA-256) key transport for every RSA recipient.
    #[arg(long)]
    pub oaep: bool,
    /// Digest for --sign.
    #[arg(long, value_enum, default_value_t = DigestArg::Sha256)]
    pub digest: DigestArg,
}

/// `smimekit decrypt`.
#[derive(Args)]
pub struct DecryptArgs {
    /// The message; standard input if absent or "-".
    pub file: Option<PathBuf>,
    /// Write the decrypted message here (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Decrypt with this ID (e-mail or fingerprint).
    #[arg(long = "as", value_name = "ID")]
    pub as_id: Option<String>,
    /// Decrypt only part N (1-based) of a multipart message, as a message of its own (never joined with the
    /// other parts).
    #[arg(long, value_name = "N")]
    pub part: Option<usize>,
    /// Allow single-DES content encryption (old archives only; 3DES and RC2 decrypt with a warning anyway).
    #[arg(long, alias = "allow-legacy-decrypt")]
    pub allow_legacy: bool,
    /// Refuse content without integrity protection (anything but AES-GCM AuthEnvelopedData).
    #[arg(long)]
    pub require_aead: bool,
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// `smimekit inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// The message; standard input if absent or "-".
    pub file: Option<PathBuf>,
    /// Write the certificates the message carries to FILE (PEM), trusting none of them.
    #[arg(long, value_name = "FILE")]
    pub export_certs: Option<PathBuf>,
}

/// A temporary file (0600) in the folder of `p`, to be renamed over `p` once the output is complete.
fn temp_beside(p: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".smimekit-")
        .tempfile_in(dir)
        .map_err(|e| {
            Error::io("write to", p, std::io::Error::from(e.kind()))
                .hint(format!(
                    "the folder {} must exist and be writable",
                    dir.display()
                ))
                .into()
        })
}

/// Refuses `-o` naming the input itself (the same file, or a hard link to it, or the file standard input was
/// redirected from): writing the output would replace the input, and for `decrypt` the ciphertext would be gone.
fn refuse_output_over_input(input: Option<&Path>, out: Option<&Path>) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Some(o) = out.filter(|o| o.as_os_str() != "-") else {
        return Ok(());
    };
    let Ok(om) = std::fs::metadata(o) else {
        return Ok(()); // a new file cannot be the input
    };
    let im = match input.filter(|i| i.as_os_str() != "-") {
        Some(i) => std::fs::metadata(i).ok(),
        None => {
            use std::os::fd::AsFd;
            std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .ok()
                .and_then(|fd| std::fs::File::from(fd).metadata().ok())
        }
    };
    match im {
        Some(im) if om.is_file() && im.dev() == om.dev() && im.ino() == om.ino() => Err(Error::usage(
            format!(
                "-o {} would replace the input (it is the input file{}); nothing was written",
                o.display(),
                if om.nlink() > 1 { " or a hard link to it" } else { "" }
            ),
        )
        .hint("write to another file, then rename it over the input if that is really what you want")
        .into()),
        _ => Ok(()),
    }
}

/// An existing output path that is not a regular file (FIFO, character device).
fn is_special(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| !m.is_file())
}

fn to_stdout(o: &Option<PathBuf>) -> bool {
    o.as_deref().is_none_or(|p| p.as_os_str() == "-")
}

/// Writes the output with `f`: to a temp file renamed over `-o FILE` on success, or to a buffer printed to
/// standard output on success. On error nothing is left behind.
fn emit(
    path: &Option<PathBuf>,
    f: impl FnOnce(&mut dyn Write) -> smimekit::Result<()>,
) -> Result<()> {
    // Cleared when `f` returns: before anything is copied to standard output.
    let f = |w: &mut dyn Write| {
        let _spinner = super::progress::Spinner::start("working on the message");
        f(w)
    };
    match path.as_deref() {
        // A FIFO or device (e.g. /dev/null) cannot be replaced by a rename: hold the output back, then copy.
        Some(p) if p.as_os_str() != "-" && is_special(p) => {
            let mut spool = Spool::new();
            f(&mut spool)?;
            spool.into_stdout(Some(p))
        }
        Some(p) if p.as_os_str() != "-" => {
            let mut tmp = temp_beside(p)?;
            {
                let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
                f(&mut w)?;
                w.flush().map_err(Error::output)?;
            }
            // Atomic (never partial), but not fsynced, like openssl, gpgsm and cp: the input is still there, so
            // a crash loses nothing that cannot be made again. The store, which has no other copy, is fsynced.
            tmp.persist(p).map_err(|e| Error::io("write", p, e.error))?;
            Ok(())
        }
        _ => {
            let mut spool = Spool::new();
            f(&mut spool)?;
            spool.into_stdout(None)
        }
    }
}

/// Output for standard output, held back until the command succeeded: in memory up to [`SPOOL_MEMORY`], then
/// in an unlinked temporary file (0600, gone when closed), so a 1 GiB signed or encrypted message does not
/// need 1 GiB of memory.
enum Spool {
    Memory(zeroize::Zeroizing<Vec<u8>>),
    File(std::io::BufWriter<std::fs::File>),
}

/// How much output is held in memory before spilling to a temporary file.
const SPOOL_MEMORY: usize = 16 << 20;

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Spool::Memory(m) = self
            && m.len() + buf.len() > SPOOL_MEMORY
        {
            let mut f = std::io::BufWriter::with_capacity(1 << 20, tempfile::tempfile()?);
            f.write_all(m)?;
            *self = Spool::File(f);
        }
        match self {
            Spool::Memory(m) => m.write(buf),
            Spool::File(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Spool::Memory(_) => Ok(()),
            Spool::File(f) => f.flush(),
        }
    }
}

impl Spool {
    /// An empty spool; its memory is reserved up front so growing never leaves unwiped copies behind.
    fn new() -> Spool {
        Spool::Memory(zeroize::Zeroizing::new(Vec::with_capacity(SPOOL_MEMORY)))
    }

    /// Copies the held output to standard output, or to `device` (an existing non-regular file such as a FIFO
    /// or /dev/null, which cannot be replaced by renaming).
    fn into_stdout(self, device: Option<&Path>) -> Result<()> {
        let mut out: Box<dyn Write> = match device {
            Some(d) => Box::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(d)
                    .map_err(|e| Error::io("write", d, e))?,
            ),
            None => Box::new(output::stdout()?),
        };
        // Errors writing standard output name it (output::stdout_error); a device given with -o is a file.
        let fail = |e: std::io::Error| match device {
            Some(d) => Error::io("write", d, e),
            None => output::stdout_error(e),
        };
        match self {
            Spool::Memory(m) => out
                .write_all(&m)
                .and_then(|_| out.flush())
                .map_err(|e| fail(e).into()),
            Spool::File(f) => {
                use std::io::Seek;
                let mut f = f.into_inner().map_err(|e| Error::output(e.into_error()))?;
                f.seek(std::io::SeekFrom::Start(0)).map_err(Error::output)?;
                std::io::copy(&mut f, &mut out)
                    .and_then(|_| out.flush())
                    .map(|_| ())
                    .map_err(|e| fail(e).into())
            }
        }
    }
}

fn load_anchors(home: &Home, t: &TrustArgs) -> Result<Vec<X509>> {
    let mut anchors = TrustStore::new(home).certs()?;
    for f in &t.ca {
        let data = super::read_file(f)?;
        anchors.extend(cert::parse_certs(&data, &f.display().to_string())?);
    }
    Ok(anchors)
}

/// Verify options with the default trust settings (the home's anchors and the system store).
pub(super) fn default_verify_options(home: &Home) -> Result<verify::VerifyOptions> {
    verify_options(
        home,
        &TrustArgs {
            at: None,
            ca: Vec::new(),
            no_system_trust: false,
            no_harvest: false,
            force_output: false,
            no_address_check: false,
            revocation: None,
            offline: false,
            online: false,
            crl: Vec::new(),
        },
    )
}

/// Harvests the signer of a verified message (nothing for an invalid one), with the message's Date.
pub(super) fn harvest_verified(
    home: &Home,
    lock: &smimekit::home::WriteLock,
    raw: &[u8],
    v: &verify::Verified,
) -> smimekit::Result<harvest::Harvest> {
    let date = smimekit::smime::top_level(raw)
        .ok()
        .and_then(|tl| mime::field_value(&tl.fields, "date"));
    harvest::harvest(home, lock, v, date.as_deref())
}

pub(super) fn verify_options(home: &Home, t: &TrustArgs) -> Result<verify::VerifyOptions> {
    Ok(verify::VerifyOptions {
        anchors: load_anchors(home, t)?,
        system_trust: !t.no_system_trust,
        at: t.at.as_deref().map(cert::parse_time).transpose()?,
        known_certs: verify::known_certs(home)?,
        no_address_check: t.no_address_check,
        revocation: revocation_settings(home, t.revocation, t.online, &t.crl)?,
        cache: None,
    })
}

/// Revocation settings from the command line: the policy, `--online`, `--crl` files, the home's cache.
pub(super) fn revocation_settings(
    home: &Home,
    policy: Option<RevocationArg>,
    online: bool,
    crls: &[PathBuf],
) -> Result<smimekit::revocation::Settings> {
    let mut extra = Vec::new();
    for f in crls {
        let data = super::read_file(f)?;
        let crl = smimekit::revocation::crl::parse(&data).map_err(|e| e.context(f.display()))?;
        extra.push(crl.to_der()?);
    }
    Ok(smimekit::revocation::Settings {
        policy: policy.unwrap_or(RevocationArg::Prefer).into(),
        // Nothing reaches the network unless asked: verify, decrypt and encrypt are not network commands.
        offline: !online,
        home: Some(home.root().to_path_buf()),
        extra_crls: extra,
        fetched: Default::default(),
    })
}

fn digest(d: DigestArg) -> Digest {
    match d {
        DigestArg::Sha256 => Digest::Sha256,
        DigestArg::Sha384 => Digest::Sha384,
        DigestArg::Sha512 => Digest::Sha512,
    }
}

/// Runs `sign`.
pub fn run_sign(g: &Global, a: &SignArgs) -> Result<i32> {
    refuse_output_over_input(a.file.as_deref(), a.output.as_deref())?;
    output::stdout_carries_message(to_stdout(&a.output));
    let home = g.home()?;
    let raw = input::read(a.file.as_deref())?;
    let cfg = g.settings.clone().unwrap_or_else(|| {
        smimekit::config::Config::from_parts(None, None, &|_| None, &Default::default())
            .expect("the defaults are valid")
    });
    let id = match sign::choose_signer(&home, &raw, a.as_id.as_deref()) {
        // No From: and several IDs: the configured default ID (sign.id) decides. It never overrides --as
        // or an ID matching From:, and never signs for a From: address none of your IDs carries.
        Err(e) if e.kind() == smimekit::ErrorKind::Usage && a.as_id.is_none() => {
            match &cfg.sign_id.value {
                Some(d) => sign::choose_signer(&home, &raw, Some(d))?,
                None => return Err(e.into()),
            }
        }
        r => r?,
    };
    if let Some(w) = mime::unlabelled_8bit_warning(&raw) {
        output::warn(&w);
    }
    // A passphrase is asked for before anything else; a key stored without one is opened while a large
    // message is already being digested.
    let key = if id.key_protected {
        Some(unlock(g, &id)?)
    } else {
        None
    };
    let opts = sign::SignOptions {
        digest: a.digest.map(digest).unwrap_or(cfg.digest.value),
        pss: a.pss,
        opaque: a.opaque || cfg.sign_form.value == smimekit::config::SignForm::Opaque,
    };
    emit(&a.output, |w| {
        sign::sign_message_with(&home, &raw, &opts, w, || {
            let key = match &key {
                Some(k) => k.clone(),
                None => id.unlock(None)?,
            };
            Ok((id.clone(), key))
        })?;
        // The check, the digest and the output read the file separately (on two threads).
        raw.check_unchanged("signing")
    })?;
    // The same rule as encrypt: the report always comes, on standard error when standard output has the message.
    let form = if a.opaque {
        "opaque signed-data"
    } else {
        "multipart/signed"
    };
    if g.json {
        output::json(&serde_json::json!({
            "signed_as": id.fingerprint,
            "email": id.emails().into_iter().next(),
            "form": form,
            "digest": opts.digest.name(),
            "pss": a.pss,
            "written": a.output.as_ref().filter(|p| p.as_os_str() != "-"),
        }))?;
    } else {
        output::report(&format!(
            "Signed as {} ({form}, {})\n",
            id.label(),
            opts.digest.name()
        ))?;
    }
    Ok(0)
}

/// Verifies `raw` with the trust options; returns the verdict and its exit code (0 valid, 1 invalid).
fn verify_checked<'a>(
    home: &Home,
    raw: &'a [u8],
    t: &TrustArgs,
) -> Result<(verify::Verified<'a>, i32)> {
    let opts = verify_options(home, t)?;
    let v = verify::verify(raw, &opts)?;
    let code = if v.report.is_valid() { 0 } else { 1 };
    Ok((v, code))
}

/// Harvests the signer of a valid message (unless `--no-harvest`) and prints the report. Called after the
/// command's output was written, so a command that fails to write changes nothing in the store.
fn harvest_and_report(
    g: &Global,
    home: &Home,
    raw: &[u8],
    t: &TrustArgs,
    v: &verify::Verified<'_>,
    extra: Option<serde_json::Value>,
) -> Result<()> {
    let mut h = harvest::Harvest::default();
    if !t.no_harvest && v.report.is_valid() {
        let lock = home.lock()?;
        h = harvest_verified(home, &lock, raw, v)?;
    }
    if g.json {
        let mut j = serde_json::to_value(&v.report)?;
        j["harvest"] = serde_json::to_value(&h)?;
        if let Some(e) = extra {
            j["decryption"] = e;
        }
        output::json(&j)
    } else {
        let mut text = verify::render(&v.report);
        for k in &h.key_changes {
            text += &format!("WARNING: {k}\n");
        }
        for fp in &h.added {
            text += &format!(
                "Added the signer's certificate to your contacts ({})\n",
                &fp[..16]
            );
        }
        for n in &h.notes {
            text += &format!("Note: {n}\n");
        }
        output::report(&text)
    }
}

/// Runs `verify`: verdict, then the signed content to `-o` (only when valid, or with `--force-output`), then
/// harvest and report.
pub fn run_verify(g: &Global, a: &VerifyArgs) -> Result<i32> {
    refuse_output_over_input(a.file.as_deref(), a.output.as_deref())?;
    let home = g.home()?;
    let raw = input::read(a.file.as_deref())?;
    output::stdout_carries_message(a.output.as_deref().is_some_and(|p| p.as_os_str() == "-"));
    let (v, code) = {
        let _spinner = super::progress::Spinner::start("verifying the message");
        verify_checked(&home, &raw, &a.trust)?
    };
    // The split, the signature checks and the digest read the file separately (on two threads).
    raw.check_unchanged("verifying")?;
    if a.output.is_some() && (code == 0 || a.trust.force_output) {
        if code != 0 {
            output::warn("--force-output: writing content whose signature did NOT verify");
        }
        emit(&a.output, |w| v.write_message(w))?;
    }
    harvest_and_report(g, &home, &raw, &a.trust, &v, None)?;
    Ok(code)
}

/// Runs `encrypt`.
pub fn run_encrypt(g: &Global, a: &EncryptArgs) -> Result<i32> {
    refuse_output_over_input(a.file.as_deref(), a.output.as_deref())?;
    output::stdout_carries_message(to_stdout(&a.output));
    let home = g.home()?;
    let raw = input::read(a.file.as_deref())?;
    let mut certs = Vec::new();
    for f in &a.cert {
        let data = super::read_file(f)?;
        certs.extend(smimekit::contacts::certs_from_file(
            &data,
            &f.display().to_string(),
        )?);
    }
    let opts = encrypt::EncryptOptions {
        to: a.to.clone(),
        only_listed: false,
        certs,
        cipher: a.cipher.map(|c| match c {
            CipherArg::Aes256Gcm => ContentCipher::Aes256Gcm,
            CipherArg::Aes128Gcm => ContentCipher::Aes128Gcm,
            CipherArg::Aes256Cbc => ContentCipher::Aes256Cbc,
            CipherArg::Aes128Cbc => ContentCipher::Aes128Cbc,
        }),
        // The flag is the only source of the policy for now; absent, the library's default.
        policy: a.cipher_policy.map(Into::into).unwrap_or_default(),
        sign_inside: a.sign,
        no_self: a.no_self,
        oaep: a.oaep,
        as_id: a.as_id.clone(),
        anchors: TrustStore::new(&home).certs()?,
        system_trust: true,
        revocation: revocation_settings(&home, a.revocation, a.online, &[])?,
    };
    let plan = encrypt::plan(&home, &raw, &opts)?;
    if let Some(w) = mime::unlabelled_8bit_warning(&raw) {
        output::warn(&w);
    }
    // Sign first when asked: the signed message's entity (multipart/signed) is what gets encrypted.
    let signed = if a.sign {
        let id = sign::choose_signer(&home, &raw, a.as_id.as_deref())?;
        let key = unlock(g, &id)?;
        let mut buf = Vec::new();
        sign::sign_message(
            &home,
            &raw,
            &id,
            &key,
            &sign::SignOptions {
                digest: digest(a.digest),
                pss: false,
                opaque: false,
            },
            &mut buf,
        )?;
        Some(buf)
    } else {
        None
    };
    emit(&a.output, |w| {
        encrypt::encrypt_message(&plan, signed.as_deref().unwrap_or(&raw), w)
    })?;
    // Under --json the report carries them in its own "warnings".
    for w in plan.warnings.iter().filter(|_| !g.json) {
        output::warn(w);
    }
    if g.json {
        output::json(&plan)?;
    } else {
        output::report(&encrypt::render(&plan))?;
    }
    Ok(0)
}

/// Runs `decrypt`.
///
/// With `-o FILE` the plaintext streams into a temporary file beside FILE, which is renamed into place only
/// when decryption (and, for AES-GCM, authentication) succeeded and an inner signature verified; memory stays
/// flat. Without `-o`, the plaintext is held in memory (wiped afterwards) and printed only on success. The
/// decrypted message keeps an inner signature layer as it is, so it can be verified again later.
pub fn run_decrypt(g: &Global, a: &DecryptArgs) -> Result<i32> {
    refuse_output_over_input(a.file.as_deref(), a.output.as_deref())?;
    output::stdout_carries_message(to_stdout(&a.output));
    let home = g.home()?;
    let input = input::read_with(a.file.as_deref(), 32 << 20)?;
    let selected = a
        .part
        .map(|n| decrypt::select_part(&input, n))
        .transpose()?;
    let raw: &[u8] = selected.as_deref().unwrap_or(&input);
    let enc = decrypt::parse(raw, a.allow_legacy)?;
    if a.require_aead
        && !(enc.info.aead
            && enc.info.kind == smimekit::ossl::enveloped::EnvelopedKind::AuthEnveloped)
    {
        return Err(Error::bad_input(format!(
            "refusing to decrypt: the message is encrypted with {} (no integrity protection) and --require-aead was given",
            enc.info.content_cipher
        ))
        .hint("ask the sender to use authenticated encryption (AES-GCM)")
        .into());
    }
    let id = enc.choose_id(&home, a.as_id.as_deref())?;
    let key = unlock(g, &id)?;
    enum Plain {
        Memory(zeroize::Zeroizing<Vec<u8>>),
        Map(smimekit::input::Input),
    }
    // With -o FILE the plaintext streams into a temporary file beside it (renamed only at the end); `tmp` is
    // kept apart from the mapping that is read, so it can be renamed while the verdict still borrows the bytes.
    let (mut report, plain, tmp) = match a.output.as_deref() {
        Some(p) if p.as_os_str() != "-" && !is_special(p) => {
            let mut tmp = temp_beside(p)?;
            // Decryption on a second thread, the writing of the plaintext on this one.
            let mut report = None;
            smimekit::pipe::offload(256 << 10, tmp.as_file_mut(), |w| {
                report = Some(enc.decrypt_streaming(&id, &key, a.allow_legacy, w)?);
                Ok(())
            })?;
            let report = report.expect("set when decryption succeeded");
            let map = smimekit::input::map_file(tmp.as_file(), p)?;
            (report, Plain::Map(map), Some(tmp))
        }
        _ => {
            let (buf, report) = enc.decrypt(&id, &key, a.allow_legacy)?;
            (report, Plain::Memory(buf), None)
        }
    };
    drop(key);
    let bytes: &[u8] = match &plain {
        Plain::Memory(b) => b,
        Plain::Map(m) => m,
    };
    let signed = verify::is_signed(bytes);
    report.sender = decrypt::sender_statement(signed);
    // No integrity protection (CBC) and a broken header block: the first block was rewritten in transit, the
    // trace of an EFAIL gadget (T32).
    let damaged =
        report.integrity != "authenticated" && !signed && !decrypt::header_block_well_formed(bytes);
    // A signed layer that no longer parses as one (its header rewritten, well-formed or not) must never come out
    // as plain, "unsigned" content: without integrity protection that is signature stripping.
    let damaged_signed =
        report.integrity != "authenticated" && !signed && decrypt::mentions_signed_layer(bytes);
    if damaged {
        report.warnings.push(
            "the decrypted content is malformed (not a MIME entity): it may have been modified in transit (no integrity protection; an EFAIL-style gadget)"
                .into(),
        );
    }
    if a.part.is_some() {
        report.warnings.push(
            "--part: the headers around the decrypted part (From, Reply-To…) are those of the message that wrapped it, not protected by the encryption"
                .into(),
        );
    }
    // Under --json the report carries them in its own "warnings".
    for w in report.warnings.iter().filter(|_| !g.json) {
        output::warn(w);
    }
    // The verdict first, then the output, then the harvest (a failed write changes nothing in the store).
    let checked = if signed {
        Some(verify_checked(&home, bytes, &a.trust)?)
    } else {
        None
    };
    let code = match &checked {
        Some((_, c)) => *c,
        None => i32::from(damaged_signed),
    };
    if code == 0 || a.trust.force_output {
        if code != 0 {
            output::warn("--force-output: writing content whose signature could NOT be verified");
        }
        match (&tmp, a.output.as_deref()) {
            // Renamed into place below (not fsynced, as in `emit`).
            (Some(_), Some(_)) => {}
            // A device or FIFO given with -o: decryption already succeeded, write straight to it.
            (None, Some(p)) if p.as_os_str() != "-" => {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .map_err(|e| Error::io("write", p, e))?;
                f.write_all(bytes).map_err(Error::output)?;
            }
            _ => output::write_output(None, bytes)?,
        }
    } else {
        // Decryption worked: say why nothing came out, and how to get it.
        output::warn(&format!(
            "the decrypted message was withheld: {}. To release it anyway (NOT verified), add --force-output; if you know the signer, trust their certificate ('smimekit trust add CERT', or 'smimekit trust add MESSAGE.eml' for a self-signed one) and decrypt again",
            if checked.is_some() {
                "its signature did not verify (see the report)"
            } else {
                "its signed layer was damaged in transit"
            }
        ));
    }
    match checked {
        Some((v, _)) => {
            report
                .warnings
                .extend(decrypt::signed_header_mismatches(bytes, v.content()));
            if !g.json {
                output::report(&render_decrypt(&report))?;
            }
            harvest_and_report(
                g,
                &home,
                bytes,
                &a.trust,
                &v,
                Some(serde_json::to_value(&report)?),
            )?;
        }
        None => {
            let verdict = damaged_signed.then_some(
                "NOT valid: the decrypted message carries a signed layer that was damaged in transit; its signature cannot be verified",
            );
            if g.json {
                let mut j = serde_json::json!({"decryption": report, "signed": damaged_signed});
                if let Some(v) = verdict {
                    j["valid"] = false.into();
                    j["reason"] = v.into();
                }
                output::json(&j)?;
            } else {
                let mut t = render_decrypt(&report);
                if let Some(v) = verdict {
                    t += v;
                    t += "\n";
                }
                output::report(&t)?;
            }
        }
    }
    // Rename last, once the mapping of the temporary file is gone.
    drop(plain);
    if let (Some(t), Some(p)) = (tmp, a.output.as_deref())
        && (code == 0 || a.trust.force_output)
    {
        t.persist(p).map_err(|e| Error::io("write", p, e.error))?;
    }
    Ok(code)
}

fn render_decrypt(r: &decrypt::DecryptReport) -> String {
    let mut s = format!(
        "Decrypted with {} ({}, {})\n  Sender:        {}\n",
        r.decrypted_with,
        r.content_cipher,
        if r.integrity == "authenticated" {
            "authenticated encryption: not altered since it was encrypted, by whoever encrypted it"
        } else {
            "confidentiality only: NO integrity protection"
        },
        r.sender
    );
    // The signature-layer warnings (outer headers that differ from the signed ones) come after decryption.
    for w in r.warnings.iter().filter(|w| w.starts_with("the outer ")) {
        s += &format!("  Warning:       {w}\n");
    }
    s
}

/// Runs `inspect`.
pub fn run_inspect(g: &Global, a: &InspectArgs) -> Result<i32> {
    let raw = input::read(a.file.as_deref())?;
    let mut known: inspect::Known = Vec::new();
    // Inspect needs no home: without one, nothing is named as yours (and none is created).
    if g.home_path()?.exists() {
        let home = g.home()?;
        for i in IdStore::new(&home).list()? {
            known.push((format!("your ID {}", i.label()), i.cert.clone()));
        }
        for c in ContactStore::new(&home).list()? {
            known.push((format!("contact {}", c.label()), c.cert.clone()));
        }
    }
    let r = inspect::inspect(&raw, &known)?;
    let mut exported = Vec::new();
    if let Some(out) = &a.export_certs {
        output::stdout_carries_message(out.as_os_str() == "-");
        let mut pem = Vec::new();
        for c in r.layers.iter().flat_map(|l| &l.carried) {
            let fp = cert::fingerprint(c);
            if !exported.contains(&fp) {
                pem.extend(c.to_pem()?);
                exported.push(fp);
            }
        }
        if exported.is_empty() {
            return Err(Error::not_found("the message carries no certificate")
                .hint("nothing was written")
                .into());
        }
        output::write_output(Some(out), &pem)?;
        output::note(&format!(
            "wrote {} certificate(s) to {} — none is trusted: compare fingerprints with the sender, then 'smimekit trust add' or 'smimekit contact add'",
            exported.len(),
            out.display()
        ));
    }
    if g.json {
        if a.export_certs.is_some() {
            let mut j = serde_json::to_value(&r)?;
            j["exported"] = serde_json::to_value(&exported)?;
            output::json(&j)?;
            return Ok(0);
        }
        output::json(&r)?;
        return Ok(0);
    }
    use smimekit::display::{address, field};
    let mut s = String::new();
    if let Some(f) = &r.from {
        s += &format!("From:    {}\n", address(f));
    }
    if let Some(sub) = &r.subject {
        s += &format!("Subject: {}\n", field(sub));
    }
    for (i, l) in r.layers.iter().enumerate() {
        s += &format!(
            "Layer {}: {} ({}{})\n",
            i + 1,
            l.kind,
            l.mime,
            l.smime_type
                .as_ref()
                .map(|t| format!("; smime-type={t}"))
                .unwrap_or_default()
        );
        for sg in &l.signers {
            s += &format!(
                "  signer ({}): {} — {} / {}, signed {}{}\n",
                field(&sg.sid),
                field(
                    sg.certificate
                        .as_deref()
                        .unwrap_or("certificate not at hand")
                ),
                sg.digest_algorithm,
                sg.signature_algorithm,
                sg.signing_time
                    .clone()
                    .unwrap_or_else(|| "(no time)".into()),
                sg.known_as
                    .as_ref()
                    .map(|k| format!(" [{}]", field(k)))
                    .unwrap_or_default()
            );
        }
        if let Some(c) = &l.content_cipher {
            s += &format!("  cipher: {c}\n");
        }
        for rc in &l.recipients {
            s += &format!(
                "  recipient ({}, {}): {}{}\n",
                rc.kind,
                rc.key_algorithm,
                field(&rc.id),
                rc.known_as
                    .as_ref()
                    .map(|k| format!(" [{}]", field(k)))
                    .unwrap_or_default()
            );
        }
        for c in &l.certificates {
            s += &format!("  carries certificate: {}\n", field(c));
        }
        for n in &l.notes {
            s += &format!("  note: {}\n", field(n));
        }
    }
    for n in &r.nested_parts {
        s += &format!("Not at the top level: {n}\n");
    }
    output::print(&output::clean(&s))?;
    Ok(0)
}
