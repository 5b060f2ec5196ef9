//! `roomtape bench room`: one live room's task under a crowd. The real service (signaling
//! only, no media) in this process, N members on real WebSockets over loopback, a burst of
//! joins, then changes one at a time (hands, mutes) while one listener floods the room with
//! hand toggles, then a burst of many hands at once. Prints what each change costs (messages
//! and bytes sent), the time from a change to the last member seeing it (p50/p99), and how many
//! well-behaved members were dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use roomtape_core::{RoomId, UserId};

/// A change everyone should see: this person with this flag at this value.
type Change = (UserId, Flag, bool);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Flag {
    Hand,
    Muted,
}

/// What the members saw, shared by their reader tasks.
#[derive(Debug, Default)]
struct Seen {
    /// Changes being waited for: how many members saw each, and when the last one did.
    waiting: Mutex<HashMap<Change, (usize, Instant)>>,
    messages: AtomicU64,
    bytes: AtomicU64,
}

impl Seen {
    fn saw(&self, c: Change) {
        let mut w = self.waiting.lock().unwrap();
        if let Some((n, at)) = w.get_mut(&c) {
            *n += 1;
            *at = Instant::now();
        }
    }
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    changed: Vec<PersonLite>,
}

#[derive(Deserialize)]
struct PersonLite {
    id: UserId,
    hand: bool,
    muted: bool,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One member: its socket, once welcomed, split into a writer kept here and a reader task.
struct Member {
    id: UserId,
    tx: futures_util::stream::SplitSink<Socket, Message>,
    closed: Arc<AtomicBool>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Lets this process open as many sockets as the system allows it.
fn raise_fd_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    #[allow(unsafe_code)]
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

async fn join(
    http: std::net::SocketAddr,
    room: RoomId,
    cookie: &str,
    id: UserId,
    seen: Arc<Seen>,
) -> anyhow::Result<(Member, Duration)> {
    let mut req = format!("ws://{http}/rooms/{room}/ws").into_client_request()?;
    req.headers_mut().insert("cookie", cookie.parse()?);
    let t = Instant::now();
    // Small reads, as the server's: tungstenite zero-fills its whole read buffer on each read.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut s, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true)
        .await
        .context("connecting")?;
    s.send(Message::text(json!({"type": "hello", "v": 1}).to_string()))
        .await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(60), s.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"welcome\"") => break,
            Ok(Some(Ok(_))) => {}
            _ => bail!("no welcome"),
        }
    }
    let took = t.elapsed();
    let (tx, mut rx) = s.split();
    let closed = Arc::new(AtomicBool::new(false));
    let c = closed.clone();
    tokio::spawn(async move {
        while let Some(Ok(m)) = rx.next().await {
            let Message::Text(t) = m else { continue };
            seen.messages.fetch_add(1, Ordering::Relaxed);
            seen.bytes.fetch_add(t.len() as u64, Ordering::Relaxed);
            let Ok(m) = serde_json::from_str::<Incoming>(&t) else {
                continue;
            };
            if m.kind == "presence" {
                for p in m.changed {
                    seen.saw((p.id, Flag::Hand, p.hand));
                    seen.saw((p.id, Flag::Muted, p.muted));
                }
            }
        }
        c.store(true, Ordering::Relaxed);
    });
    Ok((Member { id, tx, closed }, took))
}

async fn say(m: &mut Member, v: serde_json::Value) {
    let _ = m.tx.send(Message::text(v.to_string())).await;
}

/// Makes the changes in `batch` at once and waits until every member still connected has seen
/// all of them (or `limit` passes); the time from sending to the last member seeing each.
async fn change(
    members: &mut [Member],
    seen: &Seen,
    batch: &[(usize, Change)],
    limit: Duration,
) -> Vec<Duration> {
    {
        let mut w = seen.waiting.lock().unwrap();
        w.clear();
        for (_, c) in batch {
            w.insert(*c, (0, Instant::now()));
        }
    }
    let t0 = Instant::now();
    for &(who, (_, flag, on)) in batch {
        let msg = match (flag, on) {
            (Flag::Hand, true) => json!({"type": "raise_hand"}),
            (Flag::Hand, false) => json!({"type": "lower_hand"}),
            (Flag::Muted, muted) => json!({"type": "set_muted", "muted": muted}),
        };
        say(&mut members[who], msg).await;
    }
    let want = |members: &[Member]| {
        members
            .iter()
            .filter(|m| !m.closed.load(Ordering::Relaxed))
            .count()
    };
    loop {
        let done = {
            let w = seen.waiting.lock().unwrap();
            let n = want(members);
            w.values().all(|(k, _)| *k >= n)
        };
        if done || t0.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let w = seen.waiting.lock().unwrap();
    batch
        .iter()
        .map(|(_, c)| {
            w.get(c)
                .map_or(limit, |(_, at)| at.saturating_duration_since(t0))
        })
        .collect()
}

pub async fn run(members: usize, changes: usize, burst: usize) -> anyhow::Result<()> {
    if members < 3 {
        bail!("--members must be at least 3 (a host, an abuser and a listener)");
    }
    raise_fd_limit();
    let service = crate::bench_service::start("Town hall", members, 1, None).await?;
    let (http, live) = (service.http, &service.live);
    let room = service.room;
    let cookies = &service.cookies;
    let ids: Vec<UserId> = service.users.iter().map(|u| u.id).collect();
    let seen = Arc::new(Seen::default());
    let cpu0 = cpu_time::ProcessTime::now();

    // A burst of joins, 100 at a time.
    println!("bench room: {members} members on WebSockets, one room task, signaling only");
    let t = Instant::now();
    let mut all = Vec::with_capacity(members);
    let mut welcome = Vec::with_capacity(members);
    let mut next = 0;
    while next < members {
        let end = (next + 100).min(members);
        let joins = (next..end).map(|i| join(http, room, &cookies[i], ids[i], seen.clone()));
        for r in futures_util::future::join_all(joins).await {
            let (m, took) = r?;
            all.push(m);
            welcome.push(took);
        }
        next = end;
    }
    let joined = t.elapsed();
    welcome.sort();
    // Let the presence of the last joins reach everyone before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "  joins:   {members} in {:.2} s ({:.0}/s); hello to welcome p50 {}, p99 {}",
        joined.as_secs_f64(),
        members as f64 / joined.as_secs_f64(),
        ms(percentile(&welcome, 0.5)),
        ms(percentile(&welcome, 0.99)),
    );

    // The abuser: member 1 sends 10,000 hand toggles as fast as its socket takes them.
    let mut abuser = all.remove(1);
    let abuse = tokio::spawn(async move {
        let mut sent = 0;
        for i in 0..10_000 {
            let t = if i % 2 == 0 {
                "raise_hand"
            } else {
                "lower_hand"
            };
            if abuser
                .tx
                .feed(Message::text(json!({ "type": t }).to_string()))
                .await
                .is_err()
            {
                break;
            }
            sent += 1;
        }
        let _ = abuser.tx.flush().await;
        (sent, abuser)
    });

    // Changes one at a time, spread over hands (listeners) and mutes (the host), while the
    // abuser floods.
    let (m0, b0) = (
        seen.messages.load(Ordering::Relaxed),
        seen.bytes.load(Ordering::Relaxed),
    );
    let mut lat = Vec::with_capacity(changes);
    let mut hand = vec![false; all.len()];
    let mut muted = false;
    for c in 0..changes {
        let one = if c % 4 == 3 {
            muted = !muted;
            (0, (all[0].id, Flag::Muted, muted))
        } else {
            let who = 1 + (c * 7919) % (all.len() - 1);
            hand[who] = !hand[who];
            (who, (all[who].id, Flag::Hand, hand[who]))
        };
        lat.extend(change(&mut all, &seen, &[one], Duration::from_secs(10)).await);
    }
    let (m1, b1) = (
        seen.messages.load(Ordering::Relaxed),
        seen.bytes.load(Ordering::Relaxed),
    );
    let (abuser_sent, abuser) = abuse.await?;
    lat.sort();
    let per = |x: u64| x as f64 / changes as f64;
    println!(
        "  changes: {changes} one at a time (hands, mutes) while one listener sent {abuser_sent} toggles"
    );
    println!(
        "           change to last member: p50 {}, p99 {}, max {}",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(percentile(&lat, 1.0)),
    );
    println!(
        "           per change: {:.0} messages, {:.0} bytes in all ({:.2} messages, {:.0} bytes per member)",
        per(m1 - m0),
        per(b1 - b0),
        per(m1 - m0) / all.len() as f64,
        per(b1 - b0) / all.len() as f64,
    );
    println!(
        "           the abuser's connection: {}",
        if abuser.closed.load(Ordering::Relaxed) {
            "closed (rate_limited)"
        } else {
            "still open"
        }
    );

    // A burst: `burst` listeners raise their hands at once.
    let burst = burst.min(all.len() - 1);
    let batch: Vec<(usize, Change)> = (1..=burst)
        .map(|who| {
            hand[who] = !hand[who];
            (who, (all[who].id, Flag::Hand, hand[who]))
        })
        .collect();
    let (m0, b0) = (
        seen.messages.load(Ordering::Relaxed),
        seen.bytes.load(Ordering::Relaxed),
    );
    let t = Instant::now();
    let burst_lat = change(&mut all, &seen, &batch, Duration::from_secs(30)).await;
    let all_saw = burst_lat.iter().max().copied().unwrap_or_default();
    let _ = t;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (m1, b1) = (
        seen.messages.load(Ordering::Relaxed),
        seen.bytes.load(Ordering::Relaxed),
    );
    println!(
        "  burst:   {burst} hands at once: every member saw all of them after {}; {:.2} messages, {:.0} bytes per member",
        ms(all_saw),
        (m1 - m0) as f64 / all.len() as f64,
        (b1 - b0) as f64 / all.len() as f64,
    );
    let cpu = cpu0.elapsed().as_secs_f64();
    let dropped = all
        .iter()
        .filter(|m| m.closed.load(Ordering::Relaxed))
        .count();
    println!(
        "  dropped well-behaved members: {dropped} of {} (goal 0); process CPU {cpu:.1} s (server and clients)",
        all.len()
    );
    if live.count(room) != all.len() {
        println!(
            "  note: the room counts {} people, {} expected",
            live.count(room),
            all.len()
        );
    }
    Ok(())
}
