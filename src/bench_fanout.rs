//! `roomtape bench fanout`: the SFU in one process (`bench fanout-server`, hidden: the real
//! service's signaling and SFU with one room and ready-made sessions), headless str0m peers in
//! this one, over loopback. Speakers send a 20 ms frame stamped with its send time; every other
//! participant receives it. Prints forwarded packets per second and per core of the SFU
//! process, loss, the p99 forwarding delay, and the most listeners one speaker reaches here
//! with under 0.5% loss. Then, for scale, the floor: the same number of datagrams of the same
//! size to the same number of loopback sockets at the same rate, by a bare `sendto` loop, and
//! how much of that rate per core the SFU reaches. With `--compare true`, the same run with
//! str0m's own write path in place of the sealed fast path, and the ratio of the two. With
//! `--peer janus`, the same rooms through Janus (`bench_janus`), measured the same way, on
//! adjacent lines, with the ratios.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use roomtape_sfu::Forwarding;
use roomtape_web::live::client::MediaClient;
use roomtape_web::live::sfu;

/// The server half: prints `{"http", "room", "cookies"}` (the first `speakers` cookies are on
/// stage), then answers each `stats` line on stdin with `{"forwarded"}`, until stdin closes.
pub async fn server(
    participants: usize,
    speakers: usize,
    str0m: bool,
    ip: IpAddr,
) -> anyhow::Result<()> {
    let forwarding = if str0m {
        Forwarding::Str0m
    } else {
        Forwarding::Sealed
    };
    let (media, _) = sfu::start_with(
        &SocketAddr::new(ip, 0).to_string(),
        &ip.to_string(),
        forwarding,
    )
    .await?;
    let service =
        crate::bench_service::start("Fan-out", participants, speakers, Some(media)).await?;
    let (http, room, cookies, live) = (service.http, service.room, &service.cookies, &service.live);
    println!(
        "{}",
        json!({"http": http.to_string(), "room": room, "cookies": cookies})
    );
    std::io::stdout().flush()?;
    let mut lines = BufReader::new(std::io::stdin()).lines();
    while let Some(Ok(_)) = tokio::task::block_in_place(|| lines.next()) {
        let s = live.sfu_stats().await.unwrap_or_default();
        println!("{}", json!({"forwarded": s.forwarded, "peers": s.peers}));
        std::io::stdout().flush()?;
    }
    Ok(())
}

/// CPU time (user + system) of a process, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// CPU time (user + system) from a `stat` file of /proc.
fn stat_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

struct ServerProc {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    stdin: std::process::ChildStdin,
}

impl ServerProc {
    fn stats(&mut self) -> anyhow::Result<Value> {
        writeln!(self.stdin, "stats")?;
        let mut line = String::new();
        self.out.read_line(&mut line)?;
        Ok(serde_json::from_str(&line)?)
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One run's figures.
#[derive(Debug)]
struct Run {
    forwarded_per_s: f64,
    forwarded_per_cpu_s: f64,
    /// Packets the peers received, per CPU-second of the SFU: the figure two SFUs are
    /// compared by, whatever each counts as forwarded.
    delivered_per_cpu_s: f64,
    sfu_cores: f64,
    /// Cores the peers' process (this one) used meanwhile.
    client_cores: f64,
    loss: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn run_once(
    speakers: usize,
    listeners: usize,
    seconds: f64,
    forwarding: Forwarding,
    ip: IpAddr,
) -> anyhow::Result<Run> {
    let n = speakers + listeners;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args([
            "-q",
            "bench",
            "fanout-server",
            "--participants",
            &n.to_string(),
            "--speakers",
            &speakers.to_string(),
            "--str0m",
            &(forwarding == Forwarding::Str0m).to_string(),
            "--ip",
            &ip.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the SFU process")?;
    let stdin = child.stdin.take().context("stdin")?;
    let mut out = BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    let mut proc = ServerProc { child, out, stdin };
    let hello: Value = serde_json::from_str(&line).context("the SFU process's first line")?;
    let http = hello["http"].as_str().context("http")?.to_string();
    let room = hello["room"].as_str().context("room")?.to_string();
    let cookies: Vec<String> = hello["cookies"]
        .as_array()
        .context("cookies")?
        .iter()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();

    let epoch = Instant::now();
    let mut peers = Vec::new();
    for (i, cookie) in cookies.iter().enumerate() {
        let speak = i < speakers;
        let peer = Arc::new(MediaClient::start_on(ip, epoch, speak, !speak).await?);
        let mut req = format!("ws://{http}/rooms/{room}/ws").into_client_request()?;
        req.headers_mut().insert("cookie", cookie.parse()?);
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
        ws.send(Message::text(json!({"type": "hello", "v": 1}).to_string()))
            .await?;
        let p = peer.clone();
        // Answer every offer for the whole run.
        tokio::spawn(async move {
            while let Some(Ok(m)) = ws.next().await {
                let Message::Text(t) = m else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                if v["type"] == "offer"
                    && let Ok(a) = p
                        .answer(v["sdp"].as_str().unwrap_or(""), v["mic"].as_str())
                        .await
                    && ws
                        .send(Message::text(
                            json!({"type": "answer", "sdp": a}).to_string(),
                        ))
                        .await
                        .is_err()
                {
                    break;
                }
            }
        });
        peers.push(peer);
    }
    measure(
        &peers,
        &peers[..speakers],
        n,
        proc.child.id(),
        seconds,
        Some(&mut proc),
    )
    .await
}

/// Waits for every peer to connect, lets the room settle, then measures for `seconds`:
/// `senders` are the speakers' peers, each frame goes to `n - 1` peers, `pid` is the SFU's
/// process, and `server`, when there is one, counts the packets the SFU forwarded (otherwise
/// the count is what the peers received).
async fn measure(
    peers: &[Arc<MediaClient>],
    senders: &[Arc<MediaClient>],
    n: usize,
    pid: u32,
    seconds: f64,
    mut server: Option<&mut ServerProc>,
) -> anyhow::Result<Run> {
    let start = Instant::now();
    let limit = Duration::from_secs(30 + peers.len() as u64 / 10);
    while !peers.iter().all(|p| p.connected()) {
        if start.elapsed() > limit {
            let up = peers.iter().filter(|p| p.connected()).count();
            bail!(
                "{up} of {} peers connected in {} s",
                peers.len(),
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let sent0: u64 = senders.iter().map(|p| p.sent()).sum();
    let recv0: u64 = peers.iter().map(|p| p.received()).sum();
    for p in peers {
        if let Ok(mut d) = p.delays.lock() {
            d.clear();
        }
    }
    let mut forwarded = || -> anyhow::Result<Option<u64>> {
        Ok(match server.as_mut() {
            Some(s) => Some(s.stats()?["forwarded"].as_u64().unwrap_or(0)),
            None => None,
        })
    };
    let fwd0 = forwarded()?;
    let cpu0 = cpu_seconds(pid);
    let own0 = stat_cpu_seconds("/proc/self/stat");
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let own = stat_cpu_seconds("/proc/self/stat") - own0;
    let fwd1 = forwarded()?;
    let sent: u64 = senders.iter().map(|p| p.sent()).sum::<u64>() - sent0;
    let recv: u64 = peers.iter().map(|p| p.received()).sum::<u64>() - recv0;
    let fwd = match (fwd0, fwd1) {
        (Some(a), Some(b)) => b - a,
        _ => recv,
    };
    let mut delays: Vec<u32> = Vec::new();
    for p in peers {
        if let Ok(d) = p.delays.lock() {
            delays.extend_from_slice(&d);
        }
    }
    delays.sort_unstable();
    let q = |p: f64| {
        if delays.is_empty() {
            0.0
        } else {
            f64::from(delays[((p * delays.len() as f64) as usize).min(delays.len() - 1)]) / 1000.0
        }
    };
    // Frames in flight at the window's edges make this approximate; it is over many frames.
    let expected = sent as f64 * (n - 1) as f64;
    Ok(Run {
        forwarded_per_s: fwd as f64 / wall,
        forwarded_per_cpu_s: fwd as f64 / cpu.max(0.01),
        delivered_per_cpu_s: recv as f64 / cpu.max(0.01),
        sfu_cores: cpu / wall,
        client_cores: own / wall,
        loss: if expected > 0.0 {
            (1.0 - recv as f64 / expected).max(0.0)
        } else {
            0.0
        },
        p50_ms: q(0.50),
        p99_ms: q(0.99),
    })
}

fn print(label: &str, r: &Run) {
    println!(
        "{label:<38} {:>9.0} {:>11.0} {:>11.0} {:>6.2} {:>7.2} {:>7.3}% {:>7.2} {:>7.2}",
        r.forwarded_per_s,
        r.forwarded_per_cpu_s,
        r.delivered_per_cpu_s,
        r.sfu_cores,
        r.client_cores,
        r.loss * 100.0,
        r.p50_ms,
        r.p99_ms
    );
}

/// The SFU a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sfu {
    Roomtape(Forwarding),
    /// Janus with this many event loops (0: its default, a thread per PeerConnection).
    Janus(usize),
}

/// Another SFU to run the same rooms through, in the same run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Meetecho's Janus (Debian's `janus`), VideoRoom plugin
    Janus,
}

pub struct Options {
    /// (speakers, listeners) rooms measured in turn.
    pub steps: Vec<(usize, usize)>,
    pub seconds: f64,
    pub ramp: bool,
    pub compare: bool,
    pub peer: Option<Peer>,
    pub janus_loops: usize,
}

async fn run_sfu(
    sfu: Sfu,
    speakers: usize,
    listeners: usize,
    seconds: f64,
    ip: IpAddr,
) -> anyhow::Result<Run> {
    match sfu {
        Sfu::Roomtape(f) => run_once(speakers, listeners, seconds, f, ip).await,
        Sfu::Janus(loops) => {
            let janus = crate::bench_janus::Janus::start(ip, loops).await?;
            let room =
                crate::bench_janus::join(&janus, speakers, listeners, Instant::now()).await?;
            measure(
                &room.peers,
                &room.peers[..speakers],
                speakers + listeners,
                janus.pid(),
                seconds,
                None,
            )
            .await
        }
    }
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

pub async fn run(o: Options) -> anyhow::Result<()> {
    for &(speakers, listeners) in &o.steps {
        if speakers == 0 {
            bail!("a room needs at least 1 speaker");
        }
        if speakers + listeners < 2 {
            bail!("a room of one forwards nothing: add listeners");
        }
    }
    let (janus, ip) = match o.peer {
        Some(Peer::Janus) => {
            if !crate::bench_janus::available() {
                bail!("Janus is not installed: `make peers` installs Debian's janus package");
            }
            let name = format!("Janus {}", crate::bench_janus::version());
            (
                Some((Sfu::Janus(o.janus_loops), name)),
                crate::bench_janus::host_ip()?,
            )
        }
        None => (None, IpAddr::from(std::net::Ipv4Addr::LOCALHOST)),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "Each SFU in its own process, str0m peers in this one, loopback; 50 frames/s per speaker; \
         {cores} cores\n\
         fwd: packets the SFU counts as forwarded (for a peer SFU: what the peers received); \
         dlv: packets the peers received; both per second of wall time or of the SFU's CPU time\n\
         {:<38} {:>9} {:>11} {:>11} {:>6} {:>7} {:>8} {:>7} {:>7}",
        "run",
        "fwd pkt/s",
        "fwd/core-s",
        "dlv/core-s",
        "SFU",
        "clients",
        "loss",
        "p50 ms",
        "p99 ms"
    );
    if !ip.is_loopback() {
        println!(
            "every SFU and peer on {ip}, this machine's own address (Janus gathers nothing on \
             loopback; the kernel delivers it over the loopback device all the same)"
        );
    }
    for &(speakers, listeners) in &o.steps {
        println!(
            "-- {}, {}",
            plural(speakers, "speaker"),
            plural(listeners, "listener")
        );
        let r = run_sfu(
            Sfu::Roomtape(Forwarding::Sealed),
            speakers,
            listeners,
            o.seconds,
            ip,
        )
        .await?;
        print("roomtape", &r);
        if o.compare {
            let s = run_sfu(
                Sfu::Roomtape(Forwarding::Str0m),
                speakers,
                listeners,
                o.seconds,
                ip,
            )
            .await?;
            print("roomtape, str0m's write path", &s);
            println!(
                "  sealed fast path / str0m's write path, packets per core-second: {:.2}",
                r.forwarded_per_cpu_s / s.forwarded_per_cpu_s.max(1e-9)
            );
        }
        if let Some((sfu, name)) = &janus {
            match run_sfu(*sfu, speakers, listeners, o.seconds, ip).await {
                Ok(j) => {
                    print(name, &j);
                    println!(
                        "  roomtape / {name}: {:.2}x the delivered packets per core-second; loss \
                         {:.3}% vs {:.3}%; delay p50 {:.2} vs {:.2} ms, p99 {:.2} vs {:.2} ms",
                        r.delivered_per_cpu_s / j.delivered_per_cpu_s.max(1e-9),
                        r.loss * 100.0,
                        j.loss * 100.0,
                        r.p50_ms,
                        j.p50_ms,
                        r.p99_ms,
                        j.p99_ms
                    );
                }
                Err(e) => println!("{name}: {e:#}"),
            }
        }
        let floor = sendto_floor(
            (speakers * FRAMES_PER_SECOND) as f64 * (speakers + listeners - 1) as f64,
            speakers + listeners - 1,
            o.seconds,
        )
        .await?;
        println!(
            "floor: a bare sendto loop, same datagrams, destinations and rate: {floor:.0} pkt/s \
             per core; roomtape reaches {:.0}% of it",
            100.0 * r.forwarded_per_cpu_s / floor
        );
    }
    if o.ramp {
        let mut sfus = vec![(Sfu::Roomtape(Forwarding::Sealed), "roomtape".to_string())];
        sfus.extend(janus.clone());
        for (sfu, name) in sfus {
            ramp(sfu, &name, o.seconds.min(8.0), cores, ip).await;
        }
    }
    Ok(())
}

/// Doubles the listeners of one speaker from 50 until loss reaches 0.5%, and says whether the
/// SFU or the peers' process was the limit.
async fn ramp(sfu: Sfu, name: &str, seconds: f64, cores: f64, ip: IpAddr) {
    let mut best = 0;
    let mut n = 50;
    let mut limit = " (the most this ramp tries)".to_string();
    while n <= 3200 {
        match run_sfu(sfu, 1, n, seconds, ip).await {
            Ok(r) => {
                print(&format!("{name}, 1 speaker, {n} listeners"), &r);
                if r.loss >= 0.005 {
                    limit = if r.sfu_cores + r.client_cores >= 0.9 * cores {
                        format!(
                            " (at {n} the machine was full: the SFU used {:.2} cores and the \
                             peers {:.2}; the clients, not only the SFU, are the limit here)",
                            r.sfu_cores, r.client_cores
                        )
                    } else {
                        format!(" (at {n} the SFU used {:.2} cores)", r.sfu_cores)
                    };
                    break;
                }
            }
            Err(e) => {
                println!("{name}, 1 speaker, {n} listeners: {e:#}");
                limit = format!(" ({n} did not run)");
                break;
            }
        }
        best = n;
        n *= 2;
    }
    println!("{name}: most listeners one speaker reaches with under 0.5% loss here: {best}{limit}");
}

/// Frames a speaker sends a second (20 ms Opus frames).
const FRAMES_PER_SECOND: usize = 50;
/// An SRTP audio packet as the SFU forwards one here: 12 bytes of RTP header, 8 of header
/// extensions (audio level, MID), an 11-byte payload, a 10-byte authentication tag.
const FORWARDED_BYTES: usize = 41;

/// The cost of the system calls alone: one thread sends `rate` datagrams a second of
/// `FORWARDED_BYTES` round-robin to `destinations` loopback sockets (read by tasks of this
/// runtime, as the peers read theirs) for `seconds`, and measures its own CPU time. Returns
/// datagrams per CPU-second.
async fn sendto_floor(rate: f64, destinations: usize, seconds: f64) -> anyhow::Result<f64> {
    let mut addrs = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..destinations {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        addrs.push(sock.local_addr()?);
        readers.push(tokio::spawn(async move {
            let mut buf = [0u8; 2000];
            while sock.recv_from(&mut buf).await.is_ok() {}
        }));
    }
    let (sent, cpu) = tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, f64)> {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let datagram = [0x80u8; FORWARDED_BYTES];
        let tick = Duration::from_millis(20);
        let per_tick = (rate / FRAMES_PER_SECOND as f64).round() as usize;
        let cpu0 = stat_cpu_seconds("/proc/thread-self/stat");
        let start = Instant::now();
        let mut sent = 0u64;
        let mut next = start;
        let mut i = 0;
        while start.elapsed().as_secs_f64() < seconds {
            for _ in 0..per_tick {
                if sock.send_to(&datagram, addrs[i % addrs.len()]).is_ok() {
                    sent += 1;
                }
                i += 1;
            }
            next += tick;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        Ok((sent, stat_cpu_seconds("/proc/thread-self/stat") - cpu0))
    })
    .await??;
    for r in readers {
        r.abort();
    }
    Ok(sent as f64 / cpu.max(0.01))
}
