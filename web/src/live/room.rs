//! A live room's rules as a state machine: who is there and in which role, raised hands and
//! invitations, the recording's state, and every rule about who may do what. `Room::handle`
//! takes one input and returns what must happen ([`Effect`]s, in order); it does no I/O, reads
//! no clock and awaits nothing, so every rule is tested in tables here, and nothing the room
//! waits for can stall a join. The room's task (`hub.rs`) carries the effects out and feeds the
//! results of slow ones (a recording that started) back in as inputs.

use std::collections::{HashMap, HashSet};

use roomtape_core::{RoomId, Speaker, SpeakerId, StoredRole, User, UserId};

use super::ConnId;
use super::protocol::{ClientMsg, Person, Role, ServerMsg, VERSION};
use super::recording::RecordingInfo;

/// What happens to a room.
#[derive(Debug)]
pub enum In {
    Join {
        conn: ConnId,
        user: User,
        /// Without an account (see [`crate::rooms::guest_entry`]).
        guest: bool,
        role: Role,
    },
    Client {
        conn: ConnId,
        msg: ClientMsg,
    },
    Leave {
        conn: ConnId,
    },
    /// The SFU's news.
    Offer {
        conn: ConnId,
        sdp: String,
        mic: Option<String>,
    },
    MediaGone {
        conn: ConnId,
    },
    MediaError {
        conn: ConnId,
        message: String,
    },
    Speaking {
        conns: Vec<ConnId>,
    },
    /// The recording asked for by [`Effect::StartRecording`] has started (or could not).
    RecordingStarted(Result<(), String>),
    /// The room's task is stopping (nobody is left): a recording stops with it, and whatever
    /// comes after is handled as after the room's end.
    Stop,
}

/// What the SFU is asked.
#[derive(Debug, PartialEq, Eq)]
pub enum Media {
    Join {
        conn: ConnId,
        speaker: Speaker,
        publish: bool,
    },
    Answer {
        conn: ConnId,
        sdp: String,
    },
    SetPublish {
        conn: ConnId,
        publish: bool,
    },
    SetForward {
        conn: ConnId,
        forward: bool,
    },
    Leave {
        conn: ConnId,
    },
}

/// A catalog write, made in order beside the room.
#[derive(Debug, PartialEq, Eq)]
pub enum Persist {
    Role {
        user: UserId,
        role: Option<StoredRole>,
    },
    End,
}

/// What the room's task must do, in this order.
#[derive(Debug, PartialEq)]
pub enum Effect {
    /// A message for one member alone.
    Send {
        conn: ConnId,
        msg: ServerMsg,
    },
    /// The member's connection is done with (after what was sent to it).
    Close {
        conn: ConnId,
    },
    /// The member said hello: from now on it gets the room's news.
    Greeted {
        conn: ConnId,
    },
    /// To everyone greeted: who changed and who left since the last presence.
    Presence {
        changed: Vec<Person>,
        gone: Vec<UserId>,
    },
    /// To everyone greeted: who is speaking now.
    Speaking {
        users: Vec<UserId>,
    },
    /// To everyone greeted: whether the room records.
    Recording {
        on: bool,
    },
    Media(Media),
    Persist(Persist),
    /// Start a recording beside the room; its result comes back as `In::RecordingStarted`.
    StartRecording(RecordingInfo),
    /// The recording that started is the room's: tap the room's audio into it.
    KeepRecording,
    /// Stop tapping (if it was) and finish the recording beside the room.
    FinishRecording,
    /// Nobody enters from now on (the room's end is being stored).
    Ending,
    /// The room ended: the task stops.
    Ended,
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
}

/// The recording, as the room sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rec {
    Off,
    /// Asked for by `by`; `stop`: stopped (or the room ended) meanwhile, so it is finished as
    /// soon as it exists.
    Starting {
        by: ConnId,
        stop: bool,
    },
    On,
}

/// One live room's state and rules.
#[derive(Debug)]
pub struct Room {
    room: roomtape_core::Room,
    members: Vec<Member>,
    /// The room as the last presence showed it, by person: what the next one is a change from.
    shown: HashMap<UserId, Person>,
    /// People who may have changed (or left) since the last presence.
    touched: HashSet<UserId>,
    recording: Rec,
    /// A moderator ended the room.
    ended: bool,
    /// The room's task is stopping.
    closed: bool,
    out: Vec<Effect>,
}

impl Room {
    pub fn new(room: roomtape_core::Room) -> Self {
        Room {
            room,
            members: Vec::new(),
            shown: HashMap::new(),
            touched: HashSet::new(),
            recording: Rec::Off,
            ended: false,
            closed: false,
            out: Vec::new(),
        }
    }

    pub fn id(&self) -> RoomId {
        self.room.id
    }

    /// People in the room.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Applies one input; the effects are appended to `effects`. After a batch of inputs call
    /// [`Room::flush`], which tells everyone what changed, once.
    pub fn handle(&mut self, input: In, effects: &mut Vec<Effect>) {
        std::mem::swap(&mut self.out, effects);
        if self.ended || self.closed {
            self.after_end(input);
        } else {
            match input {
                In::Join {
                    conn,
                    user,
                    guest,
                    role,
                } => self.join(conn, user, guest, role),
                In::Client { conn, msg } => self.client(conn, msg),
                In::Leave { conn } | In::MediaGone { conn } => self.leave(conn),
                In::Offer { conn, sdp, mic } => self.send_to(conn, ServerMsg::Offer { sdp, mic }),
                In::MediaError { conn, message } => {
                    self.send_to(conn, ServerMsg::error("media", message));
                }
                In::Speaking { conns } => self.speaking(&conns),
                In::RecordingStarted(r) => self.recording_started(r),
                In::Stop => {
                    self.stop_recording();
                    self.closed = true;
                }
            }
        }
        std::mem::swap(&mut self.out, effects);
    }

    /// Tells everyone who changed since the last presence: in a room of thousands, a join
    /// costs one small change each, not the whole audience each, and finding it costs the
    /// people touched, not the room.
    pub fn flush(&mut self, effects: &mut Vec<Effect>) {
        std::mem::swap(&mut self.out, effects);
        self.flush_presence();
        std::mem::swap(&mut self.out, effects);
    }

    /// An input after the room ended: a recording that started meanwhile is finished, a
    /// newcomer is told the room is gone.
    fn after_end(&mut self, input: In) {
        match input {
            In::RecordingStarted(r) => {
                if let Rec::Starting { by, .. } = self.recording {
                    self.recording = Rec::Starting { by, stop: true };
                }
                self.recording_started(r);
            }
            In::Join { conn, .. } => {
                self.out.push(Effect::Send {
                    conn,
                    msg: ServerMsg::Ended,
                });
                self.out.push(Effect::Close { conn });
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

    fn send(&mut self, i: usize, msg: ServerMsg) {
        let conn = self.members[i].conn;
        self.out.push(Effect::Send { conn, msg });
    }

    fn send_to(&mut self, conn: ConnId, msg: ServerMsg) {
        if self.idx(conn).is_some() {
            self.out.push(Effect::Send { conn, msg });
        }
    }

    fn media(&mut self, m: Media) {
        self.out.push(Effect::Media(m));
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
        if !changed.is_empty() || !gone.is_empty() {
            // A stable order, so what everyone gets does not depend on a hash.
            changed.sort_by_key(|p| p.id);
            gone.sort_unstable();
            self.out.push(Effect::Presence { changed, gone });
        }
    }

    fn join(&mut self, conn: ConnId, user: User, guest: bool, role: Role) {
        // One connection per person: a second tab takes over.
        if let Some(i) = self.by_user(user.id) {
            let old = self.members.remove(i);
            self.out.push(Effect::Send {
                conn: old.conn,
                msg: ServerMsg::error("replaced", "you joined this room from another window"),
            });
            self.out.push(Effect::Close { conn: old.conn });
            self.media(Media::Leave { conn: old.conn });
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
        });
    }

    fn leave(&mut self, conn: ConnId) {
        if let Some(i) = self.idx(conn) {
            let m = self.members.remove(i);
            self.out.push(Effect::Close { conn });
            self.media(Media::Leave { conn });
            self.touched.insert(m.user.id);
        }
    }

    fn speaking(&mut self, conns: &[ConnId]) {
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
            self.out.push(Effect::Speaking { users });
        }
    }

    fn speaker_of(m: &Member) -> Speaker {
        Speaker {
            id: SpeakerId::from(m.user.id.as_uuid()),
            name: m.user.display_name.clone(),
        }
    }

    fn hello(&mut self, me: usize, conn: ConnId) {
        // Everyone else first hears of the newcomer (and of anything else not yet shown); the
        // newcomer's welcome is then the room as it is, which the next presence is a change
        // from.
        self.touched.insert(self.members[me].user.id);
        self.flush_presence();
        self.members[me].hello = true;
        let mut people: Vec<Person> = self
            .members
            .iter()
            .filter(|m| m.hello)
            .map(Self::person)
            .collect();
        by_stage_then_name(&mut people);
        let m = &self.members[me];
        let welcome = ServerMsg::Welcome {
            v: VERSION,
            you: m.user.id,
            role: m.role,
            title: self.room.title.clone(),
            recording: self.recording == Rec::On,
            people,
        };
        let (speaker, publish) = (Self::speaker_of(m), m.role.on_stage());
        self.send(me, welcome);
        self.out.push(Effect::Greeted { conn });
        self.media(Media::Join {
            conn,
            speaker,
            publish,
        });
    }

    /// Handles one client message.
    fn client(&mut self, conn: ConnId, msg: ClientMsg) {
        let Some(me) = self.idx(conn) else {
            return;
        };
        let refuse = |code: &str, m: &str| ServerMsg::error(code, m.to_string());
        if !self.members[me].hello {
            match msg {
                ClientMsg::Hello { v } if v == VERSION => self.hello(me, conn),
                ClientMsg::Hello { v } => self.send(
                    me,
                    refuse(
                        "version",
                        &format!("this server speaks protocol version {VERSION}, not {v}"),
                    ),
                ),
                _ => self.send(me, refuse("out_of_order", "say hello first")),
            }
            return;
        }
        let role = self.members[me].role;
        let name = self.members[me].user.display_name.clone();
        match msg {
            ClientMsg::Hello { .. } => self.send(me, refuse("out_of_order", "already said hello")),
            ClientMsg::Ping => self.send(me, ServerMsg::Pong),
            ClientMsg::Answer { sdp } => self.media(Media::Answer { conn, sdp }),
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
                    self.media(Media::SetForward {
                        conn,
                        forward: !muted,
                    });
                    self.touched.insert(self.members[me].user.id);
                }
            }
            ClientMsg::Mute { user } => {
                let Some(t) = self.target(me, user) else {
                    return;
                };
                if !self.members[t].role.on_stage() {
                    self.send(me, refuse("invalid", "that person is not on stage"));
                } else {
                    self.members[t].muted = true;
                    let c = self.members[t].conn;
                    self.media(Media::SetForward {
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
                    return;
                }
                let Some(t) = self.target(me, user) else {
                    return;
                };
                if self.members[t].role.on_stage() {
                    self.set_role(t, Role::Listener);
                }
            }
            ClientMsg::MakeCohost { user } => {
                let Some(t) = self.target(me, user) else {
                    return;
                };
                if self.members[t].guest {
                    self.send(
                        me,
                        refuse("forbidden", "a guest without an account cannot co-host"),
                    );
                    return;
                }
                self.set_role(t, Role::Cohost);
            }
            ClientMsg::Remove { user } => {
                let Some(t) = self.target(me, user) else {
                    return;
                };
                // A guest has no account to bar; they are shown out.
                if !self.members[t].guest {
                    self.out.push(Effect::Persist(Persist::Role {
                        user: self.members[t].user.id,
                        role: Some(StoredRole::Removed),
                    }));
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
                    self.out.push(Effect::Recording { on: false });
                }
            }
            ClientMsg::EndRoom => {
                if !role.moderates() {
                    return self.deny(me);
                }
                self.out.push(Effect::Ending);
                self.out.push(Effect::Persist(Persist::End));
                self.stop_recording();
                for m in std::mem::take(&mut self.members) {
                    if m.hello {
                        self.out.push(Effect::Send {
                            conn: m.conn,
                            msg: ServerMsg::Ended,
                        });
                    }
                    self.out.push(Effect::Close { conn: m.conn });
                    self.out.push(Effect::Media(Media::Leave { conn: m.conn }));
                }
                self.ended = true;
                self.out.push(Effect::Ended);
            }
        }
    }

    fn deny(&mut self, me: usize) {
        self.send(
            me,
            ServerMsg::error("forbidden", "only hosts and co-hosts may do that"),
        );
    }

    /// The member a moderator acts on: moderators only; nobody acts on the host or on
    /// themselves; only the host acts on co-hosts.
    fn target(&mut self, me: usize, user: UserId) -> Option<usize> {
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
            self.out.push(Effect::Persist(Persist::Role {
                user: self.members[i].user.id,
                role: stored,
            }));
        }
        if was.on_stage() != role.on_stage() {
            self.media(Media::SetPublish {
                conn: self.members[i].conn,
                publish: role.on_stage(),
            });
        }
        self.send(i, ServerMsg::Role { role });
        self.touched.insert(self.members[i].user.id);
    }

    fn start_recording(&mut self, me: usize) {
        if self.recording != Rec::Off {
            self.send(me, ServerMsg::error("invalid", "already recording"));
            return;
        }
        self.recording = Rec::Starting {
            by: self.members[me].conn,
            stop: false,
        };
        self.out.push(Effect::StartRecording(RecordingInfo {
            room: Some(self.room.id),
            title: self.room.title.clone(),
            language: self.room.language.clone(),
            owner: self.room.host_id,
            description: self.room.description.clone(),
        }));
    }

    fn recording_started(&mut self, r: Result<(), String>) {
        let Rec::Starting { by, stop } = std::mem::replace(&mut self.recording, Rec::Off) else {
            // Nothing was asked for; cannot happen, but a recording must never be dropped.
            if r.is_ok() {
                self.out.push(Effect::FinishRecording);
            }
            return;
        };
        match r {
            Ok(()) if stop => self.out.push(Effect::FinishRecording),
            Ok(()) => {
                self.out.push(Effect::KeepRecording);
                self.recording = Rec::On;
                self.out.push(Effect::Recording { on: true });
            }
            Err(e) => {
                tracing::error!("starting a recording failed: {e}");
                self.send_to(
                    by,
                    ServerMsg::error(
                        "recording",
                        "the recording could not start; see the server log",
                    ),
                );
            }
        }
    }

    /// Stops recording now; the last pages, the mix and the catalog are finished beside the
    /// room, which goes on at once.
    fn stop_recording(&mut self) {
        match self.recording {
            Rec::On => {
                self.recording = Rec::Off;
                self.out.push(Effect::FinishRecording);
            }
            Rec::Starting { by, .. } => self.recording = Rec::Starting { by, stop: true },
            Rec::Off => {}
        }
    }
}

/// The order people are listed in: host, co-hosts, speakers, listeners; by name within each.
pub(super) fn by_stage_then_name(people: &mut [Person]) {
    people.sort_by(|a, b| a.role.cmp(&b.role).then_with(|| a.name.cmp(&b.name)));
}
