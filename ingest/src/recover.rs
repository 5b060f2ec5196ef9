//! Crash recovery: recordings still marked `recording` when the process starts are finished
//! from what reached the disk. Each track is cut after its last whole page, that page gets the
//! end-of-stream flag, durations come from the granule positions, the manifest is rewritten, and
//! the recording becomes `recorded` with its `recovered` flag set. Archives without a catalog
//! row are removed unless their writer (an import) is still alive.

use std::collections::{BTreeSet, HashSet};

use roomtape_core::{
    ArchiveStore, Catalog, MANIFEST_VERSION, Manifest, ManifestTrack, Recording, RecordingId,
    RecordingState, layout,
};

use crate::oggopus::{OpusHead, eos_patch, scan_pages};
use crate::{Error, Result};

/// What happened to one track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackRepair {
    pub file: String,
    /// Bytes cut from the end (a torn page, or nothing).
    pub cut_bytes: u64,
    /// Decoded length after repair.
    pub duration_ms: i64,
}

/// Repairs one track file in place. Returns `None` when no audio page survived.
pub fn repair_track(store: &dyn ArchiveStore, key: &str) -> Result<Option<TrackRepair>> {
    let data = match store.get(key) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let pages = scan_pages(&data);
    if pages.len() < 3 {
        return Ok(None);
    }
    let head_page = &data[pages[0].offset as usize..(pages[0].offset + pages[0].len) as usize];
    let nseg = usize::from(head_page[26]);
    let head = OpusHead::parse(&head_page[27 + nseg..])?;
    // The last audio page that ends on a packet boundary and carries a granule.
    let Some(last) = pages[2..]
        .iter()
        .rev()
        .find(|p| p.ends_packet && p.granule != u64::MAX)
        .copied()
    else {
        return Ok(None);
    };
    let end = last.offset + last.len;
    let patch = if last.flags & 4 == 0 {
        eos_patch(&data[last.offset as usize..end as usize])
    } else {
        Vec::new()
    };
    store.truncate_and_patch(key, end, last.offset + 5, &patch)?;
    let samples = last.granule.saturating_sub(u64::from(head.pre_skip));
    Ok(Some(TrackRepair {
        file: key.to_string(),
        cut_bytes: data.len() as u64 - end,
        duration_ms: (samples / 48) as i64,
    }))
}

/// Repairs every track of an open manifest and closes it. Tracks with no surviving audio are
/// dropped (their files removed).
pub fn repair_archive(store: &dyn ArchiveStore, mut manifest: Manifest) -> Result<Manifest> {
    let id = manifest.recording_id;
    let mut kept = Vec::new();
    for mut t in std::mem::take(&mut manifest.tracks) {
        let key = layout::file_key(id, &t.file);
        match repair_track(store, &key)? {
            Some(r) => {
                t.duration_ms = r.duration_ms;
                if r.cut_bytes > 0 {
                    tracing::info!(%id, track = %t.track_id, cut = r.cut_bytes, "cut a torn page");
                }
                kept.push(t);
            }
            None => {
                tracing::warn!(%id, track = %t.track_id, "no audio survived; track dropped");
                store.delete(&key)?;
            }
        }
    }
    manifest.tracks = kept;
    manifest.open = false;
    manifest.recovered = true;
    manifest.ended_at = Some(manifest.started_at.add_millis(manifest.duration_ms()));
    store.put_atomic(&layout::manifest_key(id), &manifest.to_json())?;
    Ok(manifest)
}

/// What [`recover_all`] did.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    /// Recordings finished from disk.
    pub recovered: Vec<Manifest>,
    /// Recordings that had nothing to save, with the reason.
    pub failed: Vec<(Recording, String)>,
    /// Archive directories that no catalog row owned (an import cut short), removed.
    pub orphans_removed: Vec<String>,
    /// Archives without a catalog row whose writer is alive (an import under way), kept.
    pub in_progress: Vec<RecordingId>,
}

/// Recovers every recording left in state `recording`, then removes orphaned archives: those
/// no catalog row owns and no living writer claims (see [`layout::claim_key`]).
/// `mix_bitrate` is used to rebuild the replay mix.
pub async fn recover_all(
    catalog: &Catalog,
    store: &dyn ArchiveStore,
    mix_bitrate: i32,
) -> Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    for rec in catalog
        .recordings_in_state(RecordingState::Recording)
        .await?
    {
        match recover_one(catalog, store, &rec, mix_bitrate).await {
            Ok(Some(manifest)) => report.recovered.push(manifest),
            Ok(None) => {
                let why = "nothing was recorded before the process stopped".to_string();
                catalog.fail_recording(rec.id, &why).await?;
                report.failed.push((rec, why));
            }
            Err(e) => {
                // One broken archive must not stop the others from being saved.
                let why = format!("recovery failed: {e}");
                tracing::error!(id = %rec.id, "{why}");
                catalog.fail_recording(rec.id, &why).await?;
                report.failed.push((rec, why));
            }
        }
    }
    let known: HashSet<RecordingId> = catalog
        .recordings()
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    // Archives no catalog row owns, and every claim a writer took (a claim outlives its
    // archive only when its writer died between the two, or after the row was written).
    let mut candidates = BTreeSet::new();
    for key in store.list("")? {
        let top = key.split('/').next().unwrap_or_default();
        match top.strip_suffix(layout::CLAIM_SUFFIX) {
            Some(name) if top == key => candidates.extend(name.parse::<RecordingId>().ok()),
            _ => candidates.extend(
                top.parse::<RecordingId>()
                    .ok()
                    .filter(|id| !known.contains(id)),
            ),
        }
    }
    for id in candidates {
        // An import holds its claim from before its first file until its catalog row exists,
        // and the OS lets go of it when the importer dies: a held claim is work in progress.
        let Some(claim) = store.try_lock(&layout::claim_key(id))? else {
            tracing::info!(%id, "an import is in progress; its archive is left alone");
            report.in_progress.push(id);
            continue;
        };
        // Its row may have been written since `known` was read, just before the claim went.
        match catalog.recording(id).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                if !store.list(&format!("{id}/"))?.is_empty() {
                    store.delete_dir(&id.to_string())?;
                    report.orphans_removed.push(id.to_string());
                }
            }
            Err(e) => return Err(e.into()),
        }
        drop(claim);
    }
    Ok(report)
}

async fn recover_one(
    catalog: &Catalog,
    store: &dyn ArchiveStore,
    rec: &Recording,
    mix_bitrate: i32,
) -> Result<Option<Manifest>> {
    let manifest = match store.get(&layout::manifest_key(rec.id)) {
        Ok(bytes) => Manifest::from_json(&bytes)?,
        Err(e) if e.is_not_found() => manifest_from_catalog(catalog, rec).await?,
        Err(e) => return Err(e.into()),
    };
    let manifest = repair_archive(store, manifest)?;
    if manifest.tracks.is_empty() {
        return Ok(None);
    }
    crate::complete_recording(catalog, store, &manifest, mix_bitrate).await?;
    Ok(Some(manifest))
}

async fn manifest_from_catalog(catalog: &Catalog, rec: &Recording) -> Result<Manifest> {
    let tracks = catalog.tracks(rec.id).await?;
    if tracks.is_empty() {
        return Err(Error::Format(format!(
            "recording {}: no manifest and no tracks in the catalog",
            rec.id
        )));
    }
    Ok(Manifest {
        version: MANIFEST_VERSION,
        recording_id: rec.id,
        room_id: rec.room_id,
        title: rec.title.clone(),
        source: rec.source,
        started_at: rec.started_at,
        ended_at: None,
        open: true,
        recovered: false,
        tracks: tracks
            .into_iter()
            .map(|t| ManifestTrack {
                track_id: t.id,
                speaker_id: t.speaker.id,
                speaker_name: t.speaker.name,
                file: t.file,
                offset_ms: t.offset_ms,
                duration_ms: t.duration_ms,
            })
            .collect(),
    })
}
