//! `roomtape-search`: every word ever said, by phrase, speaker, room and date.
//!
//! One tantivy document per transcript segment; [`query::parse`] reads the query language;
//! [`SearchIndex::search`] applies the viewer's access inside the query and groups hits by
//! recording with HTML-safe snippets.

mod bert;
pub mod embed;
mod error;
mod index;
pub mod indexer;
pub mod query;
pub mod vectors;

pub use error::{Error, Result};
pub use index::{
    ANALYZER, Hit, Mode, RecordingHits, Results, SearchIndex, SegmentDoc, Sort, Viewer, escape,
};
