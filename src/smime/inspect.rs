//! `inspect`: the S/MIME layers of a message, their algorithms, signers and recipients, and which of our IDs or
//! contacts they name — without any secret and without verifying anything.

use openssl::x509::{X509, X509Ref};

use super::{pkcs7_der, top_level};
use crate::cert;
use crate::error::{Error, Result};
use crate::limits::MAX_SMIME_LAYERS;
use crate::mime::{self, Layer};
use crate::ossl::enveloped;
use crate::ossl::signed::{CmsType, SignedData, content_type_of};

/// One signer as the message names it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignerView {
    /// How the SignerInfo names its certificate.
    pub sid: String,
    /// Digest algorithm.
    pub digest_algorithm: String,
    /// Signature algorithm.
    pub signature_algorithm: String,
    /// Claimed signing time.
    pub signing_time: Option<String>,
    /// The certificate named, if the message or our stores have it.
    pub certificate: Option<String>,
    /// Which of our IDs / contacts it is.
    pub known_as: Option<String>,
}

/// One recipient as the message names it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecipientView {
    /// ktri, kari, kekri, pwri or ori.
    pub kind: String,
    /// issuer+serial or key id.
    pub id: String,
    /// Key-encryption algorithm.
    pub key_algorithm: String,
    /// Which of our IDs / contacts it is.
    pub known_as: Option<String>,
}

/// One S/MIME layer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerView {
    /// `signed`, `enveloped`, `auth_enveloped`, `certs_only`, `compressed` or another CMS type.
    pub kind: String,
    /// The MIME form: `multipart/signed` or `application/pkcs7-mime`.
    pub mime: String,
    /// The smime-type label, if any (only a hint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smime_type: Option<String>,
    /// Signers (signed layers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<SignerView>,
    /// Certificates carried (signed layers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    /// Content cipher (encrypted layers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_cipher: Option<String>,
    /// Recipients (encrypted layers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<RecipientView>,
    /// Notes (no integrity, mislabelled…).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The certificates carried (signed layers), for `inspect --export-certs`; none is trusted for it.
    #[serde(skip)]
    pub carried: Vec<X509>,
}

/// The layers of a message, outermost first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InspectReport {
    /// From.
    pub from: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// The layers.
    pub layers: Vec<LayerView>,
    /// S/MIME parts found below a non-S/MIME top level (never shown as the message's own protection).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nested_parts: Vec<String>,
}

/// Certificates we know, with a label, for "which of our IDs / contacts" answers.
pub type Known = Vec<(String, X509)>;

fn known_label(known: &Known, pred: impl Fn(&X509) -> bool) -> Option<String> {
    known.iter().find(|(_, c)| pred(c)).map(|(l, _)| l.clone())
}

/// Inspects `raw`. `known` lists our IDs and contacts (label, certificate).
pub fn inspect(raw: &[u8], known: &Known) -> Result<InspectReport> {
    let top = top_level(raw)?;
    let from = mime::from(&top.fields).ok().flatten().map(|m| m.addr);
    let subject = mime::field_value(&top.fields, "subject");
    let mut layers = Vec::new();
    let nested_parts = match &top.layer {
        Layer::Other => super::nested_smime_parts(&top)
            .into_iter()
            .map(|(n, k)| format!("part {n}: {k} (covers only that part)"))
            .collect(),
        _ => Vec::new(),
    };
    walk(raw, known, &mut layers, 0)?;
    if layers.is_empty() && nested_parts.is_empty() {
        return Err(Error::bad_input("the message has no S/MIME layer")
            .hint("it is neither signed nor encrypted"));
    }
    Ok(InspectReport {
        from,
        subject,
        layers,
        nested_parts,
    })
}

fn walk(entity: &[u8], known: &Known, layers: &mut Vec<LayerView>, depth: usize) -> Result<()> {
    if depth >= MAX_SMIME_LAYERS {
        return Err(Error::limit(format!(
            "more than {MAX_SMIME_LAYERS} nested S/MIME layers"
        ))
        .hint("smimekit unpacks no deeper; a message nested this deep is unusual, so treat it with suspicion"));
    }
    let top = top_level(entity)?;
    match &top.layer {
        Layer::Other => Ok(()),
        Layer::MultipartSigned { boundary, .. } => {
            let mp = mime::split_multipart(top.body, boundary.as_bytes())?;
            if mp.parts.len() != 2 {
                return Err(Error::bad_input(format!(
                    "the multipart/signed message has {} parts instead of 2 (signed content and signature)",
                    mp.parts.len()
                ))
                .hint("the message is damaged or was altered in transit"));
            }
            let e = mime::split_entity(mp.parts[1])?;
            let f = mime::parse_headers(e.header)?;
            let der = pkcs7_der(&f, e.body)?;
            let mut v = signed_view(&der, known)?;
            v.mime = "multipart/signed".into();
            layers.push(v);
            walk(mp.parts[0], known, layers, depth + 1)
        }
        Layer::Pkcs7Mime { smime_type } => {
            let der = pkcs7_der(&top.fields, top.body)?;
            let t = content_type_of(&der)?;
            match t {
                CmsType::SignedData => {
                    let mut v = signed_view(&der, known)?;
                    v.smime_type = smime_type.clone();
                    let sd = SignedData::from_der(&der)?;
                    layers.push(v);
                    if let Some(c) = sd.econtent() {
                        // The content of a signature need not be a MIME entity (raw CMS examples); then there
                        // is nothing further to show.
                        if walk(&c, known, layers, depth + 1).is_err()
                            && let Some(l) = layers.last_mut()
                        {
                            l.notes
                                .push("the signed content is not a MIME entity".into());
                        }
                    }
                    Ok(())
                }
                CmsType::EnvelopedData | CmsType::AuthEnvelopedData => {
                    let info = enveloped::inspect(&der)?;
                    let mut notes = Vec::new();
                    if !info.aead {
                        notes.push("confidentiality only, no integrity protection (CBC)".into());
                    }
                    let label_says_auth = smime_type.as_deref() == Some("authenveloped-data");
                    if label_says_auth != (t == CmsType::AuthEnvelopedData) && smime_type.is_some()
                    {
                        notes.push(format!(
                            "mislabelled: smime-type says {}, the CMS content is {t}",
                            smime_type.clone().unwrap_or_default()
                        ));
                    }
                    if let Err(e) = enveloped::check(&info, false) {
                        notes.push(format!("would be refused: {}", e.message()));
                    }
                    let recipients = info
                        .recipients
                        .iter()
                        .map(|r| RecipientView {
                            kind: r.kind.to_string(),
                            id: super::decrypt::describe_recipient(&r.id),
                            key_algorithm: r.key_alg.clone(),
                            known_as: known_label(known, |c| {
                                super::decrypt::recipient_matches(&r.id, c)
                            }),
                        })
                        .collect();
                    layers.push(LayerView {
                        kind: if t == CmsType::AuthEnvelopedData {
                            "auth_enveloped".into()
                        } else {
                            "enveloped".into()
                        },
                        mime: "application/pkcs7-mime".into(),
                        smime_type: smime_type.clone(),
                        signers: Vec::new(),
                        certificates: Vec::new(),
                        content_cipher: Some(info.content_cipher.clone()),
                        recipients,
                        notes,
                        carried: Vec::new(),
                    });
                    Ok(())
                }
                other => {
                    layers.push(LayerView {
                        kind: other.name(),
                        mime: "application/pkcs7-mime".into(),
                        smime_type: smime_type.clone(),
                        signers: Vec::new(),
                        certificates: Vec::new(),
                        content_cipher: None,
                        recipients: Vec::new(),
                        notes: vec!["not supported by smimekit".into()],
                        carried: Vec::new(),
                    });
                    Ok(())
                }
            }
        }
    }
}

fn signed_view(der: &[u8], known: &Known) -> Result<LayerView> {
    let sd = SignedData::from_der(der)?;
    let certs = sd.certificates();
    let mut ambiguity = Vec::new();
    let signers: Vec<SignerView> = sd
        .signers()
        .iter()
        .enumerate()
        .map(|(idx, s)| {
            // Several certificates may share a key identifier (T17): name the one whose signature over the
            // signed attributes checks, never simply the first match (a decoy listed first).
            let mut cands: Vec<&X509Ref> = certs
                .iter()
                .filter(|c| super::verify::sid_matches(&s.sid, c))
                .map(|c| c.as_ref())
                .collect();
            cands.extend(
                known
                    .iter()
                    .filter(|(_, c)| super::verify::sid_matches(&s.sid, c))
                    .map(|(_, c)| c.as_ref()),
            );
            let mut fps: Vec<String> = cands.iter().map(|c| cert::fingerprint(c)).collect();
            fps.sort();
            fps.dedup();
            let chosen = if fps.len() > 1 {
                let ok = cands
                    .iter()
                    .find(|c| sd.verify_signer(idx, c).unwrap_or(false))
                    .copied();
                ambiguity.push(format!(
                    "{} certificates share signer {}'s identifier; {}",
                    fps.len(),
                    idx + 1,
                    if ok.is_some() {
                        "the one whose signature checks is shown"
                    } else {
                        "none of them checks: the first is shown"
                    }
                ));
                ok.or(cands.first().copied())
            } else {
                cands.first().copied()
            };
            let known_as = chosen.and_then(|c| {
                let fp = cert::fingerprint(c);
                known
                    .iter()
                    .find(|(_, k)| cert::fingerprint(k) == fp)
                    .map(|(l, _)| l.clone())
            });
            SignerView {
                sid: s.sid.to_string(),
                digest_algorithm: s.digest.clone(),
                signature_algorithm: s.signature_alg.clone(),
                signing_time: s.signing_time.map(cert::rfc3339),
                certificate: chosen.map(|c| {
                    let i = cert::CertInfo::new(c, cert::now());
                    format!("{} <{}>", i.subject, i.emails.join(", "))
                }),
                known_as,
            }
        })
        .collect();
    let kind = if signers.is_empty() {
        "certs_only"
    } else {
        "signed"
    };
    let mut notes = ambiguity;
    for c in &certs {
        let (_, ignored) = cert::emails_counted(c);
        if ignored > 0 {
            notes.push(format!(
                "the certificate {} lists more than {} e-mail addresses; {ignored} were ignored",
                cert::name_to_string(c.subject_name()),
                crate::limits::MAX_CERT_ADDRESSES
            ));
        }
    }
    if !sd.is_detached() && kind == "signed" {
        notes.push("opaque: the content is inside the signature".into());
    }
    Ok(LayerView {
        kind: kind.into(),
        mime: "application/pkcs7-mime".into(),
        smime_type: None,
        signers,
        certificates: certs
            .iter()
            .map(|c| cert::name_to_string(c.subject_name()))
            .collect(),
        content_cipher: None,
        recipients: Vec::new(),
        notes,
        carried: certs,
    })
}
