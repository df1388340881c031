//! Harvesting: a signed message that verified (integrity, trust and address match) adds its signer's
//! certificate and chain to the contacts, with the capabilities and encryption-key preference it advertised,
//! bound to the verified From address only.
//! A certificate from a message that failed verification is never harvested, and certificates the message
//! merely carries (T40) are never added as contacts.

use crate::cert;
use crate::contacts::{CapabilitiesUpdate, ContactStore, Provenance};
use crate::error::Result;
use crate::home::{Home, WriteLock};

use super::verify::Verified;

/// What harvesting did, for the report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Harvest {
    /// Fingerprints added to the contacts.
    pub added: Vec<String>,
    /// Key-change warnings ("alice's certificate changed…").
    pub key_changes: Vec<String>,
    /// Notes (capabilities ignored because the signing time is in the future, …).
    pub notes: Vec<String>,
}

/// Adds the signers of a valid message to the contacts. Does nothing for an invalid one.
pub fn harvest(
    home: &Home,
    lock: &WriteLock,
    v: &Verified<'_>,
    date: Option<&str>,
) -> Result<Harvest> {
    if !v.report.is_valid() {
        return Ok(Harvest::default());
    }
    let own: Vec<String> = crate::ids::IdStore::new(home)
        .list()?
        .into_iter()
        .map(|i| i.fingerprint)
        .collect();
    let store = ContactStore::new(home);
    let mut h = Harvest::default();
    apply(&store, lock, plan(v, date, &own, cert::now()), &mut h)?;
    Ok(h)
}

/// What one signer of a valid message adds to the contacts, decided while the message is at hand (so that
/// many messages can be verified in parallel and their harvests applied later, in order, in one write).
#[derive(Debug)]
pub struct Planned {
    signer: openssl::x509::X509,
    chain: Vec<openssl::x509::X509>,
    provenance: Provenance,
    caps: Option<CapabilitiesUpdate>,
    future_note: bool,
    now: i64,
    /// The verified From (or Sender) address the certificate is bound to; `None`: no address was checked.
    bound: Option<String>,
}

/// The harvest of a verified message: one entry per signer with a certificate that is not one of `own_ids`
/// (fingerprints of our own IDs: our certificate is not a contact). Nothing for an invalid message.
pub fn plan(v: &Verified<'_>, date: Option<&str>, own_ids: &[String], now: i64) -> Vec<Planned> {
    let mut out = Vec::new();
    if !v.report.is_valid() {
        return out;
    }
    for s in &v.report.signers {
        let Some(c) = s.certificate() else { continue };
        // Only the address the verification checked is bound (never the certificate's other addresses); a
        // signature verified without an address check binds nothing (a note says so when it is applied).
        let bound = s.address_match.from.clone().filter(|_| s.address_match.ok);
        // Our own certificate is not a contact.
        if own_ids.contains(&cert::fingerprint(c)) {
            continue;
        }
        let provenance = Provenance::message(
            v.report.message_id.as_deref(),
            date,
            v.report.from.as_deref(),
            now,
        );
        let caps = if s.signing_time_in_future {
            None
        } else {
            s.signing_time_unix().map(|t| CapabilitiesUpdate {
                capabilities: (!s.capability_oids.is_empty()).then(|| s.capability_oids.clone()),
                signing_time: t,
                encryption_key_preference: resolve_preference(s, &v.message_certs),
            })
        };
        // Only the CA certificates of the chain that verified become intermediates: other certificates a
        // message merely carries are never stored (T40).
        let chain: Vec<_> = s
            .trust
            .certs
            .iter()
            .skip(1)
            .filter(|c| cert::is_ca(c))
            .cloned()
            .collect();
        out.push(Planned {
            signer: c.to_owned(),
            chain,
            provenance,
            caps,
            future_note: s.signing_time_in_future,
            now,
            bound,
        });
    }
    out
}

/// Applies planned harvests to `store` in order, adding to `h` what happened.
pub fn apply(
    store: &ContactStore<'_>,
    lock: &WriteLock,
    planned: Vec<Planned>,
    h: &mut Harvest,
) -> Result<()> {
    for p in planned {
        let Some(bound) = p.bound else {
            h.notes
                .push("no address was checked: the signer's certificate was not added".into());
            continue;
        };
        if p.future_note {
            h.notes
                .push("the signing time is in the future: capabilities not recorded".into());
        }
        let (added, _) = store.add_from_message(
            lock,
            &p.signer,
            &p.chain,
            p.provenance,
            p.caps,
            p.now,
            &bound,
        )?;
        if added.new {
            h.added.push(added.fingerprint.clone());
        }
        for k in &added.key_changes {
            h.key_changes.push(if k.different_key {
                format!(
                    "{}; the new certificate is recorded but not used for encryption until you confirm it: 'smimekit contact prefer {} {}'",
                    k.message(),
                    k.address,
                    &k.new_fingerprint[..16]
                )
            } else {
                k.message()
            });
        }
    }
    Ok(())
}

/// The fingerprint of the certificate named by the signer's encryption-key preference, when the message
/// carries it and it belongs to the same subject (T41: a preference for another identity is ignored).
fn resolve_preference(
    s: &super::verify::SignerReport,
    certs: &[openssl::x509::X509],
) -> Option<String> {
    let signer = s.certificate()?;
    let pref = s.preference.as_ref()?;
    certs
        .iter()
        .find(|c| super::verify::sid_matches(pref, c))
        .filter(|c| c.subject_name().to_der().ok() == signer.subject_name().to_der().ok())
        .map(|c| cert::fingerprint(c))
}
