//! Domain types shared by every crate: recordings, tracks, speakers, manifests.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Error, RecordingId, Result, RoomId, SpeakerId, TrackId, UserId};

/// A point in time, milliseconds since the Unix epoch, shown as RFC 3339 (UTC).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, utoipa::ToSchema)]
#[schema(value_type = String, format = DateTime, example = "2026-11-25T03:08:04.123Z")]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Now, from the system clock.
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Timestamp((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// `self + ms`.
    pub fn add_millis(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }

    /// The RFC 3339 form, e.g. `2026-11-25T03:08:04.123Z`.
    pub fn to_rfc3339(self) -> String {
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        t.format(&Rfc3339).unwrap_or_else(|_| self.0.to_string())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl FromStr for Timestamp {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| Error::Invalid(format!("not an RFC 3339 time {s:?}: {e}")))?;
        Ok(Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a recording's audio came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordingSource {
    /// Recorded from a live room.
    Live,
    /// Imported from an audio file.
    Import,
}

impl RecordingSource {
    /// The catalog's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingSource::Live => "live",
            RecordingSource::Import => "import",
        }
    }
}

impl FromStr for RecordingSource {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "live" => Ok(RecordingSource::Live),
            "import" => Ok(RecordingSource::Import),
            other => Err(Error::Invalid(format!(
                "unknown recording source {other:?}"
            ))),
        }
    }
}

/// Who may see a recording (its replay, transcript and search hits).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Its owner, hosts and speakers (and admins). What every new recording is.
    #[default]
    Private,
    /// Anyone with the link; never listed or searchable.
    Unlisted,
    /// Published: listed and searchable by everyone.
    Public,
}

impl Visibility {
    /// The catalog's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Unlisted => "unlisted",
            Visibility::Public => "public",
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Visibility {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "private" => Ok(Visibility::Private),
            "unlisted" => Ok(Visibility::Unlisted),
            "public" => Ok(Visibility::Public),
            other => Err(Error::Invalid(format!(
                "visibility must be private, unlisted or public, not {:?}",
                crate::truncate_for_message(other)
            ))),
        }
    }
}

/// The life of a recording.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordingState {
    /// Audio is being written now (or was, when the process died).
    Recording,
    /// All tracks are finished, the mix and peaks are built.
    Recorded,
    /// Recording or import failed; `error` says why.
    Failed,
    /// A transcription job is running.
    Transcribing,
    /// The transcript is stored.
    Transcribed,
}

impl RecordingState {
    /// The catalog's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Recording => "recording",
            RecordingState::Recorded => "recorded",
            RecordingState::Failed => "failed",
            RecordingState::Transcribing => "transcribing",
            RecordingState::Transcribed => "transcribed",
        }
    }
}

impl fmt::Display for RecordingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordingState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "recording" => RecordingState::Recording,
            "recorded" => RecordingState::Recorded,
            "failed" => RecordingState::Failed,
            "transcribing" => RecordingState::Transcribing,
            "transcribed" => RecordingState::Transcribed,
            other => return Err(Error::Invalid(format!("unknown recording state {other:?}"))),
        })
    }
}

/// Who spoke on a track.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Speaker {
    /// Stable identity (a user's, or one made at import).
    pub id: SpeakerId,
    /// The name shown next to their words.
    pub name: String,
}

/// A recording as the catalog knows it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recording {
    pub id: RecordingId,
    pub room_id: Option<RoomId>,
    pub title: String,
    pub source: RecordingSource,
    pub state: RecordingState,
    /// Set when the recording was rebuilt by crash recovery.
    pub recovered: bool,
    /// Why the recording failed, when it did.
    pub error: Option<String>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// Length of the whole recording (the longest track's end), once known.
    pub duration_ms: Option<i64>,
    /// Spoken language: `auto` (detected per track) or a Whisper language code.
    #[serde(default = "auto_language")]
    pub language: String,
    #[serde(default)]
    pub visibility: Visibility,
    /// The account that owns it (the room's host); `None` for imports by the local admin.
    #[serde(default)]
    pub owner_id: Option<UserId>,
    /// The host's notes on it (plain text, lines kept): the replay page and the feed's
    /// episode notes. Empty until written.
    #[serde(default)]
    pub description: String,
}

fn auto_language() -> String {
    "auto".into()
}

/// One speaker's track in a recording.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Track {
    pub id: TrackId,
    pub recording_id: RecordingId,
    pub speaker: Speaker,
    /// Path of the Ogg/Opus file inside the recording's archive, e.g. `tracks/<id>.opus`.
    pub file: String,
    /// Where the track starts, in milliseconds from the recording's start.
    pub offset_ms: i64,
    /// Decoded length of the track in milliseconds.
    pub duration_ms: i64,
}

/// The manifest format version written by this build.
pub const MANIFEST_VERSION: u32 = 1;

/// `manifest.json`: everything needed to play and transcribe an archive without the catalog.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub recording_id: RecordingId,
    pub room_id: Option<RoomId>,
    pub title: String,
    pub source: RecordingSource,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// True while tracks are still being written.
    pub open: bool,
    /// Set when crash recovery finished this archive.
    #[serde(default)]
    pub recovered: bool,
    pub tracks: Vec<ManifestTrack>,
}

/// One track's entry in the manifest.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ManifestTrack {
    pub track_id: TrackId,
    pub speaker_id: SpeakerId,
    pub speaker_name: String,
    /// Relative to the archive directory.
    pub file: String,
    pub offset_ms: i64,
    pub duration_ms: i64,
}

impl Manifest {
    /// Parses a manifest, naming the recording in errors.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|source| Error::Json {
            what: "manifest.json".into(),
            source,
        })?;
        if m.version > MANIFEST_VERSION {
            return Err(Error::Invalid(format!(
                "manifest version {} is newer than this build understands ({MANIFEST_VERSION})",
                m.version
            )));
        }
        Ok(m)
    }

    /// Pretty JSON, as stored.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// The recording's length: the end of its longest track.
    pub fn duration_ms(&self) -> i64 {
        self.tracks
            .iter()
            .map(|t| t.offset_ms + t.duration_ms)
            .max()
            .unwrap_or(0)
    }

    /// The tracks as catalog rows.
    pub fn catalog_tracks(&self) -> Vec<Track> {
        self.tracks
            .iter()
            .map(|t| Track {
                id: t.track_id,
                recording_id: self.recording_id,
                speaker: Speaker {
                    id: t.speaker_id,
                    name: t.speaker_name.clone(),
                },
                file: t.file.clone(),
                offset_ms: t.offset_ms,
                duration_ms: t.duration_ms,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        let t = Timestamp(1_764_040_084_123);
        let s = t.to_rfc3339();
        assert_eq!(s, "2025-11-25T03:08:04.123Z");
        assert_eq!(s.parse::<Timestamp>().unwrap(), t);
    }

    #[test]
    fn states_round_trip() {
        for s in [
            RecordingState::Recording,
            RecordingState::Recorded,
            RecordingState::Failed,
            RecordingState::Transcribing,
            RecordingState::Transcribed,
        ] {
            assert_eq!(s.as_str().parse::<RecordingState>().unwrap(), s);
        }
    }
}

/// A transcript: every speaker's segments, merged by start time.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transcript {
    pub recording_id: RecordingId,
    pub title: String,
    /// The model that made it (e.g. `tiny.en`).
    pub model: String,
    pub created_at: Timestamp,
    pub speakers: Vec<TranscriptSpeaker>,
    pub segments: Vec<Segment>,
}

/// A speaker as the transcript names them.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TranscriptSpeaker {
    pub id: SpeakerId,
    pub name: String,
    pub track_id: TrackId,
}

/// One line of a transcript: who said what, when (milliseconds from the recording's start).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Segment {
    pub speaker_id: SpeakerId,
    pub speaker: String,
    pub track_id: TrackId,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Whisper's language code for this stretch (e.g. `en`, `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    pub text: String,
    /// Word timings, when the model gave them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
    /// The line in English, when it was said in another language (Whisper's translate task;
    /// English is the only language Whisper translates into). The original stays the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translation: Option<Translation>,
}

/// A line's text in another language, beside the original.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Translation {
    /// The language translated into: `en`.
    pub lang: String,
    pub text: String,
}

/// One word with its timing and Whisper's confidence.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Word {
    pub text: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Token probability, 0–1.
    pub p: f32,
}

/// Whisper's language codes, and `auto` (detected per track).
pub const LANGUAGES: &[&str] = &[
    "auto", "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar",
    "sv", "it", "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no",
    "th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az",
    "sl", "kn", "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr",
    "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo",
    "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt",
    "haw", "ln", "ha", "ba", "jw", "su", "yue",
];

/// A spoken-language setting as stored: `auto` for empty, else one of [`LANGUAGES`] (case and
/// surrounding space ignored); anything else is refused with the list of valid codes.
pub fn spoken_language(code: &str) -> crate::Result<String> {
    let code = code.trim().to_ascii_lowercase();
    if code.is_empty() {
        return Ok("auto".into());
    }
    if LANGUAGES.contains(&code.as_str()) {
        return Ok(code);
    }
    let shown: String = code.chars().filter(|c| !c.is_control()).take(40).collect();
    Err(crate::Error::Invalid(format!(
        "unknown language {shown:?}; use auto or one of Whisper's codes: {}",
        LANGUAGES[1..].join(", ")
    )))
}

#[cfg(test)]
mod language_tests {
    use super::*;

    #[test]
    fn languages_are_whisper_codes_or_auto() {
        assert_eq!(spoken_language("").unwrap(), "auto");
        assert_eq!(spoken_language(" ID ").unwrap(), "id");
        assert_eq!(spoken_language("yue").unwrap(), "yue");
        let e = spoken_language("klingon").unwrap_err().to_string();
        assert!(e.contains("\"klingon\"") && e.contains("en, zh, de"), "{e}");
    }
}
