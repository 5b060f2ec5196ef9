//! Keeping the index in step with the catalog. Catalog triggers put every changed recording in
//! the `search_outbox` table in the same transaction as the change; [`drain`] rebuilds those
//! recordings' documents and clears their entries, so a crash between the two only means the
//! work is done again. The index can always be rebuilt from the catalog with [`reindex`].

use std::sync::Arc;
use std::time::Duration;

use roomtape_core::{Catalog, RecordingId, SearchSource, Visibility};

use crate::{Error, Result, SearchIndex, SegmentDoc};

/// Recordings rebuilt per commit.
const BATCH: i64 = 64;

/// The documents of one recording.
pub fn documents(src: &SearchSource) -> Vec<SegmentDoc> {
    let r = &src.recording;
    let mut readers: Vec<String> = src.speaker_ids.clone();
    readers.extend(r.owner_id.map(|u| u.to_string()));
    readers.sort();
    readers.dedup();
    src.segments
        .iter()
        .map(|s| SegmentDoc {
            recording_id: r.id.to_string(),
            room_id: r.room_id.map(|x| x.to_string()),
            title: r.title.clone(),
            speaker_id: s.speaker_id.to_string(),
            speaker: s.speaker.clone(),
            language: s.language.clone().unwrap_or_else(|| r.language.clone()),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            text: s.text.clone(),
            translation: s.translation.as_ref().map(|t| t.text.clone()),
            date_ms: r.started_at.0,
            public: r.visibility == Visibility::Public,
            readers: readers.clone(),
            vector: None,
        })
        .collect()
}

/// Brings the index up to date with the outbox, then gives meaning vectors to a batch of
/// recordings indexed before the embedding model was there. Returns how many recordings were
/// updated.
pub async fn drain(index: &Arc<SearchIndex>, catalog: &Catalog) -> Result<usize> {
    let mut n = 0;
    loop {
        let entries = catalog.search_outbox(BATCH).await?;
        if entries.is_empty() {
            break;
        }
        let ids: Vec<String> = entries.iter().map(|(id, _)| id.clone()).collect();
        rebuild(index, catalog, &ids).await?;
        for (_, seq) in &entries {
            catalog.search_outbox_done(*seq).await?;
        }
        n += entries.len();
    }
    // In the same task as the outbox, so the two never write one recording at once.
    let ix = index.clone();
    let stale = tokio::task::spawn_blocking(move || ix.recordings_without_vectors(BATCH as usize))
        .await
        .map_err(|e| Error::Directory(format!("indexing task: {e}")))??;
    if !stale.is_empty() {
        rebuild(index, catalog, &stale).await?;
        n += stale.len();
    }
    Ok(n)
}

/// Replaces the documents of `ids` with what the catalog holds of them now.
async fn rebuild(index: &Arc<SearchIndex>, catalog: &Catalog, ids: &[String]) -> Result<()> {
    let mut batch = Vec::with_capacity(ids.len());
    for id in ids {
        let docs = match id.parse::<RecordingId>() {
            Ok(rid) => match catalog.search_source(rid).await? {
                Some(src) => documents(&src),
                None => Vec::new(),
            },
            // Not one of ours: make sure nothing of it is left.
            Err(_) => Vec::new(),
        };
        batch.push((id.clone(), docs));
    }
    let ix = index.clone();
    tokio::task::spawn_blocking(move || ix.replace_recordings(&batch))
        .await
        .map_err(|e| Error::Directory(format!("indexing task: {e}")))?
}

/// Rebuilds the whole index from the catalog.
pub async fn reindex(index: &Arc<SearchIndex>, catalog: &Catalog) -> Result<usize> {
    let ix = index.clone();
    tokio::task::spawn_blocking(move || ix.clear())
        .await
        .map_err(|e| Error::Directory(format!("indexing task: {e}")))??;
    catalog.search_outbox_all().await?;
    drain(index, catalog).await
}

/// Drains the outbox every `every` until `stop` turns true: what `serve` runs, so a stored
/// transcript is searchable within about that long. Errors are logged and retried.
pub async fn run(
    index: Arc<SearchIndex>,
    catalog: Catalog,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut failing = false;
    loop {
        match drain(&index, &catalog).await {
            Ok(n) => {
                if n > 0 {
                    tracing::debug!("indexed {n} recording(s)");
                }
                if failing {
                    tracing::info!("search indexing works again");
                    failing = false;
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!("search indexing failed, retrying: {e}");
                }
                failing = true;
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(every) => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}
