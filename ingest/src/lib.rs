//! `roomtape-ingest`: audio in, archives out.
//!
//! - [`oggopus`]: Ogg/Opus track writing and reading (RFC 7845);
//! - [`TrackRecorder`]: the sans-IO recorder of live RTP Opus;
//! - [`RoomRecorder`] and [`LiveRecording`]: many speakers in one recording, written to a store;
//! - [`recover`]: finishing recordings a crash left open;
//! - [`import`]: files of any common format into tracks;
//! - [`mixdown`]: the replay mix and waveform peaks.

mod error;
pub mod oggopus;
mod recorder;
pub mod toc;

pub use error::{Error, Result};
pub use recorder::{
    RATE, RecorderEvent, RecorderOutput, RecorderSettings, RecorderStats, RtpPacket, TrackRecorder,
};
