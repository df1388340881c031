//! Base64 for S/MIME bodies, the two hot loops of the large-message paths: writing 76-character lines
//! ([`encode_lines`], every `application/pkcs7-mime` we write) and decoding bodies laid out the regular way
//! encoders write them ([`decode_regular`], every one we read; anything else goes to the general decoder).

mod decode;
mod encode;

pub(crate) use decode::decode_regular;
pub(crate) use encode::{LINE_IN, encode_lines};
