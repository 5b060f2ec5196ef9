//! `roomtape bench fanout`: the SFU in one process (`bench fanout-server`, hidden: the real
//! service's signaling and SFU with one room and ready-made sessions), headless str0m peers in
//! this one, over loopback. Speakers send a 20 ms frame stamped with its send time; every other
//! participant receives it. Prints forwarded packets per second and per core of the SFU
//! process, loss, the p99 forwarding delay, and the most listeners one speaker reaches here
//! with under 0.5% loss. Then, for scale, the floor: the same number of datagrams of the same
//! size to the same number of loopback sockets at the same rate, by a bare `sendto` loop, and
//! how much of that rate per core the SFU reaches. With `--forwarding both`, the same run with
//! str0m's own write path in place of the sealed fast path, and the ratio of the two.

use std::io::{BufRead, BufReader, Write};
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
pub async fn server(participants: usize, speakers: usize, str0m: bool) -> anyhow::Result<()> {
    let forwarding = if str0m {
        Forwarding::Str0m
    } else {
        Forwarding::Sealed
    };
    let (media, _) = sfu::start_with("127.0.0.1:0", "127.0.0.1", forwarding).await?;
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
    sfu_cores: f64,
    loss: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn run_once(
    speakers: usize,
    listeners: usize,
    seconds: f64,
    forwarding: Forwarding,
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
        let peer = Arc::new(MediaClient::start(epoch, speak, !speak).await?);
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
    // Everyone connected and the stage negotiated.
    let start = Instant::now();
    let limit = Duration::from_secs(30 + n as u64 / 10);
    while !peers.iter().all(|p| p.connected()) {
        if start.elapsed() > limit {
            let up = peers.iter().filter(|p| p.connected()).count();
            bail!("{up} of {n} peers connected in {} s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let sent0: u64 = peers[..speakers].iter().map(|p| p.sent()).sum();
    let recv0: u64 = peers.iter().map(|p| p.received()).sum();
    for p in &peers[speakers..] {
        if let Ok(mut d) = p.delays.lock() {
            d.clear();
        }
    }
    let fwd0 = proc.stats()?["forwarded"].as_u64().unwrap_or(0);
    let cpu0 = cpu_seconds(proc.child.id());
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(proc.child.id()) - cpu0;
    let fwd = proc.stats()?["forwarded"].as_u64().unwrap_or(0) - fwd0;
    let sent: u64 = peers[..speakers].iter().map(|p| p.sent()).sum::<u64>() - sent0;
    let recv: u64 = peers.iter().map(|p| p.received()).sum::<u64>() - recv0;
    let mut delays: Vec<u32> = Vec::new();
    for p in &peers[speakers..] {
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
        forwarded_per_cpu_s: fwd as f64 / cpu.max(1e-6),
        sfu_cores: cpu / wall,
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
        "{label:<28} {:>10.0} {:>12.0} {:>7.2} {:>8.3}% {:>8.2} {:>8.2}",
        r.forwarded_per_s,
        r.forwarded_per_cpu_s,
        r.sfu_cores,
        r.loss * 100.0,
        r.p50_ms,
        r.p99_ms
    );
}

pub async fn run(
    speakers: usize,
    listeners: usize,
    seconds: f64,
    ramp: bool,
    compare: bool,
) -> anyhow::Result<()> {
    if speakers == 0 {
        bail!("--speakers must be at least 1");
    }
    if speakers + listeners < 2 {
        bail!("a room of one forwards nothing: add listeners");
    }
    println!(
        "SFU in its own process, str0m peers in this one, loopback; 50 frames/s per speaker\n\
         {:<28} {:>10} {:>12} {:>7} {:>9} {:>8} {:>8}",
        "run", "fwd pkt/s", "fwd/core-s", "cores", "loss", "p50 ms", "p99 ms"
    );
    let r = run_once(speakers, listeners, seconds, Forwarding::Sealed).await?;
    print(&format!("{speakers} speakers, {listeners} listeners"), &r);
    if compare {
        let s = run_once(speakers, listeners, seconds, Forwarding::Str0m).await?;
        print("  the same, str0m's own path", &s);
        println!(
            "sealed fast path / str0m's write path, packets per core-second: {:.2}",
            r.forwarded_per_cpu_s / s.forwarded_per_cpu_s.max(1e-9)
        );
    }
    let floor = sendto_floor(
        (speakers * FRAMES_PER_SECOND) as f64 * (speakers + listeners - 1) as f64,
        speakers + listeners - 1,
        seconds,
    )
    .await?;
    println!(
        "floor: a bare sendto loop, same datagrams, destinations and rate: {floor:.0} pkt/s per \
         core; the SFU reaches {:.0}% of it",
        100.0 * r.forwarded_per_cpu_s / floor
    );
    if ramp {
        let mut best = 0;
        let mut n = 50;
        while n <= 3200 {
            match run_once(1, n, seconds.min(8.0), Forwarding::Sealed).await {
                Ok(r) => {
                    print(&format!("1 speaker, {n} listeners"), &r);
                    if r.loss >= 0.005 {
                        break;
                    }
                }
                Err(e) => {
                    println!("1 speaker, {n} listeners: {e:#}");
                    break;
                }
            }
            best = n;
            n *= 2;
        }
        println!("most listeners one speaker reaches with under 0.5% loss here: {best}");
    }
    Ok(())
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
    Ok(sent as f64 / cpu.max(1e-6))
}
