//! The one error type of `roomtape-transcribe`.

/// What can go wrong while converting models, loading them, or transcribing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The catalog or the archive store failed.
    #[error(transparent)]
    Core(#[from] roomtape_core::Error),
    /// A track could not be read or decoded.
    #[error(transparent)]
    Audio(#[from] roomtape_ingest::Error),
    /// File I/O outside the store; `path` says where.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A model file or directory is not what it should be; the message says how.
    #[error("model: {0}")]
    Model(String),
    /// whisper.cpp failed.
    #[error("whisper: {0}")]
    Whisper(String),
    /// Input was rejected.
    #[error("{0}")]
    Invalid(String),
    /// The job was cancelled (its lease was lost or the process is stopping).
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// True when running the same job again cannot help (a corrupt track, a bad model).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::Audio(_) | Error::Model(_) | Error::Invalid(_))
            || matches!(self, Error::Core(e) if e.is_not_found())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
