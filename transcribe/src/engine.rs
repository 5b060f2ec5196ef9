//! whisper.cpp through whisper-rs: one context per process, loaded once; a state per job.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use crate::ggml::{self, Hparams};
use crate::{Error, Result};

/// A loaded model.
pub struct Engine {
    ctx: WhisperContext,
    name: String,
    hparams: Hparams,
    threads: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("name", &self.name)
            .field("hparams", &self.hparams)
            .field("threads", &self.threads)
            .finish()
    }
}

/// One word as Whisper timed it, relative to the window.
#[derive(Clone, Debug, PartialEq)]
pub struct RawWord {
    pub text: String,
    pub t0_ms: i64,
    pub t1_ms: i64,
    pub p: f32,
}

/// One segment as Whisper returned it, relative to the window.
#[derive(Clone, Debug, PartialEq)]
pub struct RawSegment {
    pub t0_ms: i64,
    pub t1_ms: i64,
    pub text: String,
    pub words: Vec<RawWord>,
    pub no_speech: f32,
    pub language: Option<String>,
}

/// How to decode one window.
#[derive(Debug)]
pub struct WindowRequest<'a> {
    /// 16 kHz mono, at most 30 s.
    pub audio: &'a [f32],
    /// A Whisper language code, or `auto` to detect.
    pub language: &'a str,
    /// Names and terms that help spelling (room title, speaker names).
    pub prompt: &'a str,
    /// Set to stop decoding early.
    pub abort: &'a Arc<AtomicBool>,
}

impl Engine {
    /// Checks and loads a ggml model. `threads` 0 means one per core.
    pub fn load(path: &Path, name: &str, threads: usize) -> Result<Engine> {
        let info = ggml::check_file(path)?;
        whisper_rs::install_logging_hooks();
        let path_str = path
            .to_str()
            .ok_or_else(|| Error::Model(format!("{}: path is not UTF-8", path.display())))?;
        let params = WhisperContextParameters {
            use_gpu: false,
            ..Default::default()
        };
        let ctx = WhisperContext::new_with_params(path_str, params).map_err(|e| {
            Error::Model(format!(
                "{}: whisper.cpp could not load it: {e}",
                path.display()
            ))
        })?;
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        Ok(Engine {
            ctx,
            name: name.to_string(),
            hparams: info.hparams,
            threads,
        })
    }

    /// The model's name (e.g. `tiny.en`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model's hyper-parameters.
    pub fn hparams(&self) -> &Hparams {
        &self.hparams
    }

    /// Threads used per window.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// A fresh decoding state (one per job).
    pub fn new_state(&self) -> Result<WhisperState> {
        self.ctx
            .create_state()
            .map_err(|e| Error::Whisper(format!("creating a state: {e}")))
    }

    /// Transcribes one window.
    pub fn run(
        &self,
        state: &mut WhisperState,
        req: &WindowRequest<'_>,
    ) -> Result<Vec<RawSegment>> {
        let mut p = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        p.set_n_threads(self.threads as i32);
        p.set_translate(false);
        p.set_no_context(true);
        p.set_token_timestamps(true);
        p.set_print_special(false);
        p.set_print_progress(false);
        p.set_print_realtime(false);
        p.set_print_timestamps(false);
        p.set_suppress_blank(true);
        p.set_suppress_nst(true);
        let language = if self.hparams.english_only() {
            "en"
        } else {
            req.language
        };
        p.set_language(Some(language));
        if !req.prompt.is_empty() {
            p.set_initial_prompt(req.prompt);
        }
        // No abort callback: whisper-rs 0.16's `set_abort_callback_safe` hands whisper.cpp a
        // pointer to a boxed trait object but reads it back as the closure itself, so the
        // callback sees garbage and aborts at random. Cancellation happens between windows.
        if req.abort.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        state.full(p, req.audio).map_err(|e| {
            if req.abort.load(Ordering::Relaxed) {
                Error::Cancelled
            } else {
                Error::Whisper(format!("decoding failed: {e}"))
            }
        })?;
        if req.abort.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let lang = whisper_rs::get_lang_str(state.full_lang_id_from_state()).map(str::to_string);
        let eot = self.ctx.token_eot();
        let mut out = Vec::new();
        for seg in state.as_iter() {
            let text = seg
                .to_str_lossy()
                .map(|s| s.into_owned())
                .unwrap_or_default();
            let mut words: Vec<RawWord> = Vec::new();
            for j in 0..seg.n_tokens() {
                let Some(tok) = seg.get_token(j) else {
                    continue;
                };
                if tok.token_id() >= eot {
                    continue;
                }
                let piece = tok
                    .to_str_lossy()
                    .map(|s| s.into_owned())
                    .unwrap_or_default();
                let data = tok.token_data();
                let (t0, t1) = (data.t0 * 10, data.t1 * 10);
                let starts_word = piece.starts_with(' ') || words.is_empty();
                let is_punct = piece.trim().chars().all(|c| c.is_ascii_punctuation());
                match words.last_mut() {
                    Some(w) if !starts_word || is_punct => {
                        w.text.push_str(&piece);
                        w.t1_ms = w.t1_ms.max(t1);
                        w.p = w.p.min(tok.token_probability());
                    }
                    _ => words.push(RawWord {
                        text: piece,
                        t0_ms: t0,
                        t1_ms: t1,
                        p: tok.token_probability(),
                    }),
                }
            }
            for w in &mut words {
                w.text = w.text.trim().to_string();
            }
            words.retain(|w| !w.text.is_empty());
            out.push(RawSegment {
                t0_ms: seg.start_timestamp() * 10,
                t1_ms: seg.end_timestamp() * 10,
                text: text.trim().to_string(),
                words,
                no_speech: seg.no_speech_probability(),
                language: lang.clone(),
            });
        }
        Ok(out)
    }
}
