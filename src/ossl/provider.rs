//! Loading OpenSSL's legacy provider (RC2, RC4, DES…) once, with the default provider kept as fallback.

use std::sync::OnceLock;

use openssl::provider::Provider;

static LEGACY: OnceLock<Option<Provider>> = OnceLock::new();

/// Loads the legacy provider once for the life of the process and reports whether it is available.
///
/// `Provider::try_load(.., true)` keeps the fallback providers; `Provider::load` would disable them and
/// with them AES and the PKCS#12 KDF. The handle is kept in a static: dropping it would unload the provider.
pub fn ensure_legacy() -> bool {
    LEGACY
        .get_or_init(|| {
            let p = Provider::try_load(None, "legacy", true).ok();
            // A failed probe leaves errors on OpenSSL's queue; clear them so they are not blamed on later calls.
            let _ = openssl::error::ErrorStack::get();
            p
        })
        .is_some()
}
