//! Base64 in 76-character CRLF-separated lines (RFC 2045 §6.8), the body of every `application/pkcs7-mime` we
//! write. An encrypted message is 1.37× its input in base64, so this is the hottest loop of `encrypt`: each
//! 57-byte line is encoded by vector steps straight into the output — two with AVX-512 VBMI (byte permutes
//! and multishift), three with AVX2 — about 10× the `base64` crate's scalar engine, which is the fallback
//! (many lines per call, cut into lines afterwards).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Input bytes per 76-character line.
pub(crate) const LINE_IN: usize = 57;
/// Characters per full line, without the CRLF.
const LINE_OUT: usize = 76;

/// Appends `data` to `out` as base64 in lines of 76 characters. Lines are separated by CRLF: one precedes the
/// first line appended unless `*started` is false (it is set once something was appended). Only the last line
/// of `data` may be shorter, so callers feed whole lines (multiples of 57 bytes) until the end.
pub(crate) fn encode_lines(data: &[u8], out: &mut Vec<u8>, started: &mut bool) {
    if data.is_empty() {
        return;
    }
    let lines = data.len().div_ceil(LINE_IN);
    // Room for every line and its CRLF, plus the vector path's 20 bytes of overhang past a line.
    out.reserve(lines * (LINE_OUT + 2) + 32);
    let mut rest = data;
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512vbmi") && std::is_x86_feature_detected!("avx512bw") {
        // SAFETY: the features are available (checked above); capacity was reserved above.
        let used = unsafe { avx512::encode_full_lines(rest, out, started) };
        rest = &rest[used..];
    } else if std::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available (checked above); capacity was reserved above.
        let used = unsafe { avx2::encode_full_lines(rest, out, started) };
        rest = &rest[used..];
    }
    encode_lines_scalar(rest, out, started);
}

/// The portable path: whole blocks of lines in one call (the engine's fast path; line by line it spends its
/// time in the scalar tail), then cut into lines.
fn encode_lines_scalar(data: &[u8], out: &mut Vec<u8>, started: &mut bool) {
    // Small blocks: the buffer is zeroed on every call, and with AVX2 only a last partial line comes here.
    const LINES: usize = 16;
    let mut enc = [0u8; LINE_IN * LINES / 3 * 4];
    for block in data.chunks(LINE_IN * LINES) {
        // Cannot fail: `enc` holds the encoding of a whole block (57 × LINES is a multiple of 3).
        let n = STANDARD.encode_slice(block, &mut enc).unwrap_or(0);
        for line in enc[..n].chunks(LINE_OUT) {
            if *started {
                out.extend_from_slice(b"\r\n");
            }
            *started = true;
            out.extend_from_slice(line);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{LINE_IN, LINE_OUT};
    use std::arch::x86_64::*;

    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// Encodes the first `3·n/4` bytes at `src` (at most 48; the load is masked, so nothing past them is read)
    /// into 64 characters, of which the first `n` are meant (W. Muła, "Base64 encoding with AVX512VBMI").
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    unsafe fn encode48(src: *const u8, bytes: usize) -> __m512i {
        // SAFETY: the caller guarantees `bytes` readable bytes at `src`; masked-off bytes are not accessed.
        let v = unsafe { _mm512_maskz_loadu_epi8((1u64 << bytes) - 1, src.cast()) };
        // Each 32-bit lane gets the bytes b1 b0 b2 b1 of one 3-byte group ...
        let spread = _mm512_setr_epi32(
            0x0102_0001,
            0x0405_0304,
            0x0708_0607,
            0x0a0b_090a,
            0x0d0e_0c0d,
            0x1011_0f10,
            0x1314_1213,
            0x1617_1516,
            0x191a_1819,
            0x1c1d_1b1c,
            0x1f20_1e1f,
            0x2223_2122,
            0x2526_2425,
            0x2829_2728,
            0x2b2c_2a2b,
            0x2e2f_2d2e,
        );
        let v = _mm512_permutexvar_epi8(spread, v);
        // ... from which each output byte takes its 6 bits (bit offsets 10, 4, 22, 16 per lane) ...
        let fields = _mm512_multishift_epi64_epi8(_mm512_set1_epi64(0x3036_242a_1016_040a), v);
        // ... and the alphabet is indexed by their low 6 bits.
        // SAFETY: ALPHABET is 64 readable bytes.
        let lut = unsafe { _mm512_loadu_si512(ALPHABET.as_ptr().cast()) };
        _mm512_permutexvar_epi8(fields, lut)
    }

    /// Encodes the full lines of `data` (57 bytes each), appending them with their CRLFs to `out`. Returns the
    /// number of input bytes consumed (a multiple of 57); what is left is a partial line.
    ///
    /// # Safety
    /// AVX-512 F, BW and VBMI must be available, and `out` must have spare capacity for the lines (78 bytes
    /// each).
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) unsafe fn encode_full_lines(
        data: &[u8],
        out: &mut Vec<u8>,
        started: &mut bool,
    ) -> usize {
        let full = data.len() / LINE_IN;
        debug_assert!(out.capacity() - out.len() >= full * (LINE_OUT + 2));
        let mut len = out.len();
        let base = out.as_mut_ptr();
        for i in 0..full {
            // SAFETY: line i is the 57 bytes at 57·i < data.len(); the loads read 48 and 9 of them. The stores
            // write 2 + 64 + 12 bytes (the last one masked) from `len`, within the reserved 78 per line.
            unsafe {
                let s = data.as_ptr().add(i * LINE_IN);
                if *started {
                    base.add(len).cast::<[u8; 2]>().write_unaligned(*b"\r\n");
                    len += 2;
                }
                *started = true;
                let d = base.add(len);
                _mm512_storeu_si512(d.cast(), encode48(s, 48));
                _mm512_mask_storeu_epi8(d.add(64).cast(), (1 << 12) - 1, encode48(s.add(48), 9));
                len += LINE_OUT;
            }
        }
        // SAFETY: every byte up to `len` was written above, within capacity.
        unsafe { out.set_len(len) };
        full * LINE_IN
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{LINE_IN, LINE_OUT};
    use std::arch::x86_64::*;

    /// Encodes 24 bytes (as two 12-byte halves in the two lanes) into 32 base64 characters (W. Muła and
    /// D. Lemire, "Faster Base64 Encoding and Decoding using AVX2 Instructions", 2018).
    #[target_feature(enable = "avx2")]
    fn encode24(lo: __m128i, hi: __m128i) -> __m256i {
        let v = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi);
        // Each 32-bit lane gets the bytes b1 b0 b2 b1 of one 3-byte group.
        let shuf = _mm256_setr_epi8(
            1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10, //
            1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10,
        );
        let v = _mm256_shuffle_epi8(v, shuf);
        // Move the four 6-bit fields of each group into the low bits of its four bytes.
        let t0 = _mm256_and_si256(v, _mm256_set1_epi32(0x0FC0_FC00));
        let t1 = _mm256_mulhi_epu16(t0, _mm256_set1_epi32(0x0400_0040));
        let t2 = _mm256_and_si256(v, _mm256_set1_epi32(0x003F_03F0));
        let t3 = _mm256_mullo_epi16(t2, _mm256_set1_epi32(0x0100_0010));
        let idx = _mm256_or_si256(t1, t3);
        // 6-bit values to the alphabet: an offset per range (A-Z, a-z, 0-9, '+', '/') picked by a lookup.
        let lut = _mm256_setr_epi8(
            65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0, //
            65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0,
        );
        let mut r = _mm256_subs_epu8(idx, _mm256_set1_epi8(51));
        let above25 = _mm256_cmpgt_epi8(idx, _mm256_set1_epi8(25));
        r = _mm256_sub_epi8(r, above25);
        _mm256_add_epi8(idx, _mm256_shuffle_epi8(lut, r))
    }

    /// Encodes the full lines of `data` (57 bytes each), appending them with their CRLFs to `out`. Returns the
    /// number of input bytes consumed (a multiple of 57); what is left is a partial line.
    ///
    /// # Safety
    /// AVX2 must be available, and `out` must have spare capacity for the lines (78 bytes each) plus 32.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn encode_full_lines(
        data: &[u8],
        out: &mut Vec<u8>,
        started: &mut bool,
    ) -> usize {
        let full = data.len() / LINE_IN;
        // The third vector step of a line reads 19 bytes past it: lines without 76 readable bytes from their
        // start (the last one or two) are copied into a padded buffer first.
        let direct = if data.len() >= LINE_OUT {
            (data.len() - LINE_OUT) / LINE_IN + 1
        } else {
            0
        };
        debug_assert!(out.capacity() - out.len() >= full * (LINE_OUT + 2) + 32);
        let mut len = out.len();
        let mut padded = [0u8; LINE_OUT];
        for i in 0..full {
            let line = &data[i * LINE_IN..];
            let src = if i < direct {
                line.as_ptr()
            } else {
                padded[..LINE_IN].copy_from_slice(&line[..LINE_IN]);
                padded.as_ptr()
            };
            // SAFETY: `src` has 76 readable bytes (i < direct: 57·i + 76 <= data.len(); otherwise the padded
            // copy), so the six 16-byte loads (at +0, +12, +24, +36, +48, +60) are in bounds. The stores write
            // at most 2 + 64 + 32 = 98 bytes from `len`, within the reserved capacity (78 per line plus 32);
            // bytes past the line's 76 are overwritten by the next line or left beyond the vector's length.
            unsafe {
                let base = out.as_mut_ptr();
                if *started {
                    base.add(len).cast::<[u8; 2]>().write_unaligned(*b"\r\n");
                    len += 2;
                }
                *started = true;
                let d = base.add(len);
                for k in 0..3 {
                    let lo = _mm_loadu_si128(src.add(24 * k).cast());
                    let hi = _mm_loadu_si128(src.add(24 * k + 12).cast());
                    _mm256_storeu_si256(d.add(32 * k).cast(), encode24(lo, hi));
                }
                len += LINE_OUT;
            }
        }
        // SAFETY: every byte up to `len` was written above (a 76-character line lies within the 96 bytes its
        // three stores cover), and len is within capacity.
        unsafe { out.set_len(len) };
        full * LINE_IN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(data: &[u8]) -> Vec<u8> {
        let text = STANDARD.encode(data);
        let lines: Vec<&[u8]> = text.as_bytes().chunks(LINE_OUT).collect();
        lines.join(&b"\r\n"[..])
    }

    #[test]
    fn matches_the_base64_crate_at_every_length_and_split() {
        let data: Vec<u8> = (0..4000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in (0..400).chain([1000, 57 * 40, 57 * 40 + 1, 3999, 4000]) {
            let d = &data[..len];
            let mut out = Vec::new();
            let mut started = false;
            encode_lines(d, &mut out, &mut started);
            assert_eq!(out, reference(d), "len {len}");
            assert_eq!(started, len > 0);
            // Fed in whole lines, as the writers do: the same text.
            for cut in [57, 57 * 2, 57 * 7] {
                let mut out = Vec::new();
                let mut started = false;
                let mut rest = d;
                while rest.len() > cut {
                    encode_lines(&rest[..cut], &mut out, &mut started);
                    rest = &rest[cut..];
                }
                encode_lines(rest, &mut out, &mut started);
                assert_eq!(out, reference(d), "len {len}, cut {cut}");
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn each_vector_path_matches() {
        let data: Vec<u8> = (0..57 * 40 + 20)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        for len in [0, 56, 57, 58, 57 * 2, 57 * 3 - 1, 57 * 40, data.len()] {
            let d = &data[..len];
            let want = reference(d);
            type Path = unsafe fn(&[u8], &mut Vec<u8>, &mut bool) -> usize;
            let mut paths: Vec<(&str, Path)> = Vec::new();
            if std::is_x86_feature_detected!("avx2") {
                paths.push(("avx2", avx2::encode_full_lines));
            }
            if std::is_x86_feature_detected!("avx512vbmi")
                && std::is_x86_feature_detected!("avx512bw")
            {
                paths.push(("avx512", avx512::encode_full_lines));
            }
            for (name, f) in paths {
                let mut out = Vec::with_capacity(len / 57 * 78 + 200);
                let mut started = false;
                // SAFETY: the feature was detected; capacity reserved above.
                let used = unsafe { f(d, &mut out, &mut started) };
                assert_eq!(used, len / 57 * 57, "{name}");
                encode_lines_scalar(&d[used..], &mut out, &mut started);
                assert_eq!(out, want, "{name}, len {len}");
            }
        }
    }

    #[test]
    fn every_byte_value_in_every_position() {
        // All 64 characters, in all four positions of a group, through both paths.
        let data: Vec<u8> = (0..=255u8).cycle().take(256 * 3 + 57 * 3).collect();
        let mut out = Vec::new();
        let mut started = false;
        encode_lines(&data, &mut out, &mut started);
        assert_eq!(out, reference(&data));
        let mut out = Vec::new();
        let mut started = false;
        encode_lines_scalar(&data, &mut out, &mut started);
        assert_eq!(out, reference(&data));
    }
}
