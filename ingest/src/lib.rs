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
    PRE_SKIP, RATE, RecorderEvent, RecorderOutput, RecorderSettings, RecorderStats, RtpPacket,
    TrackRecorder,
};

mod decode;
mod encode;
pub mod import;
pub mod mixdown;
pub mod mp3;
pub mod recover;
mod room;

pub use decode::{OPUS_RATES, PcmReader, decode_all};
pub use encode::OpusTrackEncoder;
pub use import::{ImportOptions, ImportProgress, Imported, import_file};
pub use mixdown::{Peaks, build_mix_and_peaks};
pub use recover::{RecoveryReport, recover_all, repair_archive};
pub use room::{LiveRecording, RoomOutput, RoomRecorder};
pub mod bench;
pub mod synth;

/// Finishes a recording whose archive is complete: builds the mix and peaks, records the
/// tracks, length and state `recorded` in the catalog, and queues its transcription.
pub async fn complete_recording(
    catalog: &roomtape_core::Catalog,
    store: &dyn roomtape_core::ArchiveStore,
    manifest: &roomtape_core::Manifest,
    mix_bitrate: i32,
) -> Result<Peaks> {
    let peaks = build_mix_and_peaks(store, manifest, mix_bitrate)?;
    catalog
        .finish_recording(
            manifest.recording_id,
            &manifest.catalog_tracks(),
            manifest
                .ended_at
                .unwrap_or_else(|| manifest.started_at.add_millis(manifest.duration_ms())),
            manifest.recovered,
        )
        .await?;
    catalog.enqueue_transcription(manifest.recording_id).await?;
    Ok(peaks)
}
