//! `roomtape-core`: the pieces every other roomtape crate shares.
//!
//! - [`RecordingId`] and friends: time-ordered ids;
//! - [`Recording`], [`Track`], [`Manifest`]: the domain;
//! - [`Config`]: settings from defaults, a TOML file and `ROOMTAPE_*` variables;
//! - [`Catalog`]: the SQLite catalog;
//! - [`ArchiveStore`]: where audio lives, on disk ([`LocalStore`]) or in memory ([`MemoryStore`]).

mod accounts;
mod archive;
mod captions;
mod catalog;
mod config;
mod error;
pub mod export;
mod id;
mod jobs;
mod publish;
mod retime;
mod rng;
mod types;
mod webhooks;

pub use accounts::{
    ApiToken, Room, RoomState, StoredRole, User, clean_text, hash_password, verify_password,
};
pub use archive::{
    AppendFile, ArchiveStore, LocalStore, MemoryStore, OpenFile, ReadFile, StoreLock, check_key,
};
pub use captions::{Caption, CaptionKey, CaptionKind, CaptionWord, LiveCaptions};
pub use catalog::Catalog;
pub use config::{
    CaptionsConfig, Config, ImportConfig, IpCidr, Meaning, MediaConfig, RecorderConfig,
    SearchConfig, ServerConfig, TranscribeConfig, Translate, WebhooksConfig,
};
pub use error::{Error, Result};
pub use id::{DeliveryId, JobId, RecordingId, RoomId, SpeakerId, TrackId, UserId, WebhookId};
pub use jobs::{Failure, Job, JobState, RETRY_BACKOFF_MS, SearchSource};
pub use publish::{Access, Cursor, ListViewer, MAX_DESCRIPTION};
pub use retime::retime_words;
pub use rng::Rng;
pub use types::{
    LANGUAGES, MANIFEST_VERSION, Manifest, ManifestTrack, Recording, RecordingSource,
    RecordingState, Segment, Speaker, Timestamp, Track, Transcript, TranscriptSpeaker, Translation,
    Visibility, Word, spoken_language,
};
pub use webhooks::{
    DeliveryOutcome, DeliveryState, DueDelivery, WEBHOOK_EVENTS, Webhook, WebhookDelivery,
    WebhookEvent,
};

/// Shortens untrusted text for an error message (at most 64 characters, no control characters).
pub fn truncate_for_message(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(64).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// Where things live inside the data directory.
pub mod layout {
    use std::path::{Path, PathBuf};

    /// The catalog database file.
    pub fn catalog(data: &Path) -> PathBuf {
        data.join("catalog.sqlite")
    }
    /// The root of the archive store.
    pub fn archives(data: &Path) -> PathBuf {
        data.join("archives")
    }
    /// The search index.
    pub fn index(data: &Path) -> PathBuf {
        data.join("index")
    }
    /// Installed Whisper models.
    pub fn models(data: &Path) -> PathBuf {
        data.join("models")
    }
    /// Archive key of a recording's manifest.
    pub fn manifest_key(rec: crate::RecordingId) -> String {
        format!("{rec}/manifest.json")
    }
    /// Archive key of a file inside a recording's archive (`tracks/<id>.opus`, `mix.opus`, …).
    pub fn file_key(rec: crate::RecordingId, file: &str) -> String {
        format!("{rec}/{file}")
    }
    /// Archive key of the lock a writer holds on a recording's archive while no catalog row
    /// owns it yet (an import, from before its first file until its row is written). Recovery
    /// removes archives without a row only when it can take this lock itself.
    pub fn claim_key(rec: crate::RecordingId) -> String {
        format!("{rec}{CLAIM_SUFFIX}")
    }
    /// What [`claim_key`] adds to a recording id.
    pub const CLAIM_SUFFIX: &str = ".lock";
    /// File name of a track inside its archive.
    pub fn track_file(track: crate::TrackId) -> String {
        format!("tracks/{track}.opus")
    }
    /// The replay mix inside an archive.
    pub const MIX_FILE: &str = "mix.opus";
    /// The same mix as MP3, for players that take no Opus.
    pub const MIX_MP3_FILE: &str = "mix.mp3";
    /// The waveform peaks inside an archive.
    pub const PEAKS_FILE: &str = "peaks.json";
    /// The transcript inside an archive.
    pub const TRANSCRIPT_FILE: &str = "transcript.json";
}
