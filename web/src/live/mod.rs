//! Live rooms: the signaling protocol, one task per room holding its people and rules, the
//! SFU that forwards their audio, and the recording tap.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};

use roomtape_core::{ArchiveStore, Catalog, Config, LiveCaptions, Room, RoomId, Speaker};

pub mod captions;
pub mod client;
pub mod hub;
pub mod limits;
pub mod outbox;
pub mod protocol;
pub mod recording;
pub(crate) mod room;
pub mod sfu;
pub mod ws;

use hub::{Hub, HubHandle, HubMsg};
use recording::{RecordingInfo, RecordingSession, Tap};

/// One WebSocket connection (one person's presence in one room).
pub type ConnId = u64;

/// What a room asks of the SFU.
#[derive(Debug)]
pub enum MediaCmd {
    /// A participant is ready: make their peer connection and send them an offer.
    Join {
        conn: ConnId,
        room: RoomId,
        speaker: Speaker,
        publish: bool,
        events: mpsc::UnboundedSender<HubMsg>,
    },
    /// About one participant's connection.
    Peer(PeerCmd),
    /// Record the room's audio into `tap` (or stop).
    Tap { room: RoomId, tap: Option<Tap> },
    /// Caption the room's speakers with `feed` (or stop).
    Captions {
        room: RoomId,
        feed: Option<captions::CaptionFeed>,
    },
    /// What the SFU holds now (tests, benchmarks, leak checks).
    Stats(tokio::sync::oneshot::Sender<SfuStats>),
}

/// What a room asks of the SFU about one participant's connection.
#[derive(Debug, PartialEq, Eq)]
pub enum PeerCmd {
    /// The participant's answer to the latest offer.
    Answer {
        conn: ConnId,
        sdp: String,
    },
    /// On stage (publishes) or off.
    SetPublish {
        conn: ConnId,
        publish: bool,
    },
    /// Forward this participant's audio (false: muted by themselves or a host).
    SetForward {
        conn: ConnId,
        forward: bool,
    },
    Leave {
        conn: ConnId,
    },
}

/// Counters of the SFU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SfuStats {
    pub peers: usize,
    pub rooms: usize,
    pub taps: usize,
    pub timers: usize,
    pub addresses: usize,
    /// RTP packets written to listeners since the start.
    pub forwarded: u64,
}

/// What the SFU tells a room.
#[derive(Debug)]
pub enum MediaEvent {
    /// `mic`: the track the client must send its microphone on, when on stage.
    Offer {
        conn: ConnId,
        sdp: String,
        mic: Option<String>,
    },
    /// The peer connection failed or timed out.
    Gone {
        conn: ConnId,
    },
    Error {
        conn: ConnId,
        message: String,
    },
    /// Who is speaking now.
    Speaking {
        conns: Vec<ConnId>,
    },
}

/// Every live room of this process.
#[derive(Debug)]
pub struct Live {
    pub catalog: Catalog,
    pub store: Arc<dyn ArchiveStore>,
    config: Arc<Config>,
    hubs: Mutex<HashMap<RoomId, HubHandle>>,
    media: Option<mpsc::UnboundedSender<MediaCmd>>,
    next_conn: AtomicU64,
    /// Rooms a host ended whose catalog row does not say so yet: nobody enters them.
    /// Rooms whose end is being stored (`None`) or was stored lately (when): a request that
    /// read the room as live just before its end still finds it here.
    ending: Mutex<HashMap<RoomId, Option<Instant>>>,
    /// Recordings being finished beside their rooms, and a wake-up when one is done.
    finishing: AtomicUsize,
    finished: Notify,
    /// The live caption engine, when this server captions.
    captions: OnceLock<Arc<dyn LiveCaptions>>,
    /// Each room's caption feed for API consumers.
    feeds: captions::Feeds,
}

/// How long an ended room is remembered beside the catalog (longer than any request takes).
const ENDED_MEMORY: Duration = Duration::from_secs(600);

impl Live {
    /// `media` is the SFU's command channel (`None`: signaling only, no audio).
    pub fn new(
        catalog: Catalog,
        store: Arc<dyn ArchiveStore>,
        config: Arc<Config>,
        media: Option<mpsc::UnboundedSender<MediaCmd>>,
    ) -> Arc<Self> {
        Arc::new(Live {
            catalog,
            store,
            config,
            hubs: Mutex::new(HashMap::new()),
            media,
            next_conn: AtomicU64::new(1),
            ending: Mutex::new(HashMap::new()),
            finishing: AtomicUsize::new(0),
            finished: Notify::new(),
            captions: OnceLock::new(),
            feeds: captions::Feeds::default(),
        })
    }

    pub fn next_conn(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn hubs(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, HubHandle>> {
        self.hubs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The room's task, started when the first person arrives. The caller must send one
    /// `HubMsg::Join` on it.
    pub fn hub(self: &Arc<Self>, room: &Room) -> HubHandle {
        let mut hubs = self.hubs();
        let h = match hubs.get(&room.id) {
            Some(h) if !h.tx.is_closed() => h.clone(),
            _ => {
                let h = Hub::spawn(room.clone(), self.clone());
                hubs.insert(room.id, h.clone());
                h
            }
        };
        h.pending.fetch_add(1, Ordering::AcqRel);
        h
    }

    /// Forgets a room's task if it is still the registered one and nobody joined meanwhile;
    /// true when it was removed (the task may end).
    pub(crate) fn retire(&self, room: RoomId, tx: &mpsc::UnboundedSender<HubMsg>) -> bool {
        let mut hubs = self.hubs();
        match hubs.get(&room) {
            Some(h) if h.tx.same_channel(tx) => {
                if h.count.load(Ordering::Relaxed) == 0 && h.pending.load(Ordering::Acquire) == 0 {
                    hubs.remove(&room);
                    true
                } else {
                    false
                }
            }
            _ => true,
        }
    }

    /// A message to the room's task, if it is running (nobody is in a room without one).
    pub(crate) fn tell_room(&self, room: RoomId, m: HubMsg) {
        if let Some(h) = self.hubs().get(&room) {
            let _ = h.tx.send(m);
        }
    }

    /// True while anyone is in the room.
    pub fn is_live(&self, room: RoomId) -> bool {
        self.count(room) > 0
    }

    /// People in the room now.
    pub fn count(&self, room: RoomId) -> usize {
        self.hubs()
            .get(&room)
            .map_or(0, |h| h.count.load(Ordering::Relaxed))
    }

    /// Rooms with a running task (for leak checks).
    pub fn running_rooms(&self) -> usize {
        self.hubs().values().filter(|h| !h.tx.is_closed()).count()
    }

    /// The SFU's counters (`None` without an SFU).
    pub async fn sfu_stats(&self) -> Option<SfuStats> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.media.as_ref()?.send(MediaCmd::Stats(tx)).ok()?;
        rx.await.ok()
    }

    pub(crate) fn media(&self, cmd: MediaCmd) {
        if let Some(m) = &self.media {
            let _ = m.send(cmd);
        }
    }

    fn ending_rooms(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, Option<Instant>>> {
        self.ending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The room's host ended it: refuse newcomers until the catalog says so too.
    pub(crate) fn ending(&self, room: RoomId) {
        self.ending_rooms().insert(room, None);
    }

    /// The catalog now says the room ended (`stored`), or failed to (then it is not ended).
    /// An ended room is remembered for a while: a request that read it from the catalog as
    /// live a moment before is still refused.
    pub(crate) fn ended(&self, room: RoomId, stored: bool) {
        let now = Instant::now();
        let mut rooms = self.ending_rooms();
        rooms.retain(|_, at| at.is_none_or(|t| now.duration_since(t) < ENDED_MEMORY));
        if stored {
            rooms.insert(room, Some(now));
        } else {
            rooms.remove(&room);
        }
    }

    /// True while a room's end is being stored, and for a while after.
    pub fn is_ending(&self, room: RoomId) -> bool {
        self.ending_rooms().contains_key(&room)
    }

    /// Finishes a recording (last pages, mix, peaks, the job) on a task of its own, so the room
    /// that stopped it goes on at once.
    pub(crate) fn finish_beside(self: &Arc<Self>, r: RecordingSession) {
        self.finishing.fetch_add(1, Ordering::AcqRel);
        let live = self.clone();
        tokio::spawn(async move {
            let id = r.id();
            match r.finish().await {
                Ok(m) => tracing::info!(%id, tracks = m.tracks.len(), "recording finished"),
                Err(e) => tracing::error!(%id, "recording failed: {e}"),
            }
            live.finishing.fetch_sub(1, Ordering::AcqRel);
            live.finished.notify_waiters();
        });
    }

    /// Recordings still being finished.
    pub fn finishing(&self) -> usize {
        self.finishing.load(Ordering::Acquire)
    }

    /// Waits until no recording is being finished (shutdown, tests).
    pub async fn settled(&self) {
        loop {
            let done = self.finished.notified();
            if self.finishing() == 0 {
                return;
            }
            done.await;
        }
    }

    pub(crate) async fn start_recording(
        &self,
        info: RecordingInfo,
    ) -> roomtape_core::Result<RecordingSession> {
        RecordingSession::start(
            self.catalog.clone(),
            self.store.clone(),
            info,
            roomtape_ingest::RecorderSettings::from(&self.config.recorder),
            self.config.import.mix_bitrate,
        )
        .await
    }
}
