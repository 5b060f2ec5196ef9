//! A headless participant: a full-ICE `str0m` peer on its own UDP socket that answers the
//! server's offers (or, for servers where the client offers, as Janus's publishers do, makes
//! one), sends Opus frames on its microphone track while on stage, and counts what it receives.
//! The protocol tests and `bench fanout` use it in place of a browser.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// What a client has seen so far.
#[derive(Debug, Default)]
pub struct ClientCounters {
    /// Media frames received (from every speaker).
    pub received: AtomicU64,
    /// Frames sent on the microphone track.
    pub sent: AtomicU64,
    /// Sum over received frames of (arrival − the sender's send time), microseconds, when the
    /// payload carries the send time (see [`MediaClient::stamped`]).
    pub delay_us_sum: AtomicU64,
    pub delay_samples: AtomicU64,
    pub connected: AtomicBool,
    /// Send frames marked silent (audio level −127 dBov, no voice) instead of −20 dBov speech.
    pub quiet: AtomicBool,
}

/// What the peer's task is asked to do with SDP.
enum Job {
    /// Answer the server's offer; `mic` is the track to speak on.
    Answer {
        sdp: String,
        mic: Option<String>,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Offer one send-only audio track (the microphone).
    Offer {
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Take the server's answer to the pending offer.
    Accept {
        sdp: String,
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// A running headless participant.
#[derive(Debug)]
pub struct MediaClient {
    offers: mpsc::UnboundedSender<Job>,
    pub counters: Arc<ClientCounters>,
    pub local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    /// Delays observed, one per received stamped frame (µs), when collecting.
    pub delays: Arc<std::sync::Mutex<Vec<u32>>>,
}

impl Drop for MediaClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A 20 ms Opus frame: a CELT silence frame followed by padding bytes that carry an 8-byte
/// send timestamp (µs since `epoch`), so receivers can measure forwarding delay.
fn frame(epoch: Instant, now: Instant) -> Vec<u8> {
    // TOC: config 31 (CELT FB 20 ms), mono, code 3 (one frame, padded) is complex; a code-0
    // silence frame followed by bytes decoders ignore is enough for forwarding, which never
    // decodes.
    let mut f = vec![0xF8, 0xFF, 0xFE];
    f.extend_from_slice(&(now.duration_since(epoch).as_micros() as u64).to_be_bytes());
    f
}

impl MediaClient {
    /// Binds a loopback socket and starts the peer. `speak` makes it send a frame every 20 ms
    /// once it has a microphone track; `epoch` is the shared clock for delay stamps.
    pub async fn start(epoch: Instant, speak: bool, collect_delays: bool) -> std::io::Result<Self> {
        Self::start_on(
            std::net::Ipv4Addr::LOCALHOST.into(),
            epoch,
            speak,
            collect_delays,
        )
        .await
    }

    /// [`MediaClient::start`] on a socket of the given local address.
    pub async fn start_on(
        ip: std::net::IpAddr,
        epoch: Instant,
        speak: bool,
        collect_delays: bool,
    ) -> std::io::Result<Self> {
        let socket = UdpSocket::bind((ip, 0)).await?;
        let local = socket.local_addr()?;
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .set_reordering_size_audio(0)
            .build(Instant::now());
        let cand = Candidate::host(local, "udp").map_err(std::io::Error::other)?;
        rtc.add_local_candidate(cand);
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(ClientCounters::default());
        let delays = Arc::new(std::sync::Mutex::new(Vec::new()));
        let task = tokio::spawn(run(
            rtc,
            socket,
            local,
            rx,
            counters.clone(),
            delays.clone(),
            epoch,
            speak,
            collect_delays,
        ));
        Ok(MediaClient {
            offers: tx,
            counters,
            local,
            task,
            delays,
        })
    }

    /// Answers a server offer; `mic` is the track to speak on.
    pub async fn answer(&self, sdp: &str, mic: Option<&str>) -> Result<String, String> {
        self.ask(|reply| Job::Answer {
            sdp: sdp.to_string(),
            mic: mic.map(str::to_string),
            reply,
        })
        .await
    }

    /// Makes an offer of one send-only microphone track, for a server that expects the client
    /// to offer; [`MediaClient::accept_answer`] takes the server's answer.
    pub async fn offer(&self) -> Result<String, String> {
        self.ask(|reply| Job::Offer { reply }).await
    }

    /// Takes the server's answer to the offer made by [`MediaClient::offer`].
    pub async fn accept_answer(&self, sdp: &str) -> Result<(), String> {
        self.ask(|reply| Job::Accept {
            sdp: sdp.to_string(),
            reply,
        })
        .await
        .map(drop)
    }

    async fn ask(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<String, String>>) -> Job,
    ) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.offers
            .send(job(tx))
            .map_err(|_| "client stopped".to_string())?;
        rx.await.map_err(|_| "client stopped".to_string())?
    }

    pub fn received(&self) -> u64 {
        self.counters.received.load(Ordering::Relaxed)
    }

    pub fn sent(&self) -> u64 {
        self.counters.sent.load(Ordering::Relaxed)
    }

    pub fn connected(&self) -> bool {
        self.counters.connected.load(Ordering::Relaxed)
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    mut rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    mut offers: mpsc::UnboundedReceiver<Job>,
    counters: Arc<ClientCounters>,
    delays: Arc<std::sync::Mutex<Vec<u32>>>,
    epoch: Instant,
    speak: bool,
    collect: bool,
) {
    let mut buf = vec![0u8; 2000];
    let mut mic: Option<Mid> = None;
    let mut pending: Option<(SdpPendingOffer, Mid)> = None;
    let mut next_send = Instant::now();
    let mut n: u64 = 0;
    let mut timeout: Instant;
    loop {
        // Drain output.
        loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    let _ = socket.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => counters.connected.store(true, Ordering::Relaxed),
                    Event::MediaData(d) => {
                        counters.received.fetch_add(1, Ordering::Relaxed);
                        if d.data.len() >= 11 {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(&d.data[3..11]);
                            let sent = u64::from_be_bytes(b);
                            let now = Instant::now().duration_since(epoch).as_micros() as u64;
                            let delay = now.saturating_sub(sent);
                            counters.delay_us_sum.fetch_add(delay, Ordering::Relaxed);
                            counters.delay_samples.fetch_add(1, Ordering::Relaxed);
                            if collect && let Ok(mut v) = delays.lock() {
                                v.push(delay.min(u64::from(u32::MAX)) as u32);
                            }
                        }
                    }
                    _ => {}
                },
                Err(_) => return,
            }
        }
        let wake = if speak && mic.is_some() {
            timeout.min(next_send)
        } else {
            timeout
        };
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let Ok((len, src)) = r else { return };
                if let Ok(rcv) = Receive::new(Protocol::Udp, src, local, &buf[..len]) {
                    let _ = rtc.handle_input(Input::Receive(Instant::now(), rcv));
                }
            }
            job = offers.recv() => match job {
                None => return,
                Some(Job::Answer { sdp, mic: m, reply }) => {
                    let out = SdpOffer::from_sdp_string(&sdp)
                        .map_err(|e| e.to_string())
                        .and_then(|o| rtc.sdp_api().accept_offer(o).map_err(|e| e.to_string()))
                        .map(|a| a.to_sdp_string());
                    if out.is_ok() {
                        mic = m.map(|s| Mid::from(s.as_str()));
                    }
                    let _ = reply.send(out);
                }
                Some(Job::Offer { reply }) => {
                    let mut api = rtc.sdp_api();
                    let m = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
                    let out = match api.apply() {
                        Some((offer, p)) => {
                            pending = Some((p, m));
                            Ok(offer.to_sdp_string())
                        }
                        None => Err("nothing to offer".to_string()),
                    };
                    let _ = reply.send(out);
                }
                Some(Job::Accept { sdp, reply }) => {
                    let out = match pending.take() {
                        None => Err("no offer is pending".to_string()),
                        Some((p, m)) => SdpAnswer::from_sdp_string(&sdp)
                            .map_err(|e| e.to_string())
                            .and_then(|a| {
                                rtc.sdp_api().accept_answer(p, a).map_err(|e| e.to_string())
                            })
                            .map(|()| {
                                mic = Some(m);
                                String::new()
                            }),
                    };
                    // ICE starts on the next timeout: give it one now.
                    let _ = rtc.handle_input(Input::Timeout(Instant::now()));
                    let _ = reply.send(out);
                }
            },
            () = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                let _ = rtc.handle_input(Input::Timeout(now));
                if speak
                    && now >= next_send
                    && counters.connected.load(Ordering::Relaxed)
                    && let Some(m) = mic
                    && let Some(w) = rtc.writer(m)
                {
                    let pt = w.payload_params().next().map(|p| p.pt());
                    let quiet = counters.quiet.load(Ordering::Relaxed);
                    let level = if quiet { -127 } else { -20 };
                    let t = MediaTime::new(n * 960, Frequency::FORTY_EIGHT_KHZ);
                    if let Some(pt) = pt
                        && w
                            .audio_level(level, !quiet)
                            .write(pt, now, t, frame(epoch, now))
                            .is_ok()
                    {
                        counters.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                    next_send += Duration::from_millis(20);
                    if next_send < now {
                        next_send = now + Duration::from_millis(20);
                    }
                }
            }
        }
    }
}
