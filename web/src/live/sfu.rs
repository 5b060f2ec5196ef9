//! The SFU's driver: one UDP socket and one task around the sans-IO engine of
//! `roomtape-sfu`. It feeds the engine datagrams, the rooms' commands and its timeouts with
//! the time they happened, sends what it says to send, and routes its events: offers, a peer
//! gone and who is speaking to the room's task, received audio to the room's recorder and to the
//! caption engine. All the rules are the engine's; nothing here decides.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use roomtape_core::{CaptionKey, RoomId, Speaker};
use roomtape_sfu::{Command, Event, Forwarding, Input, Output, Sfu};

use super::captions::CaptionFeed;
use super::hub::HubMsg;
use super::recording::{Tap, TapPacket};
use super::{ConnId, MediaCmd, MediaEvent, PeerCmd, SfuStats};
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
    start_with(listen, advertise, Forwarding::default()).await
}

/// [`start`], with forwarded copies leaving the given way (`bench fanout` compares them).
pub async fn start_with(
    listen: &str,
    advertise: &str,
    forwarding: Forwarding,
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
    let sfu = Sfu::new(advertised, forwarding, Instant::now()).map_err(std::io::Error::other)?;
    let driver = Driver {
        sfu,
        socket,
        conns: HashMap::new(),
        rooms: HashMap::new(),
        taps: HashMap::new(),
        captioned: HashMap::new(),
    };
    tokio::spawn(driver.run(rx));
    Ok((tx, SfuAddr { bound, advertised }))
}

/// The address this machine uses to reach the internet (no packet is sent).
fn default_route_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// Who a connection is, for routing the engine's events.
struct Conn {
    room: RoomId,
    speaker: Speaker,
    /// Its audio is open in the caption engine.
    captioned: bool,
}

impl Conn {
    fn caption_key(&self, conn: ConnId) -> CaptionKey {
        CaptionKey {
            room: self.room,
            conn,
            speaker: self.speaker.clone(),
        }
    }
}

struct Driver {
    sfu: Sfu<RoomId>,
    socket: UdpSocket,
    conns: HashMap<ConnId, Conn>,
    /// Each room's task, and how many of its connections the engine has.
    rooms: HashMap<RoomId, (mpsc::UnboundedSender<HubMsg>, usize)>,
    /// Recorded rooms' recorders.
    taps: HashMap<RoomId, Tap>,
    /// Captioned rooms' engine and time zero.
    captioned: HashMap<RoomId, CaptionFeed>,
}

impl Driver {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<MediaCmd>) {
        let mut buf = vec![0u8; 2000];
        let mut next = self.drain();
        loop {
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    if let Ok((n, src)) = r {
                        next = self.datagram(src, &buf[..n]);
                    }
                    // Take what else is waiting before going back to the scheduler.
                    for _ in 0..64 {
                        match self.socket.try_recv_from(&mut buf) {
                            Ok((n, src)) => next = self.datagram(src, &buf[..n]),
                            Err(_) => break,
                        }
                    }
                }
                cmd = rx.recv() => match cmd {
                    Some(c) => next = self.command(c),
                    None => break,
                },
                () = tokio::time::sleep_until(next.into()) => {
                    self.sfu.handle_input(Input::Timeout, Instant::now());
                    next = self.drain();
                }
            }
        }
    }

    fn datagram(&mut self, source: SocketAddr, contents: &[u8]) -> Instant {
        self.sfu
            .handle_input(Input::Datagram { source, contents }, Instant::now());
        self.drain()
    }

    /// Sends what the engine says to send and routes its events; returns when to wake it.
    fn drain(&mut self) -> Instant {
        loop {
            match self.sfu.poll_output() {
                Output::Transmit {
                    destination,
                    contents,
                } => {
                    let _ = self.socket.try_send_to(contents, destination);
                }
                Output::Event(e) => self.event(e),
                Output::Timeout(t) => return t,
            }
        }
    }

    fn to_room(&self, room: RoomId, e: MediaEvent) {
        if let Some((hub, _)) = self.rooms.get(&room) {
            let _ = hub.send(HubMsg::Media(e));
        }
    }

    fn to_conn(&self, conn: ConnId, e: MediaEvent) {
        if let Some(c) = self.conns.get(&conn) {
            self.to_room(c.room, e);
        }
    }

    fn event(&mut self, e: Event<RoomId>) {
        match e {
            Event::Offer { conn, sdp, mic } => {
                self.to_conn(conn, MediaEvent::Offer { conn, sdp, mic });
            }
            Event::Error { conn, message } => {
                self.to_conn(conn, MediaEvent::Error { conn, message });
            }
            Event::Gone { conn } => {
                self.to_conn(conn, MediaEvent::Gone { conn });
                self.forget(conn);
            }
            Event::Speaking { room, conns } => self.to_room(room, MediaEvent::Speaking { conns }),
            Event::Audio { room, conn, packet } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if let Some(feed) = self.captioned.get(&room) {
                    let key = c.caption_key(conn);
                    if !c.captioned {
                        c.captioned = true;
                        feed.engine.open(key.clone(), feed.origin);
                    }
                    feed.engine
                        .packet(&key, packet.payload.clone(), packet.timestamp, packet.at);
                }
                if let Some(tap) = self.taps.get(&room) {
                    tap.send(TapPacket {
                        speaker: c.speaker.clone(),
                        ssrc: packet.stream,
                        sequence: packet.sequence,
                        timestamp: packet.timestamp,
                        payload: packet.payload,
                        at: packet.at,
                    });
                }
            }
        }
    }

    /// A connection the engine no longer has; its room's recorder and captions go with the
    /// last one.
    fn forget(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if c.captioned
            && let Some(feed) = self.captioned.get(&c.room)
        {
            feed.engine.close(&c.caption_key(conn));
        }
        if let Some((_, n)) = self.rooms.get_mut(&c.room) {
            *n -= 1;
            if *n == 0 {
                self.rooms.remove(&c.room);
                self.taps.remove(&c.room);
                self.captioned.remove(&c.room);
            }
        }
    }

    /// Stops captioning a room: each of its open speakers is closed in the engine.
    fn uncaption(&mut self, room: RoomId) {
        let Some(feed) = self.captioned.remove(&room) else {
            return;
        };
        for (conn, c) in &mut self.conns {
            if c.room == room && c.captioned {
                c.captioned = false;
                feed.engine.close(&c.caption_key(*conn));
            }
        }
    }

    /// Whether the engine hands out a room's audio: while it is recorded or captioned.
    fn audio(&self, room: RoomId) -> Command<RoomId> {
        Command::Audio {
            room,
            on: self.taps.contains_key(&room) || self.captioned.contains_key(&room),
        }
    }

    fn command(&mut self, c: MediaCmd) -> Instant {
        let now = Instant::now();
        let cmd = match c {
            MediaCmd::Join {
                conn,
                room,
                speaker,
                publish,
                events,
            } => {
                let stream = speaker.id.to_string();
                let c = Conn {
                    room,
                    speaker,
                    captioned: false,
                };
                if self.conns.insert(conn, c).is_none() {
                    self.rooms.entry(room).or_insert((events, 0)).1 += 1;
                }
                Command::Join {
                    conn,
                    room,
                    stream,
                    publish,
                }
            }
            MediaCmd::Peer(PeerCmd::Answer { conn, sdp }) => Command::Answer { conn, sdp },
            MediaCmd::Peer(PeerCmd::SetPublish { conn, publish }) => {
                Command::SetPublish { conn, publish }
            }
            MediaCmd::Peer(PeerCmd::SetForward { conn, forward }) => {
                Command::SetForward { conn, forward }
            }
            MediaCmd::Peer(PeerCmd::Leave { conn }) => {
                self.forget(conn);
                Command::Leave { conn }
            }
            MediaCmd::Tap { room, tap } => {
                match tap {
                    // Kept while the room has connections, as the engine keeps its audio.
                    Some(t) if self.rooms.contains_key(&room) => self.taps.insert(room, t),
                    Some(_) => None,
                    None => self.taps.remove(&room),
                };
                self.audio(room)
            }
            MediaCmd::Captions { room, feed } => {
                match feed {
                    Some(f) if self.rooms.contains_key(&room) => {
                        // The same engine and origin as before: nothing changes.
                        self.captioned.entry(room).or_insert(f);
                    }
                    Some(_) => {}
                    None => self.uncaption(room),
                }
                self.audio(room)
            }
            MediaCmd::Stats(reply) => {
                let s = self.sfu.stats();
                let _ = reply.send(SfuStats {
                    peers: s.peers,
                    rooms: s.rooms,
                    taps: self.taps.len(),
                    timers: s.timers,
                    addresses: s.addresses,
                    forwarded: s.forwarded,
                });
                return self.drain();
            }
        };
        self.sfu.handle_input(Input::Command(cmd), now);
        self.drain()
    }
}
