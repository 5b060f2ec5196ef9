//! The recording tap's other end: a thread that owns a [`LiveRecording`], takes the RTP packets
//! the SFU forwards (as they were received, never re-encoded), lets the recorder's clock run,
//! keeps the catalog's track list current, and at the end builds the mix and peaks and queues
//! the transcription.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use roomtape_core::{
    ArchiveStore, Catalog, Manifest, Recording, RecordingId, RecordingSource, RecordingState,
    RoomId, Speaker, Timestamp, UserId, Visibility,
};
use roomtape_ingest::{LiveRecording, RecorderSettings, RtpPacket};

/// One packet as the SFU received it.
#[derive(Clone, Debug)]
pub struct TapPacket {
    pub speaker: Speaker,
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    pub payload: Vec<u8>,
    pub at: Instant,
}

#[derive(Debug)]
enum TapMsg {
    Packet(TapPacket),
    Finish(tokio::sync::oneshot::Sender<Result<Manifest, String>>),
}

/// Where the SFU sends a recorded room's packets.
#[derive(Clone, Debug)]
pub struct Tap(Sender<TapMsg>);

impl Tap {
    /// Hands a packet to the recorder; never blocks the caller.
    pub fn send(&self, p: TapPacket) {
        let _ = self.0.send(TapMsg::Packet(p));
    }
}

/// A recording in progress.
#[derive(Debug)]
pub struct RecordingSession {
    id: RecordingId,
    tx: Sender<TapMsg>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What a recording needs to know at its start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingInfo {
    pub room: Option<RoomId>,
    pub title: String,
    pub language: String,
    pub owner: Option<UserId>,
    /// The room's description, the recording's first.
    pub description: String,
}

impl RecordingSession {
    /// Creates the recording in the catalog and the archive and starts its thread.
    pub async fn start(
        catalog: Catalog,
        store: Arc<dyn ArchiveStore>,
        info: RecordingInfo,
        settings: RecorderSettings,
        mix_bitrate: i32,
    ) -> roomtape_core::Result<Self> {
        let id = RecordingId::new();
        let started_at = Timestamp::now();
        catalog
            .create_recording(
                &Recording {
                    id,
                    room_id: info.room,
                    title: info.title.clone(),
                    source: RecordingSource::Live,
                    state: RecordingState::Recording,
                    recovered: false,
                    error: None,
                    started_at,
                    ended_at: None,
                    duration_ms: None,
                    language: info.language.clone(),
                    visibility: Visibility::Private,
                    owner_id: info.owner,
                    description: info.description.clone(),
                },
                &[],
            )
            .await?;
        let origin = Instant::now();
        let live = LiveRecording::start(
            store.clone(),
            id,
            info.room,
            &info.title,
            settings,
            Duration::ZERO,
            started_at,
        )
        .map_err(|e| roomtape_core::Error::Invalid(format!("starting the recording: {e}")))?;
        let (tx, rx) = channel();
        let handle = tokio::runtime::Handle::current();
        let thread = std::thread::Builder::new()
            .name(format!("rec-{id}"))
            .spawn(move || run(live, rx, origin, handle, catalog, store, mix_bitrate))
            .map_err(|e| roomtape_core::Error::Invalid(format!("recording thread: {e}")))?;
        Ok(RecordingSession {
            id,
            tx,
            thread: Some(thread),
        })
    }

    pub fn id(&self) -> RecordingId {
        self.id
    }

    /// Where to send packets.
    pub fn tap(&self) -> Tap {
        Tap(self.tx.clone())
    }

    /// Ends the recording: last pages, mix, peaks, transcription queued.
    pub async fn finish(mut self) -> Result<Manifest, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(TapMsg::Finish(tx)).is_err() {
            return Err("the recording thread is gone".into());
        }
        let out = rx
            .await
            .unwrap_or_else(|_| Err("the recording thread stopped".into()));
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        out
    }
}

fn run(
    mut live: LiveRecording,
    rx: Receiver<TapMsg>,
    origin: Instant,
    rt: tokio::runtime::Handle,
    catalog: Catalog,
    store: Arc<dyn ArchiveStore>,
    mix_bitrate: i32,
) {
    let id = live.id();
    let mut known = std::collections::HashSet::new();
    let mut last_tick = Instant::now();
    let reply = loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(TapMsg::Packet(p)) => {
                if known.insert(p.speaker.id) {
                    live.add_speaker(p.speaker.clone());
                }
                let pkt = RtpPacket {
                    ssrc: p.ssrc,
                    sequence: p.sequence,
                    timestamp: p.timestamp,
                    payload: &p.payload,
                };
                if let Err(e) = live.push(p.speaker.id, pkt, p.at.duration_since(origin)) {
                    tracing::error!(%id, "recording a packet failed: {e}");
                }
            }
            Ok(TapMsg::Finish(reply)) => break Some(reply),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break None,
        }
        if last_tick.elapsed() >= Duration::from_millis(20) {
            last_tick = Instant::now();
            if let Err(e) = live.tick(origin.elapsed()) {
                tracing::error!(%id, "recording failed: {e}");
            }
            if let Some(m) = live.take_manifest_changed() {
                let tracks = m.catalog_tracks();
                if let Err(e) = rt.block_on(catalog.set_tracks(id, &tracks)) {
                    tracing::error!(%id, "updating the tracks failed: {e}");
                }
            }
        }
    };
    let result = live
        .finish(origin.elapsed(), Timestamp::now())
        .map_err(|e| e.to_string())
        .and_then(|m| {
            rt.block_on(roomtape_ingest::complete_recording(
                &catalog,
                store.as_ref(),
                &m,
                mix_bitrate,
            ))
            .map_err(|e| e.to_string())?;
            Ok(m)
        });
    if let Err(e) = &result {
        tracing::error!(%id, "finishing the recording failed: {e}");
    }
    if let Some(r) = reply {
        let _ = r.send(result);
    }
}
