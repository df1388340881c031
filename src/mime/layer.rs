//! Taking S/MIME layers apart for verification and decryption, with the one strict parser (T52: what is
//! verified and what is shown come from the same split).

use std::io::{self, Write};

use super::build::write_outer;
use super::canon::decode_body;
use super::headers::{
    ContentType, Field, Layer, classify, content_transfer_encoding, content_type,
};
use super::split::{split_entity, split_multipart};
use crate::error::{Error, Result};

/// The two halves of a `multipart/signed` entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedParts<'a> {
    /// The exact bytes of the first part, as received: what the signature covers (apply
    /// [`to_crlf`](super::to_crlf) for mail stored with LF line ends).
    pub signed: &'a [u8],
    /// The DER of the second part, decoded from its transfer encoding.
    pub signature: Vec<u8>,
    /// The `protocol` parameter, lowercase.
    pub protocol: Option<String>,
    /// The `micalg` parameter, lowercase (advisory: verify by the SignerInfo digest algorithm).
    pub micalg: Option<String>,
    /// False if the close delimiter is missing (the message was probably truncated).
    pub terminated: bool,
}

/// Splits a `multipart/signed` entity (a whole message or a part) into the signed bytes and the signature.
///
/// Errors: the entity is not multipart/signed, it does not have exactly two parts, the second part is not
/// `application/pkcs7-signature` (or `application/x-pkcs7-signature`), or its body cannot be decoded.
pub fn split_signed(entity: &[u8]) -> Result<SignedParts<'_>> {
    let ent = split_entity(entity)?;
    let fields = ent.fields()?;
    let ct = content_type(&fields)?.unwrap_or_else(ContentType::default_text);
    let Layer::MultipartSigned {
        boundary,
        protocol,
        micalg,
    } = classify(&ct)
    else {
        return Err(
            Error::bad_input(format!("the entity is {}, not multipart/signed", ct.mime))
                .hint("only multipart/signed entities have a detached signature part"),
        );
    };
    let mp = split_multipart(ent.body, boundary.as_bytes())?;
    if mp.parts.len() != 2 {
        return Err(Error::bad_input(format!(
            "the multipart/signed entity has {} parts instead of 2",
            mp.parts.len()
        ))
        .hint("the message is malformed or was altered in transit"));
    }
    let sig = split_entity(mp.parts[1])?;
    let sig_fields = sig.fields()?;
    let sig_ct = content_type(&sig_fields)?.unwrap_or_else(ContentType::default_text);
    if !matches!(
        sig_ct.mime.as_str(),
        "application/pkcs7-signature" | "application/x-pkcs7-signature"
    ) {
        return Err(Error::unsupported(format!(
            "the signature part of the multipart/signed entity is {}, not application/pkcs7-signature",
            sig_ct.mime
        ))
        .hint("this is not an S/MIME signature (perhaps OpenPGP/MIME)"));
    }
    let signature = decode_body(sig.body, content_transfer_encoding(&sig_fields)?.as_deref())?;
    Ok(SignedParts {
        signed: mp.parts[0],
        signature,
        protocol,
        micalg,
        terminated: mp.terminated,
    })
}

/// The DER inside an `application/pkcs7-mime` entity (or any entity), decoded from its transfer encoding,
/// with the entity's header fields and Content-Type.
pub fn entity_body(entity: &[u8]) -> Result<(Vec<Field<'_>>, ContentType, Vec<u8>)> {
    let ent = split_entity(entity)?;
    let fields = ent.fields()?;
    let ct = content_type(&fields)?.unwrap_or_else(ContentType::default_text);
    let body = decode_body(ent.body, content_transfer_encoding(&fields)?.as_deref())?;
    Ok((fields, ct, body))
}

/// Writes a message made of the outer header fields (converted to CRLF; no `MIME-Version` or `Content-*`),
/// `MIME-Version: 1.0` and `entity` verbatim (its `Content-*` fields, blank line and body), e.g. to rebuild a
/// message from the entity a decryption or an opaque signature produced.
pub fn write_message(out: &mut dyn Write, outer: &[u8], entity: &[u8]) -> io::Result<()> {
    write_outer(out, outer)?;
    out.write_all(b"MIME-Version: 1.0\r\n")?;
    out.write_all(entity)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::{split_message, write_multipart_signed, write_pkcs7_mime};

    const ENTITY: &[u8] = b"Content-Type: text/plain\r\n\r\nsigned text\r\n";

    #[test]
    fn signed_round_trip() {
        let mut msg = Vec::new();
        write_multipart_signed(
            &mut msg,
            b"Subject: s\r\n",
            ENTITY,
            b"\x30\x03\x02\x01\x05",
            "sha-256",
        )
        .unwrap();
        let s = split_signed(&msg).unwrap();
        assert_eq!(s.signed, ENTITY);
        assert_eq!(s.signature, b"\x30\x03\x02\x01\x05");
        assert_eq!(s.protocol.as_deref(), Some("application/pkcs7-signature"));
        assert_eq!(s.micalg.as_deref(), Some("sha-256"));
        assert!(s.terminated);
    }

    #[test]
    fn signed_errors() {
        assert!(split_signed(ENTITY).is_err());
        let three = b"Content-Type: multipart/signed; boundary=b\r\n\r\n--b\r\n\r\na\r\n--b\r\n\r\nb\r\n--b\r\n\r\nc\r\n--b--\r\n";
        assert!(
            split_signed(three)
                .unwrap_err()
                .message()
                .contains("3 parts")
        );
        let pgp = b"Content-Type: multipart/signed; boundary=b\r\n\r\n--b\r\n\r\na\r\n--b\r\nContent-Type: application/pgp-signature\r\n\r\nx\r\n--b--\r\n";
        assert!(split_signed(pgp).is_err());
        // M1 (T26): a signed entity nested in a multipart/mixed is not a signed message
        let mut inner = Vec::new();
        write_multipart_signed(&mut inner, b"", ENTITY, b"\x30\x00", "sha-256").unwrap();
        let mut outer =
            b"Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n\r\nattacker text\r\n--m\r\n"
                .to_vec();
        let inner_entity = split_message(&inner).unwrap().1;
        outer.extend_from_slice(&inner_entity);
        outer.extend_from_slice(b"\r\n--m--\r\n");
        assert!(split_signed(&outer).is_err());
    }

    #[test]
    fn pkcs7_body_and_message() {
        let mut msg = Vec::new();
        write_pkcs7_mime(&mut msg, b"", "enveloped-data", b"\x30\x80\x00\x00").unwrap();
        let (_, ct, der) = entity_body(&msg).unwrap();
        assert_eq!(ct.mime, "application/pkcs7-mime");
        assert_eq!(der, b"\x30\x80\x00\x00");
        let mut out = Vec::new();
        write_message(&mut out, b"From: a@example.com\n", ENTITY).unwrap();
        assert_eq!(out, b"From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n");
        assert!(write_message(&mut Vec::new(), b"Content-Type: text/html\r\n", ENTITY).is_err());
    }
}
