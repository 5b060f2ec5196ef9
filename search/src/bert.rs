//! A BERT encoder (the architecture of all-MiniLM-L6-v2), inference only, on `f32` weights read
//! from a safetensors file. Written out rather than taken from a tensor framework: the whole
//! model is a handful of matrix products, layer norms and a softmax, and a framework (candle)
//! cost minutes of build time on every clean build for what is 200 lines here.
//!
//! The tokens of every text of a batch are stacked into one matrix, so the position-wise layers
//! (every matrix product with a weight, nearly all the work) run as one product with no padding;
//! attention, the only part that mixes tokens, runs text by text.

use std::collections::HashMap;

use ndarray::{Array1, Array2, ArrayView2, Axis, s};
use serde::Deserialize;

/// The settings of `config.json` that the encoder needs.
#[derive(Clone, Debug, Deserialize)]
pub struct Config {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f32,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_eps() -> f32 {
    1e-12
}

fn default_act() -> String {
    "gelu".into()
}

struct Linear {
    /// `in × out`: the checkpoint's `out × in` transposed once at load.
    w: Array2<f32>,
    b: Array1<f32>,
}

impl Linear {
    fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        x.dot(&self.w) + &self.b
    }
}

struct Norm {
    gamma: Array1<f32>,
    beta: Array1<f32>,
    eps: f32,
}

impl Norm {
    /// Each row to mean 0 and variance 1, then scaled and shifted.
    fn apply(&self, x: &mut Array2<f32>) {
        for mut row in x.rows_mut() {
            let n = row.len() as f32;
            let mean = row.sum() / n;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
            let inv = 1.0 / (var + self.eps).sqrt();
            for (v, (g, b)) in row.iter_mut().zip(self.gamma.iter().zip(&self.beta)) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// The encoder.
pub struct Bert {
    config: Config,
    words: Array2<f32>,
    positions: Array2<f32>,
    token_type: Array1<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

impl Bert {
    /// The model from a safetensors file's bytes (names as Hugging Face's `BertModel` saves them,
    /// with or without a `bert.` prefix).
    pub fn from_safetensors(bytes: &[u8], config: Config) -> Result<Bert, String> {
        if config.hidden_act != "gelu" {
            return Err(format!(
                "activation {:?} (gelu expected)",
                config.hidden_act
            ));
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err("hidden size not a multiple of the attention heads".into());
        }
        let tensors = Tensors::parse(bytes)?;
        let h = config.hidden_size;
        let norm = |name: &str| -> Result<Norm, String> {
            Ok(Norm {
                gamma: tensors.vector(&format!("{name}.weight"), h)?,
                beta: tensors.vector(&format!("{name}.bias"), h)?,
                eps: config.layer_norm_eps,
            })
        };
        let linear = |name: &str, inn: usize, out: usize| -> Result<Linear, String> {
            Ok(Linear {
                w: tensors
                    .matrix(&format!("{name}.weight"), out, inn)?
                    .reversed_axes()
                    .as_standard_layout()
                    .into_owned(),
                b: tensors.vector(&format!("{name}.bias"), out)?,
            })
        };
        let (i, n) = (config.intermediate_size, config.num_hidden_layers);
        let layers = (0..n)
            .map(|l| {
                let p = format!("encoder.layer.{l}");
                Ok(Layer {
                    query: linear(&format!("{p}.attention.self.query"), h, h)?,
                    key: linear(&format!("{p}.attention.self.key"), h, h)?,
                    value: linear(&format!("{p}.attention.self.value"), h, h)?,
                    attention_out: linear(&format!("{p}.attention.output.dense"), h, h)?,
                    attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                    intermediate: linear(&format!("{p}.intermediate.dense"), h, i)?,
                    output: linear(&format!("{p}.output.dense"), i, h)?,
                    output_norm: norm(&format!("{p}.output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let words = tensors.rows("embeddings.word_embeddings.weight", h)?;
        let positions = tensors.matrix(
            "embeddings.position_embeddings.weight",
            config.max_position_embeddings,
            h,
        )?;
        // Every token is of type 0 (one text, no second segment).
        let token_type = tensors
            .rows("embeddings.token_type_embeddings.weight", h)?
            .row(0)
            .to_owned();
        Ok(Bert {
            words,
            positions,
            token_type,
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
            config,
        })
    }

    /// The longest text, in tokens, the position embeddings allow.
    pub fn max_tokens(&self) -> usize {
        self.config.max_position_embeddings
    }

    /// The mean of each text's last hidden states (`texts` are token ids, each at most
    /// [`Bert::max_tokens`] long and not empty), one row a text.
    pub fn mean_pooled(&self, texts: &[&[u32]]) -> Result<Vec<Vec<f32>>, String> {
        let h = self.config.hidden_size;
        let total: usize = texts.iter().map(|t| t.len()).sum();
        let mut x = Array2::<f32>::zeros((total, h));
        let mut spans = Vec::with_capacity(texts.len());
        let mut at = 0;
        for ids in texts {
            if ids.is_empty() || ids.len() > self.max_tokens() {
                return Err(format!("a text of {} tokens", ids.len()));
            }
            for (p, &id) in ids.iter().enumerate() {
                let id = id as usize;
                if id >= self.words.nrows() {
                    return Err(format!("token {id} outside the vocabulary"));
                }
                let mut row = x.row_mut(at + p);
                row += &self.words.row(id);
                row += &self.positions.row(p);
                row += &self.token_type;
            }
            spans.push((at, at + ids.len()));
            at += ids.len();
        }
        self.embedding_norm.apply(&mut x);
        for layer in &self.layers {
            x = self.layer(layer, x, &spans);
        }
        Ok(spans
            .iter()
            .map(|&(a, b)| {
                x.slice(s![a..b, ..])
                    .mean_axis(Axis(0))
                    .map(|m| m.to_vec())
                    .unwrap_or_else(|| vec![0.0; h])
            })
            .collect())
    }

    fn layer(&self, l: &Layer, x: Array2<f32>, spans: &[(usize, usize)]) -> Array2<f32> {
        let heads = self.config.num_attention_heads;
        let d = self.config.hidden_size / heads;
        let scale = 1.0 / (d as f32).sqrt();
        let (q, k, v) = (
            l.query.forward(x.view()),
            l.key.forward(x.view()),
            l.value.forward(x.view()),
        );
        let mut context = Array2::<f32>::zeros(x.raw_dim());
        for &(a, b) in spans {
            for head in 0..heads {
                let cols = head * d..(head + 1) * d;
                let qh = q.slice(s![a..b, cols.clone()]);
                let kh = k.slice(s![a..b, cols.clone()]);
                let vh = v.slice(s![a..b, cols.clone()]);
                let mut scores = qh.dot(&kh.t());
                for mut row in scores.rows_mut() {
                    softmax(
                        row.as_slice_mut().expect("a fresh matrix is contiguous"),
                        scale,
                    );
                }
                context.slice_mut(s![a..b, cols]).assign(&scores.dot(&vh));
            }
        }
        let mut attended = l.attention_out.forward(context.view()) + &x;
        l.attention_norm.apply(&mut attended);
        let mut inner = l.intermediate.forward(attended.view());
        inner.mapv_inplace(gelu);
        let mut out = l.output.forward(inner.view()) + &attended;
        l.output_norm.apply(&mut out);
        out
    }
}

/// `row * scale` turned into probabilities, in place.
fn softmax(row: &mut [f32], scale: f32) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * scale));
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v * scale - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// BERT's GELU, `x · Φ(x)` with the error function (not the tanh approximation).
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2))
}

/// The error function, from Numerical Recipes' Chebyshev fit of erfc (fractional error under
/// 1.2e-7 everywhere), computed in f64.
fn erf(x: f32) -> f32 {
    let x = f64::from(x);
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let y = t
        * (-x * x - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    (if x >= 0.0 { 1.0 - y } else { y - 1.0 }) as f32
}

/// The `F32` tensors of a safetensors file, by name.
struct Tensors<'a> {
    header: HashMap<String, Entry>,
    data: &'a [u8],
}

#[derive(Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

impl<'a> Tensors<'a> {
    /// An 8-byte little-endian header length, the JSON header, then the data.
    fn parse(bytes: &'a [u8]) -> Result<Tensors<'a>, String> {
        let len = bytes
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
            .ok_or("not a safetensors file (too short)")?;
        let head = bytes
            .get(8..8usize.saturating_add(len))
            .ok_or("not a safetensors file (header past the end)")?;
        let mut raw: HashMap<String, serde_json::Value> =
            serde_json::from_slice(head).map_err(|e| format!("safetensors header: {e}"))?;
        raw.remove("__metadata__");
        let header = raw
            .into_iter()
            .map(|(k, v)| {
                serde_json::from_value::<Entry>(v)
                    .map(|e| (k.strip_prefix("bert.").unwrap_or(&k).to_string(), e))
                    .map_err(|e| format!("safetensors header: {e}"))
            })
            .collect::<Result<_, String>>()?;
        Ok(Tensors {
            header,
            data: &bytes[8 + len..],
        })
    }

    fn floats(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
        let e = self
            .header
            .get(name)
            .ok_or_else(|| format!("no tensor {name}"))?;
        if e.dtype != "F32" || e.shape != shape {
            return Err(format!(
                "{name} is {} {:?}; F32 {shape:?} expected",
                e.dtype, e.shape
            ));
        }
        let (a, b) = e.data_offsets;
        let bytes = self
            .data
            .get(a..b)
            .filter(|d| d.len() == shape.iter().product::<usize>() * 4)
            .ok_or_else(|| format!("{name}: its data is not where the header says"))?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn vector(&self, name: &str, n: usize) -> Result<Array1<f32>, String> {
        Ok(Array1::from(self.floats(name, &[n])?))
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Array2<f32>, String> {
        Array2::from_shape_vec((rows, cols), self.floats(name, &[rows, cols])?)
            .map_err(|e| format!("{name}: {e}"))
    }

    /// A matrix of `cols` columns and as many rows as the file has.
    fn rows(&self, name: &str, cols: usize) -> Result<Array2<f32>, String> {
        let rows = self
            .header
            .get(name)
            .and_then(|e| e.shape.first().copied())
            .ok_or_else(|| format!("no tensor {name}"))?;
        self.matrix(name, rows, cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_and_gelu_are_right() {
        // erf(0.5), erf(1), erf(2) to 7 places.
        for (x, want) in [(0.5, 0.520_499_9), (1.0, 0.842_700_8), (2.0, 0.995_322_3)] {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + want).abs() < 2e-7);
        }
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert_eq!(gelu(0.0), 0.0);
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_scores() {
        let mut r = [1000.0, 1001.0, 999.0];
        softmax(&mut r, 1.0);
        assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(r[1] > r[0] && r[0] > r[2]);
    }

    #[test]
    fn a_broken_file_is_an_error_not_a_panic() {
        let cfg: Config = serde_json::from_str(
            r#"{"hidden_size":4,"num_hidden_layers":1,"num_attention_heads":2,
                "intermediate_size":8,"max_position_embeddings":8}"#,
        )
        .unwrap();
        for bytes in [
            &b""[..],
            b"\xff\xff\xff\xff\xff\xff\xff\x7f{}",
            b"\x02\0\0\0\0\0\0\0{}",
        ] {
            assert!(Bert::from_safetensors(bytes, cfg.clone()).is_err());
        }
    }
}
