//! One task per live room: who is there and in which role, raised hands and invitations, and
//! every rule about who may do what, checked here on the server. It tells the SFU what to
//! forward and the recorder what to record, and everyone what changed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use roomtape_core::{Room, RoomId, Speaker, SpeakerId, StoredRole, User, UserId};

use super::outbox::Outbox;
use super::protocol::{ClientMsg, Person, Role, ServerMsg, VERSION};
use super::recording::{RecordingInfo, RecordingSession};
use super::{ConnId, Live, MediaCmd, MediaEvent};

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
}

#[derive(Debug)]
struct Member {
    conn: ConnId,
    user: User,
    /// Listening without an account: never on stage, never given a lasting role.
    guest: bool,
    role: Role,
    muted: bool,
    hand: bool,
    invited: bool,
    speaking: bool,
    hello: bool,
    out: Arc<Outbox>,
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

/// The recording, as the room sees it.
#[derive(Debug)]
enum Rec {
    Off,
    /// Asked for by `by`; the task starting it reports back. `stop`: stopped (or the room
    /// ended) meanwhile, so it is finished as soon as it exists.
    Starting {
        by: ConnId,
        stop: bool,
    },
    On(RecordingSession),
}

/// A catalog write of the room's, made in order by a task beside it.
#[derive(Debug)]
enum Persist {
    Role {
        user: UserId,
        role: Option<StoredRole>,
    },
    End,
}

pub(super) struct Hub {
    room: Room,
    live: Arc<Live>,
    members: Vec<Member>,
    /// The room as the last presence showed it, by person: what the next one is a change from.
    shown: HashMap<UserId, Person>,
    /// People who may have changed (or left) since the last presence.
    touched: HashSet<UserId>,
    recording: Rec,
    count: Arc<AtomicUsize>,
    pending: Arc<AtomicUsize>,
    rx: mpsc::UnboundedReceiver<HubMsg>,
    self_tx: mpsc::UnboundedSender<HubMsg>,
    persist: mpsc::UnboundedSender<Persist>,
}

impl Hub {
    pub(super) fn spawn(room: Room, live: Arc<Live>) -> HubHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let (persist, persist_rx) = mpsc::unbounded_channel();
        tokio::spawn(persist_loop(live.clone(), room.id, persist_rx));
        let count = Arc::new(AtomicUsize::new(0));
        let pending = Arc::new(AtomicUsize::new(0));
        let hub = Hub {
            room,
            live,
            members: Vec::new(),
            shown: HashMap::new(),
            touched: HashSet::new(),
            recording: Rec::Off,
            count: count.clone(),
            pending: pending.clone(),
            rx,
            self_tx: tx.clone(),
            persist,
        };
        tokio::spawn(hub.run());
        HubHandle { tx, count, pending }
    }

    /// Takes what has arrived (up to a batch), applies it in order, then tells everyone what
    /// changed, once. Nothing here waits for anything but the next message: slow work runs
    /// beside the room and reports back as a message.
    async fn run(mut self) {
        let mut batch = Vec::with_capacity(BATCH);
        while self.rx.recv_many(&mut batch, BATCH).await > 0 {
            let mut ended = false;
            for m in batch.drain(..) {
                if ended {
                    self.after_end(m);
                } else {
                    ended = self.handle(m);
                }
            }
            self.flush_presence();
            self.count.store(self.members.len(), Ordering::Relaxed);
            if ended || self.members.is_empty() {
                // Nobody left: stop recording and let the room task go; a newcomer starts
                // another. The room itself stays open until its host ends it.
                if ended || self.live.retire(self.room.id, &self.self_tx) {
                    break;
                }
            }
        }
        self.rx.close();
        while let Ok(m) = self.rx.try_recv() {
            self.after_end(m);
        }
        self.stop_recording();
        self.live.retire(self.room.id, &self.self_tx);
    }

    /// Handles one message; true when the room ended.
    fn handle(&mut self, m: HubMsg) -> bool {
        match m {
            HubMsg::Join {
                conn,
                user,
                guest,
                role,
                out,
            } => {
                self.pending.fetch_sub(1, Ordering::AcqRel);
                self.join(conn, user, guest, role, out);
            }
            HubMsg::Client { conn, msg } => return self.client(conn, msg),
            HubMsg::Leave { conn } => self.leave(conn),
            HubMsg::Media(e) => self.media(e),
            HubMsg::RecordingStarted(r) => self.recording_started(r),
        }
        false
    }

    /// A message that arrived after the room task decided to stop: a recording that started
    /// meanwhile is finished, a newcomer is told the room is gone.
    fn after_end(&mut self, m: HubMsg) {
        match m {
            HubMsg::RecordingStarted(r) => {
                if let Rec::Starting { by, .. } = self.recording {
                    self.recording = Rec::Starting { by, stop: true };
                }
                self.recording_started(r);
            }
            HubMsg::Join { out, .. } => {
                self.pending.fetch_sub(1, Ordering::AcqRel);
                let _ = out.push(ServerMsg::Ended);
                out.close();
            }
            _ => {}
        }
    }

    fn idx(&self, conn: ConnId) -> Option<usize> {
        self.members.iter().position(|m| m.conn == conn)
    }

    fn by_user(&self, user: UserId) -> Option<usize> {
        self.members.iter().position(|m| m.user.id == user)
    }

    /// A message for one member alone.
    fn send(&self, i: usize, msg: ServerMsg) {
        let m = &self.members[i];
        // Its own messages are few (answers to what it asked, rate-limited by its connection),
        // so a full queue means it stopped reading: it goes, and nobody else notices.
        if m.out.push(msg).is_err() {
            tracing::debug!(conn = m.conn, "client is not reading; dropping it");
            m.out.close();
            let _ = self.self_tx.send(HubMsg::Leave { conn: m.conn });
        }
    }

    /// The person as others see them now.
    fn person(m: &Member) -> Person {
        Person {
            id: m.user.id,
            name: m.user.display_name.clone(),
            role: m.role,
            muted: m.muted,
            hand: m.hand,
            speaking: m.speaking,
            guest: m.guest,
        }
    }

    /// Tells everyone who changed since the last presence: in a room of thousands, a join
    /// costs one small change each, not the whole audience each, and finding it costs the
    /// people touched, not the room. Members that have not taken the last presence yet get
    /// this one merged into it.
    fn flush_presence(&mut self) {
        if self.touched.is_empty() {
            return;
        }
        let mut changed = Vec::new();
        let mut gone = Vec::new();
        for id in std::mem::take(&mut self.touched) {
            match self.by_user(id) {
                Some(i) => {
                    let p = Self::person(&self.members[i]);
                    if self.shown.get(&id) != Some(&p) {
                        self.shown.insert(id, p.clone());
                        changed.push(p);
                    }
                }
                None => {
                    if self.shown.remove(&id).is_some() {
                        gone.push(id);
                    }
                }
            }
        }
        if changed.is_empty() && gone.is_empty() {
            return;
        }
        for m in self.members.iter().filter(|m| m.hello) {
            m.out.presence(&changed, &gone);
        }
    }

    fn join(&mut self, conn: ConnId, user: User, guest: bool, role: Role, out: Arc<Outbox>) {
        // One connection per person: a second tab takes over.
        if let Some(i) = self.by_user(user.id) {
            let old = self.members.remove(i);
            let _ = old.out.push(ServerMsg::error(
                "replaced",
                "you joined this room from another window",
            ));
            old.out.close();
            self.live.media(MediaCmd::Leave { conn: old.conn });
        }
        self.members.push(Member {
            conn,
            user,
            guest,
            role,
            muted: false,
            hand: false,
            invited: false,
            speaking: false,
            hello: false,
            out,
        });
    }

    fn leave(&mut self, conn: ConnId) {
        if let Some(i) = self.idx(conn) {
            let m = self.members.remove(i);
            m.out.close();
            self.live.media(MediaCmd::Leave { conn });
            self.touched.insert(m.user.id);
        }
    }

    fn media(&mut self, e: MediaEvent) {
        match e {
            MediaEvent::Offer { conn, sdp, mic } => {
                if let Some(i) = self.idx(conn) {
                    self.send(i, ServerMsg::Offer { sdp, mic });
                }
            }
            MediaEvent::Gone { conn } => self.leave(conn),
            MediaEvent::Error { conn, message } => {
                if let Some(i) = self.idx(conn) {
                    self.send(i, ServerMsg::error("media", message));
                }
            }
            MediaEvent::Speaking { conns } => {
                let mut changed = false;
                for m in &mut self.members {
                    let now = conns.contains(&m.conn) && m.role.on_stage() && !m.muted;
                    changed |= now != m.speaking;
                    m.speaking = now;
                }
                if changed {
                    let users: Vec<UserId> = self
                        .members
                        .iter()
                        .filter(|m| m.speaking)
                        .map(|m| m.user.id)
                        .collect();
                    for m in self.members.iter().filter(|m| m.hello) {
                        m.out.speaking(&users);
                    }
                }
            }
        }
    }

    fn speaker_of(m: &Member) -> Speaker {
        Speaker {
            id: SpeakerId::from(m.user.id.as_uuid()),
            name: m.user.display_name.clone(),
        }
    }

    /// Handles one client message; true when the room ended.
    fn client(&mut self, conn: ConnId, msg: ClientMsg) -> bool {
        let Some(me) = self.idx(conn) else {
            return false;
        };
        let refuse = |code: &str, m: &str| ServerMsg::error(code, m.to_string());
        if !self.members[me].hello {
            match msg {
                ClientMsg::Hello { v } if v == VERSION => {
                    // Everyone else first hears of the newcomer (and of anything else not yet
                    // shown); the newcomer's welcome is then the room as it is, which the next
                    // presence is a change from.
                    self.touched.insert(self.members[me].user.id);
                    self.flush_presence();
                    self.members[me].hello = true;
                    let m = &self.members[me];
                    let mut people: Vec<Person> = self
                        .members
                        .iter()
                        .filter(|m| m.hello)
                        .map(Self::person)
                        .collect();
                    by_stage_then_name(&mut people);
                    let welcome = ServerMsg::Welcome {
                        v: VERSION,
                        you: m.user.id,
                        role: m.role,
                        title: self.room.title.clone(),
                        recording: matches!(self.recording, Rec::On(_)),
                        people,
                    };
                    self.send(me, welcome);
                    let m = &self.members[me];
                    self.live.media(MediaCmd::Join {
                        conn,
                        room: self.room.id,
                        speaker: Self::speaker_of(m),
                        publish: m.role.on_stage(),
                        events: self.self_tx.clone(),
                    });
                    if let Rec::On(r) = &self.recording {
                        self.live.media(MediaCmd::Tap {
                            room: self.room.id,
                            tap: Some(r.tap()),
                        });
                    }
                }
                ClientMsg::Hello { v } => self.send(
                    me,
                    refuse(
                        "version",
                        &format!("this server speaks protocol version {VERSION}, not {v}"),
                    ),
                ),
                _ => self.send(me, refuse("out_of_order", "say hello first")),
            }
            return false;
        }
        let role = self.members[me].role;
        let name = self.members[me].user.display_name.clone();
        match msg {
            ClientMsg::Hello { .. } => self.send(me, refuse("out_of_order", "already said hello")),
            ClientMsg::Ping => self.send(me, ServerMsg::Pong),
            ClientMsg::Answer { sdp } => self.live.media(MediaCmd::Answer { conn, sdp }),
            ClientMsg::RaiseHand | ClientMsg::LowerHand => {
                if role != Role::Listener {
                    self.send(me, refuse("forbidden", "only listeners raise hands"));
                } else if self.members[me].guest {
                    self.send(me, refuse("sign_in", "sign in to raise your hand"));
                } else {
                    self.members[me].hand = msg == ClientMsg::RaiseHand;
                    self.touched.insert(self.members[me].user.id);
                }
            }
            ClientMsg::InviteToSpeak { user } => {
                if !role.moderates() {
                    return self.deny(me);
                }
                match self.by_user(user) {
                    Some(t) if self.members[t].guest => self.send(
                        me,
                        refuse("forbidden", "a guest without an account cannot speak"),
                    ),
                    Some(t) if self.members[t].role == Role::Listener => {
                        self.members[t].invited = true;
                        self.send(t, ServerMsg::Invited { by: name });
                    }
                    Some(_) => self.send(me, refuse("invalid", "that person is already on stage")),
                    None => self.send(me, refuse("not_found", "that person is not here")),
                }
            }
            ClientMsg::AcceptInvite => {
                if role != Role::Listener || !self.members[me].invited {
                    self.send(me, refuse("forbidden", "nobody invited you to speak"));
                } else {
                    self.set_role(me, Role::Speaker);
                }
            }
            ClientMsg::DeclineInvite => {
                self.members[me].invited = false;
            }
            ClientMsg::SetMuted { muted } => {
                if !role.on_stage() {
                    self.send(me, refuse("forbidden", "listeners have no microphone here"));
                } else {
                    self.members[me].muted = muted;
                    self.live.media(MediaCmd::SetForward {
                        conn,
                        forward: !muted,
                    });
                    self.touched.insert(self.members[me].user.id);
                }
            }
            ClientMsg::Mute { user } => {
                let Some(t) = self.target(me, user) else {
                    return false;
                };
                if !self.members[t].role.on_stage() {
                    self.send(me, refuse("invalid", "that person is not on stage"));
                } else {
                    self.members[t].muted = true;
                    let c = self.members[t].conn;
                    self.live.media(MediaCmd::SetForward {
                        conn: c,
                        forward: false,
                    });
                    self.send(t, ServerMsg::Muted { by: name });
                    self.touched.insert(self.members[t].user.id);
                }
            }
            ClientMsg::MoveToAudience { user } => {
                if user == self.members[me].user.id {
                    if role == Role::Host {
                        self.send(me, refuse("forbidden", "the host stays on stage"));
                    } else if role.on_stage() {
                        self.set_role(me, Role::Listener);
                    }
                    return false;
                }
                let Some(t) = self.target(me, user) else {
                    return false;
                };
                if self.members[t].role.on_stage() {
                    self.set_role(t, Role::Listener);
                }
            }
            ClientMsg::MakeCohost { user } => {
                let Some(t) = self.target(me, user) else {
                    return false;
                };
                if self.members[t].guest {
                    self.send(
                        me,
                        refuse("forbidden", "a guest without an account cannot co-host"),
                    );
                    return false;
                }
                self.set_role(t, Role::Cohost);
            }
            ClientMsg::Remove { user } => {
                let Some(t) = self.target(me, user) else {
                    return false;
                };
                // A guest has no account to bar; they are shown out.
                if !self.members[t].guest {
                    let _ = self.persist.send(Persist::Role {
                        user: self.members[t].user.id,
                        role: Some(StoredRole::Removed),
                    });
                }
                self.send(t, ServerMsg::Removed);
                let c = self.members[t].conn;
                self.leave(c);
            }
            ClientMsg::StartRecording | ClientMsg::StopRecording => {
                if role != Role::Host {
                    self.send(me, refuse("forbidden", "only the host records"));
                } else if msg == ClientMsg::StartRecording {
                    self.start_recording(me);
                } else {
                    self.stop_recording();
                    self.tell_recording(false);
                }
            }
            ClientMsg::EndRoom => {
                if !role.moderates() {
                    return self.deny(me);
                }
                // Nobody enters from now on, whether or not the catalog has been told yet.
                self.live.ending(self.room.id);
                let _ = self.persist.send(Persist::End);
                self.stop_recording();
                for m in std::mem::take(&mut self.members) {
                    if m.hello {
                        let _ = m.out.push(ServerMsg::Ended);
                    }
                    m.out.close();
                    self.live.media(MediaCmd::Leave { conn: m.conn });
                }
                return true;
            }
        }
        false
    }

    fn deny(&self, me: usize) -> bool {
        self.send(
            me,
            ServerMsg::error("forbidden", "only hosts and co-hosts may do that"),
        );
        false
    }

    /// The member a moderator acts on: moderators only; nobody acts on the host or on
    /// themselves; only the host acts on co-hosts.
    fn target(&self, me: usize, user: UserId) -> Option<usize> {
        let role = self.members[me].role;
        if !role.moderates() {
            self.deny(me);
            return None;
        }
        let Some(t) = self.by_user(user) else {
            self.send(me, ServerMsg::error("not_found", "that person is not here"));
            return None;
        };
        let theirs = self.members[t].role;
        if t == me || theirs == Role::Host || (theirs == Role::Cohost && role != Role::Host) {
            self.send(
                me,
                ServerMsg::error("forbidden", "you cannot do that to this person"),
            );
            return None;
        }
        Some(t)
    }

    fn set_role(&mut self, i: usize, role: Role) {
        let was = self.members[i].role;
        {
            let m = &mut self.members[i];
            m.role = role;
            m.hand = false;
            m.invited = false;
            if !role.on_stage() {
                m.muted = false;
                m.speaking = false;
            }
        }
        let stored = match role {
            Role::Cohost => Some(StoredRole::Cohost),
            Role::Speaker => Some(StoredRole::Speaker),
            _ => None,
        };
        if role != Role::Host {
            let _ = self.persist.send(Persist::Role {
                user: self.members[i].user.id,
                role: stored,
            });
        }
        if was.on_stage() != role.on_stage() {
            self.live.media(MediaCmd::SetPublish {
                conn: self.members[i].conn,
                publish: role.on_stage(),
            });
        }
        self.send(i, ServerMsg::Role { role });
        self.touched.insert(self.members[i].user.id);
    }

    fn tell_recording(&self, on: bool) {
        for m in self.members.iter().filter(|m| m.hello) {
            m.out.recording(on);
        }
    }

    /// Starts a recording beside the room (a catalog row, an archive, a thread); the room hears
    /// back through `HubMsg::RecordingStarted`.
    fn start_recording(&mut self, me: usize) {
        if !matches!(self.recording, Rec::Off) {
            self.send(me, ServerMsg::error("invalid", "already recording"));
            return;
        }
        self.recording = Rec::Starting {
            by: self.members[me].conn,
            stop: false,
        };
        let info = RecordingInfo {
            room: Some(self.room.id),
            title: self.room.title.clone(),
            language: self.room.language.clone(),
            owner: self.room.host_id,
            description: self.room.description.clone(),
        };
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

    fn recording_started(&mut self, r: Result<RecordingSession, String>) {
        let Rec::Starting { by, stop } = std::mem::replace(&mut self.recording, Rec::Off) else {
            // Nothing was asked for; cannot happen, but a recording must never be dropped.
            if let Ok(r) = r {
                self.live.finish_beside(r);
            }
            return;
        };
        match r {
            Ok(r) if stop => self.live.finish_beside(r),
            Ok(r) => {
                self.live.media(MediaCmd::Tap {
                    room: self.room.id,
                    tap: Some(r.tap()),
                });
                self.recording = Rec::On(r);
                self.tell_recording(true);
            }
            Err(e) => {
                tracing::error!("starting a recording failed: {e}");
                if let Some(i) = self.idx(by) {
                    self.send(
                        i,
                        ServerMsg::error(
                            "recording",
                            "the recording could not start; see the server log",
                        ),
                    );
                }
            }
        }
    }

    /// Stops recording now; the last pages, the mix and the catalog are finished beside the
    /// room, which goes on at once.
    fn stop_recording(&mut self) {
        match std::mem::replace(&mut self.recording, Rec::Off) {
            Rec::On(r) => {
                self.live.media(MediaCmd::Tap {
                    room: self.room.id,
                    tap: None,
                });
                self.live.finish_beside(r);
            }
            Rec::Starting { by, .. } => self.recording = Rec::Starting { by, stop: true },
            Rec::Off => {}
        }
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

/// The order people are listed in: host, co-hosts, speakers, listeners; by name within each.
pub(super) fn by_stage_then_name(people: &mut [Person]) {
    people.sort_by(|a, b| a.role.cmp(&b.role).then_with(|| a.name.cmp(&b.name)));
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
