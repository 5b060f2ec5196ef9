//! One task per live room: it carries out what the room's rules ([`super::room::Room`]) decide
//! — messages to members, the room's news to everyone, what the SFU forwards, what is
//! recorded, what the catalog stores — and feeds the results of slow work back in. It decides
//! nothing itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use roomtape_core::{Caption, Room as RoomRow, RoomId, Speaker, User};

use super::captions::{CaptionEvent, FeedMsg};
use super::outbox::Outbox;
use super::protocol::{ClientMsg, Role};
use super::recording::RecordingSession;
use super::room::{Effect, In, Media, Persist, Room};
use super::{ConnId, Live, MediaCmd, MediaEvent};

pub(super) use super::room::by_stage_then_name;

/// Messages the room task takes in one turn before it tells everyone what changed: a burst of
/// changes costs each member one presence, and the task still yields now and then.
const BATCH: usize = 512;

/// Messages to a room's task.
#[derive(Debug)]
pub enum HubMsg {
    Join {
        conn: ConnId,
        user: User,
        /// Without an account (see [`crate::rooms::guest_entry`]).
        guest: bool,
        role: Role,
        out: Arc<Outbox>,
    },
    Client {
        conn: ConnId,
        msg: ClientMsg,
    },
    Leave {
        conn: ConnId,
    },
    Media(MediaEvent),
    /// The recording asked for has started (or could not); sent by the task that started it.
    RecordingStarted(Result<RecordingSession, String>),
    /// A live caption of the speaker on `conn`.
    Caption {
        conn: ConnId,
        speaker: Speaker,
        caption: Caption,
    },
    /// API consumers following the room's captions now.
    Watchers(usize),
}

/// A running room's handle.
#[derive(Clone, Debug)]
pub struct HubHandle {
    pub tx: mpsc::UnboundedSender<HubMsg>,
    /// People in the room.
    pub count: Arc<AtomicUsize>,
    /// Joins handed out whose `Join` the task has not seen yet: the task does not end while
    /// any is on its way.
    pub pending: Arc<AtomicUsize>,
}

/// A member's connection, as the task knows it.
struct Conn {
    out: Arc<Outbox>,
    /// Said hello: gets the room's news.
    greeted: bool,
}

pub(super) struct Hub {
    room: Room,
    live: Arc<Live>,
    conns: HashMap<ConnId, Conn>,
    /// The recording the room taps into.
    recording: Option<RecordingSession>,
    /// A recording that has just started, while the rules decide whether it is kept.
    started: Option<RecordingSession>,
    effects: Vec<Effect>,
    count: Arc<AtomicUsize>,
    pending: Arc<AtomicUsize>,
    rx: mpsc::UnboundedReceiver<HubMsg>,
    self_tx: mpsc::UnboundedSender<HubMsg>,
    persist: mpsc::UnboundedSender<Persist>,
    /// The room's time zero (captions are timed from it), and when it was by the clock.
    origin: std::time::Instant,
    origin_wall: roomtape_core::Timestamp,
    /// Whether the room's speakers are captioned.
    captioning: bool,
}

impl Hub {
    pub(super) fn spawn(room: RoomRow, live: Arc<Live>) -> HubHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let (persist, persist_rx) = mpsc::unbounded_channel();
        tokio::spawn(persist_loop(live.clone(), room.id, persist_rx));
        let count = Arc::new(AtomicUsize::new(0));
        let pending = Arc::new(AtomicUsize::new(0));
        let hub = Hub {
            room: Room::new(room, live.captions_available()),
            live,
            conns: HashMap::new(),
            recording: None,
            started: None,
            effects: Vec::new(),
            count: count.clone(),
            pending: pending.clone(),
            rx,
            self_tx: tx.clone(),
            persist,
            origin: std::time::Instant::now(),
            origin_wall: roomtape_core::Timestamp::now(),
            captioning: false,
        };
        // Consumers may follow the room's captions before anyone is in it.
        let watchers = hub.live.feeds.watchers(hub.room.id());
        if watchers > 0 {
            let _ = tx.send(HubMsg::Watchers(watchers));
        }
        tokio::spawn(hub.run());
        HubHandle { tx, count, pending }
    }

    fn id(&self) -> RoomId {
        self.room.id()
    }

    /// Takes what has arrived (up to a batch), applies it in order, then tells everyone what
    /// changed, once. Nothing here waits for anything but the next message: slow work runs
    /// beside the room and reports back as a message.
    async fn run(mut self) {
        let mut batch = Vec::with_capacity(BATCH);
        while self.rx.recv_many(&mut batch, BATCH).await > 0 {
            for m in batch.drain(..) {
                self.take(m);
            }
            let mut fx = std::mem::take(&mut self.effects);
            self.room.flush(&mut fx);
            self.apply(fx);
            self.count.store(self.room.len(), Ordering::Relaxed);
            let ended = self.room.is_ended();
            if ended || self.room.len() == 0 {
                // Nobody left: stop recording and let the room task go; a newcomer starts
                // another. The room itself stays open until its host ends it.
                if ended || self.live.retire(self.id(), &self.self_tx) {
                    break;
                }
            }
        }
        self.rx.close();
        self.feed(In::Stop);
        while let Ok(m) = self.rx.try_recv() {
            self.take(m);
        }
        self.live.retire(self.id(), &self.self_tx);
    }

    /// One message to the task.
    fn take(&mut self, m: HubMsg) {
        let input = match m {
            HubMsg::Join {
                conn,
                user,
                guest,
                role,
                out,
            } => {
                self.pending.fetch_sub(1, Ordering::AcqRel);
                self.conns.insert(
                    conn,
                    Conn {
                        out,
                        greeted: false,
                    },
                );
                In::Join {
                    conn,
                    user,
                    guest,
                    role,
                }
            }
            HubMsg::Client { conn, msg } => In::Client { conn, msg },
            HubMsg::Leave { conn } => In::Leave { conn },
            HubMsg::Media(MediaEvent::Offer { conn, sdp, mic }) => In::Offer { conn, sdp, mic },
            HubMsg::Media(MediaEvent::Gone { conn }) => In::MediaGone { conn },
            HubMsg::Media(MediaEvent::Error { conn, message }) => In::MediaError { conn, message },
            HubMsg::Media(MediaEvent::Speaking { conns }) => In::Speaking { conns },
            HubMsg::Caption {
                conn,
                speaker,
                caption,
            } => In::Caption {
                conn,
                speaker,
                caption,
            },
            HubMsg::Watchers(n) => In::Watchers(n),
            HubMsg::RecordingStarted(r) => In::RecordingStarted(match r {
                Ok(session) => {
                    self.started = Some(session);
                    Ok(())
                }
                Err(e) => Err(e),
            }),
        };
        self.feed(input);
        // The rules keep or finish every recording that starts; never drop one.
        if let Some(r) = self.started.take() {
            self.live.finish_beside(r);
        }
    }

    fn feed(&mut self, input: In) {
        let mut fx = std::mem::take(&mut self.effects);
        self.room.handle(input, &mut fx);
        self.apply(fx);
    }

    fn greeted(&self) -> impl Iterator<Item = &Outbox> {
        self.conns
            .values()
            .filter(|c| c.greeted)
            .map(|c| c.out.as_ref())
    }

    fn tap(&self, on: bool) {
        self.live.media(MediaCmd::Tap {
            room: self.id(),
            tap: self.recording.as_ref().filter(|_| on).map(|r| r.tap()),
        });
    }

    fn captions(&self) {
        self.live.media(MediaCmd::Captions {
            room: self.id(),
            feed: self
                .live
                .caption_feed(self.origin)
                .filter(|_| self.captioning),
        });
    }

    fn apply(&mut self, mut fx: Vec<Effect>) {
        for e in fx.drain(..) {
            match e {
                Effect::Send { conn, msg } => {
                    let Some(c) = self.conns.get(&conn) else {
                        continue;
                    };
                    // Its own messages are few (answers to what it asked, rate-limited by its
                    // connection), so a full queue means it stopped reading: it goes, and
                    // nobody else notices.
                    if c.out.push(msg).is_err() {
                        tracing::debug!(conn, "client is not reading; dropping it");
                        c.out.close();
                        let _ = self.self_tx.send(HubMsg::Leave { conn });
                    }
                }
                Effect::Close { conn } => {
                    if let Some(c) = self.conns.remove(&conn) {
                        c.out.close();
                    }
                }
                Effect::Greeted { conn } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.greeted = true;
                    }
                }
                Effect::Presence { changed, gone } => {
                    for out in self.greeted() {
                        out.presence(&changed, &gone);
                    }
                }
                Effect::Speaking { users } => {
                    for out in self.greeted() {
                        out.speaking(&users);
                    }
                }
                Effect::Recording { on } => {
                    for out in self.greeted() {
                        out.recording(on);
                    }
                }
                Effect::CaptionsOffered { captions } => {
                    for out in self.greeted() {
                        out.captions_offered(captions);
                    }
                    self.live
                        .feeds
                        .publish(self.id(), FeedMsg::Offered(captions));
                }
                Effect::Caption {
                    to,
                    user,
                    speaker,
                    caption,
                } => {
                    let event =
                        Arc::new(CaptionEvent::new(user, &speaker, caption, self.origin_wall));
                    for conn in to {
                        if let Some(c) = self.conns.get(&conn) {
                            c.out.caption(&event);
                        }
                    }
                    self.live.feeds.publish(self.id(), FeedMsg::Caption(event));
                }
                Effect::Media(m) => self.media(m),
                Effect::Persist(p) => {
                    let _ = self.persist.send(p);
                }
                Effect::StartRecording(info) => {
                    let live = self.live.clone();
                    let tx = self.self_tx.clone();
                    tokio::spawn(async move {
                        let r = live.start_recording(info).await.map_err(|e| e.to_string());
                        // A room that has gone meanwhile cannot take it: finish it here.
                        if let Err(mpsc::error::SendError(HubMsg::RecordingStarted(Ok(r)))) =
                            tx.send(HubMsg::RecordingStarted(r))
                        {
                            live.finish_beside(r);
                        }
                    });
                }
                Effect::KeepRecording => {
                    if let Some(r) = self.started.take() {
                        self.recording = Some(r);
                        self.tap(true);
                    }
                }
                Effect::FinishRecording => {
                    if let Some(r) = self.started.take() {
                        self.live.finish_beside(r);
                    } else if self.recording.is_some() {
                        self.tap(false);
                        if let Some(r) = self.recording.take() {
                            self.live.finish_beside(r);
                        }
                    }
                }
                Effect::Ending => {
                    self.live.ending(self.id());
                    self.live.feeds.publish(self.id(), FeedMsg::Ended);
                }
                Effect::Ended => {}
            }
        }
        self.effects = fx;
    }

    fn media(&mut self, m: Media) {
        let cmd = match m {
            Media::Join {
                conn,
                speaker,
                publish,
            } => {
                self.live.media(MediaCmd::Join {
                    conn,
                    room: self.id(),
                    speaker,
                    publish,
                    events: self.self_tx.clone(),
                });
                // The SFU forgets a room's tap when its last peer goes; a recording outlives
                // that, so each newcomer brings it back.
                if self.recording.is_some() {
                    self.tap(true);
                }
                if self.captioning {
                    self.captions();
                }
                return;
            }
            Media::Captions { on } => {
                self.captioning = on;
                self.captions();
                return;
            }
            Media::Peer(p) => MediaCmd::Peer(p),
        };
        self.live.media(cmd);
    }
}

/// The room's catalog writes, in the order the room made them, beside the room.
async fn persist_loop(live: Arc<Live>, room: RoomId, mut rx: mpsc::UnboundedReceiver<Persist>) {
    while let Some(p) = rx.recv().await {
        match p {
            Persist::Role { user, role } => {
                if let Err(e) = live.catalog.set_room_role(room, user, role).await {
                    tracing::error!(%room, "storing a role failed: {e}");
                }
            }
            Persist::Captions { on } => {
                if let Err(e) = live.catalog.set_room_captions(room, on).await {
                    tracing::error!(%room, "storing the room's captions setting failed: {e}");
                }
            }
            Persist::End => {
                let stored = live.catalog.end_room(room).await;
                if let Err(e) = &stored {
                    tracing::error!(%room, "ending the room failed: {e}");
                }
                live.ended(room, stored.is_ok());
            }
        }
    }
}

/// The live role someone enters with.
pub fn role_of(entry: crate::rooms::Entry) -> Role {
    match entry {
        crate::rooms::Entry::Host => Role::Host,
        crate::rooms::Entry::Cohost => Role::Cohost,
        crate::rooms::Entry::Speaker => Role::Speaker,
        crate::rooms::Entry::Listener => Role::Listener,
    }
}
