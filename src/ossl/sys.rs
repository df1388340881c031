//! Every `extern "C"` block of smimekit: the libcrypto 3.0 functions that `openssl-sys` 0.9 does not declare.
//!
//! Every symbol below was checked against `nm -D libcrypto.so.3` (OpenSSL 3.0.19) and against
//! `openssl-sys/src/handwritten/` (none of them is declared there). The signatures follow the 3.0 headers
//! (`cms.h`, `x509.h`, `pem.h`, `pkcs12.h`, `ocsp.h`). Nothing outside `src/ossl/` may call these: each use is wrapped in a small safe
//! function next to a `// SAFETY:` comment.

#![allow(non_camel_case_types, missing_docs)]

use std::ffi::{c_char, c_int, c_long, c_uchar, c_uint, c_void};

use openssl_sys::{
    ASN1_TYPE, BIO, CMS_ContentInfo, EVP_CIPHER, EVP_MD, EVP_PKEY, EVP_PKEY_CTX, OCSP_BASICRESP,
    OCSP_REQUEST, OPENSSL_STACK, PKCS7, PKCS8_PRIV_KEY_INFO, PKCS12, X509, X509_ALGOR, X509_CRL,
    X509_STORE, stack_st_X509,
};

/// `CMS_SignerInfo` (opaque; owned by its `CMS_ContentInfo`).
pub enum CMS_SignerInfo {}
/// `STACK_OF(CMS_SignerInfo)` (opaque; use `OPENSSL_sk_num`/`OPENSSL_sk_value`).
pub enum stack_st_CMS_SignerInfo {}
/// `X509_SIG`, the PKCS#8 EncryptedPrivateKeyInfo.
pub enum X509_SIG {}
/// `CMS_RecipientInfo` (opaque; owned by its `CMS_ContentInfo`).
#[repr(C)]
pub struct CmsRecipientInfo {
    _private: [u8; 0],
}
/// OpenSSL's `PKCS12_SAFEBAG` (opaque).
pub enum PKCS12_SAFEBAG {}

/// `BIO_C_GET_MD_CTX` (`bio.h`): the `BIO_ctrl` command behind the `BIO_get_md_ctx` macro.
pub const BIO_C_GET_MD_CTX: c_int = 120;

unsafe extern "C" {
    // ---- CMS SignedData: building -------------------------------------------------------------------------
    /// Adds a signer to a SignedData; returns a `get0` pointer owned by `cms`.
    pub fn CMS_add1_signer(
        cms: *mut CMS_ContentInfo,
        signer: *mut X509,
        pk: *mut EVP_PKEY,
        md: *const EVP_MD,
        flags: c_uint,
    ) -> *mut CMS_SignerInfo;
    /// The signing `EVP_PKEY_CTX` of a signer added with `CMS_KEY_PARAM` (`get0`).
    pub fn CMS_SignerInfo_get0_pkey_ctx(si: *mut CMS_SignerInfo) -> *mut EVP_PKEY_CTX;
    /// Adds a signed attribute; `bytes` is copied. With `V_ASN1_SEQUENCE` the bytes are a complete DER element.
    pub fn CMS_signed_add1_attr_by_txt(
        si: *mut CMS_SignerInfo,
        attrname: *const c_char,
        type_: c_int,
        bytes: *const c_void,
        len: c_int,
    ) -> c_int;
    /// Adds a certificate to the `certificates` field (up-refs it; returns -1 for a duplicate, 0 on error).
    pub fn CMS_add1_cert(cms: *mut CMS_ContentInfo, cert: *mut X509) -> c_int;
    /// Makes the eContent absent (1) or present-to-be-filled (0).
    pub fn CMS_set_detached(cms: *mut CMS_ContentInfo, detached: c_int) -> c_int;
    /// The BIO chain (digest BIOs over a null or memory BIO) that content is written into; free with
    /// `BIO_free_all` after `CMS_dataFinal`.
    pub fn CMS_dataInit(cms: *mut CMS_ContentInfo, icont: *mut BIO) -> *mut BIO;
    /// Finishes the digests started by `CMS_dataInit` and signs (or stores the content, for opaque signing).
    pub fn CMS_dataFinal(cms: *mut CMS_ContentInfo, bio: *mut BIO) -> c_int;

    // ---- CMS SignedData: reading --------------------------------------------------------------------------
    /// A new stack holding up-ref'd copies of the embedded certificates, or NULL if there are none.
    pub fn CMS_get1_certs(cms: *mut CMS_ContentInfo) -> *mut stack_st_X509;
    /// The SignerInfos of a SignedData (`get0`, owned by `cms`); NULL for other content types.
    pub fn CMS_get0_SignerInfos(cms: *mut CMS_ContentInfo) -> *mut stack_st_CMS_SignerInfo;
    /// 0 if `cert` matches the signer identifier (issuer+serial or subjectKeyIdentifier).
    pub fn CMS_SignerInfo_cert_cmp(si: *mut CMS_SignerInfo, cert: *mut X509) -> c_int;
    /// Sets (up-refs) the certificate whose key `CMS_SignerInfo_verify` uses; NULL clears it.
    pub fn CMS_SignerInfo_set1_signer_cert(si: *mut CMS_SignerInfo, signer: *mut X509);
    /// Verifies the signature over the signed attributes: 1 good, 0 bad, < 0 error.
    pub fn CMS_SignerInfo_verify(si: *mut CMS_SignerInfo) -> c_int;

    // ---- PKCS#8 with a chosen PBKDF2 iteration count ------------------------------------------------------
    /// PBES2 AlgorithmIdentifier: PBKDF2 (`iter`, `salt`, PRF `prf_nid`) + `cipher` with IV `aiv` (NULL = random).
    pub fn PKCS5_pbe2_set_iv(
        cipher: *const EVP_CIPHER,
        iter: c_int,
        salt: *mut c_uchar,
        saltlen: c_int,
        aiv: *mut c_uchar,
        prf_nid: c_int,
    ) -> *mut X509_ALGOR;
    /// Encrypts `p8inf` under `pbe` (takes ownership of `pbe` on success only).
    pub fn PKCS8_set0_pbe(
        pass: *const c_char,
        passlen: c_int,
        p8inf: *mut PKCS8_PRIV_KEY_INFO,
        pbe: *mut X509_ALGOR,
    ) -> *mut X509_SIG;
    /// Writes an `ENCRYPTED PRIVATE KEY` PEM block.
    pub fn PEM_write_bio_PKCS8(bp: *mut BIO, x: *const X509_SIG) -> c_int;
    /// Frees an `X509_SIG`.
    pub fn X509_SIG_free(a: *mut X509_SIG);

    // ---- CMS EnvelopedData / AuthEnvelopedData ------------------------------------------------------------
    pub fn CMS_add1_recipient_cert(
        cms: *mut CMS_ContentInfo,
        recip: *mut X509,
        flags: c_uint,
    ) -> *mut CmsRecipientInfo;
    pub fn CMS_RecipientInfo_get0_pkey_ctx(ri: *mut CmsRecipientInfo) -> *mut EVP_PKEY_CTX;
    pub fn EVP_PKEY_CTX_set_ecdh_kdf_md(ctx: *mut EVP_PKEY_CTX, md: *const EVP_MD) -> c_int;
    pub fn BIO_new_CMS(out: *mut BIO, cms: *mut CMS_ContentInfo) -> *mut BIO;
    pub fn BIO_pop(b: *mut BIO) -> *mut BIO;
    pub fn BIO_free(b: *mut BIO) -> c_int;

    // ---- PKCS#12 ------------------------------------------------------------------------------------------
    pub fn PKCS12_mac_present(p12: *const PKCS12) -> c_int;
    pub fn PKCS12_verify_mac(p12: *mut PKCS12, pass: *const c_char, passlen: c_int) -> c_int;
    pub fn PKCS12_unpack_authsafes(p12: *const PKCS12) -> *mut OPENSSL_STACK;
    pub fn PKCS12_unpack_p7data(p7: *mut PKCS7) -> *mut OPENSSL_STACK;
    pub fn PKCS12_unpack_p7encdata(
        p7: *mut PKCS7,
        pass: *const c_char,
        passlen: c_int,
    ) -> *mut OPENSSL_STACK;
    pub fn PKCS12_SAFEBAG_get_nid(bag: *const PKCS12_SAFEBAG) -> c_int;
    pub fn PKCS12_SAFEBAG_get_bag_nid(bag: *const PKCS12_SAFEBAG) -> c_int;
    pub fn PKCS12_SAFEBAG_get1_cert(bag: *const PKCS12_SAFEBAG) -> *mut X509;
    pub fn PKCS12_SAFEBAG_get0_p8inf(bag: *const PKCS12_SAFEBAG) -> *const PKCS8_PRIV_KEY_INFO;
    pub fn PKCS12_SAFEBAG_get0_safes(bag: *const PKCS12_SAFEBAG) -> *const OPENSSL_STACK;
    pub fn PKCS12_SAFEBAG_get0_attr(
        bag: *const PKCS12_SAFEBAG,
        attr_nid: c_int,
    ) -> *const ASN1_TYPE;
    pub fn PKCS12_decrypt_skey(
        bag: *const PKCS12_SAFEBAG,
        pass: *const c_char,
        passlen: c_int,
    ) -> *mut PKCS8_PRIV_KEY_INFO;
    pub fn i2d_PKCS12_SAFEBAG(bag: *const PKCS12_SAFEBAG, out: *mut *mut c_uchar) -> c_int;
    pub fn d2i_PKCS12_SAFEBAG(
        a: *mut *mut PKCS12_SAFEBAG,
        pp: *mut *const c_uchar,
        len: c_long,
    ) -> *mut PKCS12_SAFEBAG;
    pub fn PKCS12_SAFEBAG_free(bag: *mut PKCS12_SAFEBAG);
    pub fn PKCS12_SAFEBAG_create_cert(x509: *mut X509) -> *mut PKCS12_SAFEBAG;
    pub fn PKCS12_SAFEBAG_create_pkcs8_encrypt(
        pbe_nid: c_int,
        pass: *const c_char,
        passlen: c_int,
        salt: *mut c_uchar,
        saltlen: c_int,
        iter: c_int,
        p8inf: *mut PKCS8_PRIV_KEY_INFO,
    ) -> *mut PKCS12_SAFEBAG;
    pub fn PKCS12_add_localkeyid(
        bag: *mut PKCS12_SAFEBAG,
        name: *mut c_uchar,
        namelen: c_int,
    ) -> c_int;
    pub fn PKCS12_add_friendlyname_utf8(
        bag: *mut PKCS12_SAFEBAG,
        name: *const c_char,
        namelen: c_int,
    ) -> c_int;
    pub fn PKCS12_pack_p7data(bags: *mut OPENSSL_STACK) -> *mut PKCS7;
    pub fn PKCS12_pack_p7encdata(
        pbe_nid: c_int,
        pass: *const c_char,
        passlen: c_int,
        salt: *mut c_uchar,
        saltlen: c_int,
        iter: c_int,
        bags: *mut OPENSSL_STACK,
    ) -> *mut PKCS7;
    pub fn PKCS12_add_safes(safes: *mut OPENSSL_STACK, p7_nid: c_int) -> *mut PKCS12;
    /// The PKCS#12 KDF (RFC 7292 Appendix B); the p12 tests compare it with gpgsm 2.2's variant.
    #[cfg(test)]
    pub fn PKCS12_key_gen_utf8(
        pass: *const c_char,
        passlen: c_int,
        salt: *const c_uchar,
        saltlen: c_int,
        id: c_int,
        iter: c_int,
        n: c_int,
        out: *mut c_uchar,
        md_type: *const EVP_MD,
    ) -> c_int;

    // ---- Certificates, CRLs and OCSP ----------------------------------------------------------------------
    /// Nonzero for a CA certificate (basicConstraints CA:TRUE, or a legacy CA form).
    pub fn X509_check_ca(x: *mut X509) -> c_int;
    pub fn OCSP_request_add1_nonce(req: *mut OCSP_REQUEST, val: *mut c_uchar, len: c_int) -> c_int;
    pub fn OCSP_check_nonce(req: *mut OCSP_REQUEST, bs: *mut OCSP_BASICRESP) -> c_int;
    pub fn CMS_get1_crls(cms: *mut CMS_ContentInfo) -> *mut OPENSSL_STACK;
    pub fn X509_STORE_add_crl(store: *mut X509_STORE, crl: *mut X509_CRL) -> c_int;

    // ---- BIO ----------------------------------------------------------------------------------------------
    /// Writes a NUL-terminated string through the BIO's `puts` method (used by the `WriteBio` tests).
    #[cfg(test)]
    pub fn BIO_puts(bp: *mut BIO, buf: *const c_char) -> c_int;
}
