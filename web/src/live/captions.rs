//! Live captions on the live side: the engine (a [`LiveCaptions`], made by the binary; web never
//! builds a model) is handed to the SFU's driver while a room wants captions, its captions come
//! back through [`Live::route_captions`] to the room's task, and the room's task hands them to
//! the members who asked and to the room's feed, which `GET /api/v1/rooms/{id}/captions`
//! streams as Server-Sent Events.
//!
//! Nothing here waits: the engine's calls return at once, the feed is a bounded broadcast (a
//! consumer that falls behind loses the oldest captions and is told so), and a room nobody
//! watches is not captioned at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use roomtape_core::{Caption, CaptionKey, CaptionKind, CaptionWord, LiveCaptions, RoomId, Speaker};

use super::Live;
use super::hub::HubMsg;
use super::protocol::RoomCaptions;

/// What the SFU's driver needs to caption a room: the engine and the room's time zero.
#[derive(Clone, Debug)]
pub struct CaptionFeed {
    pub engine: Arc<dyn LiveCaptions>,
    pub origin: Instant,
}

/// Who said a caption, as the feed shows it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CaptionSpeaker {
    /// The speaker's user id.
    pub id: roomtape_core::UserId,
    pub name: String,
}

/// One caption on the feed (the `data` of an SSE `caption` event).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CaptionEvent {
    /// `partial` (replaces the speaker's previous partial), `final` (never changes), `paused`
    /// or `resumed` (the server could not keep up; `text` says so).
    pub kind: CaptionKind,
    pub speaker: CaptionSpeaker,
    pub text: String,
    /// Room time of the first word's start and the last word's end: ms since the room's live
    /// session began (the first person came in).
    pub start_ms: i64,
    pub end_ms: i64,
    /// When the first word began, by the server's clock.
    pub at: roomtape_core::Timestamp,
    pub words: Vec<CaptionWord>,
}

impl CaptionEvent {
    /// `origin`: when room time 0 was, by the server's clock.
    pub fn new(
        user: roomtape_core::UserId,
        speaker: &Speaker,
        c: Caption,
        origin: roomtape_core::Timestamp,
    ) -> Self {
        CaptionEvent {
            kind: c.kind,
            speaker: CaptionSpeaker {
                id: user,
                name: speaker.name.clone(),
            },
            text: c.text,
            start_ms: c.start_ms,
            end_ms: c.end_ms,
            at: roomtape_core::Timestamp(origin.0 + c.start_ms),
            words: c.words,
        }
    }
}

/// What a room's feed carries.
#[derive(Clone, Debug)]
pub enum FeedMsg {
    Caption(Arc<CaptionEvent>),
    /// The room's host turned captions on or off.
    Offered(RoomCaptions),
    /// The room ended: the feed closes.
    Ended,
}

/// Captions kept for a consumer that is slow to read, per room; past that it loses the oldest.
const FEED_BACKLOG: usize = 256;

#[derive(Debug)]
struct Feed {
    tx: broadcast::Sender<FeedMsg>,
    watchers: usize,
}

/// Every room's caption feed and how many consumers follow it.
#[derive(Debug, Default)]
pub(crate) struct Feeds(Mutex<HashMap<RoomId, Feed>>);

impl Feeds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, Feed>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Consumers following `room` now.
    pub(crate) fn watchers(&self, room: RoomId) -> usize {
        self.lock().get(&room).map_or(0, |f| f.watchers)
    }

    /// To the room's consumers, if any.
    pub(crate) fn publish(&self, room: RoomId, m: FeedMsg) {
        if let Some(f) = self.lock().get(&room) {
            let _ = f.tx.send(m);
        }
    }
}

/// One consumer's place on a room's feed; it stops counting as a watcher when dropped.
#[derive(Debug)]
pub struct Follower {
    pub rx: broadcast::Receiver<FeedMsg>,
    room: RoomId,
    live: Arc<Live>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        let n = {
            let mut feeds = self.live.feeds.lock();
            let Some(f) = feeds.get_mut(&self.room) else {
                return;
            };
            f.watchers -= 1;
            let n = f.watchers;
            if n == 0 {
                feeds.remove(&self.room);
            }
            n
        };
        self.live.tell_room(self.room, HubMsg::Watchers(n));
    }
}

impl Live {
    /// Gives the rooms a caption engine, and takes the captions it makes (`made`, each with the
    /// speaker's key) to their rooms. Call once, before anyone joins.
    pub fn set_captions(
        self: &Arc<Self>,
        engine: Arc<dyn LiveCaptions>,
        made: mpsc::UnboundedReceiver<(CaptionKey, Caption)>,
    ) {
        if self.captions.set(engine).is_err() {
            tracing::warn!("a caption engine was set twice; keeping the first");
            return;
        }
        tokio::spawn(self.clone().route_captions(made));
    }

    /// Whether this server makes live captions.
    pub fn captions_available(&self) -> bool {
        self.captions.get().is_some()
    }

    pub(crate) fn caption_feed(&self, origin: Instant) -> Option<CaptionFeed> {
        self.captions.get().map(|e| CaptionFeed {
            engine: e.clone(),
            origin,
        })
    }

    /// Each caption to its room's task (which knows who asked for captions).
    async fn route_captions(
        self: Arc<Self>,
        mut made: mpsc::UnboundedReceiver<(CaptionKey, Caption)>,
    ) {
        while let Some((key, caption)) = made.recv().await {
            self.tell_room(
                key.room,
                HubMsg::Caption {
                    conn: key.conn,
                    speaker: key.speaker,
                    caption,
                },
            );
        }
    }

    /// Follows a room's captions (the room is told it has one more watcher).
    pub fn follow_captions(self: &Arc<Self>, room: RoomId) -> Follower {
        let (rx, n) = {
            let mut feeds = self.feeds.lock();
            let f = feeds.entry(room).or_insert_with(|| Feed {
                tx: broadcast::channel(FEED_BACKLOG).0,
                watchers: 0,
            });
            f.watchers += 1;
            (f.tx.subscribe(), f.watchers)
        };
        self.tell_room(room, HubMsg::Watchers(n));
        Follower {
            rx,
            room,
            live: self.clone(),
        }
    }
}
