//! One task per live room: who is there and in which role, raised hands and invitations, and
//! every rule about who may do what, checked here on the server. It tells the SFU what to
//! forward and the recorder what to record, and everyone what changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use roomtape_core::{Room, Speaker, SpeakerId, StoredRole, User, UserId};

use super::protocol::{ClientMsg, Person, Role, ServerMsg, VERSION};
use super::recording::{RecordingInfo, RecordingSession};
use super::{ConnId, Live, MediaCmd, MediaEvent};

/// Messages to a room's task.
#[derive(Debug)]
pub enum HubMsg {
    Join {
        conn: ConnId,
        user: User,
        role: Role,
        out: mpsc::Sender<ServerMsg>,
    },
    Client {
        conn: ConnId,
        msg: ClientMsg,
    },
    Leave {
        conn: ConnId,
    },
    Media(MediaEvent),
}

#[derive(Debug)]
struct Member {
    conn: ConnId,
    user: User,
    role: Role,
    muted: bool,
    hand: bool,
    invited: bool,
    speaking: bool,
    hello: bool,
    out: mpsc::Sender<ServerMsg>,
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

pub(super) struct Hub {
    room: Room,
    live: Arc<Live>,
    members: Vec<Member>,
    /// The room as the last presence showed it, by person: what the next one is a change from.
    shown: HashMap<UserId, Person>,
    recording: Option<RecordingSession>,
    count: Arc<AtomicUsize>,
    pending: Arc<AtomicUsize>,
    rx: mpsc::UnboundedReceiver<HubMsg>,
    self_tx: mpsc::UnboundedSender<HubMsg>,
}

impl Hub {
    pub(super) fn spawn(room: Room, live: Arc<Live>) -> HubHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let count = Arc::new(AtomicUsize::new(0));
        let pending = Arc::new(AtomicUsize::new(0));
        let hub = Hub {
            room,
            live,
            members: Vec::new(),
            shown: HashMap::new(),
            recording: None,
            count: count.clone(),
            pending: pending.clone(),
            rx,
            self_tx: tx.clone(),
        };
        tokio::spawn(hub.run());
        HubHandle { tx, count, pending }
    }

    async fn run(mut self) {
        while let Some(m) = self.rx.recv().await {
            let ended = match m {
                HubMsg::Join {
                    conn,
                    user,
                    role,
                    out,
                } => {
                    self.pending.fetch_sub(1, Ordering::AcqRel);
                    self.join(conn, user, role, out);
                    false
                }
                HubMsg::Client { conn, msg } => self.client(conn, msg).await,
                HubMsg::Leave { conn } => {
                    self.leave(conn);
                    false
                }
                HubMsg::Media(e) => {
                    self.media(e);
                    false
                }
            };
            self.count.store(self.members.len(), Ordering::Relaxed);
            if ended || self.members.is_empty() {
                // Nobody left: stop recording and let the room task go; a newcomer starts
                // another. The room itself stays open until its host ends it.
                if ended || self.live.retire(self.room.id, &self.self_tx) {
                    break;
                }
            }
        }
        self.stop_recording().await;
        self.live.retire(self.room.id, &self.self_tx);
    }

    fn idx(&self, conn: ConnId) -> Option<usize> {
        self.members.iter().position(|m| m.conn == conn)
    }

    fn by_user(&self, user: UserId) -> Option<usize> {
        self.members.iter().position(|m| m.user.id == user)
    }

    /// Everyone here as the others see them, by id.
    fn people(&self) -> HashMap<UserId, Person> {
        self.members
            .iter()
            .map(|m| {
                let p = Person {
                    id: m.user.id,
                    name: m.user.display_name.clone(),
                    role: m.role,
                    muted: m.muted,
                    hand: m.hand,
                    speaking: m.speaking,
                };
                (p.id, p)
            })
            .collect()
    }

    fn send(&self, i: usize, msg: ServerMsg) {
        // A client that cannot keep up loses its connection rather than slowing the room.
        if self.members[i].out.try_send(msg).is_err() {
            tracing::debug!(
                conn = self.members[i].conn,
                "client is not reading; dropping it"
            );
            let _ = self.self_tx.send(HubMsg::Leave {
                conn: self.members[i].conn,
            });
        }
    }

    /// Tells everyone who changed since the last presence: in a room of thousands, a join
    /// costs one small message each, not the whole audience each.
    fn broadcast_presence(&mut self) {
        let now = self.people();
        let mut changed: Vec<Person> = now
            .values()
            .filter(|p| self.shown.get(&p.id) != Some(*p))
            .cloned()
            .collect();
        let mut gone: Vec<UserId> = self
            .shown
            .keys()
            .filter(|id| !now.contains_key(id))
            .copied()
            .collect();
        self.shown = now;
        if changed.is_empty() && gone.is_empty() {
            return;
        }
        by_stage_then_name(&mut changed);
        gone.sort_unstable();
        self.broadcast(ServerMsg::Presence { changed, gone });
    }

    fn broadcast(&self, msg: ServerMsg) {
        for i in 0..self.members.len() {
            if self.members[i].hello {
                self.send(i, msg.clone());
            }
        }
    }

    fn join(&mut self, conn: ConnId, user: User, role: Role, out: mpsc::Sender<ServerMsg>) {
        // One connection per person: a second tab takes over.
        if let Some(i) = self.by_user(user.id) {
            let old = self.members.remove(i);
            let _ = old.out.try_send(ServerMsg::error(
                "replaced",
                "you joined this room from another window",
            ));
            self.live.media(MediaCmd::Leave { conn: old.conn });
        }
        self.members.push(Member {
            conn,
            user,
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
            self.members.remove(i);
            self.live.media(MediaCmd::Leave { conn });
            self.broadcast_presence();
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
                    let users = self
                        .members
                        .iter()
                        .filter(|m| m.speaking)
                        .map(|m| m.user.id)
                        .collect();
                    self.broadcast(ServerMsg::Speaking { users });
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
    async fn client(&mut self, conn: ConnId, msg: ClientMsg) -> bool {
        let Some(me) = self.idx(conn) else {
            return false;
        };
        let refuse = |code: &str, m: &str| ServerMsg::error(code, m.to_string());
        if !self.members[me].hello {
            match msg {
                ClientMsg::Hello { v } if v == VERSION => {
                    // Everyone else first hears of the newcomer (and of anything else not yet
                    // shown); the newcomer's welcome is then exactly what the next presence
                    // is a change from.
                    self.broadcast_presence();
                    self.members[me].hello = true;
                    let m = &self.members[me];
                    let mut people: Vec<Person> = self.shown.values().cloned().collect();
                    by_stage_then_name(&mut people);
                    let welcome = ServerMsg::Welcome {
                        v: VERSION,
                        you: m.user.id,
                        role: m.role,
                        title: self.room.title.clone(),
                        recording: self.recording.is_some(),
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
                    if let Some(r) = &self.recording {
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
                } else {
                    self.members[me].hand = msg == ClientMsg::RaiseHand;
                    self.broadcast_presence();
                }
            }
            ClientMsg::InviteToSpeak { user } => {
                if !role.moderates() {
                    return self.deny(me);
                }
                match self.by_user(user) {
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
                    self.set_role(me, Role::Speaker).await;
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
                    self.broadcast_presence();
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
                    self.broadcast_presence();
                }
            }
            ClientMsg::MoveToAudience { user } => {
                if user == self.members[me].user.id {
                    if role == Role::Host {
                        self.send(me, refuse("forbidden", "the host stays on stage"));
                    } else if role.on_stage() {
                        self.set_role(me, Role::Listener).await;
                    }
                    return false;
                }
                let Some(t) = self.target(me, user) else {
                    return false;
                };
                if self.members[t].role.on_stage() {
                    self.set_role(t, Role::Listener).await;
                }
            }
            ClientMsg::MakeCohost { user } => {
                let Some(t) = self.target(me, user) else {
                    return false;
                };
                self.set_role(t, Role::Cohost).await;
            }
            ClientMsg::Remove { user } => {
                let Some(t) = self.target(me, user) else {
                    return false;
                };
                let uid = self.members[t].user.id;
                if let Err(e) = self
                    .live
                    .catalog
                    .set_room_role(self.room.id, uid, Some(StoredRole::Removed))
                    .await
                {
                    tracing::error!("storing a removal failed: {e}");
                }
                self.send(t, ServerMsg::Removed);
                let c = self.members[t].conn;
                self.leave(c);
            }
            ClientMsg::StartRecording | ClientMsg::StopRecording => {
                if role != Role::Host {
                    self.send(me, refuse("forbidden", "only the host records"));
                } else if msg == ClientMsg::StartRecording {
                    self.start_recording(me).await;
                } else {
                    self.stop_recording().await;
                    self.broadcast(ServerMsg::Recording { on: false });
                }
            }
            ClientMsg::EndRoom => {
                if !role.moderates() {
                    return self.deny(me);
                }
                if let Err(e) = self.live.catalog.end_room(self.room.id).await {
                    tracing::error!("ending the room failed: {e}");
                }
                self.stop_recording().await;
                self.broadcast(ServerMsg::Ended);
                for m in std::mem::take(&mut self.members) {
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

    async fn set_role(&mut self, i: usize, role: Role) {
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
        let uid = self.members[i].user.id;
        if role != Role::Host
            && let Err(e) = self
                .live
                .catalog
                .set_room_role(self.room.id, uid, stored)
                .await
        {
            tracing::error!("storing a role failed: {e}");
        }
        if was.on_stage() != role.on_stage() {
            self.live.media(MediaCmd::SetPublish {
                conn: self.members[i].conn,
                publish: role.on_stage(),
            });
        }
        self.send(i, ServerMsg::Role { role });
        self.broadcast_presence();
    }

    async fn start_recording(&mut self, me: usize) {
        if self.recording.is_some() {
            self.send(me, ServerMsg::error("invalid", "already recording"));
            return;
        }
        let info = RecordingInfo {
            room: Some(self.room.id),
            title: self.room.title.clone(),
            language: self.room.language.clone(),
            owner: self.room.host_id,
        };
        match self.live.start_recording(info).await {
            Ok(r) => {
                self.live.media(MediaCmd::Tap {
                    room: self.room.id,
                    tap: Some(r.tap()),
                });
                self.recording = Some(r);
                self.broadcast(ServerMsg::Recording { on: true });
            }
            Err(e) => {
                tracing::error!("starting a recording failed: {e}");
                self.send(
                    me,
                    ServerMsg::error(
                        "recording",
                        "the recording could not start; see the server log",
                    ),
                );
            }
        }
    }

    async fn stop_recording(&mut self) {
        if let Some(r) = self.recording.take() {
            self.live.media(MediaCmd::Tap {
                room: self.room.id,
                tap: None,
            });
            let id = r.id();
            match r.finish().await {
                Ok(m) => tracing::info!(%id, tracks = m.tracks.len(), "recording finished"),
                Err(e) => tracing::error!(%id, "recording failed: {e}"),
            }
        }
    }
}

/// The order people are listed in: host, co-hosts, speakers, listeners; by name within each.
fn by_stage_then_name(people: &mut [Person]) {
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
