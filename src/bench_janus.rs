//! The peer `bench fanout --peer janus` measures against: Janus (Meetecho's WebRTC server,
//! Debian's `janus` package), started here with a minimal configuration of our own (the
//! VideoRoom plugin and the WebSocket transport only, both on loopback; ICE on loopback only;
//! no recording, no transcoding, no event handlers; warnings-only logging, as our SFU runs in
//! the bench), driven through its JSON API by the same headless str0m peers that join our
//! rooms. Speakers publish (they offer, Janus answers); everyone else subscribes to every
//! speaker in one PeerConnection (Janus offers, the peer answers), and each speaker also
//! subscribes to the other speakers, so every frame reaches the same `speakers + listeners - 1`
//! peers as in our room.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use roomtape_web::live::client::MediaClient;

/// Where Debian's package puts the server and its modules.
const BINARY: &str = "/usr/bin/janus";
const MODULES: &str = "/usr/lib/x86_64-linux-gnu/janus";
/// Every plugin and transport of the package but the two the bench uses.
const OTHER_PLUGINS: &str = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,\
    libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,\
    libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so";
const OTHER_TRANSPORTS: &str = "libjanus_http.so,libjanus_mqtt.so,libjanus_nanomsg.so,\
    libjanus_pfunix.so,libjanus_rabbitmq.so";
const ROOM: u64 = 1234;

/// A running Janus, stopped and its configuration removed on drop.
pub struct Janus {
    child: Child,
    dir: PathBuf,
    port: u16,
    /// The address Janus and its peers use.
    ip: IpAddr,
}

impl Drop for Janus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether Janus is installed (`make peers` installs it).
pub fn available() -> bool {
    std::path::Path::new(BINARY).is_file()
}

/// Janus's release (`1.1.2`), without starting it.
pub fn version() -> String {
    Command::new(BINARY)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("Janus version: ").map(str::to_string))
                // "1102 (1.1.2)": the release is in the brackets.
                .map(|v| match v.split_once('(') {
                    Some((_, r)) => r.trim_end_matches(')').to_string(),
                    None => v,
                })
        })
        .unwrap_or_default()
}

/// The address the runs with Janus use for every SFU and peer: this machine's own, on its
/// default route (no packet is sent). Janus gathers no ICE candidates on loopback addresses,
/// and traffic between two addresses of this machine goes over the loopback device all the
/// same.
pub fn host_ip() -> anyhow::Result<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
    s.connect("192.0.2.1:9").context(
        "this machine has no default route: Janus needs an address that is not loopback",
    )?;
    Ok(s.local_addr()?.ip())
}

impl Janus {
    /// Writes the configuration, starts the server and waits for its WebSocket transport.
    /// `event_loops`: 0 for Janus's default (a thread of its own for each PeerConnection),
    /// otherwise that many shared loops.
    pub async fn start(ip: IpAddr, event_loops: usize) -> anyhow::Result<Self> {
        if !available() {
            bail!("Janus is not installed: `make peers` installs Debian's janus package");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir =
            std::env::temp_dir().join(format!("roomtape-janus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let loops = if event_loops > 0 {
            format!("event_loops = {event_loops}\n")
        } else {
            String::new()
        };
        let d = dir.display();
        // Warnings and errors, as our SFU logs in the bench; ROOMTAPE_JANUS_DEBUG for more.
        let level = std::env::var("ROOMTAPE_JANUS_DEBUG").unwrap_or_else(|_| "3".into());
        std::fs::write(
            dir.join("janus.jcfg"),
            format!(
                "general: {{\n configs_folder = \"{d}\"\n plugins_folder = \"{MODULES}/plugins\"\n \
                 transports_folder = \"{MODULES}/transports\"\n events_folder = \"{MODULES}/events\"\n \
                 loggers_folder = \"{MODULES}/loggers\"\n debug_level = {level}\n session_timeout = 0\n \
                 {loops}}}\nmedia: {{ }}\nnat: {{ ice_enforce_list = \"{ip}\"\n ignore_mdns = true }}\n\
                 plugins: {{ disable = \"{OTHER_PLUGINS}\" }}\n\
                 transports: {{ disable = \"{OTHER_TRANSPORTS}\" }}\n\
                 loggers: {{ disable = \"libjanus_jsonlog.so\" }}\nevents: {{ broadcast = false }}\n"
            ),
        )?;
        std::fs::write(
            dir.join("janus.transport.websockets.jcfg"),
            format!(
                "general: {{ json = \"compact\"\n ws = true\n ws_port = {port}\n ws_ip = \"127.0.0.1\"\n \
                 wss = false }}\nadmin: {{ admin_ws = false\n admin_wss = false }}\n"
            ),
        )?;
        std::fs::write(dir.join("janus.plugin.videoroom.jcfg"), "general: { }\n")?;
        let mut child = Command::new(BINARY)
            .arg("-F")
            .arg(&dir)
            .arg("-C")
            .arg(dir.join("janus.jcfg"))
            .arg("-o")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting janus")?;
        // Janus logs to stdout: to our stderr, each message once (with hundreds of peers, the
        // same warning comes once per peer; the handle's id in brackets differs).
        let out = child.stdout.take().context("janus's stdout")?;
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            let mut seen = std::collections::HashSet::new();
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let key: String = line.chars().filter(|c| !c.is_ascii_digit()).collect();
                if !line.contains("has been disabled, skipping") && seen.insert(key) {
                    eprintln!("janus: {line}");
                }
            }
        });
        let mut janus = Janus {
            child,
            dir,
            port,
            ip,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(janus);
            }
            if let Some(status) = janus.child.try_wait()? {
                bail!("janus exited at start: {status}");
            }
            if Instant::now() > deadline {
                bail!("janus did not open its WebSocket port in 15 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn session(&self) -> anyhow::Result<Session> {
        let mut req = format!("ws://127.0.0.1:{}/", self.port).into_client_request()?;
        req.headers_mut()
            .insert("sec-websocket-protocol", "janus-protocol".parse()?);
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .context("connecting to janus")?;
        let mut s = Session {
            ws,
            next: 0,
            session: 0,
            handle: 0,
        };
        let r = s.call(json!({"janus": "create"})).await?;
        s.session = r["data"]["id"].as_u64().context("janus: no session id")?;
        let r = s
            .call(json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}))
            .await?;
        s.handle = r["data"]["id"].as_u64().context("janus: no handle id")?;
        Ok(s)
    }
}

/// One Janus session with one VideoRoom handle, on a WebSocket of its own.
struct Session {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next: u64,
    session: u64,
    handle: u64,
}

impl Session {
    /// Sends a request and returns its answer: the first message with its transaction that is
    /// not an acknowledgement (for asynchronous plugin requests, the plugin's event).
    async fn call(&mut self, mut msg: Value) -> anyhow::Result<Value> {
        self.next += 1;
        let transaction = format!("t{}", self.next);
        msg["transaction"] = json!(transaction);
        if self.session != 0 {
            msg["session_id"] = json!(self.session);
        }
        if self.handle != 0 {
            msg["handle_id"] = json!(self.handle);
        }
        let what = format!("{} {}", msg["janus"], msg["body"]["request"]);
        self.ws.send(Message::text(msg.to_string())).await?;
        let deadline = Duration::from_secs(20);
        loop {
            let m = tokio::time::timeout(deadline, self.ws.next())
                .await
                .with_context(|| format!("janus did not answer {what} in 20 s"))?
                .context("janus closed the WebSocket")??;
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t)?;
            // A trickle is only ever acknowledged.
            let ack = v["janus"] == "ack";
            if v["transaction"] != transaction || (ack && msg["janus"] != "trickle") {
                continue;
            }
            if v["janus"] == "error" {
                bail!("janus: {}", v["error"]);
            }
            if let Some(code) = v["plugindata"]["data"]["error_code"].as_u64() {
                bail!(
                    "janus videoroom error {code}: {}",
                    v["plugindata"]["data"]["error"]
                );
            }
            return Ok(v);
        }
    }

    async fn message(&mut self, body: Value, jsep: Option<Value>) -> anyhow::Result<Value> {
        let mut m = json!({"janus": "message", "body": body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        self.call(m).await
    }

    /// Keeps reading (and ignoring) the session's events for as long as the run lasts.
    fn drain(mut self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { while let Some(Ok(_)) = self.ws.next().await {} })
    }
}

/// A room on Janus with its peers connected: what `bench fanout` measures.
pub struct JanusRoom {
    /// Every peer: publishers first, then the speakers' subscribers, then the listeners.
    pub peers: Vec<Arc<MediaClient>>,
    _sessions: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for JanusRoom {
    fn drop(&mut self) {
        for s in &self._sessions {
            s.abort();
        }
    }
}

/// Creates the room and joins `speakers` publishers and `listeners` subscribers (each to every
/// speaker), `epoch` being the delay stamps' clock.
pub async fn join(
    janus: &Janus,
    speakers: usize,
    listeners: usize,
    epoch: Instant,
) -> anyhow::Result<JanusRoom> {
    let mut admin = janus.session().await?;
    admin
        .message(
            json!({"request": "create", "room": ROOM, "publishers": speakers,
                   "audiocodec": "opus", "audiolevel_ext": true, "audiolevel_event": false,
                   "record": false, "notify_joining": false, "permanent": false}),
            None,
        )
        .await
        .context("creating the Janus room")?;
    let mut sessions = vec![admin.drain()];
    let mut peers = Vec::new();
    let mut feeds = Vec::new();
    for i in 0..speakers {
        let peer = Arc::new(MediaClient::start_on(janus.ip, epoch, true, false).await?);
        let offer = peer.offer().await.map_err(anyhow::Error::msg)?;
        let mut s = janus.session().await?;
        let r = s
            .message(
                json!({"request": "joinandconfigure", "room": ROOM, "ptype": "publisher",
                       "display": format!("speaker {i}"), "audio": true, "video": false}),
                Some(json!({"type": "offer", "sdp": offer})),
            )
            .await
            .context("publishing on Janus")?;
        let feed = r["plugindata"]["data"]["id"]
            .as_u64()
            .context("janus: no publisher id")?;
        let answer = r["jsep"]["sdp"].as_str().context("janus: no answer")?;
        peer.accept_answer(answer)
            .await
            .map_err(anyhow::Error::msg)?;
        s.call(json!({"janus": "trickle", "candidate": {"completed": true}}))
            .await?;
        feeds.push(feed);
        sessions.push(s.drain());
        peers.push(peer);
    }
    // A feed can be subscribed to once its PeerConnection is up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !peers.iter().all(|p| p.connected()) {
        if Instant::now() > deadline {
            bail!("Janus's publishers did not connect in 20 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The speakers' subscriptions to each other, then the listeners', a few at a time.
    let mut wanted: Vec<Vec<u64>> = (0..speakers)
        .map(|i| {
            feeds
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, &f)| f)
                .collect()
        })
        .filter(|f: &Vec<u64>| !f.is_empty())
        .collect();
    let speaker_subs = wanted.len();
    wanted.extend(std::iter::repeat_n(feeds.clone(), listeners));
    let mut subs = futures_util::stream::iter(wanted.into_iter().enumerate().map(|(k, feeds)| {
        let collect = k >= speaker_subs;
        async move {
            let peer = Arc::new(MediaClient::start_on(janus.ip, epoch, false, collect).await?);
            let mut s = janus.session().await?;
            let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
            let r = s
                .message(
                    json!({"request": "join", "room": ROOM, "ptype": "subscriber",
                           "streams": streams}),
                    None,
                )
                .await
                .context("subscribing on Janus")?;
            let offer = r["jsep"]["sdp"].as_str().context("janus: no offer")?;
            let answer = peer.answer(offer, None).await.map_err(anyhow::Error::msg)?;
            s.message(
                json!({"request": "start"}),
                Some(json!({"type": "answer", "sdp": answer})),
            )
            .await
            .context("starting a Janus subscription")?;
            anyhow::Ok((k, peer, s.drain()))
        }
    }))
    .buffer_unordered(16);
    let mut joined = Vec::new();
    while let Some(r) = subs.next().await {
        let (k, peer, task) = r?;
        joined.push((k, peer));
        sessions.push(task);
    }
    joined.sort_by_key(|(k, _)| *k);
    peers.extend(joined.into_iter().map(|(_, p)| p));
    Ok(JanusRoom {
        peers,
        _sessions: sessions,
    })
}
