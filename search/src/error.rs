//! The one error type of `roomtape-search`.

/// What can go wrong while indexing or searching.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The query cannot be run; the message says why (shown to users as a 400).
    #[error("query: {0}")]
    Query(String),
    /// tantivy failed.
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The index directory could not be opened.
    #[error("search index directory: {0}")]
    Directory(String),
    /// The embedding model could not be loaded or run.
    #[error("embedding model: {0}")]
    Model(String),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] roomtape_core::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
