//! The one error type of `roomtape-ingest`.

/// What can go wrong while writing, reading, recording, importing or mixing audio.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The archive store or catalog failed.
    #[error(transparent)]
    Core(#[from] roomtape_core::Error),
    /// Plain I/O on a file outside the store.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An Ogg/Opus stream is malformed; the message says where and how.
    #[error("ogg/opus: {0}")]
    Format(String),
    /// An input file could not be decoded.
    #[error("{0}")]
    Decode(String),
    /// The input uses something this build does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The input goes past a limit (length, size).
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// An encoder other than libopus refused (LAME, for the MP3 mix).
    #[error("{0}")]
    Encode(String),
    /// libopus refused.
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// The work was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
