//! whisper.cpp through whisper-rs: one context per process, loaded once; a state per job.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use whisper_rs::{
    DtwMode, DtwModelPreset, DtwParameters, FullParams, SamplingStrategy, WhisperContext,
    WhisperContextParameters, WhisperState,
};

use crate::ggml::{self, Hparams};
use crate::{Error, Result};

/// The cross-attention heads whose attention follows the audio, for timing tokens by dynamic
/// time warping. Known shapes get the heads OpenAI published for them (whisper.cpp's presets);
/// fine-tunes keep their base model's shape and, closely enough, its heads. A shape we do not
/// know gets the mean over all heads of the top half of the text layers, which tracks the
/// audio less sharply but never wrongly by much.
fn alignment_heads(h: &Hparams) -> DtwMode<'static> {
    use DtwModelPreset as P;
    let en = h.english_only();
    let preset = match (h.n_text_layer, h.n_text_state, h.n_audio_layer, en) {
        (4, 384, 4, true) => Some(P::TinyEn),
        (4, 384, 4, false) => Some(P::Tiny),
        (6, 512, 6, true) => Some(P::BaseEn),
        (6, 512, 6, false) => Some(P::Base),
        (12, 768, 12, true) => Some(P::SmallEn),
        (12, 768, 12, false) => Some(P::Small),
        (24, 1024, 24, true) => Some(P::MediumEn),
        (24, 1024, 24, false) => Some(P::Medium),
        (32, 1280, 32, false) if h.n_mels == 128 => Some(P::LargeV3),
        (32, 1280, 32, false) => Some(P::LargeV2),
        (4, 1280, 32, false) => Some(P::LargeV3Turbo),
        _ => None,
    };
    match preset {
        Some(model_preset) => DtwMode::ModelPreset { model_preset },
        None => DtwMode::TopMost {
            n_top: (h.n_text_layer / 2).max(1),
        },
    }
}

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

/// Seconds of the padding after a short window's audio that the encoder still looks at.
const AUDIO_CTX_MARGIN_S: f64 = 4.0;

/// The encoder frames to run for `samples` of 16 kHz audio: all `full` (30 s) for a full
/// window, else the audio and [`AUDIO_CTX_MARGIN_S`] of the silence after it, in steps of 64.
/// The encoder's cost grows with its frames, and most of a short window is padding. Measured
/// (bench transcribe, bench quality, tiny.en): the pipeline about 20% faster, WER unchanged
/// with the 4 s margin on every set, 2 words worse on call-en with a 2 s one. `None`: all.
pub fn audio_ctx(samples: usize, full: i32) -> Option<i32> {
    let secs = samples as f64 / 16_000.0 + AUDIO_CTX_MARGIN_S;
    let frames = (secs / 30.0 * f64::from(full) / 64.0).ceil() as i32 * 64;
    (frames < full).then_some(frames)
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
    /// Whisper's translate task: the speech in English, whatever language it is in.
    pub translate: bool,
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
            dtw_parameters: DtwParameters {
                mode: alignment_heads(&info.hparams),
                ..Default::default()
            },
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

    /// The probability of each language (by Whisper's language id) for one window of speech.
    pub fn language_probabilities(
        &self,
        state: &mut WhisperState,
        audio: &[f32],
    ) -> Result<Vec<f32>> {
        let fail = |e| Error::Whisper(format!("detecting the language: {e}"));
        state.pcm_to_mel(audio, self.threads).map_err(fail)?;
        let (_, probs) = state.lang_detect(0, self.threads).map_err(fail)?;
        Ok(probs)
    }

    /// Transcribes one window.
    pub fn run(
        &self,
        state: &mut WhisperState,
        req: &WindowRequest<'_>,
    ) -> Result<Vec<RawSegment>> {
        let mut p = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        p.set_n_threads(self.threads as i32);
        p.set_translate(req.translate && !self.hparams.english_only());
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
        // English-only models only: with base, espeak-ng's Indonesian came out worse at every
        // margin tried (4 to 12 s), while English and Spanish did not.
        if let Some(ctx) = audio_ctx(req.audio.len(), self.hparams.n_audio_ctx)
            .filter(|_| self.hparams.english_only())
        {
            p.set_audio_ctx(ctx);
        }
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
        // The time the alignment left the previous text token, across segments: where the
        // next word begins.
        let mut prev_dtw: Option<i64> = None;
        let mut out = Vec::new();
        // Punctuation that opens a word (" ¿", " (", " \"") waits for the word it opens.
        let mut opening: Vec<u8> = Vec::new();
        for seg in state.as_iter() {
            let text = seg
                .to_str_lossy()
                .map(|s| s.into_owned())
                .unwrap_or_default();
            let seg_t0 = seg.start_timestamp() * 10;
            // Words as bytes: a token may hold part of a character (Cyrillic, Thai, CJK…), so
            // text is decoded per word, never per token.
            let mut words: Vec<(Vec<u8>, RawWord)> = Vec::new();
            for j in 0..seg.n_tokens() {
                let Some(tok) = seg.get_token(j) else {
                    continue;
                };
                if tok.token_id() >= eot {
                    continue;
                }
                let bytes = tok.to_bytes().unwrap_or_default();
                let data = tok.token_data();
                // Dynamic time warping stamps each token with the moment the alignment moved
                // on to the next one: its end. Whisper's own per-token guess is the fallback.
                let dtw = (data.t_dtw >= 0).then_some(data.t_dtw * 10);
                let start = prev_dtw
                    .unwrap_or(data.t0 * 10)
                    .max(seg_t0.min(data.t0 * 10));
                let end = dtw.unwrap_or(data.t1 * 10);
                prev_dtw = dtw.or(Some(data.t1 * 10));
                let p = tok.token_probability();
                let spaced = bytes.first() == Some(&b' ');
                let trimmed = std::str::from_utf8(bytes).map(str::trim).unwrap_or("x");
                let is_punct = !trimmed.is_empty() && !trimmed.chars().any(char::is_alphanumeric);
                if is_punct && spaced {
                    opening.extend_from_slice(bytes);
                    continue;
                }
                let starts_word = spaced || words.is_empty() || !opening.is_empty();
                match words.last_mut() {
                    // Punctuation ends with the pause after a word, not with the word.
                    Some((b, _)) if is_punct => b.extend_from_slice(bytes),
                    Some((b, w)) if !starts_word => {
                        b.extend_from_slice(bytes);
                        w.t1_ms = w.t1_ms.max(end);
                        w.p = w.p.min(p);
                    }
                    _ => {
                        let mut b = std::mem::take(&mut opening);
                        b.extend_from_slice(bytes);
                        words.push((
                            b,
                            RawWord {
                                text: String::new(),
                                t0_ms: start,
                                t1_ms: end,
                                p,
                            },
                        ));
                    }
                }
            }
            if let Some((b, _)) = words.last_mut() {
                b.append(&mut opening);
            }
            opening.clear();
            let words: Vec<RawWord> = words
                .into_iter()
                .map(|(b, w)| RawWord {
                    text: String::from_utf8_lossy(&b).trim().to_string(),
                    t1_ms: w.t1_ms.max(w.t0_ms),
                    ..w
                })
                .filter(|w| !w.text.is_empty())
                .collect();
            out.push(RawSegment {
                t0_ms: seg_t0,
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

#[cfg(test)]
mod tests {
    use super::audio_ctx;

    #[test]
    fn a_short_window_runs_the_encoder_on_its_audio_and_a_margin_only() {
        // 10 s + 4 s of 30 s: 700 frames of 1500, rounded up to 704.
        assert_eq!(audio_ctx(10 * 16_000, 1500), Some(704));
        assert_eq!(audio_ctx(0, 1500), Some(256));
        // Full windows, and anything Whisper cuts into 30 s windows itself, run whole.
        assert_eq!(audio_ctx(26 * 16_000, 1500), None);
        assert_eq!(audio_ctx(240 * 16_000, 1500), None);
    }
}
