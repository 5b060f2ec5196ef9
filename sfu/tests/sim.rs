//! The engine driven in-process: real str0m peers (full ICE, DTLS, SRTP) talk to it over a
//! simulated network on a simulated clock, in 1 ms steps. Loss, reordering, a vanished peer
//! and ICE timeouts cost milliseconds of test time, not seconds of wall time. Every test runs
//! over both ways of forwarding (the sealed fast path and str0m's own write path).
//! `SIM_TRACE=1` prints every datagram with its simulated time.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use roomtape_sfu::{Command, ConnId, Event, Forwarding, Input, Output, Sfu, Stats};
use str0m::change::SdpOffer;
use str0m::media::{Frequency, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event as RtcEvent, Input as RtcInput, Output as RtcOutput, Rtc};

const ROOM: u32 = 7;
const STEP: Duration = Duration::from_millis(1);

/// A small deterministic generator (xorshift64*), so a failing run can be run again.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How the network treats datagrams.
#[derive(Clone, Copy)]
struct Link {
    delay: Duration,
    /// Extra delay, uniform up to this (reorders packets closer together than it).
    jitter: Duration,
    loss: f64,
}

const CLEAN: Link = Link {
    delay: Duration::from_millis(2),
    jitter: Duration::ZERO,
    loss: 0.0,
};

struct Packet {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// A participant: a full-ICE str0m peer like a browser.
struct Client {
    conn: ConnId,
    addr: SocketAddr,
    rtc: Rtc,
    timeout: Instant,
    mic: Option<Mid>,
    speak: bool,
    /// Sends nothing and takes nothing in (its machine went away).
    vanished: bool,
    /// Leaves offers unanswered.
    mute_signaling: bool,
    connected: bool,
    sent: u32,
    next_send: Instant,
    /// (the speaker's conn, frame number) of every frame received, in order.
    received: Vec<(u8, u32)>,
}

impl Client {
    /// A participant that neither speaks nor has vanished, with nothing received yet.
    fn new(conn: ConnId, addr: SocketAddr, rtc: Rtc, now: Instant) -> Self {
        Client {
            conn,
            addr,
            rtc,
            timeout: now,
            mic: None,
            speak: false,
            vanished: false,
            mute_signaling: false,
            connected: false,
            sent: 0,
            next_send: now,
            received: Vec::new(),
        }
    }
}

/// A 20 ms Opus silence frame (code 0) tagged with who sent it and its number, in padding
/// bytes a decoder ignores; forwarding never decodes.
fn frame(conn: ConnId, n: u32) -> Vec<u8> {
    let mut f = vec![0xF8, 0xFF, 0xFE, conn as u8];
    f.extend_from_slice(&n.to_be_bytes());
    f
}

struct Net {
    start: Instant,
    now: Instant,
    sfu: Sfu<u32>,
    sfu_addr: SocketAddr,
    sfu_timeout: Instant,
    clients: Vec<Client>,
    wire: Vec<Packet>,
    link: Link,
    rng: Rng,
    /// Everything the SFU told the room, with when.
    events: Vec<(Instant, Event<u32>)>,
}

impl Net {
    fn new(forwarding: Forwarding) -> Self {
        let now = Instant::now();
        let sfu_addr: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let sfu = Sfu::new(sfu_addr, forwarding, now).expect("an engine");
        let mut net = Net {
            start: now,
            now,
            sfu,
            sfu_addr,
            sfu_timeout: now,
            clients: Vec::new(),
            wire: Vec::new(),
            link: CLEAN,
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            events: Vec::new(),
        };
        net.drain_sfu();
        net
    }

    /// A participant joins the room (on stage when `publish`), and speaks while on stage
    /// when `speak`.
    fn join(&mut self, publish: bool, speak: bool) -> ConnId {
        let conn = self.clients.len() as ConnId + 1;
        let addr: SocketAddr = format!("10.0.1.{}:4000", conn + 10).parse().unwrap();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .set_reordering_size_audio(0)
            .build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        self.clients.push(Client {
            speak,
            ..Client::new(conn, addr, rtc, self.now)
        });
        self.command(Command::Join {
            conn,
            room: ROOM,
            stream: format!("speaker-{conn}"),
            publish,
        });
        conn
    }

    fn client(&mut self, conn: ConnId) -> &mut Client {
        &mut self.clients[conn as usize - 1]
    }

    fn command(&mut self, c: Command<u32>) {
        self.sfu.handle_input(Input::Command(c), self.now);
        self.drain_sfu();
    }

    fn send(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        if std::env::var_os("SIM_TRACE").is_some() {
            let at = self.now.duration_since(self.start);
            eprintln!("{at:?} {from} -> {to}: {} bytes", data.len());
        }
        if self.rng.unit() < self.link.loss {
            return;
        }
        let extra = self.link.jitter.mul_f64(self.rng.unit());
        self.wire.push(Packet {
            at: self.now + self.link.delay + extra,
            from,
            to,
            data,
        });
    }

    fn drain_sfu(&mut self) {
        loop {
            match self.sfu.poll_output() {
                Output::Transmit {
                    destination,
                    contents,
                } => {
                    let data = contents.to_vec();
                    let from = self.sfu_addr;
                    self.send(from, destination, data);
                }
                Output::Event(e) => {
                    if let Event::Offer { conn, sdp, mic } = &e {
                        self.offer(*conn, sdp, mic.as_deref());
                    }
                    self.events.push((self.now, e));
                }
                Output::Timeout(t) => {
                    self.sfu_timeout = t;
                    return;
                }
            }
        }
    }

    /// The client answers an offer at once (signaling is not what these tests are about).
    fn offer(&mut self, conn: ConnId, sdp: &str, mic: Option<&str>) {
        let now = self.now;
        let c = self.client(conn);
        if c.mute_signaling || c.vanished {
            return;
        }
        let offer = SdpOffer::from_sdp_string(sdp).expect("the SFU offers SDP");
        let answer = c
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("a browser-like answer");
        // A browser's clock runs on; let the peer see the time it answered at.
        let _ = c.rtc.handle_input(RtcInput::Timeout(now));
        c.mic = mic.map(Mid::from);
        c.next_send = c.next_send.max(now);
        let sdp = answer.to_sdp_string();
        self.drain_client(conn as usize - 1);
        // Deferred: the SFU may be in the middle of its own output.
        self.sfu
            .handle_input(Input::Command(Command::Answer { conn, sdp }), self.now);
    }

    fn drain_client(&mut self, i: usize) {
        loop {
            let c = &mut self.clients[i];
            match c.rtc.poll_output() {
                Ok(RtcOutput::Timeout(t)) => {
                    c.timeout = t;
                    return;
                }
                Ok(RtcOutput::Transmit(t)) => {
                    let (from, to, data) = (c.addr, t.destination, t.contents.to_vec());
                    if !c.vanished {
                        self.send(from, to, data);
                    }
                }
                Ok(RtcOutput::Event(e)) => match e {
                    RtcEvent::Connected => c.connected = true,
                    RtcEvent::MediaData(d) if d.data.len() >= 8 => {
                        let n = u32::from_be_bytes([d.data[4], d.data[5], d.data[6], d.data[7]]);
                        c.received.push((d.data[3], n));
                    }
                    _ => {}
                },
                Err(_) => {
                    c.timeout = self.now + Duration::from_secs(3600);
                    return;
                }
            }
        }
    }

    /// One millisecond of the world.
    fn step(&mut self) {
        self.now += STEP;
        let now = self.now;
        let (due, rest): (Vec<Packet>, Vec<Packet>) =
            self.wire.drain(..).partition(|p| p.at <= now);
        self.wire = rest;
        for p in due {
            if p.to == self.sfu_addr {
                self.sfu.handle_input(
                    Input::Datagram {
                        source: p.from,
                        contents: &p.data,
                    },
                    now,
                );
                self.drain_sfu();
            } else if let Some(i) = self.clients.iter().position(|c| c.addr == p.to) {
                if self.clients[i].vanished {
                    continue;
                }
                if let Ok(r) = Receive::new(Protocol::Udp, p.from, p.to, &p.data) {
                    let _ = self.clients[i].rtc.handle_input(RtcInput::Receive(now, r));
                }
                self.drain_client(i);
            }
        }
        if self.sfu_timeout <= now {
            self.sfu.handle_input(Input::Timeout, now);
            self.drain_sfu();
        }
        for i in 0..self.clients.len() {
            let c = &mut self.clients[i];
            if c.speak
                && c.connected
                && !c.vanished
                && now >= c.next_send
                && let Some(mid) = c.mic
                && let Some(w) = c.rtc.writer(mid)
            {
                let Some(pt) = w.payload_params().next().map(|p| p.pt()) else {
                    continue;
                };
                let t = MediaTime::new(u64::from(c.sent) * 960, Frequency::FORTY_EIGHT_KHZ);
                if w.audio_level(-20, true)
                    .write(pt, now, t, frame(c.conn, c.sent))
                    .is_ok()
                {
                    c.sent += 1;
                }
                c.next_send += Duration::from_millis(20);
            }
            if c.timeout <= now {
                let _ = c.rtc.handle_input(RtcInput::Timeout(now));
            }
            self.drain_client(i);
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Runs until `done` or `limit` passes; the simulated time it took.
    fn run_until(&mut self, limit: Duration, done: impl Fn(&Net) -> bool) -> Option<Duration> {
        let start = self.now;
        while self.now - start < limit {
            if done(self) {
                return Some(self.now - start);
            }
            self.step();
        }
        None
    }

    fn all_connected(&self) -> bool {
        self.clients.iter().all(|c| c.connected || c.vanished)
    }

    fn gone(&self, conn: ConnId) -> bool {
        self.events
            .iter()
            .any(|(_, e)| matches!(e, Event::Gone { conn: c } if *c == conn))
    }

    fn stats(&self) -> Stats {
        self.sfu.stats()
    }
}

/// Frames from `speaker` that `c` received, each once (asserted).
fn from(c: &Client, speaker: ConnId) -> HashSet<u32> {
    let mut seen = HashSet::new();
    for (s, n) in &c.received {
        if u64::from(*s) == speaker {
            assert!(seen.insert(*n), "frame {n} of {speaker} delivered twice");
        }
    }
    seen
}

macro_rules! both_ways {
    ($($name:ident),* $(,)?) => {
        mod sealed {
            $(#[test] fn $name() { super::$name(roomtape_sfu::Forwarding::Sealed) })*
        }
        mod str0m_path {
            $(#[test] fn $name() { super::$name(roomtape_sfu::Forwarding::Str0m) })*
        }
    };
}

both_ways!(
    a_speaker_reaches_every_listener_and_the_recorder,
    loss_and_reordering_lose_only_what_the_network_lost,
    a_vanished_peer_is_gone_after_the_ice_timeout_and_the_room_goes_on,
    a_peer_that_never_connects_is_dropped,
    a_muted_speaker_is_not_forwarded_nor_speaking,
    a_listener_brought_on_stage_is_heard,
    everything_goes_when_everyone_leaves,
    hostile_datagrams_change_nothing,
);

fn a_speaker_reaches_every_listener_and_the_recorder(f: Forwarding) {
    let mut net = Net::new(f);
    let speaker = net.join(true, true);
    let listeners: Vec<ConnId> = (0..3).map(|_| net.join(false, false)).collect();
    net.command(Command::Audio {
        room: ROOM,
        on: true,
    });
    let took = net.run_until(Duration::from_secs(5), Net::all_connected);
    assert!(took.is_some(), "every peer connects");
    net.run_for(Duration::from_secs(2));
    let sent = net.client(speaker).sent;
    assert!(sent >= 90, "the speaker sent {sent} frames in 2 s");
    for l in &listeners {
        let got = from(net.client(*l), speaker).len() as u32;
        // On a clean network, all but those still in flight.
        assert!(got + 3 >= sent, "listener {l} received {got} of {sent}");
    }
    assert!(
        from(net.client(speaker), speaker).is_empty(),
        "nobody hears themselves"
    );
    let recorded: Vec<u16> = net
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Audio { conn, packet, .. } if *conn == speaker => Some(packet.sequence),
            _ => None,
        })
        .collect();
    assert!(
        recorded.len() as u32 + 3 >= sent,
        "recorded {}",
        recorded.len()
    );
    assert!(
        net.events.iter().any(
            |(_, e)| matches!(e, Event::Speaking { room: ROOM, conns } if conns == &[speaker])
        ),
        "the speaker shows as speaking"
    );
    let received: u64 = net.clients.iter().map(|c| c.received.len() as u64).sum();
    let forwarded = net.stats().forwarded;
    assert!(
        forwarded >= received && forwarded <= received + 3 * 3,
        "forwarded {forwarded}, received {received}: every copy but those in flight arrived"
    );
}

fn loss_and_reordering_lose_only_what_the_network_lost(f: Forwarding) {
    let mut net = Net::new(f);
    let speaker = net.join(true, true);
    let listener = net.join(false, false);
    net.run_until(Duration::from_secs(5), Net::all_connected)
        .expect("both connect");
    net.link = Link {
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(60),
        loss: 0.05,
    };
    net.run_for(Duration::from_secs(6));
    net.link = CLEAN;
    net.run_for(Duration::from_millis(200));
    let sent = net.client(speaker).sent;
    let c = net.client(listener);
    let got = from(c, speaker);
    // Two hops of 5% loss each: about 90% arrive. The SRTP index of a packet that arrives
    // late must still be right (a wrong one fails authentication and the packet is lost).
    let share = got.len() as f64 / f64::from(sent);
    assert!(share > 0.8, "{} of {sent} arrived ({share:.2})", got.len());
    let late = c.received.windows(2).filter(|w| w[1].1 < w[0].1).count();
    assert!(
        late > 0,
        "the jitter reordered nothing: the test tests nothing"
    );
    assert!(!net.gone(listener) && !net.gone(speaker));
}

fn a_vanished_peer_is_gone_after_the_ice_timeout_and_the_room_goes_on(f: Forwarding) {
    let mut net = Net::new(f);
    let speaker = net.join(true, true);
    let stays = net.join(false, false);
    let leaves = net.join(false, false);
    net.run_until(Duration::from_secs(5), Net::all_connected)
        .expect("all connect");
    net.run_for(Duration::from_millis(500));
    net.client(leaves).vanished = true;
    let took = net
        .run_until(Duration::from_secs(60), |n| n.gone(leaves))
        .expect("the vanished peer is gone");
    assert!(
        took >= Duration::from_secs(2) && took <= Duration::from_secs(40),
        "gone after {took:?}"
    );
    assert_eq!(net.stats().peers, 2);
    let before = from(net.client(stays), speaker).len();
    net.run_for(Duration::from_secs(1));
    assert!(
        from(net.client(stays), speaker).len() >= before + 45,
        "the others still hear the speaker"
    );
    assert!(!net.gone(stays) && !net.gone(speaker));
}

fn a_peer_that_never_connects_is_dropped(f: Forwarding) {
    let mut net = Net::new(f);
    net.join(true, true);
    net.run_until(Duration::from_secs(5), Net::all_connected)
        .expect("the first connects");
    let silent = net.clients.len() as ConnId + 1;
    // Joins, gets its offer, never answers.
    let rtc = Rtc::builder().build(net.now);
    net.clients.push(Client {
        mute_signaling: true,
        ..Client::new(silent, "10.0.1.99:4000".parse().unwrap(), rtc, net.now)
    });
    net.command(Command::Join {
        conn: silent,
        room: ROOM,
        stream: "silent".into(),
        publish: false,
    });
    let took = net
        .run_until(Duration::from_secs(120), |n| n.gone(silent))
        .expect("dropped");
    assert!(
        took >= roomtape_sfu::CONNECT_TIMEOUT,
        "dropped after {took:?}"
    );
    assert!(took <= roomtape_sfu::CONNECT_TIMEOUT + Duration::from_secs(10));
    assert_eq!(net.stats().peers, 1);
}

fn a_muted_speaker_is_not_forwarded_nor_speaking(f: Forwarding) {
    let mut net = Net::new(f);
    let speaker = net.join(true, true);
    let listener = net.join(false, false);
    net.run_until(Duration::from_secs(5), Net::all_connected)
        .expect("both connect");
    net.run_for(Duration::from_secs(1));
    net.command(Command::SetForward {
        conn: speaker,
        forward: false,
    });
    net.run_for(Duration::from_millis(100));
    let at_mute = from(net.client(listener), speaker).len();
    let events_before = net.events.len();
    net.run_for(Duration::from_secs(2));
    assert_eq!(from(net.client(listener), speaker).len(), at_mute);
    assert!(
        net.events[events_before..]
            .iter()
            .any(|(_, e)| matches!(e, Event::Speaking { conns, .. } if conns.is_empty())),
        "the speaking ring goes out"
    );
    // Unmuted after minutes' worth of sequence numbers would be the same: the track goes on.
    net.command(Command::SetForward {
        conn: speaker,
        forward: true,
    });
    net.run_for(Duration::from_secs(1));
    assert!(from(net.client(listener), speaker).len() >= at_mute + 45);
}

fn a_listener_brought_on_stage_is_heard(f: Forwarding) {
    let mut net = Net::new(f);
    let host = net.join(true, false);
    let guest = net.join(false, true);
    net.run_until(Duration::from_secs(5), Net::all_connected)
        .expect("both connect");
    net.run_for(Duration::from_secs(1));
    assert_eq!(
        net.client(guest).sent,
        0,
        "a listener has no microphone track"
    );
    net.command(Command::SetPublish {
        conn: guest,
        publish: true,
    });
    net.run_for(Duration::from_secs(2));
    let heard = from(net.client(host), guest).len();
    assert!(heard >= 90, "the host heard {heard} frames of the guest");
    // And off stage again: the host's track for them is stopped, nothing more arrives.
    net.command(Command::SetPublish {
        conn: guest,
        publish: false,
    });
    net.run_for(Duration::from_millis(300));
    let at_off = from(net.client(host), guest).len();
    net.run_for(Duration::from_secs(1));
    assert_eq!(from(net.client(host), guest).len(), at_off);
}

fn everything_goes_when_everyone_leaves(f: Forwarding) {
    let mut net = Net::new(f);
    let ids: Vec<ConnId> = (0..4).map(|i| net.join(i < 2, true)).collect();
    net.command(Command::Audio {
        room: ROOM,
        on: true,
    });
    net.run_until(Duration::from_secs(5), Net::all_connected)
        .expect("all connect");
    net.run_for(Duration::from_millis(500));
    net.command(Command::Leave { conn: ids[0] });
    net.run_for(Duration::from_millis(200));
    assert_eq!(net.stats().peers, 3);
    // The other speaker is still heard by the listeners, and the leaver's track is gone.
    let heard = from(net.client(ids[2]), ids[1]).len();
    net.run_for(Duration::from_millis(500));
    assert!(from(net.client(ids[2]), ids[1]).len() >= heard + 20);
    for c in &ids[1..] {
        net.command(Command::Leave { conn: *c });
    }
    net.run_for(Duration::from_millis(100));
    // Asked for a room nobody is in (found by the fuzz target): nothing is kept.
    net.command(Command::Audio {
        room: ROOM,
        on: true,
    });
    let s = net.stats();
    assert_eq!(
        (s.peers, s.rooms, s.audio_rooms, s.timers, s.addresses),
        (0, 0, 0, 0, 0),
        "{s:?}"
    );
}

fn hostile_datagrams_change_nothing(f: Forwarding) {
    let mut net = Net::new(f);
    let speaker = net.join(true, true);
    let listener = net.join(false, false);
    net.run_until(Duration::from_secs(5), Net::all_connected)
        .expect("both connect");
    let listener_addr = net.client(listener).addr;
    let stranger: SocketAddr = "192.0.2.9:666".parse().unwrap();
    let mut rng = Rng(42);
    let before = from(net.client(listener), speaker).len();
    for i in 0..2000u32 {
        let len = (rng.next() % 1400) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Some that look like STUN, DTLS, RTP and RTCP to the demultiplexer.
        match i % 5 {
            0 if len >= 20 => {
                data[..2].copy_from_slice(&[0, 1]);
                data[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
            }
            1 if len >= 1 => data[0] = 22,
            2 if len >= 12 => data[0] = 0x80,
            3 if len >= 2 => data[..2].copy_from_slice(&[0x80, 200]),
            _ => {}
        }
        // From nowhere, and spoofed from a connected peer's address.
        let source = if i % 2 == 0 { stranger } else { listener_addr };
        net.sfu.handle_input(
            Input::Datagram {
                source,
                contents: &data,
            },
            net.now,
        );
        net.drain_sfu();
        if i % 20 == 0 {
            net.step();
        }
    }
    net.run_for(Duration::from_secs(1));
    // 1.1 s of speech went on meanwhile.
    let after = from(net.client(listener), speaker).len();
    assert!(
        after >= before + 50,
        "audio still flows: {before} then {after}"
    );
    assert!(!net.gone(listener) && !net.gone(speaker));
    assert_eq!(net.stats().peers, 2);
}
