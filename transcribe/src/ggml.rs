//! whisper.cpp's ggml model format: conversion from CTranslate2 Whisper models, and a
//! structural check of any ggml file before whisper.cpp is asked to load it.
//!
//! ggml layout: `i32` magic `0x67676d6c`; 11 `i32` hyper-parameters (n_vocab, n_audio_ctx,
//! n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head,
//! n_text_layer, n_mels, ftype); mel filters (`i32 n_mels, i32 n_fft_bins`, f32 data); vocabulary
//! (`i32 count`, then `i32 len` + bytes per token); tensors (`i32 n_dims, i32 name_len,
//! i32 type`, dims innermost first, name, data).

use std::io::Write;
use std::path::Path;

use crate::ct2::{Ct2Model, DType, Var};
use crate::{Error, Result};

/// `ggml` in ASCII, as a little-endian `i32`.
pub const MAGIC: u32 = 0x6767_6d6c;
const FTYPE_F16: i32 = 1;
const TYPE_F32: i32 = 0;
const TYPE_F16: i32 = 1;

/// Whisper's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

impl Hparams {
    fn to_array(self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    /// A short description: `tiny.en-sized (4 layers, 384 wide, English-only)`.
    pub fn describe(&self) -> String {
        let size = match (self.n_audio_layer, self.n_audio_state) {
            (4, 384) => "tiny",
            (6, 512) => "base",
            (12, 768) => "small",
            (24, 1024) => "medium",
            (32, 1280) => "large",
            _ => "custom",
        };
        let lang = if self.n_vocab == 51864 {
            "English-only"
        } else {
            "multilingual"
        };
        format!(
            "{size} ({} layers, {} wide, {lang})",
            self.n_audio_layer, self.n_audio_state
        )
    }

    /// True for models that know only English.
    pub fn english_only(&self) -> bool {
        self.n_vocab == 51864
    }
}

/// The mel filterbank of Whisper's front end: Slaney-style mel scale and area normalisation
/// (librosa's defaults), 16 kHz, `n_fft` 400, `n_mels` bands; row-major `[n_mels][201]`.
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    const SR: f64 = 16_000.0;
    const N_FFT: usize = 400;
    let bins = N_FFT / 2 + 1;
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    let hz_to_mel = |hz: f64| {
        if hz >= min_log_hz {
            min_log_mel + (hz / min_log_hz).ln() / logstep
        } else {
            hz / f_sp
        }
    };
    let mel_to_hz = |mel: f64| {
        if mel >= min_log_mel {
            min_log_hz * (logstep * (mel - min_log_mel)).exp()
        } else {
            f_sp * mel
        }
    };
    let top = hz_to_mel(SR / 2.0);
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(top * i as f64 / (n_mels + 1) as f64))
        .collect();
    let fft_freqs: Vec<f64> = (0..bins).map(|k| k as f64 * SR / N_FFT as f64).collect();
    let mut w = vec![0f32; n_mels * bins];
    for m in 0..n_mels {
        let enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        let (d0, d1) = (mel_f[m + 1] - mel_f[m], mel_f[m + 2] - mel_f[m + 1]);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - mel_f[m]) / d0;
            let upper = (mel_f[m + 2] - f) / d1;
            w[m * bins + k] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    w
}

/// GPT-2's byte-level alphabet, inverted: the character a vocabulary file shows → the byte.
fn unicode_to_byte() -> std::collections::HashMap<char, u8> {
    let mut printable: Vec<u32> = (u32::from('!')..=u32::from('~'))
        .chain(0xa1..=0xac)
        .chain(0xae..=0xff)
        .collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    printable
        .into_iter()
        .zip(chars)
        .filter_map(|(b, c)| Some((char::from_u32(c)?, b as u8)))
        .collect()
}

/// The token bytes for ids below `<|endoftext|>`, from a CTranslate2 `vocabulary.txt`.
pub fn vocab_tokens(vocabulary: &str) -> Result<Vec<Vec<u8>>> {
    let table = unicode_to_byte();
    // Split on '\n' only: a token may be a lone '\r', and the file's empty line is a token too.
    let lines: Vec<&str> = vocabulary.split('\n').collect();
    let eot = lines
        .iter()
        .position(|l| *l == "<|endoftext|>")
        .ok_or_else(|| {
            Error::Model("vocabulary has no <|endoftext|>: not a Whisper vocabulary".into())
        })?;
    Ok(lines[..eot]
        .iter()
        .map(|tok| {
            let mut out = Vec::with_capacity(tok.len());
            for ch in tok.chars() {
                match table.get(&ch) {
                    Some(&b) => out.push(b),
                    None => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            out
        })
        .collect())
}

fn heads(m: &Ct2Model<'_>, name: &str) -> Result<i32> {
    m.need(name)?
        .scalar_int()
        .map(|h| h as i32)
        .ok_or_else(|| Error::Model(format!("{name} is not an integer")))
}

fn count_layers(m: &Ct2Model<'_>, prefix: &str) -> i32 {
    // `encoder/layer_N/...`, never `encoder/layer_norm/...`.
    let mut n = 0;
    while m
        .get(&format!("{prefix}/layer_{n}/ffn/linear_0/weight"))
        .is_some()
    {
        n += 1;
    }
    n
}

/// Reads the hyper-parameters of a CTranslate2 Whisper model from its tensor shapes.
pub fn hparams_of(m: &Ct2Model<'_>) -> Result<Hparams> {
    if m.spec != "WhisperSpec" {
        return Err(Error::Model(format!(
            "this is a CTranslate2 {:?} model, not a Whisper one",
            m.spec
        )));
    }
    let emb = m.need("decoder/embeddings/weight")?;
    let enc_pos = m.need("encoder/position_encodings/encodings")?;
    let dec_pos = m.need("decoder/position_encodings/encodings")?;
    let conv1 = m.need("encoder/conv1/weight")?;
    let shape = |v: &Var<'_>, rank: usize, what: &str| -> Result<Vec<usize>> {
        if v.dims.len() == rank {
            Ok(v.dims.clone())
        } else {
            Err(Error::Model(format!("{what} has shape {:?}", v.dims)))
        }
    };
    let e = shape(emb, 2, "decoder/embeddings/weight")?;
    let ep = shape(enc_pos, 2, "encoder/position_encodings/encodings")?;
    let dp = shape(dec_pos, 2, "decoder/position_encodings/encodings")?;
    let c1 = shape(conv1, 3, "encoder/conv1/weight")?;
    Ok(Hparams {
        n_vocab: e[0] as i32,
        n_audio_ctx: ep[0] as i32,
        n_audio_state: ep[1] as i32,
        n_audio_head: heads(m, "encoder/num_heads")?,
        n_audio_layer: count_layers(m, "encoder"),
        n_text_ctx: dp[0] as i32,
        n_text_state: dp[1] as i32,
        n_text_head: heads(m, "decoder/num_heads")?,
        n_text_layer: count_layers(m, "decoder"),
        n_mels: c1[1] as i32,
        ftype: FTYPE_F16,
    })
}

/// One tensor to write.
struct Out {
    name: String,
    /// PyTorch order (outermost first).
    dims: Vec<usize>,
    ty: i32,
    data: Vec<u8>,
}

fn f16_bytes(v: &Var<'_>, rows: std::ops::Range<usize>) -> Result<Vec<u8>> {
    let row = v.dims[1..].iter().product::<usize>();
    match v.dtype {
        DType::F16 => Ok(v.data[rows.start * row * 2..rows.end * row * 2].to_vec()),
        DType::F32 | DType::Bf16 => {
            let all = v.to_f32()?;
            Ok(all[rows.start * row..rows.end * row]
                .iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect())
        }
        DType::I8 => Err(Error::Model(
            "int8-quantized CTranslate2 weights are not supported; convert a float16 model".into(),
        )),
        other => Err(Error::Model(format!("unexpected weight type {other:?}"))),
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Converts a parsed CTranslate2 Whisper model and its vocabulary to ggml, written to `out`.
/// Returns the hyper-parameters.
pub fn convert(m: &Ct2Model<'_>, vocabulary: &str, out: &mut impl Write) -> Result<Hparams> {
    let hp = hparams_of(m)?;
    if hp.n_audio_layer == 0 || hp.n_text_layer == 0 {
        return Err(Error::Model("no encoder or decoder layers found".into()));
    }
    if let Some(target) = m.alias_of("decoder/projection/weight") {
        if target != "decoder/embeddings/weight" {
            return Err(Error::Model(format!(
                "the output projection is tied to {target}, not to the token embedding"
            )));
        }
    } else if m.get("decoder/projection/weight").is_some() {
        return Err(Error::Model(
            "the output projection is stored separately (untied); whisper.cpp needs it tied to the token embedding".into(),
        ));
    }
    let tokens = vocab_tokens(vocabulary)?;
    let w = |e: std::io::Error| Error::Model(format!("writing the ggml file: {e}"));
    out.write_all(&MAGIC.to_le_bytes()).map_err(w)?;
    for v in hp.to_array() {
        out.write_all(&v.to_le_bytes()).map_err(w)?;
    }
    let n_mels = hp.n_mels as usize;
    out.write_all(&(n_mels as i32).to_le_bytes()).map_err(w)?;
    out.write_all(&201i32.to_le_bytes()).map_err(w)?;
    out.write_all(&f32_bytes(&mel_filters(n_mels))).map_err(w)?;
    out.write_all(&(tokens.len() as i32).to_le_bytes())
        .map_err(w)?;
    for t in &tokens {
        out.write_all(&(t.len() as i32).to_le_bytes()).map_err(w)?;
        out.write_all(t).map_err(w)?;
    }
    for t in tensors(m, &hp)? {
        write_tensor(out, &t).map_err(w)?;
    }
    Ok(hp)
}

fn write_tensor(out: &mut impl Write, t: &Out) -> std::io::Result<()> {
    out.write_all(&(t.dims.len() as i32).to_le_bytes())?;
    out.write_all(&(t.name.len() as i32).to_le_bytes())?;
    out.write_all(&t.ty.to_le_bytes())?;
    for d in t.dims.iter().rev() {
        out.write_all(&(*d as i32).to_le_bytes())?;
    }
    out.write_all(t.name.as_bytes())?;
    out.write_all(&t.data)
}

/// Collects the output tensors from a CTranslate2 model.
struct Tensors<'m, 'a> {
    m: &'m Ct2Model<'a>,
    out: Vec<Out>,
}

impl Tensors<'_, '_> {
    /// An f16 matrix (or a slice of its rows), dims as stored.
    fn matrix(&mut self, src: &str, dst: &str, rows: Option<std::ops::Range<usize>>) -> Result<()> {
        let v = self.m.need(src)?;
        let rows = rows.unwrap_or(0..v.dims[0]);
        let mut dims = v.dims.clone();
        dims[0] = rows.len();
        self.out.push(Out {
            name: dst.to_string(),
            dims,
            ty: TYPE_F16,
            data: f16_bytes(v, rows)?,
        });
        Ok(())
    }

    /// An f32 vector (or a slice of it), optionally reshaped.
    fn vector(
        &mut self,
        src: &str,
        dst: &str,
        range: Option<std::ops::Range<usize>>,
        shape: Option<Vec<usize>>,
    ) -> Result<()> {
        let all = self.m.need(src)?.to_f32()?;
        let r = range.unwrap_or(0..all.len());
        self.out.push(Out {
            name: dst.to_string(),
            dims: shape.unwrap_or_else(|| vec![r.len()]),
            ty: TYPE_F32,
            data: f32_bytes(&all[r]),
        });
        Ok(())
    }

    /// A whole tensor as f32 (positional embeddings).
    fn f32_matrix(&mut self, src: &str, dst: &str) -> Result<()> {
        let v = self.m.need(src)?;
        self.out.push(Out {
            name: dst.to_string(),
            dims: v.dims.clone(),
            ty: TYPE_F32,
            data: f32_bytes(&v.to_f32()?),
        });
        Ok(())
    }

    /// A layer norm: gamma and beta become weight and bias.
    fn norm(&mut self, src: &str, dst: &str) -> Result<()> {
        self.vector(
            &format!("{src}/gamma"),
            &format!("{dst}.weight"),
            None,
            None,
        )?;
        self.vector(&format!("{src}/beta"), &format!("{dst}.bias"), None, None)
    }

    /// A linear layer: f16 weight, f32 bias.
    fn linear(&mut self, src: &str, dst: &str) -> Result<()> {
        self.matrix(&format!("{src}/weight"), &format!("{dst}.weight"), None)?;
        self.vector(&format!("{src}/bias"), &format!("{dst}.bias"), None, None)
    }

    /// whisper.cpp has no key bias; refuse a model that needs one.
    fn require_zero(&self, src: &str, range: std::ops::Range<usize>) -> Result<()> {
        let b = self.m.need(src)?.to_f32()?;
        if b[range].iter().any(|x| *x != 0.0) {
            return Err(Error::Model(format!(
                "{src}: the key projection has a non-zero bias, which whisper.cpp cannot represent"
            )));
        }
        Ok(())
    }

    /// `self_attention/linear_0` holds query, key and value stacked by rows; the key has no bias.
    fn self_attention(&mut self, s: &str, d: &str, n: usize) -> Result<()> {
        self.norm(
            &format!("{s}/self_attention/layer_norm"),
            &format!("{d}.attn_ln"),
        )?;
        let qkv = format!("{s}/self_attention/linear_0");
        self.require_zero(&format!("{qkv}/bias"), n..2 * n)?;
        self.matrix(
            &format!("{qkv}/weight"),
            &format!("{d}.attn.query.weight"),
            Some(0..n),
        )?;
        self.vector(
            &format!("{qkv}/bias"),
            &format!("{d}.attn.query.bias"),
            Some(0..n),
            None,
        )?;
        self.matrix(
            &format!("{qkv}/weight"),
            &format!("{d}.attn.key.weight"),
            Some(n..2 * n),
        )?;
        self.matrix(
            &format!("{qkv}/weight"),
            &format!("{d}.attn.value.weight"),
            Some(2 * n..3 * n),
        )?;
        self.vector(
            &format!("{qkv}/bias"),
            &format!("{d}.attn.value.bias"),
            Some(2 * n..3 * n),
            None,
        )?;
        self.linear(
            &format!("{s}/self_attention/linear_1"),
            &format!("{d}.attn.out"),
        )
    }

    /// The feed-forward block.
    fn mlp(&mut self, s: &str, d: &str) -> Result<()> {
        self.norm(&format!("{s}/ffn/layer_norm"), &format!("{d}.mlp_ln"))?;
        self.linear(&format!("{s}/ffn/linear_0"), &format!("{d}.mlp.0"))?;
        self.linear(&format!("{s}/ffn/linear_1"), &format!("{d}.mlp.2"))
    }
}

fn tensors(m: &Ct2Model<'_>, hp: &Hparams) -> Result<Vec<Out>> {
    let mut t = Tensors { m, out: Vec::new() };

    // Encoder.
    let a = hp.n_audio_state as usize;
    t.f32_matrix(
        "encoder/position_encodings/encodings",
        "encoder.positional_embedding",
    )?;
    for c in ["conv1", "conv2"] {
        t.matrix(
            &format!("encoder/{c}/weight"),
            &format!("encoder.{c}.weight"),
            None,
        )?;
        t.vector(
            &format!("encoder/{c}/bias"),
            &format!("encoder.{c}.bias"),
            None,
            Some(vec![a, 1]),
        )?;
    }
    for i in 0..hp.n_audio_layer {
        let (s, d) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
        t.self_attention(&s, &d, a)?;
        t.mlp(&s, &d)?;
    }
    t.norm("encoder/layer_norm", "encoder.ln_post")?;

    // Decoder.
    let n = hp.n_text_state as usize;
    t.f32_matrix(
        "decoder/position_encodings/encodings",
        "decoder.positional_embedding",
    )?;
    t.matrix(
        "decoder/embeddings/weight",
        "decoder.token_embedding.weight",
        None,
    )?;
    for i in 0..hp.n_text_layer {
        let (s, d) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
        t.self_attention(&s, &d, n)?;
        // Cross-attention: linear_0 is the query; linear_1 stacks key and value, and only the
        // value has a bias; linear_2 is the output.
        t.norm(
            &format!("{s}/attention/layer_norm"),
            &format!("{d}.cross_attn_ln"),
        )?;
        t.linear(
            &format!("{s}/attention/linear_0"),
            &format!("{d}.cross_attn.query"),
        )?;
        let kv = format!("{s}/attention/linear_1");
        t.require_zero(&format!("{kv}/bias"), 0..n)?;
        t.matrix(
            &format!("{kv}/weight"),
            &format!("{d}.cross_attn.key.weight"),
            Some(0..n),
        )?;
        t.matrix(
            &format!("{kv}/weight"),
            &format!("{d}.cross_attn.value.weight"),
            Some(n..2 * n),
        )?;
        t.vector(
            &format!("{kv}/bias"),
            &format!("{d}.cross_attn.value.bias"),
            Some(n..2 * n),
            None,
        )?;
        t.linear(
            &format!("{s}/attention/linear_2"),
            &format!("{d}.cross_attn.out"),
        )?;
        t.mlp(&s, &d)?;
    }
    t.norm("decoder/layer_norm", "decoder.ln")?;
    Ok(t.out)
}

/// What a structural check of a ggml file found.
#[derive(Clone, Debug)]
pub struct GgmlInfo {
    pub hparams: Hparams,
    pub tensors: usize,
    pub bytes: u64,
}

/// Checks that `path` is a complete whisper ggml model — magic, sane hyper-parameters, every
/// tensor present in full — so that a bad file gets a clear error instead of a crash deep in
/// whisper.cpp.
pub fn check_file(path: &Path) -> Result<GgmlInfo> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    check_bytes(&bytes).map_err(|e| match e {
        Error::Model(m) => Error::Model(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// [`check_file`] on bytes.
pub fn check_bytes(b: &[u8]) -> Result<GgmlInfo> {
    let mut pos = 0usize;
    let i32_at = |pos: &mut usize| -> Result<i32> {
        let s = b.get(*pos..*pos + 4).ok_or_else(|| {
            Error::Model(format!(
                "truncated: the file ends at byte {} inside the header",
                b.len()
            ))
        })?;
        *pos += 4;
        Ok(i32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let magic = i32_at(&mut pos)? as u32;
    if magic != MAGIC {
        return Err(Error::Model(format!(
            "not a whisper.cpp ggml model (magic 0x{magic:08x}, expected 0x{MAGIC:08x})"
        )));
    }
    let mut h = [0i32; 11];
    for v in &mut h {
        *v = i32_at(&mut pos)?;
    }
    let hp = Hparams {
        n_vocab: h[0],
        n_audio_ctx: h[1],
        n_audio_state: h[2],
        n_audio_head: h[3],
        n_audio_layer: h[4],
        n_text_ctx: h[5],
        n_text_state: h[6],
        n_text_head: h[7],
        n_text_layer: h[8],
        n_mels: h[9],
        ftype: h[10],
    };
    let sane = |v: i32, max: i32| v > 0 && v <= max;
    if !(sane(hp.n_vocab, 100_000)
        && sane(hp.n_audio_ctx, 10_000)
        && sane(hp.n_audio_state, 10_000)
        && sane(hp.n_audio_head, 256)
        && sane(hp.n_audio_layer, 256)
        && sane(hp.n_text_ctx, 10_000)
        && sane(hp.n_text_state, 10_000)
        && sane(hp.n_text_head, 256)
        && sane(hp.n_text_layer, 256)
        && sane(hp.n_mels, 512))
    {
        return Err(Error::Model(format!("implausible hyper-parameters {h:?}")));
    }
    let mel_n = i32_at(&mut pos)?;
    let mel_fft = i32_at(&mut pos)?;
    if mel_n != hp.n_mels || !(1..=4096).contains(&mel_fft) {
        return Err(Error::Model("bad mel filter header".into()));
    }
    pos += (mel_n * mel_fft * 4) as usize;
    let n_tokens = i32_at(&mut pos)?;
    if !(0..=hp.n_vocab).contains(&n_tokens) {
        return Err(Error::Model(format!("bad vocabulary size {n_tokens}")));
    }
    for _ in 0..n_tokens {
        let len = i32_at(&mut pos)?;
        if !(0..=1024).contains(&len) {
            return Err(Error::Model(format!("bad token length {len}")));
        }
        pos += len as usize;
    }
    let mut tensors = 0;
    while pos < b.len() {
        let n_dims = i32_at(&mut pos)?;
        let name_len = i32_at(&mut pos)?;
        let ty = i32_at(&mut pos)?;
        if !(1..=4).contains(&n_dims) || !(1..=256).contains(&name_len) {
            return Err(Error::Model(format!(
                "corrupt tensor header at byte {}",
                pos - 12
            )));
        }
        let mut elements: u64 = 1;
        for _ in 0..n_dims {
            let d = i32_at(&mut pos)?;
            if d <= 0 {
                return Err(Error::Model(format!(
                    "corrupt tensor shape at byte {}",
                    pos - 4
                )));
            }
            elements *= d as u64;
        }
        let name = b
            .get(pos..pos + name_len as usize)
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .ok_or_else(|| Error::Model("truncated inside a tensor name".into()))?;
        pos += name_len as usize;
        let size = tensor_bytes(ty, elements)
            .ok_or_else(|| Error::Model(format!("tensor {name} has unknown type {ty}")))?;
        if pos as u64 + size > b.len() as u64 {
            return Err(Error::Model(format!(
                "truncated: tensor {name} needs {size} bytes but the file ends {} bytes later",
                b.len() - pos
            )));
        }
        pos += size as usize;
        tensors += 1;
    }
    // Encoder: positions, two convolutions, 15 per layer, final norm; decoder: positions, token
    // embedding, 24 per layer, final norm.
    let expected = 5 + hp.n_audio_layer as usize * 15 + 2 + 2 + hp.n_text_layer as usize * 24 + 2;
    if tensors < expected {
        return Err(Error::Model(format!(
            "truncated: {tensors} tensors, a model of this size has {expected}"
        )));
    }
    Ok(GgmlInfo {
        hparams: hp,
        tensors,
        bytes: b.len() as u64,
    })
}

/// Bytes of `elements` values of ggml type `ty` (f32, f16 and the common quantisations).
fn tensor_bytes(ty: i32, elements: u64) -> Option<u64> {
    let (block, bytes) = match ty {
        0 => (1, 4),
        1 => (1, 2),
        2 => (32, 18), // q4_0
        3 => (32, 20), // q4_1
        6 => (32, 22), // q5_0
        7 => (32, 24), // q5_1
        8 => (32, 34), // q8_0
        _ => return None,
    };
    Some(elements.div_ceil(block) * bytes)
}
