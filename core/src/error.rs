//! The one error type of `roomtape-core`.

use std::path::PathBuf;

/// Everything that can go wrong in the catalog, the archive store and the config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed; `path` names what was touched.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The catalog database failed.
    #[error("catalog: {0}")]
    Db(#[from] sqlx::Error),
    /// A catalog migration failed.
    #[error("catalog migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// There is no catalog file at this path (and none was to be created).
    #[error("no catalog at {}", .0.display())]
    NoCatalog(PathBuf),
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Input was rejected; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// The request clashes with what exists (a taken user name); the message says what.
    #[error("{0}")]
    Conflict(String),
    /// The configuration could not be read.
    #[error("config: {0}")]
    Config(String),
    /// A stored document (manifest, transcript) could not be parsed.
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Wraps an I/O error with the operation and the path it concerned.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the error means "no such thing".
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound(_) => true,
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
