//! MIME for S/MIME: byte-exact splitting, header values, canonicalisation and output framing.
//!
//! Signatures cover exact bytes, so everything here works on the bytes as received and never on a
//! re-serialised parse:
//! - [`split_entity`] and [`split_multipart`] are a strict, zero-copy RFC 2045/2046 splitter over `&[u8]`
//!   (works over an mmap). A delimiter counts only at the start of a line, never mid-line as in mail-parser.
//! - [`parse_headers`] finds header fields ourselves (bounded), and uses mail-parser only for field *values*
//!   (RFC 2047 encoded words, RFC 2231 parameters, folding, address lists).
//! - [`to_crlf`], [`prepare_for_signing`] and [`decode_body`] handle canonical form and transfer encodings
//!   (RFC 8551 §3.1); functions return [`Cow`](std::borrow::Cow) and borrow when nothing changes.
//! - [`write_multipart_signed`], [`MultipartSignedWriter`] and [`write_pkcs7_mime`] write CRLF output. Taking
//!   S/MIME layers apart again is done by `smime::verify` and `smime::decrypt` with the same splitter.
//!
//! Limits (RFC 8551 §3.7 "reasonable resource limits"): [`MAX_HEADER_BYTES`](crate::limits::MAX_HEADER_BYTES),
//! [`MAX_HEADER_FIELDS`](crate::limits::MAX_HEADER_FIELDS), [`MAX_PARTS`](crate::limits::MAX_PARTS),
//! [`MIME_MAX_DEPTH`](crate::limits::MIME_MAX_DEPTH), all in `limits.rs`.

mod b64;
mod build;
mod canon;
mod headers;
mod split;

pub use build::{
    Base64Blocks, Base64Writer, MultipartSignedWriter, begin_pkcs7_mime, choose_boundary,
    write_multipart_signed, write_pkcs7_mime, write_pkcs7_mime_header,
};
pub use canon::{
    CrlfWriter, Prepared, decode_body, is_crlf_canonical, prepare_for_signing,
    prepare_for_signing_parts, to_crlf, variants_for_diagnosis,
};
pub use headers::{
    ContentType, Field, Layer, Mailbox, addresses, ambiguous_address, classify,
    content_disposition, content_transfer_encoding, content_type, field_value, from, parse_headers,
    sender,
};
pub use split::{
    Entity, MessageParts, Multipart, split_entity, split_message, split_message_parts,
    split_multipart, unlabelled_8bit_warning,
};
