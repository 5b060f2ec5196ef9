//! Live rooms through the real service in-process: axum on a TCP port, the SFU on a UDP port,
//! WebSocket signaling, and headless str0m peers instead of browsers. Roles and every
//! authorisation rule, forwarding to many listeners, a peer that vanishes, join/leave cycles
//! that must leave nothing behind, and bad input of every kind.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use roomtape_core::{
    AppendFile, ArchiveStore, Catalog, Config, LocalStore, RecordingState, Room, RoomId, RoomState,
    Timestamp, User, Visibility,
};
use roomtape_search::SearchIndex;
use roomtape_web::live::client::MediaClient;
use roomtape_web::live::{Live, sfu};
use roomtape_web::{AppState, app, auth};

struct Server {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    sfu: SocketAddr,
    catalog: Catalog,
    live: Arc<Live>,
}

async fn server() -> Server {
    server_with(|dir| Arc::new(LocalStore::new(dir.join("archives")).unwrap())).await
}

/// A server whose archives go to the store `store` makes in the server's directory.
async fn server_with(store: impl FnOnce(&std::path::Path) -> Arc<dyn ArchiveStore>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.sqlite"))
        .await
        .unwrap();
    let store = store(dir.path());
    let config = Config::default();
    let (media, addr) = sfu::start("127.0.0.1:0", "127.0.0.1").await.unwrap();
    let live = Live::new(
        catalog.clone(),
        store.clone(),
        Arc::new(config.clone()),
        Some(media),
    );
    let state = AppState::new(
        catalog.clone(),
        store,
        Arc::new(SearchIndex::in_memory().unwrap()),
        config,
        live.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    tokio::spawn(roomtape_web::serve(
        listener,
        app(state),
        std::future::pending(),
    ));
    Server {
        _dir: dir,
        addr: http,
        sfu: addr.advertised,
        catalog,
        live,
    }
}

impl Server {
    /// A user with a session; returns the user and their cookie.
    async fn user(&self, name: &str) -> (User, String) {
        let u = self
            .catalog
            .create_user(&name.to_lowercase(), name, "unused")
            .await
            .unwrap();
        let token = auth::secret();
        self.catalog
            .create_session(
                &auth::digest(&token),
                u.id,
                "csrf",
                Timestamp::now().add_millis(3_600_000),
            )
            .await
            .unwrap();
        (u, format!("{}={token}", auth::COOKIE_NAME))
    }

    async fn room(&self, host: &User, visibility: Visibility) -> Room {
        let room = Room {
            id: RoomId::new(),
            title: "Harbour talk".into(),
            description: String::new(),
            language: "en".into(),
            scheduled_at: None,
            visibility,
            host_id: Some(host.id),
            state: RoomState::Open,
            invite_token: (visibility == Visibility::Private).then(|| "letmein".to_string()),
            captions: true,
            created_at: Timestamp::now(),
            ended_at: None,
        };
        self.catalog.create_room(&room).await.unwrap();
        room
    }

    /// Opens the room's WebSocket; `Err(status)` when the upgrade is refused.
    async fn ws(&self, cookie: &str, room: RoomId, query: &str) -> Result<Ws, u16> {
        let mut req = format!("ws://{}/rooms/{room}/ws{query}", self.addr)
            .into_client_request()
            .unwrap();
        if !cookie.is_empty() {
            req.headers_mut().insert("cookie", cookie.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((s, _)) => Ok(Ws {
                s,
                people: BTreeMap::new(),
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("connecting: {e}"),
        }
    }

    /// Joins: hello → welcome.
    async fn join(&self, cookie: &str, room: RoomId) -> Ws {
        let mut ws = self.ws(cookie, room, "").await.expect("allowed in");
        ws.send(json!({"type": "hello", "v": 1})).await;
        ws.expect("welcome").await;
        ws
    }
}

struct Ws {
    s: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    /// The room as this client knows it: the welcome's list with every presence change applied.
    people: BTreeMap<String, Value>,
}

impl Ws {
    async fn send(&mut self, v: Value) {
        self.s.send(Message::text(v.to_string())).await.unwrap();
    }

    async fn send_raw(&mut self, m: Message) {
        self.s.send(m).await.unwrap();
    }

    /// The next message, or `None` when the connection closed.
    async fn next(&mut self) -> Option<Value> {
        loop {
            let m = match tokio::time::timeout(Duration::from_secs(30), self.s.next()).await {
                Ok(m) => m?,
                Err(_) => panic!("no message within 30 s"),
            };
            match m {
                Ok(Message::Text(t)) => return Some(self.learn(serde_json::from_str(&t).unwrap())),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Keeps `people` current as a page does: the welcome's list, then each presence's changes
    /// by id. A presence comes back with the room it leads to as `people` (host, co-hosts,
    /// speakers, listeners; by name), so tests read whole rooms.
    fn learn(&mut self, mut m: Value) -> Value {
        let id = |p: &Value| p["id"].as_str().unwrap().to_string();
        match m["type"].as_str() {
            Some("welcome") => {
                self.people = m["people"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (id(p), p.clone()))
                    .collect();
            }
            Some("presence") => {
                for p in m["changed"].as_array().unwrap() {
                    self.people.insert(id(p), p.clone());
                }
                for g in m["gone"].as_array().unwrap() {
                    self.people.remove(g.as_str().unwrap());
                }
                m["people"] = Value::Array(self.room());
            }
            _ => {}
        }
        m
    }

    /// The room as this client knows it, in the page's order.
    fn room(&self) -> Vec<Value> {
        let order = |r: &Value| {
            ["host", "cohost", "speaker", "listener"]
                .iter()
                .position(|x| r == *x)
                .unwrap()
        };
        let mut all: Vec<Value> = self.people.values().cloned().collect();
        all.sort_by(|a, b| {
            order(&a["role"])
                .cmp(&order(&b["role"]))
                .then_with(|| a["name"].as_str().cmp(&b["name"].as_str()))
        });
        all
    }

    /// Skips to the next message of `kind`.
    async fn expect(&mut self, kind: &str) -> Value {
        loop {
            let m = self
                .next()
                .await
                .unwrap_or_else(|| panic!("closed while waiting for {kind}"));
            if m["type"] == kind {
                return m;
            }
            assert_ne!(m["type"], "error", "waiting for {kind}: {m}");
        }
    }

    /// Skips to a presence for which `f` holds.
    async fn presence_until(&mut self, f: impl Fn(&[(String, String)]) -> bool) -> Value {
        loop {
            let p = self.expect("presence").await;
            if f(&people(&p)) {
                return p;
            }
        }
    }

    /// Skips to the next error; returns its code.
    async fn error(&mut self) -> String {
        loop {
            let m = self.next().await.expect("an error, not a closed socket");
            if m["type"] == "error" {
                return m["code"].as_str().unwrap().to_string();
            }
        }
    }

    /// Answers offers with `peer` until `until` says stop (on the latest presence).
    async fn answer_offer(&mut self, peer: &MediaClient) {
        let offer = self.expect("offer").await;
        let answer = peer
            .answer(offer["sdp"].as_str().unwrap(), offer["mic"].as_str())
            .await
            .unwrap();
        self.send(json!({"type": "answer", "sdp": answer})).await;
    }
}

fn people(p: &Value) -> Vec<(String, String)> {
    p["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap().to_string(),
                x["role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_checked_on_the_server() {
    let srv = server().await;
    let (ana, ana_c) = srv.user("Ana").await;
    let (bruno, bruno_c) = srv.user("Bruno").await;
    let (clara, clara_c) = srv.user("Clara").await;
    let room = srv.room(&ana, Visibility::Public).await;
    let mut host = srv.join(&ana_c, room.id).await;
    let mut b = srv.join(&bruno_c, room.id).await;
    let mut c = srv.join(&clara_c, room.id).await;

    // Listeners cannot run the room.
    for msg in [
        json!({"type": "invite_to_speak", "user": clara.id}),
        json!({"type": "mute", "user": ana.id}),
        json!({"type": "remove", "user": clara.id}),
        json!({"type": "make_cohost", "user": bruno.id}),
        json!({"type": "end_room"}),
    ] {
        b.send(msg.clone()).await;
        assert_eq!(b.error().await, "forbidden", "{msg}");
    }
    b.send(json!({"type": "start_recording"})).await;
    assert_eq!(b.error().await, "forbidden");
    b.send(json!({"type": "accept_invite"})).await;
    assert_eq!(b.error().await, "forbidden", "nobody invited Bruno");
    b.send(json!({"type": "set_muted", "muted": true})).await;
    assert_eq!(b.error().await, "forbidden", "a listener has no microphone");

    // Hand up, invitation, acceptance.
    b.send(json!({"type": "raise_hand"})).await;
    loop {
        let p = host.expect("presence").await;
        if p["people"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "Bruno" && x["hand"] == true)
        {
            break;
        }
    }
    host.send(json!({"type": "invite_to_speak", "user": bruno.id}))
        .await;
    b.expect("invited").await;
    b.send(json!({"type": "accept_invite"})).await;
    assert_eq!(b.expect("role").await["role"], "speaker");

    // A speaker still cannot promote, mute others, or end the room.
    for msg in [
        json!({"type": "make_cohost", "user": clara.id}),
        json!({"type": "invite_to_speak", "user": clara.id}),
        json!({"type": "mute", "user": ana.id}),
        json!({"type": "end_room"}),
    ] {
        b.send(msg.clone()).await;
        assert_eq!(b.error().await, "forbidden", "{msg}");
    }
    // Speakers may not raise hands; the host cannot be acted on by anyone.
    b.send(json!({"type": "raise_hand"})).await;
    assert_eq!(b.error().await, "forbidden");

    // The host makes Clara co-host; a co-host may not act on the host or start recording.
    host.send(json!({"type": "make_cohost", "user": clara.id}))
        .await;
    assert_eq!(c.expect("role").await["role"], "cohost");
    c.send(json!({"type": "mute", "user": ana.id})).await;
    assert_eq!(c.error().await, "forbidden");
    c.send(json!({"type": "start_recording"})).await;
    assert_eq!(c.error().await, "forbidden");
    // …but may mute and move a speaker.
    c.send(json!({"type": "mute", "user": bruno.id})).await;
    b.expect("muted").await;
    c.send(json!({"type": "move_to_audience", "user": bruno.id}))
        .await;
    assert_eq!(b.expect("role").await["role"], "listener");

    // Removal is for good: the socket closes and the door stays shut.
    host.send(json!({"type": "remove", "user": bruno.id})).await;
    b.expect("removed").await;
    assert!(
        b.next().await.is_none(),
        "the removed person's socket closes"
    );
    assert_eq!(srv.ws(&bruno_c, room.id, "").await.err(), Some(403));

    // Roles outlive the connection: Clara reconnects as co-host.
    drop(c);
    let mut c = srv.ws(&clara_c, room.id, "").await.unwrap();
    c.send(json!({"type": "hello", "v": 1})).await;
    assert_eq!(c.expect("welcome").await["role"], "cohost");

    // Ending the room tells everyone and closes it.
    host.send(json!({"type": "end_room"})).await;
    c.expect("ended").await;
    assert_eq!(srv.ws(&clara_c, room.id, "").await.err(), Some(410));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_room_needs_its_invite_link() {
    let srv = server().await;
    let (ana, ana_c) = srv.user("Ana").await;
    let (_, bruno_c) = srv.user("Bruno").await;
    let (_, nobody) = (0, "roomtape_session=forged".to_string());
    let room = srv.room(&ana, Visibility::Private).await;
    // Without the link, a private room is answered as a missing one.
    assert_eq!(srv.ws(&bruno_c, room.id, "").await.err(), Some(404));
    assert_eq!(
        srv.ws(&bruno_c, room.id, "?invite=wrong").await.err(),
        Some(404)
    );
    assert_eq!(srv.ws(&bruno_c, RoomId::new(), "").await.err(), Some(404));
    // Without a (valid) session it is a missing room too: guests hear only public rooms.
    assert_eq!(srv.ws(&nobody, room.id, "").await.err(), Some(404));
    assert_eq!(
        srv.ws("", room.id, "?invite=letmein").await.err(),
        Some(404)
    );
    assert!(srv.ws(&bruno_c, room.id, "?invite=letmein").await.is_ok());
    assert!(srv.ws(&ana_c, room.id, "").await.is_ok(), "the host");
    // Revoked: the old link stops working.
    srv.catalog.set_room_invite(room.id, None).await.unwrap();
    assert_eq!(
        srv.ws(&bruno_c, room.id, "?invite=letmein").await.err(),
        Some(404)
    );
}

/// The lobby page's list of live rooms.
async fn lobby_live(srv: &Server) -> String {
    let html = reqwest::get(format!("http://{}/", srv.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = html.find(r#"id="live-rooms""#).expect("the live list");
    let list = &html[at..];
    list[..list.find("</ul>").unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lobby_shows_a_room_as_live_while_someone_is_in_it() {
    let srv = server().await;
    let (ana, _) = srv.user("Ana").await;
    let (_, bruno_c) = srv.user("Bruno").await;
    // Made two hours ago and never ended.
    let room = Room {
        id: RoomId::new(),
        title: "Abandoned talk".into(),
        description: String::new(),
        language: "en".into(),
        scheduled_at: None,
        visibility: Visibility::Public,
        host_id: Some(ana.id),
        state: RoomState::Open,
        invite_token: None,
        captions: true,
        created_at: Timestamp::now().add_millis(-2 * 3_600_000),
        ended_at: None,
    };
    srv.catalog.create_room(&room).await.unwrap();
    let id = room.id.to_string();
    assert!(!lobby_live(&srv).await.contains(&id), "empty: not live");

    let mut ws = srv.join(&bruno_c, room.id).await;
    let live = lobby_live(&srv).await;
    assert!(live.contains(&id), "{live}");
    assert!(live.contains("1 here"), "{live}");

    ws.s.close(None).await.unwrap();
    let start = Instant::now();
    while lobby_live(&srv).await.contains(&id) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still live after everyone left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_errors_and_change_nothing() {
    let srv = server().await;
    let (ana, ana_c) = srv.user("Ana").await;
    let (_, bruno_c) = srv.user("Bruno").await;
    let room = srv.room(&ana, Visibility::Public).await;

    // Out of order: anything before hello.
    let mut b = srv.ws(&bruno_c, room.id, "").await.unwrap();
    b.send(json!({"type": "raise_hand"})).await;
    assert_eq!(b.error().await, "out_of_order");
    b.send(json!({"type": "hello", "v": 99})).await;
    assert_eq!(b.error().await, "version");
    b.send(json!({"type": "hello", "v": 1})).await;
    b.expect("welcome").await;
    b.send(json!({"type": "hello", "v": 1})).await;
    assert_eq!(b.error().await, "out_of_order");
    for bad in [
        "not json",
        "{}",
        "[1,2]",
        r#"{"type":"fly_away"}"#,
        r#"{"type":"mute"}"#,
        r#"{"type":"mute","user":"nobody"}"#,
        r#"{"type":"raise_hand","x":1}"#,
        "\u{0}\u{1b}[2J",
    ] {
        b.send_raw(Message::text(bad)).await;
        assert_eq!(b.error().await, "bad_message", "{bad:?}");
    }
    b.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    assert_eq!(b.error().await, "bad_message");
    let big = json!({"type": "answer", "sdp": "a".repeat(70_000)}).to_string();
    b.send_raw(Message::text(big)).await;
    assert_eq!(b.error().await, "too_large");
    // Bogus SDP, and an answer nobody asked for.
    b.send(json!({"type": "answer", "sdp": "this is not sdp"}))
        .await;
    assert_eq!(b.error().await, "media");
    b.send(json!({"type": "answer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"}))
        .await;
    assert_eq!(b.error().await, "media");
    // Still in the room, still a listener, still answered.
    b.send(json!({"type": "ping"})).await;
    b.expect("pong").await;
    // The host comes in after Bruno: the welcome holds the room.
    let host = srv.join(&ana_c, room.id).await;
    assert_eq!(
        people(&json!({"people": host.room()})),
        vec![
            ("Ana".to_string(), "host".to_string()),
            ("Bruno".to_string(), "listener".to_string())
        ]
    );
    // Garbage on the media socket does not stop the SFU.
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..200u32 {
        let mut pkt = vec![
            0x80,
            111,
            (i >> 8) as u8,
            i as u8,
            0,
            0,
            0,
            0,
            0xde,
            0xad,
            0xbe,
            0xef,
        ];
        pkt.extend_from_slice(&[0x55; 40]);
        u.send_to(&pkt, srv.sfu).unwrap();
        u.send_to(&[0u8; 3], srv.sfu).unwrap();
    }
    assert!(
        srv.live.sfu_stats().await.is_some(),
        "the SFU still answers"
    );
    // A frame far over the limit ends that connection only; the room goes on.
    b.send_raw(Message::text("x".repeat(300_000))).await;
    loop {
        match b.next().await {
            None => break,
            Some(m) if m["type"] == "error" => {
                assert_eq!(m["code"], "too_large");
                break;
            }
            Some(_) => {}
        }
    }
    drop(b);
    let mut b = srv.join(&bruno_c, room.id).await;
    b.send(json!({"type": "ping"})).await;
    b.expect("pong").await;
}

/// Brings a participant into the room with a media peer, answering the first offer.
async fn media_join(srv: &Server, cookie: &str, room: RoomId, speak: bool) -> (Ws, MediaClient) {
    let peer = MediaClient::start(Instant::now(), speak, false)
        .await
        .unwrap();
    let mut ws = srv.join(cookie, room).await;
    ws.answer_offer(&peer).await;
    (ws, peer)
}

/// Answers every offer that arrives on the sockets until `done` holds or `limit` passes.
async fn pump(sockets: &mut [(&mut Ws, &MediaClient)], limit: Duration, done: impl Fn() -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end && !done() {
        for (ws, peer) in sockets.iter_mut() {
            if let Ok(Some(Ok(Message::Text(t)))) =
                tokio::time::timeout(Duration::from_millis(20), ws.s.next()).await
            {
                let m: Value = serde_json::from_str(&t).unwrap();
                if m["type"] == "offer" {
                    let a = peer
                        .answer(m["sdp"].as_str().unwrap(), m["mic"].as_str())
                        .await
                        .unwrap();
                    ws.send(json!({"type": "answer", "sdp": a})).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_reaches_every_listener_and_a_listener_cannot_publish() {
    let srv = server().await;
    let (ana, ana_c) = srv.user("Ana").await;
    let room = srv.room(&ana, Visibility::Public).await;
    let (mut hws, host) = media_join(&srv, &ana_c, room.id, true).await;
    let mut sockets = Vec::new();
    let mut peers = Vec::new();
    for i in 0..6 {
        let (_, c) = srv.user(&format!("Listener{i}")).await;
        // Listeners that try to speak anyway: they have no microphone track to speak on.
        let (w, p) = media_join(&srv, &c, room.id, true).await;
        sockets.push(w);
        peers.push(p);
    }
    {
        let mut all: Vec<(&mut Ws, &MediaClient)> = vec![(&mut hws, &host)];
        for (w, p) in sockets.iter_mut().zip(peers.iter()) {
            all.push((w, p));
        }
        pump(&mut all, Duration::from_secs(10), || {
            peers.iter().all(|p| p.received() >= 50)
        })
        .await;
    }
    for (i, p) in peers.iter().enumerate() {
        assert!(p.received() >= 50, "listener {i} got {}", p.received());
        assert_eq!(p.sent(), 0, "a listener has no track to publish on");
    }
    assert_eq!(
        host.received(),
        0,
        "nobody else speaks, so the host hears nothing"
    );
    assert!(host.sent() >= 50);
    let stats = srv.live.sfu_stats().await.unwrap();
    assert_eq!(stats.peers, 7);
    assert!(stats.forwarded >= 300, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_peer_leaves_after_the_ice_timeout() {
    let srv = server().await;
    let (ana, ana_c) = srv.user("Ana").await;
    let (_, bruno_c) = srv.user("Bruno").await;
    let room = srv.room(&ana, Visibility::Public).await;
    let mut host = srv.join(&ana_c, room.id).await;
    let (mut bws, peer) = media_join(&srv, &bruno_c, room.id, false).await;
    host.presence_until(|p| p.len() == 2).await;
    let start = Instant::now();
    while !peer.connected() {
        assert!(start.elapsed() < Duration::from_secs(10), "never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The network goes away (the socket task stops); the WebSocket stays open.
    drop(peer);
    let gone = Instant::now();
    host.presence_until(|p| p.len() == 1).await;
    let waited = gone.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited <= Duration::from_secs(40),
        "left after {waited:?}"
    );
    // Only the host's peer is left (its signaling-only test client never connects media).
    assert_eq!(srv.live.sfu_stats().await.unwrap().peers, 1);
    drop(bws.s.close(None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_quick_joins_and_leaves_leave_nothing_behind() {
    const FD_SLACK: usize = 10;
    let srv = server().await;
    let (ana, _) = srv.user("Ana").await;
    let (_, bruno_c) = srv.user("Bruno").await;
    let room = srv.room(&ana, Visibility::Public).await;
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    // Warm up once so lazily made things (pools, the SFU's first room) exist before counting.
    {
        let (mut ws, _p) = media_join(&srv, &bruno_c, room.id, false).await;
        ws.s.close(None).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (fd0, task0) = (fds(), tasks());
    for _ in 0..100 {
        let (mut ws, peer) = media_join(&srv, &bruno_c, room.id, false).await;
        ws.s.close(None).await.unwrap();
        drop(peer);
    }
    let start = Instant::now();
    loop {
        let s = srv.live.sfu_stats().await.unwrap();
        let settled = s.peers == 0
            && s.rooms == 0
            && s.timers == 0
            && s.addresses == 0
            && srv.live.running_rooms() == 0;
        // Descriptors are counted for the whole test process, where other tests open and
        // close their own at the same time; a leak here is one or more per join (a socket,
        // a WebSocket), so a hundred joins leak a hundred. A few of slack absorbs the
        // neighbours without hiding that.
        if settled && fds() <= fd0 + FD_SLACK && tasks() <= task0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "left behind: {s:?}, rooms {}, fds {} (was {fd0}), tasks {} (was {task0})",
            srv.live.running_rooms(),
            fds(),
            tasks()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_carries_changes_not_the_whole_room() {
    let srv = server().await;
    let (ana, ana_c) = srv.user("Ana").await;
    let room = srv.room(&ana, Visibility::Public).await;
    let mut host = srv.join(&ana_c, room.id).await;
    let mut others = Vec::new();
    for name in ["Bruno", "Clara", "Dora", "Emil"] {
        let (_, c) = srv.user(name).await;
        others.push(srv.join(&c, room.id).await);
    }
    host.presence_until(|p| p.len() == 5).await;
    // The newest listener was welcomed with the whole room.
    assert_eq!(others[3].people.len(), 5);

    // One hand goes up: the presence names that one person, everyone's view follows.
    others[1].send(json!({"type": "raise_hand"})).await;
    let p = host.expect("presence").await;
    let changed = p["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{p}");
    assert_eq!(changed[0]["name"], "Clara");
    assert_eq!(changed[0]["hand"], true);
    assert!(p["gone"].as_array().unwrap().is_empty());
    let clara_id = changed[0]["id"].as_str().unwrap().to_string();
    let seen = others[3].presence_until(|p| p.len() == 5).await;
    assert_eq!(seen["changed"][0]["hand"], true, "{seen}");

    // One leaves: the presence names only their id.
    let clara = others.remove(1);
    drop(clara);
    let p = host.expect("presence").await;
    assert_eq!(p["gone"], json!([clara_id]), "{p}");
    assert!(p["changed"].as_array().unwrap().is_empty(), "{p}");
    assert_eq!(people(&p).len(), 4);
    assert!(!host.people.contains_key(&clara_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_speaking_indicator_follows_the_audio_level() {
    let srv = server().await;
    let (ana, ana_c) = srv.user("Ana").await;
    let (_, bruno_c) = srv.user("Bruno").await;
    let room = srv.room(&ana, Visibility::Public).await;
    let (_hws, host) = media_join(&srv, &ana_c, room.id, true).await;
    let mut b = srv.join(&bruno_c, room.id).await;
    let ana_id = json!(ana.id);
    // The host's frames say −20 dBov, voice: everyone sees her speaking.
    loop {
        let m = b.expect("speaking").await;
        if m["users"].as_array().unwrap().contains(&ana_id) {
            break;
        }
    }
    // Her frames turn silent (−127 dBov): the ring goes out, though packets still flow.
    host.counters.quiet.store(true, Ordering::Relaxed);
    let sent = host.sent();
    let m = b.expect("speaking").await;
    assert_eq!(m["users"], json!([]), "{m}");
    assert!(host.sent() > sent, "frames kept coming while she was quiet");
}

/// Everything a client received within `window` (answering nothing).
async fn drain(ws: &mut Ws, window: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    let end = tokio::time::Instant::now() + window;
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(end, ws.s.next()).await {
        if let Message::Text(t) = m {
            got.push(ws.learn(serde_json::from_str(&t).unwrap()));
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_flooding_the_room_costs_the_others_nothing() {
    let srv = server().await;
    let (ana, ana_c) = srv.user("Ana").await;
    let (_, lea_c) = srv.user("Lea").await;
    let (_, max_c) = srv.user("Max").await;
    let room = srv.room(&ana, Visibility::Public).await;
    let (mut hws, host) = media_join(&srv, &ana_c, room.id, true).await;
    let (mut lws, lea) = media_join(&srv, &lea_c, room.id, false).await;
    hws.send(json!({"type": "start_recording"})).await;
    pump(
        &mut [(&mut hws, &host), (&mut lws, &lea)],
        Duration::from_secs(10),
        || lea.received() >= 50,
    )
    .await;
    assert!(lea.received() >= 50, "the listener hears the host");
    let mut max = srv.join(&max_c, room.id).await;
    drain(&mut hws, Duration::from_millis(300)).await;
    drain(&mut lws, Duration::from_millis(300)).await;

    // Ten thousand hand toggles, as fast as the socket takes them.
    for i in 0..10_000 {
        let t = if i % 2 == 0 {
            "raise_hand"
        } else {
            "lower_hand"
        };
        let m = Message::text(json!({ "type": t }).to_string());
        if max.s.feed(m).await.is_err() {
            break;
        }
    }
    let _ = max.s.flush().await;
    // The flooder is told to slow down, then cut off: its connection alone.
    let mut codes = Vec::new();
    while let Some(m) = max.next().await {
        if m["type"] == "error" {
            codes.push(m["code"].as_str().unwrap().to_string());
        }
    }
    assert!(codes.contains(&"slow_down".to_string()), "{codes:?}");
    assert_eq!(codes.last().map(String::as_str), Some("rate_limited"));

    // The others saw a few changes at most (the flood's allowance, then Max leaving) and are
    // all still here.
    let seen = drain(&mut lws, Duration::from_secs(1)).await;
    let presences = seen.iter().filter(|m| m["type"] == "presence").count();
    assert!(
        (1..=8).contains(&presences),
        "{presences} presences: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|m| m["type"] != "ended" && m["type"] != "error")
    );
    let room_now: Vec<String> = lws.room().iter().map(|p| p["name"].to_string()).collect();
    assert_eq!(room_now, ["\"Ana\"", "\"Lea\""]);
    hws.send(json!({"type": "ping"})).await;
    hws.expect("pong").await;
    lws.send(json!({"type": "ping"})).await;
    lws.expect("pong").await;

    // Audio still flows to the listener, and the recording keeps the host's track.
    let before = lea.received();
    pump(
        &mut [(&mut hws, &host), (&mut lws, &lea)],
        Duration::from_secs(10),
        || lea.received() >= before + 50,
    )
    .await;
    assert!(
        lea.received() >= before + 50,
        "audio stopped after the flood"
    );
    hws.send(json!({"type": "stop_recording"})).await;
    hws.expect("recording").await;
    srv.live.settled().await;
    let recs = srv.catalog.recordings().await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].state, RecordingState::Recorded, "{:?}", recs[0]);
    let tracks = srv.catalog.tracks(recs[0].id).await.unwrap();
    assert_eq!(tracks.len(), 1, "{tracks:?}");
    assert!(tracks[0].duration_ms >= 1_000, "{tracks:?}");
}

/// A local store whose mix writing waits at a gate the test opens: a slow disk, or an hour of
/// audio to mix, on demand.
#[derive(Debug)]
struct GatedStore {
    inner: LocalStore,
    open: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl GatedStore {
    fn release(open: &(std::sync::Mutex<bool>, std::sync::Condvar)) {
        *open.0.lock().unwrap() = true;
        open.1.notify_all();
    }
}

impl ArchiveStore for GatedStore {
    fn put_atomic(&self, key: &str, data: &[u8]) -> roomtape_core::Result<()> {
        self.inner.put_atomic(key, data)
    }
    fn get(&self, key: &str) -> roomtape_core::Result<Vec<u8>> {
        self.inner.get(key)
    }
    fn open_read(&self, key: &str) -> roomtape_core::Result<roomtape_core::OpenFile> {
        self.inner.open_read(key)
    }
    fn size(&self, key: &str) -> roomtape_core::Result<u64> {
        self.inner.size(key)
    }
    fn exists(&self, key: &str) -> roomtape_core::Result<bool> {
        self.inner.exists(key)
    }
    fn open_append(&self, key: &str) -> roomtape_core::Result<Box<dyn AppendFile>> {
        if key.ends_with(".partial") {
            let (lock, cv) = &*self.open;
            let open = lock.lock().unwrap();
            let _open = cv
                .wait_timeout_while(open, Duration::from_secs(60), |o| !*o)
                .unwrap();
        }
        self.inner.open_append(key)
    }
    fn truncate_and_patch(
        &self,
        key: &str,
        len: u64,
        patch_offset: u64,
        patch: &[u8],
    ) -> roomtape_core::Result<()> {
        self.inner.truncate_and_patch(key, len, patch_offset, patch)
    }
    fn list(&self, prefix: &str) -> roomtape_core::Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> roomtape_core::Result<()> {
        self.inner.delete(key)
    }
    fn delete_dir(&self, prefix: &str) -> roomtape_core::Result<()> {
        self.inner.delete_dir(prefix)
    }
    fn local_path(&self, key: &str) -> Option<std::path::PathBuf> {
        self.inner.local_path(key)
    }
    fn try_lock(&self, key: &str) -> roomtape_core::Result<Option<roomtape_core::StoreLock>> {
        self.inner.try_lock(key)
    }
}

/// The people a presence says changed.
fn changed(m: &Value) -> impl Iterator<Item = &Value> {
    m["changed"].as_array().into_iter().flatten()
}

/// Sends `msg` and waits for the first message `ok` accepts; the time it took.
async fn answered(ws: &mut Ws, msg: Value, ok: impl Fn(&Value) -> bool) -> Duration {
    let t = Instant::now();
    ws.send(msg).await;
    loop {
        let m = ws.next().await.expect("still connected");
        assert_ne!(m["type"], "error", "{m}");
        if ok(&m) {
            return t.elapsed();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_answers_while_a_recording_is_being_finished() {
    let open = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let gate = open.clone();
    let srv = server_with(move |dir| {
        Arc::new(GatedStore {
            inner: LocalStore::new(dir.join("archives")).unwrap(),
            open: gate,
        })
    })
    .await;
    let (ana, ana_c) = srv.user("Ana").await;
    let (_, bo_c) = srv.user("Bo").await;
    let (_, cy_c) = srv.user("Cy").await;
    let room = srv.room(&ana, Visibility::Public).await;
    let (mut hws, host) = media_join(&srv, &ana_c, room.id, true).await;
    let (mut bws, bo) = media_join(&srv, &bo_c, room.id, false).await;
    hws.send(json!({"type": "start_recording"})).await;
    pump(
        &mut [(&mut hws, &host), (&mut bws, &bo)],
        Duration::from_secs(10),
        || bo.received() >= 50,
    )
    .await;
    drain(&mut hws, Duration::from_millis(200)).await;
    drain(&mut bws, Duration::from_millis(200)).await;

    // The host stops; finishing is held at the gate for as long as this test likes.
    answered(&mut hws, json!({"type": "stop_recording"}), |m| {
        m["type"] == "recording" && m["on"] == false
    })
    .await;
    let t = Instant::now();
    while srv.live.finishing() == 0 {
        assert!(t.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut times = Vec::new();
    // A hand, a mute, a ping, a join: each answered at once.
    times.push(
        answered(&mut bws, json!({"type": "raise_hand"}), |m| {
            m["type"] == "presence" && changed(m).any(|p| p["hand"] == true)
        })
        .await,
    );
    times.push(
        answered(&mut hws, json!({"type": "set_muted", "muted": true}), |m| {
            m["type"] == "presence" && changed(m).any(|p| p["muted"] == true)
        })
        .await,
    );
    times.push(answered(&mut hws, json!({"type": "ping"}), |m| m["type"] == "pong").await);
    let t = Instant::now();
    let mut cy = srv.join(&cy_c, room.id).await;
    times.push(t.elapsed());
    assert_eq!(
        srv.live.finishing(),
        1,
        "the recording was finished meanwhile"
    );
    for (what, took) in ["hand", "mute", "ping", "join"].iter().zip(&times) {
        assert!(*took < Duration::from_millis(100), "{what} took {took:?}");
    }
    // Ending the room does not wait either.
    let took = answered(&mut hws, json!({"type": "end_room"}), |m| {
        m["type"] == "ended"
    })
    .await;
    assert!(took < Duration::from_millis(100), "ending took {took:?}");
    cy.expect("ended").await;

    // Open the gate: the recording is finished whole.
    GatedStore::release(&open);
    tokio::time::timeout(Duration::from_secs(30), srv.live.settled())
        .await
        .expect("finished");
    let recs = srv.catalog.recordings().await.unwrap();
    assert_eq!(recs[0].state, RecordingState::Recorded, "{:?}", recs[0]);
    assert_eq!(srv.catalog.tracks(recs[0].id).await.unwrap().len(), 1);
    let r = srv.catalog.room(room.id).await.unwrap();
    assert_eq!(r.state, RoomState::Ended);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_without_an_account_listens_to_a_public_room_and_nothing_more() {
    let srv = server().await;
    let (ana, ana_c) = srv.user("Ana").await;
    let room = srv.room(&ana, Visibility::Public).await;
    let (mut hws, host) = media_join(&srv, &ana_c, room.id, true).await;

    // No cookie at all: in, as a listener flagged as a guest, with a name of its own.
    let peer = MediaClient::start(Instant::now(), true, false)
        .await
        .unwrap();
    let mut g = srv.ws("", room.id, "").await.expect("a guest may listen");
    g.send(json!({"type": "hello", "v": 1})).await;
    let w = g.expect("welcome").await;
    assert_eq!(w["role"], "listener", "{w}");
    let you = w["you"].as_str().unwrap().to_string();
    assert_ne!(you, ana.id.to_string());
    g.answer_offer(&peer).await;
    let p = hws.presence_until(|p| p.len() == 2).await;
    let guest = p["people"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == you.as_str())
        .unwrap()
        .clone();
    assert_eq!(guest["guest"], true, "{guest}");
    assert_eq!(guest["role"], "listener");
    assert!(
        guest["name"].as_str().unwrap().starts_with("Guest "),
        "{guest}"
    );
    let host_p = &p["people"][0];
    assert_eq!(host_p["guest"], false, "{host_p}");

    // The guest hears the host; nothing from the guest is forwarded (no track to send on).
    {
        let mut all: Vec<(&mut Ws, &MediaClient)> = vec![(&mut hws, &host), (&mut g, &peer)];
        pump(&mut all, Duration::from_secs(10), || peer.received() >= 50).await;
    }
    assert!(peer.received() >= 50, "the guest got {}", peer.received());
    assert_eq!(peer.sent(), 0);

    // Listen only: a hand asks them to sign in; the host cannot invite or promote them.
    g.send(json!({"type": "raise_hand"})).await;
    assert_eq!(g.error().await, "sign_in");
    hws.send(json!({"type": "invite_to_speak", "user": you}))
        .await;
    assert_eq!(hws.error().await, "forbidden");
    hws.send(json!({"type": "make_cohost", "user": you})).await;
    assert_eq!(hws.error().await, "forbidden");
    let gid: roomtape_core::UserId = you.parse().unwrap();
    assert_eq!(srv.catalog.room_role(room.id, gid).await.unwrap(), None);

    // Shown out: gone from the room, and nothing is written about an account that is not there.
    hws.send(json!({"type": "remove", "user": you})).await;
    hws.presence_until(|p| p.len() == 1).await;
    assert_eq!(srv.catalog.room_role(room.id, gid).await.unwrap(), None);

    // Another visit is another guest; the server can turn guests away.
    let mut g2 = srv.ws("", room.id, "").await.unwrap();
    g2.send(json!({"type": "hello", "v": 1})).await;
    let w2 = g2.expect("welcome").await;
    assert_ne!(w2["you"], w["you"]);
    // An unlisted room is heard with its link; a private one is missing to a guest.
    let unlisted = srv.room(&ana, Visibility::Unlisted).await;
    assert!(srv.ws("", unlisted.id, "").await.is_ok());
    let private = srv.room(&ana, Visibility::Private).await;
    assert_eq!(srv.ws("", private.id, "").await.err(), Some(404));
    srv.catalog.end_room(unlisted.id).await.unwrap();
    assert_eq!(srv.ws("", unlisted.id, "").await.err(), Some(410));
}
