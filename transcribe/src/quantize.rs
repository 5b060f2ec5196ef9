//! Quantised ggml models: an f16 model's weight matrices rewritten in one of ggml's block
//! formats, which whisper.cpp reads as they are (its matrix products work on the blocks).
//!
//! whisper.cpp gives every 2-D weight matrix the model's one weight type (the header's
//! `ftype`), and keeps positional embeddings f32 and convolutions f16; so exactly the f16
//! matrices are quantised, and `ftype` becomes the type plus 1000 × the quantisation version.
//! Each row is cut into blocks of 32 values, quantised as ggml's reference code does:
//! - `q8_0`: an f16 scale `d = max|x| / 127`, then 32 × `i8` of `round(x / d)` (34 bytes);
//! - `q5_0`: an f16 scale `d = m / -16` (`m` the value of largest magnitude), 4 bytes holding
//!   the fifth bit of each value, 16 bytes of low nibbles (22 bytes);
//! - `q4_0`: like q5_0 with `d = m / -8` and four bits only (18 bytes).

use std::io::Write;

use crate::ggml::{self, MAGIC};
use crate::{Error, Result};

/// ggml's block size for these formats.
const BLOCK: usize = 32;
/// `GGML_QNT_VERSION`: the block layouts here are version 2's.
const QNT_VERSION: i32 = 2;

/// A block format for the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quant {
    Q8_0,
    Q5_0,
    Q4_0,
}

impl Quant {
    pub const ALL: [Quant; 3] = [Quant::Q8_0, Quant::Q5_0, Quant::Q4_0];

    pub fn name(self) -> &'static str {
        match self {
            Quant::Q8_0 => "q8_0",
            Quant::Q5_0 => "q5_0",
            Quant::Q4_0 => "q4_0",
        }
    }

    /// ggml's tensor type.
    fn ggml_type(self) -> i32 {
        match self {
            Quant::Q8_0 => 8,
            Quant::Q5_0 => 6,
            Quant::Q4_0 => 2,
        }
    }

    /// ggml's file type (`GGML_FTYPE_MOSTLY_*`).
    fn ftype(self) -> i32 {
        match self {
            Quant::Q8_0 => 7,
            Quant::Q5_0 => 8,
            Quant::Q4_0 => 2,
        }
    }

    /// Appends the blocks of `row` (a multiple of 32 values).
    fn row(self, row: &[f32], out: &mut Vec<u8>) {
        for x in row.chunks_exact(BLOCK) {
            match self {
                Quant::Q8_0 => {
                    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let d = amax / 127.0;
                    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                    out.extend(half::f16::from_f32(d).to_le_bytes());
                    out.extend(x.iter().map(|v| (v * id).round() as i8 as u8));
                }
                Quant::Q5_0 | Quant::Q4_0 => {
                    let (levels, bits5) = match self {
                        Quant::Q5_0 => (16.0f32, true),
                        _ => (8.0, false),
                    };
                    let m = x
                        .iter()
                        .copied()
                        .fold(0.0f32, |m, v| if v.abs() > m.abs() { v } else { m });
                    let d = m / -levels;
                    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                    out.extend(half::f16::from_f32(d).to_le_bytes());
                    let max = (2.0 * levels - 1.0) as i32;
                    let q = |v: f32| ((v * id + levels + 0.5) as i8 as i32).min(max) as u8;
                    let mut qh: u32 = 0;
                    let mut qs = [0u8; BLOCK / 2];
                    for j in 0..BLOCK / 2 {
                        let (a, b) = (q(x[j]), q(x[BLOCK / 2 + j]));
                        qs[j] = (a & 0x0f) | ((b & 0x0f) << 4);
                        qh |= u32::from((a & 0x10) >> 4) << j;
                        qh |= u32::from((b & 0x10) >> 4) << (j + BLOCK / 2);
                    }
                    if bits5 {
                        out.extend(qh.to_le_bytes());
                    }
                    out.extend(qs);
                }
            }
        }
    }
}

impl std::str::FromStr for Quant {
    type Err = Error;

    fn from_str(s: &str) -> Result<Quant> {
        Quant::ALL
            .into_iter()
            .find(|q| q.name() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown quantisation {:?} (known: q8_0, q5_0, q4_0)",
                    roomtape_core::truncate_for_message(s)
                ))
            })
    }
}

/// What [`quantize`] did.
#[derive(Debug, Default)]
pub struct Stats {
    pub tensors: usize,
    pub quantized: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Rewrites the f16 ggml model `input` with its weight matrices in `q`.
pub fn quantize(input: &[u8], q: Quant, out: &mut impl Write) -> Result<Stats> {
    let info = ggml::check_bytes(input)?;
    if info.hparams.ftype != 1 {
        return Err(Error::Model(format!(
            "only f16 models can be quantised; this one has file type {}",
            info.hparams.ftype
        )));
    }
    let w = |e: std::io::Error| Error::Model(format!("writing the quantised model: {e}"));
    let i32_at = |pos: usize| i32::from_le_bytes(input[pos..pos + 4].try_into().unwrap());
    // Header: magic, 10 hyper-parameters, then the file type.
    out.write_all(&MAGIC.to_le_bytes()).map_err(w)?;
    out.write_all(&input[4..44]).map_err(w)?;
    out.write_all(&(q.ftype() + 1000 * QNT_VERSION).to_le_bytes())
        .map_err(w)?;
    // Mel filters and vocabulary, as they are.
    let mut pos = 48;
    let (mel_n, mel_fft) = (i32_at(pos) as usize, i32_at(pos + 4) as usize);
    pos += 8 + mel_n * mel_fft * 4;
    let n_tokens = i32_at(pos) as usize;
    pos += 4;
    for _ in 0..n_tokens {
        pos += 4 + i32_at(pos) as usize;
    }
    out.write_all(&input[48..pos]).map_err(w)?;
    let mut stats = Stats {
        bytes_in: input.len() as u64,
        bytes_out: pos as u64,
        ..Default::default()
    };
    let mut data = Vec::new();
    while pos < input.len() {
        let (n_dims, name_len, ty) = (i32_at(pos), i32_at(pos + 4), i32_at(pos + 8));
        let dims: Vec<usize> = (0..n_dims as usize)
            .map(|i| i32_at(pos + 12 + 4 * i) as usize)
            .collect();
        let head = 12 + 4 * n_dims as usize + name_len as usize;
        let elements: usize = dims.iter().product();
        let size = if ty == 0 { 4 * elements } else { 2 * elements };
        if ty > 1 {
            return Err(Error::Model(format!("tensor of type {ty} in an f16 model")));
        }
        let body = &input[pos + head..pos + head + size];
        stats.tensors += 1;
        if ty == 1 && n_dims == 2 && dims[0] > 0 && dims[0].is_multiple_of(BLOCK) {
            data.clear();
            let values: Vec<f32> = body
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect();
            for row in values.chunks_exact(dims[0]) {
                q.row(row, &mut data);
            }
            out.write_all(&input[pos..pos + 8]).map_err(w)?;
            out.write_all(&q.ggml_type().to_le_bytes()).map_err(w)?;
            out.write_all(&input[pos + 12..pos + head]).map_err(w)?;
            out.write_all(&data).map_err(w)?;
            stats.bytes_out += (head + data.len()) as u64;
            stats.quantized += 1;
        } else if ty == 1 && n_dims == 2 {
            return Err(Error::Model(format!(
                "a weight matrix with rows of {} values cannot be cut into blocks of {BLOCK}",
                dims[0]
            )));
        } else {
            out.write_all(&input[pos..pos + head + size]).map_err(w)?;
            stats.bytes_out += (head + size) as u64;
        }
        pos += head + size;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes blocks back to values, as ggml's reference dequantisation does.
    fn dequantize(q: Quant, bytes: &[u8]) -> Vec<f32> {
        let size = match q {
            Quant::Q8_0 => 34,
            Quant::Q5_0 => 22,
            Quant::Q4_0 => 18,
        };
        let mut out = Vec::new();
        for b in bytes.chunks_exact(size) {
            let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
            match q {
                Quant::Q8_0 => out.extend(b[2..].iter().map(|v| f32::from(*v as i8) * d)),
                Quant::Q5_0 => {
                    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                    let qs = &b[6..];
                    let mut lo = [0.0; 16];
                    let mut hi = [0.0; 16];
                    for j in 0..16 {
                        let h0 = ((qh >> j) & 1) << 4;
                        let h1 = ((qh >> (j + 16)) & 1) << 4;
                        lo[j] = (((u32::from(qs[j]) & 0x0f) | h0) as i32 - 16) as f32 * d;
                        hi[j] = (((u32::from(qs[j]) >> 4) | h1) as i32 - 16) as f32 * d;
                    }
                    out.extend(lo);
                    out.extend(hi);
                }
                Quant::Q4_0 => {
                    let qs = &b[2..];
                    out.extend((0..16).map(|j| ((qs[j] & 0x0f) as i32 - 8) as f32 * d));
                    out.extend((0..16).map(|j| ((qs[j] >> 4) as i32 - 8) as f32 * d));
                }
            }
        }
        out
    }

    #[test]
    fn each_format_round_trips_within_its_step() {
        // Values of mixed sign and scale, like weights, and a block of zeros.
        let x: Vec<f32> = (0..256)
            .map(|i| {
                let i = i as f32;
                if (64.0..96.0).contains(&i) {
                    0.0
                } else {
                    (i * 0.37).sin() * (1.0 + (i * 0.05).cos()) * 0.1
                }
            })
            .collect();
        // q8_0 rounds to the nearest step; q5_0 and q4_0 have one step less on the side
        // opposite the largest value, so that value may be off by a whole step.
        for (q, step) in [
            (Quant::Q8_0, 0.5 / 127.0),
            (Quant::Q5_0, 1.0 / 16.0),
            (Quant::Q4_0, 1.0 / 8.0),
        ] {
            let mut bytes = Vec::new();
            q.row(&x, &mut bytes);
            let y = dequantize(q, &bytes);
            assert_eq!(y.len(), x.len());
            for (bx, by) in x.chunks(BLOCK).zip(y.chunks(BLOCK)) {
                let amax = bx.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                // A little more for the f16 scale.
                let tolerance = amax * step * 1.01 + 1e-6;
                for (a, b) in bx.iter().zip(by) {
                    assert!((a - b).abs() <= tolerance, "{q:?}: {a} became {b}");
                }
            }
        }
    }

    #[test]
    fn names_parse_and_unknown_ones_are_refused() {
        assert_eq!("q5_0".parse::<Quant>().unwrap(), Quant::Q5_0);
        let e = "q3_k".parse::<Quant>().unwrap_err().to_string();
        assert!(e.contains("q8_0, q5_0, q4_0"), "{e}");
    }
}
