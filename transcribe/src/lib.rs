//! `roomtape-transcribe`: per-speaker transcripts with Whisper.
//!
//! - [`models`]: installed models, and `import` of CTranslate2 models ([`ct2`] → [`ggml`]),
//!   optionally [`quantize`]d;
//! - [`Engine`]: whisper.cpp, loaded once per process;
//! - [`vad`]: where each speaker talks; only that is sent to Whisper;
//! - [`pipeline`]: tracks → windows → segments → one transcript;
//! - [`export`]: WebVTT, SRT, JSON and text;
//! - [`worker`]: the job loop over the catalog's queue;
//! - [`captions`]: live captions, each speaker's audio as it arrives, one model for every room.

pub mod captions;
pub mod ct2;
mod engine;
mod error;
/// The transcript exports, which live with the catalog's types (`roomtape_core::export`).
pub use roomtape_core::export;
pub mod ggml;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod quantize;
pub mod vad;
pub mod worker;

pub use engine::{Engine, RawSegment, RawWord, WindowRequest};
pub use error::{Error, Result};
