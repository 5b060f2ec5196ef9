//! roomtape's SFU as a sans-IO engine, in the manner of str0m: it owns no socket, reads no
//! clock and spawns nothing. The caller feeds it [`Input`]s with the time they happened and
//! drains [`Sfu::poll_output`] after each one: datagrams to send, [`Event`]s for the room
//! (offers, a peer gone, who is speaking, received audio for the recorder) and, last, when to
//! call it again. A tokio socket loop drives it in the service; tests drive it in-process
//! with str0m peers on a simulated clock.
//!
//! One `str0m::Rtc` (ICE-lite, DTLS-SRTP, Opus only, RTP mode) per participant. Audio a
//! speaker sends is forwarded, as received, on every other participant's matching send-only
//! track; nothing is decoded or mixed. The server always makes the offers (a microphone track,
//! receive-only while the participant is on stage and inactive otherwise, and a send-only
//! track per other speaker) and the client answers, so the two sides never offer at once.
//!
//! Modules: [`negotiate`] (offers and answers as the stage changes), [`forward`] (a speaker's
//! packet to each listener, behind the [`Forwarding`] choice of sealer), `srtp` (the fast
//! path's own SRTP), `stun` (reading a nomination), `speaking` (levels to indicators).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event as RtcEvent, IceConnectionState, Output as RtcOutput, RtcConfig};

mod forward;
mod negotiate;
mod peer;
mod speaking;
mod srtp;
mod stun;

pub use forward::Forwarding;
use peer::Peer;

/// One participant's connection, as the caller numbers them.
pub type ConnId = u64;

/// What names a room: anything small the caller can copy, compare and hash.
pub trait RoomKey: Copy + Eq + Hash + Debug {}
impl<T: Copy + Eq + Hash + Debug> RoomKey for T {}

/// A peer that has not connected this long after it joined is dropped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times one drive of a peer answers str0m's "call me again now" timeouts inline
/// before leaving the rest to the timer.
const INLINE_TIMEOUTS: usize = 4;

/// Something that happened, at the `now` given beside it.
#[derive(Debug)]
pub enum Input<'a, R> {
    /// A UDP datagram arrived on the media socket.
    Datagram {
        source: SocketAddr,
        contents: &'a [u8],
    },
    /// The room asks something.
    Command(Command<R>),
    /// The time [`Output::Timeout`] named has come.
    Timeout,
}

/// What a room asks of the SFU.
#[derive(Debug)]
pub enum Command<R> {
    /// A participant is ready: make their peer connection and offer them the room's audio.
    /// `stream` labels their audio on other participants' tracks (the msid).
    Join {
        conn: ConnId,
        room: R,
        stream: String,
        publish: bool,
    },
    /// The participant's answer to the latest offer.
    Answer { conn: ConnId, sdp: String },
    /// On stage (publishes) or off.
    SetPublish { conn: ConnId, publish: bool },
    /// Forward this participant's audio (false: muted by themselves or a host).
    SetForward { conn: ConnId, forward: bool },
    /// The participant left: their connection goes, and their track from everyone else's.
    Leave { conn: ConnId },
    /// Hand the room's received audio out as [`Event::Audio`] (a recording, captions), or stop.
    /// Only for a room someone has joined; it ends when the last one leaves.
    Audio { room: R, on: bool },
}

/// What the SFU tells the room.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<R> {
    /// `mic`: the track the client must send its microphone on, when on stage.
    Offer {
        conn: ConnId,
        sdp: String,
        mic: Option<String>,
    },
    /// The peer connection failed or timed out; the SFU has forgotten it.
    Gone { conn: ConnId },
    /// Something the participant asked went wrong (the connection stays as it was).
    Error { conn: ConnId, message: String },
    /// Who in the room is speaking now (sent when it changes).
    Speaking { room: R, conns: Vec<ConnId> },
    /// A packet a speaker sent, as received, for a room whose audio is asked for.
    Audio {
        room: R,
        conn: ConnId,
        packet: AudioPacket,
    },
}

/// One received RTP packet of a speaker's microphone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioPacket {
    /// The recorder's stream identity: a new one each time the speaker goes on stage.
    pub stream: u32,
    pub sequence: u16,
    pub timestamp: u32,
    pub payload: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

/// What [`Sfu::poll_output`] gives, until [`Output::Timeout`].
#[derive(Debug)]
pub enum Output<'a, R> {
    Transmit {
        destination: SocketAddr,
        contents: &'a [u8],
    },
    Event(Event<R>),
    /// Nothing more to do until this time (or the next input).
    Timeout(Instant),
}

/// What the SFU holds now (tests, benchmarks, leak checks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub peers: usize,
    pub rooms: usize,
    /// Rooms whose audio is handed out.
    pub audio_rooms: usize,
    pub timers: usize,
    pub addresses: usize,
    /// RTP packets written to listeners since the start.
    pub forwarded: u64,
}

/// Why the engine could not be made.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Datagrams and events waiting to be polled. The datagrams share one buffer, cleared once
/// they are all taken, so forwarding allocates nothing per copy.
#[derive(Debug)]
struct Outbox<R> {
    bytes: Vec<u8>,
    sends: VecDeque<(SocketAddr, Range<usize>)>,
    events: VecDeque<Event<R>>,
}

impl<R> Outbox<R> {
    fn transmit(&mut self, destination: SocketAddr, contents: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(contents);
        self.sends.push_back((destination, start..self.bytes.len()));
    }

    fn event(&mut self, e: Event<R>) {
        self.events.push_back(e);
    }
}

/// The SFU. See the crate's documentation.
#[derive(Debug)]
pub struct Sfu<R> {
    advertised: SocketAddr,
    template: RtcConfig,
    forwarding: Forwarding,
    peers: HashMap<ConnId, Peer<R>>,
    by_addr: HashMap<SocketAddr, ConnId>,
    rooms: HashMap<R, Vec<ConnId>>,
    audio: HashSet<R>,
    timers: BTreeSet<(Instant, ConnId)>,
    speaking: speaking::Speaking<R>,
    next_tag: u32,
    forwarded: u64,
    scratch: forward::Scratch,
    out: Outbox<R>,
}

impl<R: RoomKey> Sfu<R> {
    /// An SFU whose browsers send to `advertised` (the media socket's address as they see it).
    /// `now` starts its clock (the speaking indicators' first round).
    pub fn new(
        advertised: SocketAddr,
        forwarding: Forwarding,
        now: Instant,
    ) -> Result<Self, Error> {
        let cert = srtp::crypto()
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| Error("cannot make a DTLS certificate".into()))?;
        let template = str0m::Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            // Audio rooms need the level (speaking rings) and the MID (which track a packet
            // belongs to) and nothing else: no transport-wide congestion control or send-time
            // stamps to write and parse on every forwarded packet.
            .clear_extension_map()
            .set_extension(srtp::EXT_AUDIO_LEVEL, str0m::rtp::Extension::AudioLevel)
            .set_extension(srtp::EXT_MID, str0m::rtp::Extension::RtpMid)
            // Packets, not frames: each received packet is forwarded at once, as it came (a
            // lost one holds nothing back), without str0m's depacketize/packetize layer.
            .set_rtp_mode(true)
            .set_dtls_cert(cert);
        Ok(Sfu {
            advertised,
            template,
            forwarding,
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            rooms: HashMap::new(),
            audio: HashSet::new(),
            timers: BTreeSet::new(),
            speaking: speaking::Speaking::new(now),
            next_tag: 1,
            forwarded: 0,
            scratch: forward::Scratch::default(),
            out: Outbox {
                bytes: Vec::with_capacity(64 * 1024),
                sends: VecDeque::new(),
                events: VecDeque::new(),
            },
        })
    }

    /// Handles one input; then drain [`Sfu::poll_output`] until it gives a timeout.
    pub fn handle_input(&mut self, input: Input<'_, R>, now: Instant) {
        match input {
            Input::Datagram { source, contents } => self.datagram(now, source, contents),
            Input::Command(c) => self.command(now, c),
            Input::Timeout => {}
        }
        self.timeouts(now);
        if self.speaking.due(now) {
            self.speaking
                .update(now, &self.rooms, &self.peers, &mut self.out);
        }
    }

    /// The next thing to do: a datagram to send, an event, or when to call again.
    pub fn poll_output(&mut self) -> Output<'_, R> {
        if let Some((destination, range)) = self.out.sends.pop_front() {
            return Output::Transmit {
                destination,
                contents: &self.out.bytes[range],
            };
        }
        self.out.bytes.clear();
        if let Some(e) = self.out.events.pop_front() {
            return Output::Event(e);
        }
        let speaking = self.speaking.next();
        Output::Timeout(
            self.timers
                .first()
                .map_or(speaking, |(t, _)| (*t).min(speaking)),
        )
    }

    /// What the SFU holds now.
    pub fn stats(&self) -> Stats {
        Stats {
            peers: self.peers.len(),
            rooms: self.rooms.len(),
            audio_rooms: self.audio.len(),
            timers: self.timers.len(),
            addresses: self.by_addr.len(),
            forwarded: self.forwarded,
        }
    }

    fn datagram(&mut self, now: Instant, src: SocketAddr, data: &[u8]) {
        let Ok(recv) = Receive::new(Protocol::Udp, src, self.advertised, data) else {
            return;
        };
        let input = str0m::Input::Receive(now, recv);
        let conn = match self.by_addr.get(&src) {
            Some(c) if self.peers.get(c).is_some_and(|p| p.rtc.accepts(&input)) => *c,
            _ => {
                let Some(c) = self
                    .peers
                    .iter()
                    .find(|(_, p)| p.rtc.accepts(&input))
                    .map(|(c, _)| *c)
                else {
                    return;
                };
                self.by_addr.insert(src, c);
                c
            }
        };
        let Some(p) = self.peers.get_mut(&conn) else {
            return;
        };
        if let Err(e) = p.rtc.handle_input(input) {
            tracing::debug!(conn, "bad input: {e}");
        }
        self.drive(now, conn, stun::nominates(data).then_some(src));
    }

    fn timeouts(&mut self, now: Instant) {
        while let Some(&(t, conn)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let Some(p) = self.peers.get_mut(&conn) else {
                continue;
            };
            if p.deadline != t {
                continue;
            }
            if !p.forwarder.ready() && now.duration_since(p.created) > CONNECT_TIMEOUT {
                self.gone(now, conn, "the audio connection did not come up");
                continue;
            }
            let _ = p.rtc.handle_input(str0m::Input::Timeout(now));
            self.drive(now, conn, None);
        }
    }

    /// Drains one peer's output: queues its datagrams, handles its events, re-arms its timer.
    /// A timeout str0m wants now (it asks after most writes) is answered here, a few times,
    /// rather than by a round trip through the timer set. `nominating` is the source of the
    /// datagram just handled if it was a STUN check nominating its pair.
    fn drive(&mut self, now: Instant, conn: ConnId, nominating: Option<SocketAddr>) {
        let mut events = Vec::new();
        let Some(p) = self.peers.get_mut(&conn) else {
            return;
        };
        let mut inline = 0;
        let deadline = loop {
            match p.rtc.poll_output() {
                Ok(RtcOutput::Timeout(t)) => {
                    if t <= now && inline < INLINE_TIMEOUTS && p.rtc.is_alive() {
                        inline += 1;
                        let _ = p.rtc.handle_input(str0m::Input::Timeout(now));
                        continue;
                    }
                    break t;
                }
                Ok(RtcOutput::Transmit(t)) => {
                    // Two senders on one SSRC would seal under the same GCM nonces: never
                    // let it out, and fail loudly in debug builds.
                    if p.forwarder.exclusive() && p.is_rtp_on_our_track(&t.contents) {
                        debug_assert!(false, "str0m sent RTP on a track only the sealer uses");
                        tracing::error!(conn, "str0m sent RTP on a sealed track; dropped");
                        continue;
                    }
                    p.forwarder.sent(
                        t.destination,
                        &t.contents,
                        nominating == Some(t.destination),
                    );
                    self.out.transmit(t.destination, &t.contents);
                }
                Ok(RtcOutput::Event(e)) => events.push(e),
                Err(e) => {
                    tracing::debug!(conn, "peer failed: {e}");
                    p.rtc.disconnect();
                    events.push(RtcEvent::IceConnectionStateChange(
                        IceConnectionState::Disconnected,
                    ));
                    break now + Duration::from_secs(3600);
                }
            }
        };
        // A connection not up yet is looked at when its time to come up has passed, whatever
        // str0m wants (an offer nobody answers leaves it nothing to do, ever).
        let deadline = if p.forwarder.ready() {
            deadline
        } else {
            deadline.min(p.created + CONNECT_TIMEOUT + Duration::from_millis(1))
        };
        if deadline != p.deadline {
            self.timers.remove(&(p.deadline, conn));
            p.deadline = deadline;
            self.timers.insert((deadline, conn));
        }
        for e in events {
            self.event(now, conn, e);
        }
    }

    fn event(&mut self, now: Instant, conn: ConnId, e: RtcEvent) {
        match e {
            // str0m reports it once DTLS is done, the keys exported and the peer's certificate
            // checked against its fingerprint.
            RtcEvent::Connected => {
                if let Some(p) = self.peers.get_mut(&conn)
                    && !p.forwarder.connected()
                {
                    // It times out like a connection that never came up.
                    tracing::warn!(conn, "no way to forward audio on this connection");
                }
            }
            RtcEvent::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.gone(now, conn, "the audio connection was lost");
            }
            RtcEvent::RtpPacket(p) => self.media(now, conn, p),
            _ => {}
        }
    }

    fn command(&mut self, now: Instant, c: Command<R>) {
        match c {
            Command::Join {
                conn,
                room,
                stream,
                publish,
            } => self.join(now, conn, room, stream, publish),
            Command::Answer { conn, sdp } => self.answer(now, conn, &sdp),
            Command::SetPublish { conn, publish } => {
                let Some(p) = self.peers.get_mut(&conn) else {
                    return;
                };
                if p.publish == publish {
                    return;
                }
                p.publish = publish;
                if publish {
                    p.tag = self.next_tag;
                    self.next_tag = self.next_tag.wrapping_add(1);
                }
                let room = p.room;
                self.negotiate_room(now, room);
            }
            Command::SetForward { conn, forward } => {
                if let Some(p) = self.peers.get_mut(&conn) {
                    p.forward = forward;
                }
            }
            Command::Leave { conn } => self.remove(now, conn),
            Command::Audio { room, on } => {
                // A room nobody is connected to has no audio to hand out, and would keep the
                // flag for ever: the room asks again when someone joins.
                if on && self.rooms.contains_key(&room) {
                    self.audio.insert(room);
                } else {
                    self.audio.remove(&room);
                }
            }
        }
    }

    fn join(&mut self, now: Instant, conn: ConnId, room: R, stream: String, publish: bool) {
        if self.peers.contains_key(&conn) {
            self.out.event(Event::Error {
                conn,
                message: "this connection has joined already".into(),
            });
            return;
        }
        let Some((mut rtc, forwarder)) = self.forwarding.build(&self.template, now) else {
            self.out.event(Event::Error {
                conn,
                message: "the media connection cannot be set up".into(),
            });
            return;
        };
        match Candidate::host(self.advertised, "udp") {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => {
                self.out.event(Event::Error {
                    conn,
                    message: format!("the media address is unusable: {e}"),
                });
                return;
            }
        }
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        self.peers.insert(
            conn,
            Peer::new(room, stream, rtc, forwarder, publish, now, tag),
        );
        self.timers.insert((now, conn));
        self.rooms.entry(room).or_default().push(conn);
        // A listener changes nobody else's tracks: offer to them alone.
        if publish {
            self.negotiate_room(now, room);
        } else {
            self.negotiate(now, conn);
        }
    }

    fn remove(&mut self, now: Instant, conn: ConnId) {
        let Some(mut p) = self.peers.remove(&conn) else {
            return;
        };
        p.rtc.disconnect();
        self.timers.remove(&(p.deadline, conn));
        self.by_addr.retain(|_, c| *c != conn);
        if let Some(v) = self.rooms.get_mut(&p.room) {
            v.retain(|c| *c != conn);
            if v.is_empty() {
                self.rooms.remove(&p.room);
                self.speaking.forget(&p.room);
                self.audio.remove(&p.room);
                return;
            }
        }
        // Only a speaker leaving takes a track away from the others.
        if p.publish {
            self.negotiate_room(now, p.room);
        }
    }

    fn gone(&mut self, now: Instant, conn: ConnId, why: &str) {
        if self.peers.contains_key(&conn) {
            tracing::info!(conn, "{why}");
            self.out.event(Event::Gone { conn });
        }
        self.remove(now, conn);
    }
}
