//! `smimekit neomutt …`: the commands of `contrib/neomutt/smimekit.rc`, one per `smime_*_command`, with
//! neomutt's conventions (`ncrypt/smime.c`): signatures and ciphertext as DER on standard output, nothing on
//! standard error when signing succeeds, `Verification successful` as the first line of standard error when a
//! signature is valid, the key's passphrase as the first line of standard input (neomutt writes it there).
//! The work is in [`smimekit::neomutt`].

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use smimekit::home::Home;
use smimekit::ids::{IdStore, Identity};
use smimekit::neomutt;
use smimekit::ossl::signed::Digest;
use smimekit::secret::Secret;
use smimekit::smime::verify::VerifyReport;
use smimekit::{Error, cert};

use super::{Global, output};

/// neomutt's S/MIME commands.
#[derive(Subcommand)]
pub enum NeomuttCommand {
    /// Write $smime_keys/.index and $smime_certificates/.index (+ one PEM per certificate) into DIR from your
    /// IDs and contacts; run it again after adding contacts.
    Index {
        /// The folder (set smime_keys to DIR/keys and smime_certificates to DIR/certificates).
        dir: PathBuf,
    },
    /// smime_sign_command: a detached signature (DER) of the entity FILE on standard output.
    Sign {
        /// %k: the key ($smime_keys/FINGERPRINT, or an address or fingerprint).
        #[arg(long, value_name = "KEY")]
        key: String,
        /// %d: the digest (sha256, sha384, sha512).
        #[arg(long, default_value = "sha256")]
        digest: String,
        /// %f: the MIME entity to sign.
        file: PathBuf,
    },
    /// smime_verify_command: checks the detached signature SIG over the entity FILE.
    Verify {
        /// %s: the signature (DER or base64).
        #[arg(long, value_name = "SIG")]
        signature: PathBuf,
        /// %f: the signed entity.
        file: PathBuf,
    },
    /// smime_verify_opaque_command: checks opaque signed-data and prints its content.
    VerifyOpaque {
        /// %s: the application/pkcs7-mime body (DER or base64).
        file: PathBuf,
    },
    /// smime_encrypt_command: EnvelopedData (DER) of the entity FILE to the certificates CERT….
    Encrypt {
        /// %a: the cipher (aes256, aes128).
        #[arg(long, default_value = "aes256")]
        cipher: String,
        /// %f: the MIME entity to encrypt.
        file: PathBuf,
        /// %c: the recipients' certificate files.
        #[arg(required = true)]
        certs: Vec<PathBuf>,
    },
    /// smime_decrypt_command: the decrypted entity of the application/pkcs7-mime body FILE.
    Decrypt {
        /// %k: the key ($smime_keys/FINGERPRINT, or an address or fingerprint).
        #[arg(long, value_name = "KEY")]
        key: String,
        /// %f: the body (DER or base64).
        file: PathBuf,
    },
    /// smime_pk7out_command and smime_get_cert_command: the certificates (PEM) a signed message, a PKCS#7
    /// bundle or a certificate file carries.
    Certs {
        /// %f.
        file: PathBuf,
    },
    /// smime_get_signer_cert_command: the signer's certificate (PEM) of the signed message FILE, into OUT.
    SignerCert {
        /// %f: the message.
        file: PathBuf,
        /// %c: where to write the certificate.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// smime_get_cert_email_command: the e-mail addresses of a certificate, one per line.
    CertEmails {
        /// %f: the certificate.
        file: PathBuf,
    },
    /// smime_import_cert_command: adds the certificates of FILE to your contacts (neomutt's label on
    /// standard input is ignored).
    Import {
        /// %f: the certificates.
        file: PathBuf,
    },
}

fn read(p: &std::path::Path) -> Result<Vec<u8>> {
    Ok(super::read_file(p)?)
}

/// The ID named by neomutt's `%k`.
fn id_for(home: &Home, key: &str) -> Result<Identity> {
    Ok(IdStore::new(home).find(&neomutt::hash_of_path(key))?)
}

/// The passphrase neomutt writes as the first line of standard input; standard input is read to its end
/// either way (neomutt writes it whether or not the key needs one).
fn stdin_passphrase() -> Result<Secret> {
    let mut line = Vec::new();
    let mut input = std::io::stdin().lock();
    input.read_until(b'\n', &mut line)?;
    // The rest is drained, not kept (neomutt closes its end after the newline).
    let _ = std::io::copy(&mut input, &mut std::io::sink());
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    Ok(Secret::new(line))
}

fn unlock(id: &Identity) -> smimekit::Result<openssl::pkey::PKey<openssl::pkey::Private>> {
    let pass = stdin_passphrase().map_err(|e| {
        Error::new(
            smimekit::ErrorKind::Io,
            format!("cannot read the passphrase: {e}"),
        )
    })?;
    if id.key_protected {
        id.unlock(Some(&pass))
    } else {
        id.unlock(None)
    }
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    output::write_output(None, bytes)
}

/// neomutt's verdict lines: `Verification successful` first when valid, else `Verification failure`, then
/// the signer and the reasons.
fn verdict_text(r: &VerifyReport) -> String {
    let mut t = String::from(if r.is_valid() {
        "Verification successful\n"
    } else {
        "Verification failure\n"
    });
    for s in &r.signers {
        t += &format!(
            "smimekit: signed by {} <{}>{}\n",
            s.subject.as_deref().unwrap_or("?"),
            s.emails.join(", "),
            s.signing_time
                .as_deref()
                .map(|t| format!(" at {t}"))
                .unwrap_or_default()
        );
        for reason in &s.reasons {
            t += &format!("smimekit:   NOT valid: {reason}\n");
        }
        for w in &s.weak {
            t += &format!("smimekit:   warning: {w}\n");
        }
    }
    t
}

/// Runs a neomutt command.
pub fn run(g: &Global, c: &NeomuttCommand) -> Result<i32> {
    let home = g.home()?;
    match c {
        NeomuttCommand::Index { dir } => {
            let n = neomutt::write_index(&home, dir)?;
            output::note(&format!(
                "wrote {} key and {} certificate entries to {}",
                n.keys,
                n.certificates,
                dir.display()
            ));
            Ok(0)
        }
        NeomuttCommand::Sign { key, digest, file } => {
            let digest = Digest::from_name(digest).ok_or_else(|| {
                Error::usage(format!("unknown digest {digest:?}"))
                    .hint("set smime_sign_digest_alg to sha256, sha384 or sha512")
            })?;
            let entity = read(file)?;
            let id = id_for(&home, key)?;
            smimekit::smime::sign::check_can_sign(&id)?;
            let k = unlock(&id)?;
            let der = neomutt::sign_entity(&id, &k, &entity, digest)?;
            write_stdout(&der)?;
            Ok(0)
        }
        NeomuttCommand::Verify { signature, file } => {
            let r = neomutt::verify_entity(&home, &read(file)?, &read(signature)?)?;
            eprint!("{}", output::clean(&verdict_text(&r)));
            Ok(if r.is_valid() { 0 } else { 1 })
        }
        NeomuttCommand::VerifyOpaque { file } => {
            let (r, content) = neomutt::verify_opaque(&home, &read(file)?)?;
            // The content is shown either way (neomutt labels it); the verdict comes first on stderr.
            eprint!("{}", output::clean(&verdict_text(&r)));
            write_stdout(&content)?;
            Ok(if r.is_valid() { 0 } else { 1 })
        }
        NeomuttCommand::Encrypt {
            cipher,
            file,
            certs,
        } => {
            let cipher = neomutt::cipher_for(cipher)?;
            let mut list = Vec::new();
            for p in certs {
                let data = read(p)?;
                list.extend(smimekit::contacts::certs_from_file(
                    &data,
                    &p.display().to_string(),
                )?);
            }
            let der = neomutt::encrypt_entity(&list, cipher, &read(file)?)?;
            write_stdout(&der)?;
            Ok(0)
        }
        NeomuttCommand::Decrypt { key, file } => {
            let body = read(file)?;
            let plain = neomutt::decrypt_body(&home, &body, &neomutt::hash_of_path(key), unlock)?;
            write_stdout(&plain)?;
            Ok(0)
        }
        NeomuttCommand::Certs { file } => {
            let mut pem = Vec::new();
            for c in neomutt::certificates_in(&read(file)?)? {
                pem.extend(c.to_pem()?);
            }
            write_stdout(&pem)?;
            Ok(0)
        }
        NeomuttCommand::SignerCert { file, output: out } => {
            let raw = read(file)?;
            let opts = smimekit::smime::verify::home_options(&home)?;
            let v = smimekit::smime::verify::verify(&raw, &opts)?;
            let c = v
                .report
                .signers
                .first()
                .and_then(|s| s.certificate())
                .ok_or_else(|| Error::not_found("the message names no signer certificate"))?;
            smimekit::home::write_atomic(out, &c.to_pem()?)?;
            Ok(0)
        }
        NeomuttCommand::CertEmails { file } => {
            let mut t = String::new();
            for c in smimekit::contacts::certs_from_file(&read(file)?, &file.display().to_string())?
            {
                for e in cert::emails(&c) {
                    t += &e;
                    t.push('\n');
                }
            }
            output::print(&output::clean(&t))?;
            Ok(0)
        }
        NeomuttCommand::Import { file } => {
            // neomutt writes a label on standard input; smimekit's contacts need none.
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = std::io::stdout().flush();
            super::contact::run(
                g,
                &super::contact::ContactCommand::Add {
                    files: vec![file.clone()],
                    accept_signer: false,
                    yes: false,
                },
            )
        }
    }
}
