//! Live captions as the service sees them: what a caption is, and the interface of the engine
//! that makes them. The engine (Whisper, in `roomtape-transcribe`) is handed to the live side
//! as a [`LiveCaptions`], so the web crate never builds a speech model.

use std::time::Instant;

use serde::Serialize;

use crate::{RoomId, Speaker};

/// A word of a caption, in room time (ms since the room's live session began).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CaptionWord {
    pub text: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Whisper's probability for the word (1 when not known); not part of what is served.
    #[serde(skip)]
    pub p: f32,
}

/// What a caption is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CaptionKind {
    /// The latest guess at what follows the speaker's final text; the next partial (or final)
    /// of the same speaker replaces it. An empty one clears the line.
    Partial,
    /// Committed: never changes, never retracted.
    Final,
    /// The server cannot keep up: captions stop for a while (the text says why).
    Paused,
    /// Captions go on after a pause.
    Resumed,
}

/// One caption of one speaker.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Caption {
    pub kind: CaptionKind,
    pub text: String,
    /// Room time of the first word's start and the last word's end, ms.
    pub start_ms: i64,
    pub end_ms: i64,
    /// Each word with its room time.
    pub words: Vec<CaptionWord>,
}

/// One speaker's captioned audio: a participant's connection in a room.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CaptionKey {
    pub room: RoomId,
    /// The participant's connection (one person may come back on another).
    pub conn: u64,
    pub speaker: Speaker,
}

/// A live caption engine shared by every room of the process. Every call returns at once:
/// the SFU calls `packet` for each received packet and must never wait for captions.
pub trait LiveCaptions: Send + Sync + std::fmt::Debug {
    /// A speaker starts being captioned; `origin` is the room's time zero.
    fn open(&self, key: CaptionKey, origin: Instant);
    /// One received Opus packet (48 kHz RTP timestamp) of an open speaker. May be dropped
    /// when the engine is behind.
    fn packet(&self, key: &CaptionKey, payload: Vec<u8>, timestamp: u32, at: Instant);
    /// The speaker is no longer captioned (left, off stage, captions off).
    fn close(&self, key: &CaptionKey);
}
