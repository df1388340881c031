//! E-mail address comparison: one rule for verify's From check and for choosing contacts.
//!
//! Policy (documented in the README): the local part and the domain both compare case-insensitively (as
//! Thunderbird and Outlook do; OpenSSL's matcher is case-sensitive in the local part), an internationalised
//! domain matches in its U-label and A-label forms, and anything that is not a plausible address (control
//! characters, no `@`, over-long parts) matches nothing — it never panics.

use crate::limits::MAX_ADDRESS_LEN;

/// The canonical form of `addr` used for comparison, or `None` if it is not a usable address.
pub fn normalize(addr: &str) -> Option<String> {
    let a = addr.trim().trim_start_matches('<').trim_end_matches('>');
    if a.is_empty() || a.len() > MAX_ADDRESS_LEN || a.chars().any(|c| c.is_control()) {
        return None;
    }
    let at = a.rfind('@')?;
    let (local, domain) = (&a[..at], &a[at + 1..]);
    if local.is_empty() || domain.is_empty() || local.len() > 64 || domain.len() > 255 {
        return None;
    }
    let domain = domain.trim_end_matches('.');
    let domain_ascii = idna::domain_to_ascii(domain).ok()?;
    if domain_ascii.is_empty() {
        return None;
    }
    Some(format!(
        "{}@{}",
        local.to_lowercase(),
        domain_ascii.to_ascii_lowercase()
    ))
}

/// True if `a` and `b` name the same mailbox under the policy above.
pub fn same(a: &str, b: &str) -> bool {
    match (normalize(a), normalize(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// True if `addr` is among `list`.
pub fn contains(list: &[String], addr: &str) -> bool {
    list.iter().any(|x| same(x, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_everywhere() {
        assert!(same("ALICE@EXAMPLE.COM", "alice@example.com"));
        assert!(same("Judy.Smith@Example.COM", "judy.smith@example.com"));
        assert!(!same("alice@example.com", "alice@example.org"));
    }

    #[test]
    fn idn_forms_match() {
        assert!(same("user@bücher.example", "user@xn--bcher-kva.example"));
        assert!(same("user@BÜCHER.example", "user@xn--bcher-kva.example"));
    }

    #[test]
    fn garbage_matches_nothing() {
        assert!(!same("alice\0@example.com", "alice@example.com"));
        assert!(normalize("no-at-sign").is_none());
        assert!(normalize(&format!("{}@example.com", "a".repeat(65))).is_none());
        assert!(normalize("@example.com").is_none());
        assert!(!same("", ""));
    }
}
