//! The CTranslate2 → ggml converter on a tiny synthetic model whose every byte is known, the
//! mel filterbank against Whisper's own `mel_filters.npz`, and the refusals.

use std::collections::HashMap;

use roomtape_transcribe::ct2::Ct2Model;
use roomtape_transcribe::ggml::{self, MAGIC, check_bytes, mel_filters};

const D: usize = 4; // model width
const FF: usize = 8; // feed-forward width
const MELS: usize = 3;
const VOCAB: usize = 6;

/// A CTranslate2 `model.bin` writer for tests.
struct Ct2 {
    vars: Vec<(String, Vec<u32>, u8, Vec<u8>)>,
    aliases: Vec<(String, String)>,
    spec: String,
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

impl Ct2 {
    fn whisper() -> Self {
        let mut m = Ct2 {
            vars: Vec::new(),
            aliases: vec![(
                "decoder/projection/weight".into(),
                "decoder/embeddings/weight".into(),
            )],
            spec: "WhisperSpec".into(),
        };
        let mut k = 0u32;
        let mut f16 = |m: &mut Ct2, name: &str, dims: &[u32]| {
            let n: u32 = dims.iter().product();
            let data: Vec<u8> = (0..n)
                .flat_map(|_| {
                    k += 1;
                    half::f16::from_f32(k as f32 / 64.0).to_le_bytes()
                })
                .collect();
            m.vars.push((name.into(), dims.to_vec(), 4, data));
        };
        let (d, ff) = (D as u32, FF as u32);
        f16(&mut m, "encoder/conv1/weight", &[d, MELS as u32, 3]);
        f16(&mut m, "encoder/conv1/bias", &[d]);
        f16(&mut m, "encoder/conv2/weight", &[d, d, 3]);
        f16(&mut m, "encoder/conv2/bias", &[d]);
        f16(&mut m, "encoder/position_encodings/encodings", &[6, d]);
        f16(&mut m, "decoder/position_encodings/encodings", &[5, d]);
        f16(&mut m, "decoder/embeddings/weight", &[VOCAB as u32, d]);
        for side in ["encoder", "decoder"] {
            let l = format!("{side}/layer_0");
            for norm in ["self_attention/layer_norm", "ffn/layer_norm"] {
                f16(&mut m, &format!("{l}/{norm}/gamma"), &[d]);
                f16(&mut m, &format!("{l}/{norm}/beta"), &[d]);
            }
            f16(
                &mut m,
                &format!("{l}/self_attention/linear_0/weight"),
                &[3 * d, d],
            );
            f16(
                &mut m,
                &format!("{l}/self_attention/linear_0/bias"),
                &[3 * d],
            );
            f16(
                &mut m,
                &format!("{l}/self_attention/linear_1/weight"),
                &[d, d],
            );
            f16(&mut m, &format!("{l}/self_attention/linear_1/bias"), &[d]);
            f16(&mut m, &format!("{l}/ffn/linear_0/weight"), &[ff, d]);
            f16(&mut m, &format!("{l}/ffn/linear_0/bias"), &[ff]);
            f16(&mut m, &format!("{l}/ffn/linear_1/weight"), &[d, ff]);
            f16(&mut m, &format!("{l}/ffn/linear_1/bias"), &[d]);
            f16(&mut m, &format!("{side}/layer_norm/gamma"), &[d]);
            f16(&mut m, &format!("{side}/layer_norm/beta"), &[d]);
            m.vars.push((
                format!("{side}/num_heads"),
                vec![],
                2,
                2u16.to_le_bytes().to_vec(),
            ));
        }
        let l = "decoder/layer_0/attention";
        f16(&mut m, &format!("{l}/layer_norm/gamma"), &[d]);
        f16(&mut m, &format!("{l}/layer_norm/beta"), &[d]);
        f16(&mut m, &format!("{l}/linear_0/weight"), &[d, d]);
        f16(&mut m, &format!("{l}/linear_0/bias"), &[d]);
        f16(&mut m, &format!("{l}/linear_1/weight"), &[2 * d, d]);
        f16(&mut m, &format!("{l}/linear_1/bias"), &[2 * d]);
        f16(&mut m, &format!("{l}/linear_2/weight"), &[d, d]);
        f16(&mut m, &format!("{l}/linear_2/bias"), &[d]);
        // Key biases are zero, as in real Whisper models.
        m.set_zero("encoder/layer_0/self_attention/linear_0/bias", D..2 * D);
        m.set_zero("decoder/layer_0/self_attention/linear_0/bias", D..2 * D);
        m.set_zero("decoder/layer_0/attention/linear_1/bias", 0..D);
        m
    }

    fn set_zero(&mut self, name: &str, range: std::ops::Range<usize>) {
        let v = self.vars.iter_mut().find(|v| v.0 == name).unwrap();
        for i in range {
            v.3[i * 2] = 0;
            v.3[i * 2 + 1] = 0;
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&6u32.to_le_bytes());
        string(&mut out, &self.spec);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.vars.len() as u32).to_le_bytes());
        for (name, dims, dtype, data) in &self.vars {
            string(&mut out, name);
            out.push(dims.len() as u8);
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.push(*dtype);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
        for (a, b) in &self.aliases {
            string(&mut out, a);
            string(&mut out, b);
        }
        out
    }

    fn var(&self, name: &str) -> &[u8] {
        &self.vars.iter().find(|v| v.0 == name).unwrap().3
    }
}

/// GPT-2 byte-level spelling: "Ġ" is a space, "Ċ" a newline; the empty line is a token too.
const VOCABULARY: &str = "a\nĠc\nĊ\n\n<|endoftext|>\n<|startoftranscript|>";

struct Tensor {
    dims: Vec<i32>,
    ty: i32,
    data: Vec<u8>,
}

/// A ggml file read back: hyperparameters, mel filters, vocabulary, tensors by name.
type Ggml = ([i32; 11], Vec<f32>, Vec<Vec<u8>>, HashMap<String, Tensor>);

/// Parses our ggml output back.
fn parse(b: &[u8]) -> Ggml {
    let mut pos = 0;
    let i32_ = |pos: &mut usize| {
        let v = i32::from_le_bytes(b[*pos..*pos + 4].try_into().unwrap());
        *pos += 4;
        v
    };
    assert_eq!(i32_(&mut pos) as u32, MAGIC);
    let mut hp = [0; 11];
    for h in &mut hp {
        *h = i32_(&mut pos);
    }
    let (n, f) = (i32_(&mut pos) as usize, i32_(&mut pos) as usize);
    let mel = b[pos..pos + n * f * 4]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    pos += n * f * 4;
    let count = i32_(&mut pos);
    let mut vocab = Vec::new();
    for _ in 0..count {
        let len = i32_(&mut pos) as usize;
        vocab.push(b[pos..pos + len].to_vec());
        pos += len;
    }
    let mut tensors = HashMap::new();
    while pos < b.len() {
        let nd = i32_(&mut pos);
        let nl = i32_(&mut pos) as usize;
        let ty = i32_(&mut pos);
        let dims: Vec<i32> = (0..nd).map(|_| i32_(&mut pos)).collect();
        let name = String::from_utf8(b[pos..pos + nl].to_vec()).unwrap();
        pos += nl;
        let size = dims.iter().product::<i32>() as usize * if ty == 0 { 4 } else { 2 };
        tensors.insert(
            name,
            Tensor {
                dims,
                ty,
                data: b[pos..pos + size].to_vec(),
            },
        );
        pos += size;
    }
    (hp, mel, vocab, tensors)
}

fn f16_to_f32_bytes(b: &[u8]) -> Vec<u8> {
    b.chunks_exact(2)
        .flat_map(|c| {
            half::f16::from_le_bytes([c[0], c[1]])
                .to_f32()
                .to_le_bytes()
        })
        .collect()
}

#[test]
fn a_synthetic_model_converts_to_the_expected_ggml() {
    let src = Ct2::whisper();
    let bytes = src.bytes();
    let model = Ct2Model::parse(&bytes).unwrap();
    let mut out = Vec::new();
    let hp = ggml::convert(&model, VOCABULARY, &mut out).unwrap();
    let (h, mel, vocab, t) = parse(&out);
    assert_eq!(
        h,
        [
            VOCAB as i32,
            6,
            D as i32,
            2,
            1,
            5,
            D as i32,
            2,
            1,
            MELS as i32,
            1
        ]
    );
    assert_eq!(hp.n_audio_layer, 1);
    assert_eq!(mel, mel_filters(MELS));
    assert_eq!(
        vocab,
        vec![b"a".to_vec(), b" c".to_vec(), b"\n".to_vec(), Vec::new()]
    );
    assert_eq!(t.len(), 11 + 15 + 24, "every tensor of a 1+1-layer model");

    // Query, key and value are the row thirds of linear_0; the key has no bias.
    let qkv = src.var("encoder/layer_0/self_attention/linear_0/weight");
    let row = D * 2;
    let k = &t["encoder.blocks.0.attn.key.weight"];
    assert_eq!((k.ty, k.dims.clone()), (1, vec![D as i32, D as i32]));
    assert_eq!(k.data, &qkv[D * row..2 * D * row]);
    assert_eq!(
        t["encoder.blocks.0.attn.value.weight"].data,
        &qkv[2 * D * row..]
    );
    assert!(!t.contains_key("encoder.blocks.0.attn.key.bias"));
    let qkv_b = src.var("encoder/layer_0/self_attention/linear_0/bias");
    assert_eq!(
        t["encoder.blocks.0.attn.value.bias"].data,
        f16_to_f32_bytes(&qkv_b[2 * D * 2..])
    );
    // Cross-attention: linear_1 stacks key and value; only the value keeps a bias.
    let kv = src.var("decoder/layer_0/attention/linear_1/weight");
    assert_eq!(
        t["decoder.blocks.0.cross_attn.key.weight"].data,
        &kv[..D * row]
    );
    assert_eq!(
        t["decoder.blocks.0.cross_attn.value.weight"].data,
        &kv[D * row..]
    );
    assert!(!t.contains_key("decoder.blocks.0.cross_attn.key.bias"));
    // Convolutions keep f16 weights with dims reversed; biases become f32 [n, 1].
    let c1 = &t["encoder.conv1.weight"];
    assert_eq!(
        (c1.ty, c1.dims.clone()),
        (1, vec![3, MELS as i32, D as i32])
    );
    assert_eq!(c1.data, src.var("encoder/conv1/weight"));
    let b1 = &t["encoder.conv1.bias"];
    assert_eq!((b1.ty, b1.dims.clone()), (0, vec![1, D as i32]));
    assert_eq!(b1.data, f16_to_f32_bytes(src.var("encoder/conv1/bias")));
    // Positional embeddings are f32; layer norms map gamma/beta to weight/bias.
    let pe = &t["encoder.positional_embedding"];
    assert_eq!((pe.ty, pe.dims.clone()), (0, vec![D as i32, 6]));
    assert_eq!(
        t["decoder.ln.weight"].data,
        f16_to_f32_bytes(src.var("decoder/layer_norm/gamma"))
    );
    assert_eq!(
        t["encoder.ln_post.bias"].data,
        f16_to_f32_bytes(src.var("encoder/layer_norm/beta"))
    );
    assert_eq!(
        t["decoder.token_embedding.weight"].data,
        src.var("decoder/embeddings/weight")
    );
    assert_eq!(
        t["decoder.blocks.0.mlp.2.weight"].data,
        src.var("decoder/layer_0/ffn/linear_1/weight")
    );
    // And the structural check accepts it.
    assert_eq!(check_bytes(&out).unwrap().tensors, 50);
}

#[test]
fn mel_filters_match_whispers_own() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/mel80_rows.json")).unwrap();
    let ours = mel_filters(80);
    for (row, values) in fixture["rows"].as_object().unwrap() {
        let r: usize = row.parse().unwrap();
        for (k, v) in values.as_array().unwrap().iter().enumerate() {
            let want = v.as_f64().unwrap() as f32;
            let got = ours[r * 201 + k];
            assert!(
                (got - want).abs() <= 2e-9,
                "mel[{r}][{k}] = {got}, Whisper has {want}"
            );
        }
    }
}

#[test]
fn non_whisper_models_are_refused_clearly() {
    let err = |bytes: &[u8]| -> String {
        match Ct2Model::parse(bytes) {
            Err(e) => e.to_string(),
            Ok(m) => ggml::convert(&m, VOCABULARY, &mut Vec::new())
                .unwrap_err()
                .to_string(),
        }
    };
    assert!(err(b"hello, this is not a model").contains("not a CTranslate2 model"));
    let good = Ct2::whisper().bytes();
    assert!(err(&good[..good.len() / 2]).contains("ends early"));

    let mut other = Ct2::whisper();
    other.spec = "TransformerSpec".into();
    assert!(err(&other.bytes()).contains("not a Whisper one"));

    let mut untied = Ct2::whisper();
    untied.aliases.clear();
    let emb = untied.var("decoder/embeddings/weight").to_vec();
    untied.vars.push((
        "decoder/projection/weight".into(),
        vec![VOCAB as u32, D as u32],
        4,
        emb,
    ));
    assert!(err(&untied.bytes()).contains("untied"));

    let mut biased = Ct2::whisper();
    let v = biased
        .vars
        .iter_mut()
        .find(|v| v.0 == "encoder/layer_0/self_attention/linear_0/bias")
        .unwrap();
    v.3[D * 2..D * 2 + 2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
    assert!(err(&biased.bytes()).contains("non-zero bias"));

    let model = Ct2Model::parse(&good).unwrap();
    let no_eot = ggml::convert(&model, "a\nb\n", &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(no_eot.contains("endoftext"), "{no_eot}");
}

#[test]
fn broken_ggml_files_are_named_before_whisper_sees_them() {
    let model_bytes = Ct2::whisper().bytes();
    let model = Ct2Model::parse(&model_bytes).unwrap();
    let mut out = Vec::new();
    ggml::convert(&model, VOCABULARY, &mut out).unwrap();
    let cut = check_bytes(&out[..out.len() - 10]).unwrap_err().to_string();
    assert!(cut.contains("truncated"), "{cut}");
    let cut = check_bytes(&out[..30]).unwrap_err().to_string();
    assert!(cut.contains("truncated"), "{cut}");
    let junk = check_bytes(b"GIF89a not a model at all")
        .unwrap_err()
        .to_string();
    assert!(junk.contains("not a whisper.cpp ggml model"), "{junk}");
}
