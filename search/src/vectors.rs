//! How a line's vector is kept in the index and compared, chosen by measurement (`roomtape bench
//! search --meaning` prints the figures):
//! - a **code** of [`CODE_BITS`] bits, the signs of the vector's projections on fixed random
//!   directions (SimHash: the share of differing bits estimates the angle between two vectors),
//!   kept as `u64` fast fields and read into memory once per index segment, so a scan of a
//!   million lines is a tight loop of XORs and popcounts;
//! - the vector itself as 8-bit integers with one scale ([`quantize`], 388 bytes), a stored
//!   field read only for the few hundred lines whose codes are nearest, to rank them by cosine.

use roomtape_core::Rng;

use crate::embed::DIMS;

/// Bits of a line's code.
pub const CODE_BITS: usize = 512;
/// `u64` words of a code.
pub const CODE_WORDS: usize = CODE_BITS / 64;

/// A line's code.
pub type Code = [u64; CODE_WORDS];

/// The fixed random directions of the codes (seeded, so every index and every build agrees).
fn directions() -> &'static [f32] {
    static DIRS: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    DIRS.get_or_init(|| {
        let mut rng = Rng::new(0x5eed_c0de);
        // Standard normal components: the directions must be uniform on the sphere.
        (0..CODE_BITS * DIMS)
            .map(|_| rng.gaussian() as f32)
            .collect()
    })
}

/// The code of a vector.
pub fn code(v: &[f32]) -> Code {
    let dirs = directions();
    let mut c = [0u64; CODE_WORDS];
    for (bit, dir) in dirs.chunks_exact(DIMS).enumerate() {
        if crate::embed::dot(dir, v) > 0.0 {
            c[bit / 64] |= 1 << (bit % 64);
        }
    }
    c
}

/// Bits in which two codes differ.
#[inline]
pub fn distance(a: &Code, b: &Code) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// Bytes of a quantised vector: its scale (`f32`, little-endian), then one `i8` a dimension.
pub const QUANTIZED_BYTES: usize = 4 + DIMS;

/// The vector as 8-bit integers: `v[i] ≈ q[i] * scale`, with `scale = max|v| / 127`.
pub fn quantize(v: &[f32]) -> Vec<u8> {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let mut out = Vec::with_capacity(QUANTIZED_BYTES);
    out.extend_from_slice(&scale.to_le_bytes());
    out.extend(
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8 as u8),
    );
    out
}

/// The vector back from [`quantize`]'s bytes; `None` when they are not one.
pub fn dequantize(b: &[u8]) -> Option<Vec<f32>> {
    if b.len() != QUANTIZED_BYTES {
        return None;
    }
    let scale = f32::from_le_bytes(b[..4].try_into().ok()?);
    Some(b[4..].iter().map(|&q| q as i8 as f32 * scale).collect())
}

/// The cosine of a unit query vector with a quantised unit vector.
pub fn similarity(query: &[f32], quantized: &[u8]) -> Option<f32> {
    if quantized.len() != QUANTIZED_BYTES || query.len() != DIMS {
        return None;
    }
    let scale = f32::from_le_bytes(quantized[..4].try_into().ok()?);
    let mut lanes = [0f32; 8];
    for (q, x) in quantized[4..].chunks_exact(8).zip(query.chunks_exact(8)) {
        for i in 0..8 {
            lanes[i] += q[i] as i8 as f32 * x[i];
        }
    }
    Some(lanes.iter().sum::<f32>() * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        crate::embed::normalised((0..DIMS).map(|_| rng.unit() as f32 - 0.5).collect())
    }

    #[test]
    fn quantised_vectors_keep_their_cosine() {
        for s in 0..20 {
            let (a, b) = (unit(s), unit(s + 100));
            let exact = crate::embed::dot(&a, &b);
            let q = similarity(&a, &quantize(&b)).unwrap();
            assert!((exact - q).abs() < 0.01, "{exact} vs {q}");
            let back = dequantize(&quantize(&b)).unwrap();
            assert!((crate::embed::dot(&back, &b) - 1.0).abs() < 0.01);
        }
        assert_eq!(similarity(&unit(1), &[0u8; 10]), None);
        assert_eq!(dequantize(&[1, 2, 3]), None);
        // A zero vector quantises without dividing by zero.
        assert_eq!(similarity(&unit(1), &quantize(&[0.0; DIMS])), Some(0.0));
    }

    #[test]
    fn codes_order_vectors_by_angle() {
        let a = unit(7);
        let code_a = code(&a);
        assert_eq!(distance(&code_a, &code_a), 0);
        // A vector near `a` has a nearer code than an unrelated one.
        let near =
            crate::embed::normalised(a.iter().zip(unit(8)).map(|(x, y)| x + 0.3 * y).collect());
        let far = unit(9);
        assert!(distance(&code_a, &code(&near)) < distance(&code_a, &code(&far)));
        // The opposite vector differs in (almost) every bit.
        let neg: Vec<f32> = a.iter().map(|x| -x).collect();
        assert!(distance(&code_a, &code(&neg)) > CODE_BITS as u32 - 4);
    }
}
