//! Reviewing an `id restore` before anything is written: every trust anchor, ID and pin it would add, with
//! subject and SHA-256 fingerprint, and every ID or contact whose address already has a certificate with
//! another key here (a backup from someone else must not take over an address).
//!
//! The caller shows the review and asks; [`Review::without_unconfirmed`] trims a plan to what needs no
//! confirmation (no new anchors, no conflicting IDs or contacts) for `--batch` without `--yes`.

use openssl::x509::{X509, X509Ref};

use crate::cert;
use crate::contacts::ContactStore;
use crate::error::Result;
use crate::home::Home;
use crate::ids::IdStore;
use crate::pkcs12::RestorePlan;
use crate::trust::TrustStore;

/// One thing a restore would add.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Item {
    /// Subject DN.
    pub subject: String,
    /// The certificate's e-mail addresses (for a pin: the pinned address).
    pub addresses: Vec<String>,
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// Why it is flagged: an address of it already has a certificate with another key here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
}

/// What a restore would add (only what is not here already).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Review {
    /// New trust anchors: every certificate they issue becomes trusted.
    pub anchors: Vec<Item>,
    /// New digital IDs (used to sign, and as the self copy of encryption).
    pub ids: Vec<Item>,
    /// New contact certificates that are flagged (the others are listed only by count).
    pub flagged_contacts: Vec<Item>,
    /// New contact certificates in all.
    pub new_contacts: usize,
    /// Pins (`contact prefer`) the backup carries; applied only for addresses without a local certificate.
    pub pins: Vec<Item>,
}

impl Review {
    /// Does the restore add something that must be confirmed: an anchor, an ID, or a flagged contact?
    pub fn needs_confirmation(&self) -> bool {
        !self.anchors.is_empty() || !self.ids.is_empty() || !self.flagged_contacts.is_empty()
    }

    /// The plan without what needs confirmation: no anchors, no ID or contact that conflicts with a local
    /// certificate. Returns the notes saying what was left out.
    pub fn without_unconfirmed(&self, plan: &mut RestorePlan) -> Vec<String> {
        let mut notes = Vec::new();
        if !plan.anchors.is_empty() && !self.anchors.is_empty() {
            notes.push(format!(
                "{} trust anchor(s) not added: a trust anchor is only added when confirmed (--yes)",
                self.anchors.len()
            ));
        }
        plan.anchors.clear();
        let flagged = |fp: &str, list: &[Item]| {
            list.iter()
                .any(|i| i.fingerprint == fp && i.conflict.is_some())
        };
        let before = plan.ids.len();
        plan.ids
            .retain(|(_, c, _)| !flagged(&cert::fingerprint(c), &self.ids));
        if plan.ids.len() < before {
            notes.push(format!(
                "{} ID(s) not added: their address already has an ID with another key here (confirm with --yes)",
                before - plan.ids.len()
            ));
        }
        let before = plan.contacts.len();
        plan.contacts
            .retain(|(_, c)| !flagged(&cert::fingerprint(c), &self.flagged_contacts));
        if plan.contacts.len() < before {
            notes.push(format!(
                "{} contact certificate(s) not added: their address already has a certificate with another key here (confirm with --yes)",
                before - plan.contacts.len()
            ));
        }
        notes
    }

    /// The review as text, one item a line, every attacker-controlled field escaped.
    pub fn render(&self) -> String {
        use crate::display::{addresses, field};
        let mut s = String::new();
        let line = |s: &mut String, what: &str, i: &Item| {
            *s += &format!(
                "  {what:<8} {}{}\n           SHA-256 {}\n",
                field(&i.subject),
                if i.addresses.is_empty() {
                    String::new()
                } else {
                    format!(" <{}>", addresses(&i.addresses))
                },
                i.fingerprint
            );
            if let Some(c) = &i.conflict {
                *s += &format!("           FLAGGED: {}\n", field(c));
            }
        };
        if !self.anchors.is_empty() {
            s += "Trust anchors to add (every certificate they issue becomes trusted):\n";
            for i in &self.anchors {
                line(&mut s, "anchor", i);
            }
        }
        if !self.ids.is_empty() {
            s += "Digital IDs to add (used to sign, and for your copy of encrypted mail):\n";
            for i in &self.ids {
                line(&mut s, "ID", i);
            }
        }
        if !self.flagged_contacts.is_empty() {
            s += "Contact certificates for addresses that already have another key here:\n";
            for i in &self.flagged_contacts {
                line(&mut s, "contact", i);
            }
        }
        if !self.pins.is_empty() {
            s +=
                "Pins in the backup (restored only for addresses that have no certificate here):\n";
            for i in &self.pins {
                line(&mut s, "pin", i);
            }
        }
        s += &format!("{} new contact certificate(s) in all.\n", self.new_contacts);
        s
    }
}

fn item(c: &X509Ref, conflict: Option<String>) -> Item {
    Item {
        subject: cert::name_to_string(c.subject_name()),
        addresses: cert::emails(c),
        fingerprint: cert::fingerprint(c),
        conflict,
    }
}

/// The first local certificate that shares an address with `c` but not its key, as a conflict note.
fn conflict(c: &X509Ref, local: &[(&'static str, X509)]) -> Option<String> {
    let key = c.public_key().ok()?;
    let emails = cert::emails(c);
    local.iter().find_map(|(what, l)| {
        let shared = cert::emails(l)
            .into_iter()
            .find(|e| crate::address::contains(&emails, e))?;
        let same_key = l.public_key().is_ok_and(|k| k.public_eq(&key));
        (!same_key).then(|| {
            format!(
                "{shared} already has {what} {} with another key here",
                cert::fingerprint(l)
            )
        })
    })
}

/// What restoring `plan` into `home` would add, with conflicts flagged. Reads only.
pub fn review(home: &Home, plan: &RestorePlan) -> Result<Review> {
    let anchors_here: Vec<String> = TrustStore::new(home)
        .certs()?
        .iter()
        .map(|c| cert::fingerprint(c))
        .collect();
    let ids_here = IdStore::new(home).list()?;
    let contacts = ContactStore::new(home);
    let contacts_here = contacts.list()?;
    let mut local: Vec<(&'static str, X509)> = Vec::new();
    local.extend(ids_here.iter().map(|i| ("the ID", i.cert.clone())));
    local.extend(
        contacts_here
            .iter()
            .map(|c| ("the contact", c.cert.clone())),
    );
    let known = |fp: &str| {
        ids_here.iter().any(|i| i.fingerprint == fp)
            || contacts_here.iter().any(|c| c.fingerprint == fp)
    };
    let mut r = Review::default();
    for a in &plan.anchors {
        if !anchors_here.contains(&cert::fingerprint(a)) {
            r.anchors.push(item(a, None));
        }
    }
    for (_, c, _) in &plan.ids {
        if !ids_here
            .iter()
            .any(|i| i.fingerprint == cert::fingerprint(c))
        {
            r.ids.push(item(c, conflict(c, &local)));
        }
    }
    for (_, c) in &plan.contacts {
        if cert::is_ca(c) || known(&cert::fingerprint(c)) {
            continue;
        }
        r.new_contacts += 1;
        if let Some(why) = conflict(c, &local) {
            r.flagged_contacts.push(item(c, Some(why)));
        }
    }
    if let Some(m) = &plan.contacts_metadata {
        for (addr, fp) in crate::contacts::pins_in_metadata(m) {
            let here = contacts_here
                .iter()
                .find(|c| crate::address::contains(&c.emails(), &addr) && c.fingerprint != fp);
            let subject = plan
                .contacts
                .iter()
                .find(|(_, c)| cert::fingerprint(c) == fp)
                .map(|(_, c)| cert::name_to_string(c.subject_name()))
                .unwrap_or_default();
            r.pins.push(Item {
                subject,
                addresses: vec![addr.clone()],
                fingerprint: fp,
                conflict: here.map(|c| {
                    format!(
                        "{addr} has the certificate {} here: the backup's pin is not restored",
                        c.fingerprint
                    )
                }),
            });
        }
    }
    Ok(r)
}
