//! The SFU: one UDP socket, one task, one sans-IO `str0m::Rtc` (ICE-lite, DTLS-SRTP, Opus
//! only) per participant. Audio a speaker sends is forwarded, as received, on every other
//! participant's matching send-only track (sealed with that connection's SRTP keys by
//! `srtp`, not queued through its `Rtc`), and handed to the room's recorder; nothing is
//! decoded or mixed. The server always makes the offers (a microphone track, receive-only while
//! the participant is on stage and inactive otherwise, and a send-only track per other speaker)
//! and the client answers, so the two sides never offer at once.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{Extension, RtpPacket, SeqNo, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use roomtape_core::{RoomId, Speaker};

use super::hub::HubMsg;
use super::recording::{Tap, TapPacket};
use super::srtp::{self, KeySlot, SrtpTx};
use super::{ConnId, MediaCmd, MediaEvent, SfuStats};

/// Audio level (RFC 6464, in dBov: 0 is loudest, −127 silence; str0m gives it negative) at or
/// over which a speaker counts as speaking.
const SPEAKING_LEVEL: i8 = -50;
/// How long a level keeps someone "speaking".
const SPEAKING_HOLD: Duration = Duration::from_millis(400);
/// How often speaking indicators are recomputed.
const SPEAKING_EVERY: Duration = Duration::from_millis(200);
/// A peer that has not connected this long after its offer is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times one drive of a peer answers str0m's "call me again now" timeouts inline
/// before leaving the rest to the timer.
const INLINE_TIMEOUTS: usize = 4;

/// Where the SFU listens and what it tells browsers.
#[derive(Clone, Copy, Debug)]
pub struct SfuAddr {
    pub bound: SocketAddr,
    pub advertised: SocketAddr,
}

/// Binds the socket and starts the SFU task. `advertise` is the IP browsers send to (empty:
/// the bound IP, or this machine's address on its default route when bound to all addresses).
pub async fn start(
    listen: &str,
    advertise: &str,
) -> std::io::Result<(mpsc::UnboundedSender<MediaCmd>, SfuAddr)> {
    let socket = UdpSocket::bind(listen).await?;
    let bound = socket.local_addr()?;
    let ip: IpAddr = if !advertise.trim().is_empty() {
        advertise.trim().parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("media.advertise must be an IP address, not {advertise:?}"),
            )
        })?
    } else if bound.ip().is_unspecified() {
        default_route_ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    } else {
        bound.ip()
    };
    let advertised = SocketAddr::new(ip, bound.port());
    let (tx, rx) = mpsc::unbounded_channel();
    let sfu = Sfu::new(socket, advertised)?;
    tokio::spawn(sfu.run(rx));
    Ok((tx, SfuAddr { bound, advertised }))
}

/// The address this machine uses to reach the internet (no packet is sent).
fn default_route_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// An offer out: the pending state, the microphone slot it creates (first offer only), whether
/// the slot receives in it, and the speaker tracks it adds.
type Pending = (SdpPendingOffer, Option<Mid>, bool, Vec<(ConnId, Mid)>);

struct Peer {
    room: RoomId,
    speaker: Speaker,
    rtc: Rtc,
    events: mpsc::UnboundedSender<HubMsg>,
    publish: bool,
    forward: bool,
    /// Our track for their microphone, made in the first offer: receive-only while they are on
    /// stage, inactive otherwise (it also gives every peer something to connect for).
    mic: Option<Mid>,
    /// Whether the answered direction of `mic` is receive-only.
    mic_live: bool,
    /// Our send-only track for each other speaker, once answered.
    outs: HashMap<ConnId, Out>,
    /// The offer waiting for an answer, and what it adds.
    pending: Option<Pending>,
    /// Something changed while an offer was out: offer again after the answer.
    renegotiate: bool,
    created: Instant,
    deadline: Instant,
    /// A tag for the recorder's stream identity: a new one each time they go on stage.
    ssrc_tag: u32,
    level_at: Option<Instant>,
    /// Where the connection's SRTP keys appear during its DTLS handshake.
    keys: KeySlot,
    /// The sending context made from them once the connection is up (str0m's `Connected`):
    /// `None` until then.
    srtp: Option<SrtpTx>,
    /// The address str0m sends this connection's DTLS and RTCP to (ICE's nominated pair).
    dest: Option<SocketAddr>,
}

/// A send-only track carrying one speaker to one listener, and how the speaker's sequence
/// numbers map onto it: this track's numbers start at 1 and run on across the speaker's
/// SSRC changes, so the listener's SRTP rollover counter starts at 0 however long the speaker
/// has been talking.
struct Out {
    mid: Mid,
    /// This track's own SSRC, as str0m announced it in the offer.
    ours: Option<u32>,
    ssrc: Option<Ssrc>,
    offset: i64,
    last: u64,
    /// The highest number given before the mapping last changed: a late packet from before
    /// that change would map to or below it, onto an index already sealed, and is dropped.
    floor: u64,
}

/// The most a track's numbers may jump at once. A speaker muted by the server for minutes
/// comes back thousands of numbers on; a receiver's SRTP guesses the rollover counter from
/// within 2^15 of its last packet, so a longer jump would be read as old and every packet
/// after it dropped. A jump this long is closed up like an SSRC change.
const MAX_JUMP: i64 = 1 << 12;

impl Out {
    fn new(mid: Mid) -> Self {
        Out {
            mid,
            ours: None,
            ssrc: None,
            offset: 0,
            last: 0,
            floor: 0,
        }
    }

    /// This track's sequence number for the speaker's `seq` on `ssrc`; `None` for a packet
    /// from before the track began or before its last remapping.
    fn seq(&mut self, ssrc: Ssrc, seq: SeqNo) -> Option<SeqNo> {
        let seq = *seq as i64;
        let next = self.last as i64 + 1;
        if self.ssrc != Some(ssrc) || seq + self.offset > next + MAX_JUMP {
            self.ssrc = Some(ssrc);
            self.offset = next - seq;
            self.floor = self.last;
        }
        let out = u64::try_from(seq + self.offset)
            .ok()
            .filter(|s| *s > self.floor)?;
        self.last = self.last.max(out);
        Some(out.into())
    }
}

/// Whether a datagram is a STUN Binding request (RFC 8489) carrying USE-CANDIDATE (RFC 8445
/// §7.1.2): the peer nominating the pair it came on. Only read; str0m checks its integrity,
/// and the nomination counts once str0m has answered it with a success.
fn nominates(data: &[u8]) -> bool {
    const BINDING_REQUEST: [u8; 2] = [0x00, 0x01];
    const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    const USE_CANDIDATE: [u8; 2] = [0x00, 0x25];
    if data.len() < 20 || data[..2] != BINDING_REQUEST || data[4..8] != MAGIC_COOKIE {
        return false;
    }
    let mut rest = &data[20..];
    while rest.len() >= 4 {
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        if rest[..2] == USE_CANDIDATE {
            return true;
        }
        // Attribute values are padded to four bytes.
        let Some(next) = rest.get(4 + len.div_ceil(4) * 4..) else {
            return false;
        };
        rest = next;
    }
    false
}

struct Sfu {
    socket: UdpSocket,
    advertised: SocketAddr,
    template: RtcConfig,
    peers: HashMap<ConnId, Peer>,
    by_addr: HashMap<SocketAddr, ConnId>,
    rooms: HashMap<RoomId, Vec<ConnId>>,
    taps: HashMap<RoomId, Tap>,
    timers: BTreeSet<(Instant, ConnId)>,
    speaking: HashMap<RoomId, Vec<ConnId>>,
    next_tag: u32,
    forwarded: u64,
    /// A forwarded packet in the clear, then sealed (reused for every copy).
    plain: Vec<u8>,
    sealed: Vec<u8>,
}

impl Sfu {
    fn new(socket: UdpSocket, advertised: SocketAddr) -> std::io::Result<Self> {
        let cert = srtp::crypto()
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| std::io::Error::other("cannot make a DTLS certificate"))?;
        let template = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            // Audio rooms need the level (speaking rings) and the MID (which track a packet
            // belongs to) and nothing else: no transport-wide congestion control or send-time
            // stamps to write and parse on every forwarded packet.
            .clear_extension_map()
            .set_extension(srtp::EXT_AUDIO_LEVEL, Extension::AudioLevel)
            .set_extension(srtp::EXT_MID, Extension::RtpMid)
            // Packets, not frames: each received packet is forwarded at once, as it came (a
            // lost one holds nothing back), without str0m's depacketize/packetize layer.
            .set_rtp_mode(true)
            .set_dtls_cert(cert);
        Ok(Sfu {
            socket,
            advertised,
            template,
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            rooms: HashMap::new(),
            taps: HashMap::new(),
            timers: BTreeSet::new(),
            speaking: HashMap::new(),
            next_tag: 1,
            forwarded: 0,
            plain: Vec::with_capacity(1500),
            sealed: Vec::with_capacity(1500),
        })
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<MediaCmd>) {
        let mut buf = vec![0u8; 2000];
        let mut next_speaking = Instant::now() + SPEAKING_EVERY;
        loop {
            let next = self
                .timers
                .first()
                .map_or(next_speaking, |(t, _)| (*t).min(next_speaking));
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    if let Ok((n, src)) = r {
                        self.udp(src, &buf[..n]);
                    }
                    // Take what else is waiting before going back to the scheduler.
                    for _ in 0..64 {
                        match self.socket.try_recv_from(&mut buf) {
                            Ok((n, src)) => self.udp(src, &buf[..n]),
                            Err(_) => break,
                        }
                    }
                }
                cmd = rx.recv() => match cmd {
                    Some(c) => self.command(c),
                    None => break,
                },
                () = tokio::time::sleep_until(next.into()) => {}
            }
            let now = Instant::now();
            self.timeouts(now);
            if now >= next_speaking {
                self.update_speaking(now);
                next_speaking = now + SPEAKING_EVERY;
            }
        }
    }

    fn udp(&mut self, src: SocketAddr, data: &[u8]) {
        let now = Instant::now();
        let Ok(recv) = Receive::new(Protocol::Udp, src, self.advertised, data) else {
            return;
        };
        let input = Input::Receive(now, recv);
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
        self.drive(conn, nominates(data).then_some(src));
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
            if p.srtp.is_none() && now.duration_since(p.created) > CONNECT_TIMEOUT {
                self.gone(conn, "the audio connection did not come up");
                continue;
            }
            let _ = p.rtc.handle_input(Input::Timeout(now));
            self.drive(conn, None);
        }
    }

    /// Drains one peer's output: sends its packets, handles its events, re-arms its timer.
    /// A timeout str0m wants now (it asks after most writes) is answered here, a few times,
    /// rather than by a round trip through the timer set. `nominating` is the source of the
    /// datagram just handled if it was a STUN check nominating its pair.
    fn drive(&mut self, conn: ConnId, nominating: Option<SocketAddr>) {
        let mut events = Vec::new();
        let Some(p) = self.peers.get_mut(&conn) else {
            return;
        };
        let mut inline = 0;
        let deadline = loop {
            match p.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    let now = Instant::now();
                    if t <= now && inline < INLINE_TIMEOUTS && p.rtc.is_alive() {
                        inline += 1;
                        let _ = p.rtc.handle_input(Input::Timeout(now));
                        continue;
                    }
                    break t;
                }
                Ok(Output::Transmit(t)) => {
                    // DTLS and SRTCP (RFC 7983: first byte 20 and up) go only to the nominated
                    // pair; STUN answers go to every address ICE checks, but a success answer
                    // (0x0101) to a check that nominates its pair moves the pair at once.
                    let c = &t.contents[..];
                    if c.first().is_some_and(|b| *b >= 20)
                        || (nominating == Some(t.destination) && c.starts_with(&[0x01, 0x01]))
                    {
                        p.dest = Some(t.destination);
                    }
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => events.push(e),
                Err(e) => {
                    tracing::debug!(conn, "peer failed: {e}");
                    p.rtc.disconnect();
                    events.push(Event::IceConnectionStateChange(
                        IceConnectionState::Disconnected,
                    ));
                    break Instant::now() + Duration::from_secs(3600);
                }
            }
        };
        if deadline != p.deadline {
            self.timers.remove(&(p.deadline, conn));
            p.deadline = deadline;
            self.timers.insert((deadline, conn));
        }
        for e in events {
            self.event(conn, e);
        }
    }

    fn event(&mut self, conn: ConnId, e: Event) {
        match e {
            // str0m reports it once DTLS is done, the keys exported and the peer's certificate
            // checked against its fingerprint.
            Event::Connected => {
                if let Some(p) = self.peers.get_mut(&conn) {
                    let keys = srtp::take(&p.keys);
                    p.srtp = keys.as_ref().and_then(|k| SrtpTx::new(srtp::crypto(), k));
                    if p.srtp.is_none() {
                        // It times out like a connection that never came up.
                        tracing::warn!(conn, ?keys, "no SRTP context to forward audio with");
                    }
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.gone(conn, "the audio connection was lost");
            }
            Event::RtpPacket(p) => self.media(conn, p),
            _ => {}
        }
    }

    fn media(&mut self, from: ConnId, d: RtpPacket) {
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        // Only a speaker's own microphone track is forwarded; anything else a client sends is
        // dropped here.
        let mid = p
            .rtc
            .direct_api()
            .stream_rx(&d.header.ssrc)
            .map(|s| s.mid());
        if !p.publish || !p.mic_live || p.mic.is_none() || p.mic != mid {
            return;
        }
        let ext = &d.header.ext_vals;
        if let Some(level) = ext.audio_level
            && level >= SPEAKING_LEVEL
        {
            p.level_at = Some(d.timestamp);
        }
        if !p.forward {
            return;
        }
        let room = p.room;
        let speaker = p.speaker.clone();
        let tag = p.ssrc_tag;
        if let Some(tap) = self.taps.get(&room) {
            tap.send(TapPacket {
                speaker,
                ssrc: tag,
                sequence: d.header.sequence_number,
                timestamp: d.header.timestamp,
                payload: d.payload.to_vec(),
                at: d.timestamp,
            });
        }
        let listeners: Vec<ConnId> = self
            .rooms
            .get(&room)
            .map(|v| v.iter().copied().filter(|c| *c != from).collect())
            .unwrap_or_default();
        // The level and voice-activity flag go on; nothing else of the speaker's extensions.
        let level = ext
            .audio_level
            .map(|l| (l, ext.voice_activity.unwrap_or(false)));
        // Every track is negotiated from our one Opus payload type, so it is the speaker's too.
        let pt = *d.header.payload_type;
        for l in listeners {
            // A closed connection (it leaves with its next timer) gets nothing more.
            let Some(lp) = self.peers.get_mut(&l).filter(|p| p.rtc.is_alive()) else {
                continue;
            };
            // Not connected yet: a live room has nothing to hold back for later.
            let (Some(tx), Some(dest)) = (lp.srtp.as_mut(), lp.dest) else {
                continue;
            };
            let Some(out) = lp.outs.get_mut(&from) else {
                continue;
            };
            if out.ours.is_none() {
                out.ours = lp
                    .rtc
                    .direct_api()
                    .stream_tx_by_mid(out.mid, None)
                    .map(|s| *s.ssrc());
            }
            let Some(ssrc) = out.ours else {
                continue;
            };
            let Some(seq) = out.seq(d.header.ssrc, d.seq_no) else {
                continue;
            };
            let header = srtp::Header {
                payload_type: pt,
                marker: d.header.marker,
                sequence: *seq as u16,
                timestamp: d.header.timestamp,
                ssrc,
                level,
                mid: out.mid.as_bytes(),
            };
            let n = srtp::write_rtp(&header, &d.payload, &mut self.plain);
            if let Err(e) = tx.protect(&self.plain, n, ssrc, *seq, &mut self.sealed) {
                tracing::debug!(conn = l, "cannot seal a packet: {e}");
                continue;
            }
            if self.socket.try_send_to(&self.sealed, dest).is_ok() {
                self.forwarded += 1;
            }
        }
    }

    fn update_speaking(&mut self, now: Instant) {
        for (room, conns) in &self.rooms {
            let mut on: Vec<ConnId> = conns
                .iter()
                .copied()
                .filter(|c| {
                    self.peers.get(c).is_some_and(|p| {
                        p.publish
                            && p.forward
                            && p.level_at
                                .is_some_and(|t| now.duration_since(t) < SPEAKING_HOLD)
                    })
                })
                .collect();
            on.sort_unstable();
            let before = self.speaking.entry(*room).or_default();
            if *before != on {
                *before = on.clone();
                if let Some(first) = conns.first().and_then(|c| self.peers.get(c)) {
                    let _ = first
                        .events
                        .send(HubMsg::Media(MediaEvent::Speaking { conns: on }));
                }
            }
        }
    }

    fn command(&mut self, c: MediaCmd) {
        match c {
            MediaCmd::Join {
                conn,
                room,
                speaker,
                publish,
                events,
            } => self.join(conn, room, speaker, publish, events),
            MediaCmd::Answer { conn, sdp } => self.answer(conn, &sdp),
            MediaCmd::SetPublish { conn, publish } => {
                let Some(p) = self.peers.get_mut(&conn) else {
                    return;
                };
                if p.publish == publish {
                    return;
                }
                p.publish = publish;
                if publish {
                    p.ssrc_tag = self.next_tag;
                    self.next_tag = self.next_tag.wrapping_add(1);
                }
                let room = p.room;
                self.negotiate_room(room);
            }
            MediaCmd::SetForward { conn, forward } => {
                if let Some(p) = self.peers.get_mut(&conn) {
                    p.forward = forward;
                }
            }
            MediaCmd::Leave { conn } => self.remove(conn),
            MediaCmd::Stats(reply) => {
                let _ = reply.send(SfuStats {
                    peers: self.peers.len(),
                    rooms: self.rooms.len(),
                    taps: self.taps.len(),
                    timers: self.timers.len(),
                    addresses: self.by_addr.len(),
                    forwarded: self.forwarded,
                });
            }
            MediaCmd::Tap { room, tap } => match tap {
                Some(t) => {
                    self.taps.insert(room, t);
                }
                None => {
                    self.taps.remove(&room);
                }
            },
        }
    }

    fn join(
        &mut self,
        conn: ConnId,
        room: RoomId,
        speaker: Speaker,
        publish: bool,
        events: mpsc::UnboundedSender<HubMsg>,
    ) {
        let now = Instant::now();
        let Some((mut rtc, keys)) = srtp::build(&self.template, now) else {
            let _ = events.send(HubMsg::Media(MediaEvent::Error {
                conn,
                message: "the media connection cannot be set up".into(),
            }));
            return;
        };
        match Candidate::host(self.advertised, "udp") {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => {
                let _ = events.send(HubMsg::Media(MediaEvent::Error {
                    conn,
                    message: format!("the media address is unusable: {e}"),
                }));
                return;
            }
        }
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        self.peers.insert(
            conn,
            Peer {
                room,
                speaker,
                rtc,
                events,
                publish,
                forward: true,
                mic: None,
                outs: HashMap::new(),
                pending: None,
                renegotiate: false,
                mic_live: false,
                created: now,
                deadline: now,
                ssrc_tag: tag,
                level_at: None,
                keys,
                srtp: None,
                dest: None,
            },
        );
        self.timers.insert((now, conn));
        self.rooms.entry(room).or_default().push(conn);
        // A listener changes nobody else's tracks: offer to them alone.
        if publish {
            self.negotiate_room(room);
        } else {
            self.negotiate(conn);
        }
    }

    fn remove(&mut self, conn: ConnId) {
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
                self.speaking.remove(&p.room);
                self.taps.remove(&p.room);
                return;
            }
        }
        // Only a speaker leaving takes a track away from the others.
        if p.publish {
            self.negotiate_room(p.room);
        }
    }

    fn gone(&mut self, conn: ConnId, why: &str) {
        if let Some(p) = self.peers.get(&conn) {
            tracing::info!(conn, "{why}");
            let _ = p.events.send(HubMsg::Media(MediaEvent::Gone { conn }));
        }
        self.remove(conn);
    }

    /// Brings every peer of `room` to what the stage is now.
    fn negotiate_room(&mut self, room: RoomId) {
        let conns = self.rooms.get(&room).cloned().unwrap_or_default();
        for c in conns {
            self.negotiate(c);
        }
    }

    /// Offers what `conn` is missing (or no longer needs): its microphone track while it is on
    /// stage, a send-only track per other speaker. One offer at a time.
    fn negotiate(&mut self, conn: ConnId) {
        let Some(p) = self.peers.get(&conn) else {
            return;
        };
        let room = p.room;
        let publishers: HashSet<ConnId> = self
            .rooms
            .get(&room)
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|c| *c != conn && self.peers.get(c).is_some_and(|q| q.publish))
                    .collect()
            })
            .unwrap_or_default();
        let names: HashMap<ConnId, String> = publishers
            .iter()
            .filter_map(|c| self.peers.get(c).map(|q| (*c, q.speaker.id.to_string())))
            .collect();
        let Some(p) = self.peers.get_mut(&conn) else {
            return;
        };
        if p.pending.is_some() {
            p.renegotiate = true;
            return;
        }
        let mut api = p.rtc.sdp_api();
        let dir = |on: bool| {
            if on {
                Direction::RecvOnly
            } else {
                Direction::Inactive
            }
        };
        let mut new_mic = None;
        match p.mic {
            None => {
                new_mic = Some(api.add_media(MediaKind::Audio, dir(p.publish), None, None, None));
            }
            Some(m) if p.mic_live != p.publish => api.set_direction(m, dir(p.publish)),
            Some(_) => {}
        }
        let live_after = p.publish;
        let mut new_outs = Vec::new();
        let mut publishers: Vec<ConnId> = publishers.into_iter().collect();
        publishers.sort_unstable();
        for s in publishers {
            if !p.outs.contains_key(&s) {
                let stream = names.get(&s).cloned();
                let mid = api.add_media(
                    MediaKind::Audio,
                    Direction::SendOnly,
                    stream.clone(),
                    stream,
                    None,
                );
                new_outs.push((s, mid));
            }
        }
        let gone: Vec<ConnId> = p
            .outs
            .keys()
            .copied()
            .filter(|s| !names.contains_key(s))
            .collect();
        for s in gone {
            if let Some(m) = p.outs.remove(&s) {
                api.stop_media(m.mid);
            }
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        p.pending = Some((pending, new_mic, live_after, new_outs));
        let mic = new_mic
            .or(p.mic)
            .filter(|_| live_after)
            .map(|m| m.to_string());
        let _ = p.events.send(HubMsg::Media(MediaEvent::Offer {
            conn,
            sdp: offer.to_sdp_string(),
            mic,
        }));
        self.drive(conn, None);
    }

    fn answer(&mut self, conn: ConnId, sdp: &str) {
        let Some(p) = self.peers.get_mut(&conn) else {
            return;
        };
        let error = |p: &Peer, m: String| {
            let _ = p
                .events
                .send(HubMsg::Media(MediaEvent::Error { conn, message: m }));
        };
        let Some((pending, mic, live_after, outs)) = p.pending.take() else {
            error(p, "no offer is waiting for an answer".into());
            return;
        };
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => {
                error(p, format!("that answer is not SDP: {e}"));
                p.pending = Some((pending, mic, live_after, outs));
                return;
            }
        };
        match p.rtc.sdp_api().accept_answer(pending, answer) {
            Ok(()) => {
                if mic.is_some() {
                    p.mic = mic;
                }
                p.mic_live = live_after;
                p.outs
                    .extend(outs.into_iter().map(|(c, m)| (c, Out::new(m))));
            }
            Err(e) => {
                error(p, format!("the answer was refused: {e}"));
                // The offer is spent; make a fresh one with everything still missing.
                p.renegotiate = true;
            }
        }
        let again = std::mem::take(&mut p.renegotiate);
        self.drive(conn, None);
        if again {
            self.negotiate(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_track_numbers_from_one_and_runs_on_across_ssrc_changes() {
        let mut out = Out::new(Mid::from("3"));
        let (a, b) = (Ssrc::from(7), Ssrc::from(9));
        // A speaker far into a long talk (past a rollover) still starts this track at 1.
        let seq = |n: u64| SeqNo::from(n);
        assert_eq!(out.seq(a, seq(200_000)), Some(seq(1)));
        assert_eq!(out.seq(a, seq(200_002)), Some(seq(3)), "a gap stays a gap");
        assert_eq!(out.seq(a, seq(200_001)), Some(seq(2)), "late, in its place");
        assert_eq!(
            out.seq(a, seq(199_999)),
            None,
            "from before the track began"
        );
        // A new SSRC with a random start continues after the highest number sent.
        assert_eq!(out.seq(b, seq(40)), Some(seq(4)));
        assert_eq!(out.seq(b, seq(41)), Some(seq(5)));
    }

    #[test]
    fn no_index_is_given_twice_and_a_long_jump_is_closed_up() {
        let mut out = Out::new(Mid::from("3"));
        let (a, b) = (Ssrc::from(7), Ssrc::from(9));
        let seq = |n: u64| SeqNo::from(n);
        for n in 1000..1010 {
            out.seq(a, seq(n));
        }
        // The new SSRC's first packet to arrive is not its first: those sent before it come
        // late and would map onto numbers the old SSRC already used.
        assert_eq!(out.seq(b, seq(42)), Some(seq(11)));
        assert_eq!(out.seq(b, seq(41)), None, "would be 10, sealed already");
        assert_eq!(out.seq(b, seq(38)), None);
        assert_eq!(out.seq(b, seq(43)), Some(seq(12)));
        // Muted for minutes (the speaker kept sending; nothing was forwarded): the track
        // goes on at the next number, not 15,000 further.
        assert_eq!(out.seq(b, seq(15_043)), Some(seq(13)));
        assert_eq!(out.seq(b, seq(15_042)), None, "from before the jump");
        assert_eq!(out.seq(b, seq(15_045)), Some(seq(15)), "a short gap stays");
    }

    /// A STUN Binding request with the given attributes (type, value).
    fn stun(kind: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in attrs {
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut m = kind.to_be_bytes().to_vec();
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn a_check_that_nominates_its_pair_is_recognised() {
        let user: (u16, &[u8]) = (0x0006, b"abcd:efg");
        let odd: (u16, &[u8]) = (0x8022, b"str0m");
        let priority: (u16, &[u8]) = (0x0024, &[0, 0, 1, 0]);
        let nominate: (u16, &[u8]) = (0x0025, &[]);
        let integrity: (u16, &[u8]) = (0x0008, &[9; 20]);
        assert!(nominates(&stun(
            0x0001,
            &[user, odd, priority, nominate, integrity]
        )));
        assert!(!nominates(&stun(0x0001, &[user, odd, priority, integrity])));
        assert!(!nominates(&stun(0x0101, &[nominate])), "a response");
        let whole = stun(0x0001, &[user, nominate]);
        assert!(!nominates(&whole[..16]), "too short for a header");
        let mut lying = stun(0x0001, &[(0x0006, &[1; 40]), nominate]);
        lying[22..24].copy_from_slice(&400u16.to_be_bytes());
        assert!(!nominates(&lying), "an attribute longer than the message");
        assert!(!nominates(&[0x90, 0x6f, 0, 1]), "RTP");
    }
}
