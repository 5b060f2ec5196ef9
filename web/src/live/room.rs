//! A live room's rules as a state machine: who is there and in which role, raised hands and
//! invitations, the recording's state, and every rule about who may do what. `Room::handle`
//! takes one input and returns what must happen ([`Effect`]s, in order); it does no I/O, reads
//! no clock and awaits nothing, so every rule is tested in tables here, and nothing the room
//! waits for can stall a join. The room's task (`hub.rs`) carries the effects out and feeds the
//! results of slow ones (a recording that started) back in as inputs.

use std::collections::{HashMap, HashSet};

use roomtape_core::{Caption, RoomId, Speaker, SpeakerId, StoredRole, User, UserId};

use super::protocol::{ClientMsg, Person, Role, RoomCaptions, ServerMsg, VERSION};
use super::recording::RecordingInfo;
use super::{ConnId, PeerCmd};

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
    /// A live caption of the speaker on `conn`.
    Caption {
        conn: ConnId,
        speaker: Speaker,
        caption: Caption,
    },
    /// How many API consumers follow the room's captions now.
    Watchers(usize),
    /// The room's task is stopping (nobody is left): a recording stops with it, and whatever
    /// comes after is handled as after the room's end.
    Stop,
}

/// What the SFU is asked.
#[derive(Debug, PartialEq, Eq)]
pub enum Media {
    /// The participant said hello: make their connection (the room and where its events go
    /// are the task's to add).
    Join {
        conn: ConnId,
        speaker: Speaker,
        publish: bool,
    },
    Peer(PeerCmd),
    /// Caption the room's speakers (someone is watching), or stop.
    Captions {
        on: bool,
    },
}

/// A catalog write, made in order beside the room.
#[derive(Debug, PartialEq, Eq)]
pub enum Persist {
    Role {
        user: UserId,
        role: Option<StoredRole>,
    },
    Captions {
        on: bool,
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
    /// To everyone greeted: whether the room offers captions.
    CaptionsOffered {
        captions: RoomCaptions,
    },
    /// A caption to the members who asked for captions (`to`) and to the room's caption feed.
    Caption {
        to: Vec<ConnId>,
        user: UserId,
        speaker: Speaker,
        caption: Caption,
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
    /// Asked to be shown captions.
    captions: bool,
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
    /// Whether the room offers captions.
    captions: RoomCaptions,
    /// API consumers following the captions.
    watchers: usize,
    /// Whether the room's speakers are being captioned (as last asked of the SFU).
    captioning: bool,
    /// A moderator ended the room.
    ended: bool,
    /// The room's task is stopping.
    closed: bool,
    out: Vec<Effect>,
}

impl Room {
    /// `captions`: whether this server can caption at all.
    pub fn new(room: roomtape_core::Room, captions: bool) -> Self {
        let captions = match (captions, room.captions) {
            (false, _) => RoomCaptions::Unavailable,
            (true, false) => RoomCaptions::Off,
            (true, true) => RoomCaptions::On,
        };
        Room {
            room,
            members: Vec::new(),
            shown: HashMap::new(),
            touched: HashSet::new(),
            recording: Rec::Off,
            captions,
            watchers: 0,
            captioning: false,
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
                In::Caption {
                    conn,
                    speaker,
                    caption,
                } => self.caption(conn, speaker, caption),
                In::Watchers(n) => self.watchers = n,
                In::Stop => {
                    self.stop_recording();
                    self.closed = true;
                }
            }
        }
        self.captions_wanted();
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

    /// Captions are made while the room offers them and someone watches; never after the
    /// room's end.
    fn captions_wanted(&mut self) {
        let want = !self.ended
            && !self.closed
            && self.captions == RoomCaptions::On
            && (self.watchers > 0 || self.members.iter().any(|m| m.hello && m.captions));
        if want != self.captioning {
            self.captioning = want;
            self.media(Media::Captions { on: want });
        }
    }

    fn caption(&mut self, conn: ConnId, speaker: Speaker, caption: Caption) {
        if !self.captioning {
            return;
        }
        let user = self.idx(conn).map_or_else(
            || UserId::from(speaker.id.as_uuid()),
            |i| self.members[i].user.id,
        );
        let to = self
            .members
            .iter()
            .filter(|m| m.hello && m.captions)
            .map(|m| m.conn)
            .collect();
        self.out.push(Effect::Caption {
            to,
            user,
            speaker,
            caption,
        });
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
            self.media(Media::Peer(PeerCmd::Leave { conn: old.conn }));
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
            captions: false,
        });
    }

    fn leave(&mut self, conn: ConnId) {
        if let Some(i) = self.idx(conn) {
            let m = self.members.remove(i);
            self.out.push(Effect::Close { conn });
            self.media(Media::Peer(PeerCmd::Leave { conn }));
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
            captions: self.captions,
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
            ClientMsg::Answer { sdp } => self.media(Media::Peer(PeerCmd::Answer { conn, sdp })),
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
                    self.media(Media::Peer(PeerCmd::SetForward {
                        conn,
                        forward: !muted,
                    }));
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
                    self.media(Media::Peer(PeerCmd::SetForward {
                        conn: c,
                        forward: false,
                    }));
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
            ClientMsg::Captions { on } => {
                if on && self.captions != RoomCaptions::On {
                    let why = if self.captions == RoomCaptions::Off {
                        "the host turned captions off in this room"
                    } else {
                        "this server does not make live captions"
                    };
                    self.send(me, refuse("captions_off", why));
                }
                self.members[me].captions = on;
            }
            ClientMsg::AllowCaptions { on } => {
                if !role.moderates() {
                    return self.deny(me);
                }
                if self.captions == RoomCaptions::Unavailable {
                    return self.send(
                        me,
                        refuse("unavailable", "this server does not make live captions"),
                    );
                }
                let captions = if on {
                    RoomCaptions::On
                } else {
                    RoomCaptions::Off
                };
                if captions != self.captions {
                    self.captions = captions;
                    self.room.captions = on;
                    self.out.push(Effect::Persist(Persist::Captions { on }));
                    self.out.push(Effect::CaptionsOffered { captions });
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
                    self.out
                        .push(Effect::Media(Media::Peer(PeerCmd::Leave { conn: m.conn })));
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
            self.media(Media::Peer(PeerCmd::SetPublish {
                conn: self.members[i].conn,
                publish: role.on_stage(),
            }));
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

#[cfg(test)]
mod tests {
    use roomtape_core::{RoomState, Timestamp, Visibility};

    use super::*;

    fn user(name: &str) -> User {
        User {
            id: UserId::new(),
            username: name.to_lowercase(),
            display_name: name.into(),
            is_admin: false,
            created_at: Timestamp::now(),
        }
    }

    /// A room with its host in it, greeted; effects so far dropped.
    struct T {
        room: Room,
        users: HashMap<ConnId, User>,
    }

    impl T {
        fn new() -> (Self, ConnId) {
            let row = roomtape_core::Room {
                id: RoomId::new(),
                title: "Talk".into(),
                description: String::new(),
                language: "en".into(),
                scheduled_at: None,
                visibility: Visibility::Public,
                host_id: None,
                state: RoomState::Open,
                invite_token: None,
                captions: true,
                created_at: Timestamp::now(),
                ended_at: None,
            };
            let mut t = T {
                room: Room::new(row, true),
                users: HashMap::new(),
            };
            let host = t.enter("Ana", Role::Host, false);
            (t, host)
        }

        fn run(&mut self, input: In) -> Vec<Effect> {
            let mut fx = Vec::new();
            self.room.handle(input, &mut fx);
            self.room.flush(&mut fx);
            fx
        }

        /// Joins and says hello.
        fn enter(&mut self, name: &str, role: Role, guest: bool) -> ConnId {
            let conn = self.users.len() as ConnId + 1;
            let u = user(name);
            self.users.insert(conn, u.clone());
            self.run(In::Join {
                conn,
                user: u,
                guest,
                role,
            });
            self.say(conn, ClientMsg::Hello { v: VERSION });
            conn
        }

        fn say(&mut self, conn: ConnId, msg: ClientMsg) -> Vec<Effect> {
            self.run(In::Client { conn, msg })
        }

        fn id(&self, conn: ConnId) -> UserId {
            self.users[&conn].id
        }
    }

    /// The error code sent to `conn`, if any.
    fn refused(fx: &[Effect], conn: ConnId) -> Option<String> {
        fx.iter().find_map(|e| match e {
            Effect::Send {
                conn: c,
                msg: ServerMsg::Error { code, .. },
            } if *c == conn => Some(code.clone()),
            _ => None,
        })
    }

    fn role_sent(fx: &[Effect], conn: ConnId) -> Option<Role> {
        fx.iter().find_map(|e| match e {
            Effect::Send {
                conn: c,
                msg: ServerMsg::Role { role },
            } if *c == conn => Some(*role),
            _ => None,
        })
    }

    fn captions_asked(fx: &[Effect]) -> Option<bool> {
        fx.iter().find_map(|e| match e {
            Effect::Media(Media::Captions { on }) => Some(*on),
            _ => None,
        })
    }

    fn a_caption(text: &str) -> Caption {
        Caption {
            kind: roomtape_core::CaptionKind::Final,
            text: text.into(),
            start_ms: 0,
            end_ms: 500,
            words: Vec::new(),
        }
    }

    #[test]
    fn a_room_is_captioned_only_while_someone_watches_and_its_host_allows_it() {
        let (mut t, host) = T::new();
        let l = t.enter("Bo", Role::Listener, true);
        // (who, message, captioning asked for (Some) or unchanged (None), error for the sender)
        let table: &[(ConnId, ClientMsg, Option<bool>, Option<&str>)] = &[
            (l, ClientMsg::Captions { on: true }, Some(true), None),
            (l, ClientMsg::Captions { on: true }, None, None),
            (
                l,
                ClientMsg::AllowCaptions { on: false },
                None,
                Some("forbidden"),
            ),
            (
                host,
                ClientMsg::AllowCaptions { on: false },
                Some(false),
                None,
            ),
            (
                l,
                ClientMsg::Captions { on: true },
                None,
                Some("captions_off"),
            ),
            (
                host,
                ClientMsg::AllowCaptions { on: true },
                Some(true),
                None,
            ),
            (l, ClientMsg::Captions { on: false }, Some(false), None),
        ];
        for (i, (who, msg, asked, err)) in table.iter().enumerate() {
            let fx = t.say(*who, msg.clone());
            assert_eq!(captions_asked(&fx), *asked, "step {i}: {msg:?}: {fx:?}");
            assert_eq!(refused(&fx, *who).as_deref(), *err, "step {i}: {msg:?}");
        }
        // API consumers count as watchers; the room's end stops captions.
        assert_eq!(captions_asked(&t.run(In::Watchers(2))), Some(true));
        assert_eq!(captions_asked(&t.run(In::Watchers(1))), None);
        let fx = t.say(host, ClientMsg::EndRoom);
        assert_eq!(captions_asked(&fx), Some(false));
    }

    #[test]
    fn the_host_turning_captions_off_is_stored_and_told_to_everyone() {
        let (mut t, host) = T::new();
        let fx = t.say(host, ClientMsg::AllowCaptions { on: false });
        assert!(fx.contains(&Effect::Persist(Persist::Captions { on: false })));
        assert!(fx.contains(&Effect::CaptionsOffered {
            captions: RoomCaptions::Off
        }));
        // Saying it again changes nothing.
        let fx = t.say(host, ClientMsg::AllowCaptions { on: false });
        assert!(fx.is_empty(), "{fx:?}");
        // A newcomer is welcomed with it.
        let fx = {
            let conn = 99;
            t.users.insert(conn, user("Cy"));
            t.run(In::Join {
                conn,
                user: t.users[&conn].clone(),
                guest: false,
                role: Role::Listener,
            });
            t.say(conn, ClientMsg::Hello { v: VERSION })
        };
        assert!(fx.iter().any(|e| matches!(
            e,
            Effect::Send {
                msg: ServerMsg::Welcome {
                    captions: RoomCaptions::Off,
                    ..
                },
                ..
            }
        )));
    }

    #[test]
    fn captions_go_to_those_who_asked_for_them_and_nowhere_when_nobody_watches() {
        let (mut t, host) = T::new();
        let a = t.enter("Bo", Role::Listener, false);
        let _b = t.enter("Cy", Role::Listener, false);
        let speaker = Room::speaker_of(&t.room.members[0]);
        let said = |t: &mut T| {
            t.run(In::Caption {
                conn: host,
                speaker: speaker.clone(),
                caption: a_caption("Welcome."),
            })
        };
        assert!(said(&mut t).is_empty(), "nobody watches: no caption");
        t.say(a, ClientMsg::Captions { on: true });
        let fx = said(&mut t);
        match &fx[..] {
            [Effect::Caption { to, user, .. }] => {
                assert_eq!(to, &vec![a]);
                assert_eq!(*user, t.id(host));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_server_without_captions_refuses_to_turn_them_on() {
        let (mut t, host) = T::new();
        t.room.captions = RoomCaptions::Unavailable;
        let fx = t.say(host, ClientMsg::AllowCaptions { on: true });
        assert_eq!(refused(&fx, host).as_deref(), Some("unavailable"));
        let fx = t.say(host, ClientMsg::Captions { on: true });
        assert_eq!(refused(&fx, host).as_deref(), Some("captions_off"));
        assert_eq!(captions_asked(&fx), None);
    }

    #[derive(Clone, Copy, Debug)]
    enum Act {
        Mute,
        MakeCohost,
        MoveToAudience,
        Invite,
        Remove,
    }

    #[test]
    fn who_may_act_on_whom() {
        use Role::*;
        // (actor, target, action, the error the actor gets, or None when it is done)
        let table: &[(Role, Role, bool, Act, Option<&str>)] = &[
            (Listener, Speaker, false, Act::Mute, Some("forbidden")),
            (Speaker, Listener, false, Act::Invite, Some("forbidden")),
            (Cohost, Host, false, Act::Mute, Some("forbidden")),
            (
                Cohost,
                Cohost,
                false,
                Act::MoveToAudience,
                Some("forbidden"),
            ),
            (Cohost, Speaker, false, Act::Mute, None),
            (Cohost, Listener, false, Act::Mute, Some("invalid")),
            (Cohost, Listener, false, Act::MakeCohost, None),
            (Cohost, Listener, true, Act::MakeCohost, Some("forbidden")),
            (Cohost, Listener, true, Act::Invite, Some("forbidden")),
            (Cohost, Speaker, false, Act::Invite, Some("invalid")),
            (Host, Cohost, false, Act::MoveToAudience, None),
            (Host, Cohost, false, Act::Remove, None),
            (Cohost, Listener, true, Act::Remove, None),
        ];
        for &(actor, target, guest, act, want) in table {
            let (mut t, _) = T::new();
            let a = t.enter("Actor", actor, false);
            let b = t.enter("Target", target, guest);
            let user = t.id(b);
            let msg = match act {
                Act::Mute => ClientMsg::Mute { user },
                Act::MakeCohost => ClientMsg::MakeCohost { user },
                Act::MoveToAudience => ClientMsg::MoveToAudience { user },
                Act::Invite => ClientMsg::InviteToSpeak { user },
                Act::Remove => ClientMsg::Remove { user },
            };
            let fx = t.say(a, msg);
            let case = format!("{actor:?} does {act:?} to {target:?} (guest {guest})");
            assert_eq!(refused(&fx, a).as_deref(), want, "{case}: {fx:?}");
            if want.is_some() {
                assert!(
                    !fx.iter()
                        .any(|e| matches!(e, Effect::Send { conn, .. } if *conn == b)),
                    "{case}: the target hears nothing"
                );
                continue;
            }
            match act {
                Act::MakeCohost => assert_eq!(role_sent(&fx, b), Some(Cohost), "{case}"),
                Act::MoveToAudience => assert_eq!(role_sent(&fx, b), Some(Listener), "{case}"),
                Act::Mute => {
                    assert!(fx.contains(&Effect::Media(Media::Peer(PeerCmd::SetForward {
                        conn: b,
                        forward: false
                    }))))
                }
                Act::Remove => {
                    assert!(fx.contains(&Effect::Close { conn: b }), "{case}");
                    let barred = fx.iter().any(|e| {
                        matches!(
                            e,
                            Effect::Persist(Persist::Role {
                                role: Some(StoredRole::Removed),
                                ..
                            })
                        )
                    });
                    assert_eq!(
                        barred, !guest,
                        "{case}: an account is barred, a guest shown out"
                    );
                }
                Act::Invite => {}
            }
        }
    }

    #[test]
    fn hands_follow_the_role_and_guests_sign_in() {
        use Role::*;
        for (role, guest, want) in [
            (Listener, false, None),
            (Listener, true, Some("sign_in")),
            (Speaker, false, Some("forbidden")),
            (Host, false, Some("forbidden")),
        ] {
            let (mut t, _) = T::new();
            let a = t.enter("Bo", role, guest);
            let fx = t.say(a, ClientMsg::RaiseHand);
            assert_eq!(refused(&fx, a).as_deref(), want, "{role:?} guest {guest}");
            let shown = fx.iter().any(
                |e| matches!(e, Effect::Presence { changed, .. } if changed.iter().any(|p| p.hand)),
            );
            assert_eq!(shown, want.is_none(), "{role:?}: the raised hand is shown");
        }
    }

    #[test]
    fn nothing_before_hello_and_hello_once() {
        let (mut t, _) = T::new();
        let conn = 50;
        t.run(In::Join {
            conn,
            user: user("Cy"),
            guest: false,
            role: Role::Listener,
        });
        for (msg, want) in [
            (ClientMsg::RaiseHand, "out_of_order"),
            (ClientMsg::Hello { v: VERSION + 1 }, "version"),
        ] {
            let fx = t.say(conn, msg);
            assert_eq!(refused(&fx, conn).as_deref(), Some(want));
            assert!(!fx.iter().any(|e| matches!(e, Effect::Media(_))));
        }
        let fx = t.say(conn, ClientMsg::Hello { v: VERSION });
        // Everyone hears of the newcomer first; then the welcome; then its media.
        let at = |f: &dyn Fn(&Effect) -> bool| fx.iter().position(f).expect("present");
        let presence = at(&|e| matches!(e, Effect::Presence { .. }));
        let welcome = at(&|e| {
            matches!(
                e,
                Effect::Send {
                    msg: ServerMsg::Welcome { .. },
                    ..
                }
            )
        });
        let media = at(&|e| matches!(e, Effect::Media(Media::Join { publish: false, .. })));
        assert!(presence < welcome && welcome < media, "{fx:?}");
        let fx = t.say(conn, ClientMsg::Hello { v: VERSION });
        assert_eq!(refused(&fx, conn).as_deref(), Some("out_of_order"));
    }

    #[test]
    fn a_second_window_replaces_the_first() {
        let (mut t, _) = T::new();
        let first = t.enter("Di", Role::Listener, false);
        let u = t.users[&first].clone();
        let fx = t.run(In::Join {
            conn: 99,
            user: u,
            guest: false,
            role: Role::Listener,
        });
        assert_eq!(refused(&fx, first).as_deref(), Some("replaced"));
        assert!(fx.contains(&Effect::Close { conn: first }));
        assert!(fx.contains(&Effect::Media(Media::Peer(PeerCmd::Leave { conn: first }))));
        assert_eq!(t.room.len(), 2);
    }

    #[test]
    fn the_recording_goes_through_its_states_and_is_never_dropped() {
        let started = |fx: &[Effect]| fx.iter().any(|e| matches!(e, Effect::StartRecording(_)));
        // (what happens after the host asks to record, the effects that must follow)
        let (mut t, host) = T::new();
        let listener = t.enter("Eve", Role::Listener, false);
        assert_eq!(
            refused(&t.say(listener, ClientMsg::StartRecording), listener).as_deref(),
            Some("forbidden")
        );
        // Started, kept, told to everyone; a second start is refused.
        assert!(started(&t.say(host, ClientMsg::StartRecording)));
        let fx = t.run(In::RecordingStarted(Ok(())));
        assert_eq!(
            fx,
            vec![Effect::KeepRecording, Effect::Recording { on: true }]
        );
        assert_eq!(
            refused(&t.say(host, ClientMsg::StartRecording), host).as_deref(),
            Some("invalid")
        );
        let fx = t.say(host, ClientMsg::StopRecording);
        assert_eq!(
            fx,
            vec![Effect::FinishRecording, Effect::Recording { on: false }]
        );

        // Stopped while starting: finished as soon as it exists.
        assert!(started(&t.say(host, ClientMsg::StartRecording)));
        t.say(host, ClientMsg::StopRecording);
        assert_eq!(
            t.run(In::RecordingStarted(Ok(()))),
            vec![Effect::FinishRecording]
        );

        // A join while a recording starts is answered at once: nothing waits for it.
        assert!(started(&t.say(host, ClientMsg::StartRecording)));
        let late = 77;
        t.run(In::Join {
            conn: late,
            user: user("Fay"),
            guest: false,
            role: Role::Listener,
        });
        let fx = t.say(late, ClientMsg::Hello { v: VERSION });
        assert!(fx.iter().any(|e| matches!(
            e,
            Effect::Send {
                conn: 77,
                msg: ServerMsg::Welcome {
                    recording: false,
                    ..
                }
            }
        )));

        // Could not start: the one who asked is told.
        assert_eq!(
            refused(&t.run(In::RecordingStarted(Err("disk".into()))), host).as_deref(),
            Some("recording")
        );

        // The room ends while one starts: the recording is finished when it arrives.
        assert!(started(&t.say(host, ClientMsg::StartRecording)));
        let fx = t.say(host, ClientMsg::EndRoom);
        assert!(fx.contains(&Effect::Ended) && fx.contains(&Effect::Persist(Persist::End)));
        assert!(t.room.is_ended() && t.room.len() == 0);
        assert_eq!(
            t.run(In::RecordingStarted(Ok(()))),
            vec![Effect::FinishRecording]
        );
        // And a newcomer after the end is told so.
        let fx = t.run(In::Join {
            conn: 88,
            user: user("Gil"),
            guest: false,
            role: Role::Listener,
        });
        assert_eq!(
            fx,
            vec![
                Effect::Send {
                    conn: 88,
                    msg: ServerMsg::Ended
                },
                Effect::Close { conn: 88 }
            ]
        );
    }

    #[test]
    fn the_task_stopping_finishes_the_recording() {
        let (mut t, host) = T::new();
        t.say(host, ClientMsg::StartRecording);
        t.run(In::RecordingStarted(Ok(())));
        assert_eq!(t.run(In::Stop), vec![Effect::FinishRecording]);
        // What was on its way is handled as after an end.
        let fx = t.run(In::Join {
            conn: 5,
            user: user("Hal"),
            guest: false,
            role: Role::Listener,
        });
        assert!(fx.contains(&Effect::Close { conn: 5 }));
    }

    #[test]
    fn speaking_counts_only_unmuted_people_on_stage() {
        let (mut t, host) = T::new();
        let speaker = t.enter("Ivy", Role::Speaker, false);
        let listener = t.enter("Jo", Role::Listener, false);
        t.say(speaker, ClientMsg::SetMuted { muted: true });
        let fx = t.run(In::Speaking {
            conns: vec![host, speaker, listener],
        });
        assert_eq!(
            fx,
            vec![Effect::Speaking {
                users: vec![t.id(host)]
            }]
        );
        // Nothing changed: nothing sent.
        assert!(
            t.run(In::Speaking {
                conns: vec![host, speaker, listener]
            })
            .is_empty()
        );
    }
}
