//! The service the live benchmarks run against: a throwaway catalog, one public room, ready-made
//! sessions, and the real HTTP service on a loopback port without the per-address cap (every
//! bench client comes from this machine).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

use roomtape_core::{
    Catalog, Config, MemoryStore, Room, RoomId, RoomState, StoredRole, Timestamp, User, Visibility,
};
use roomtape_web::live::{Live, MediaCmd};
use roomtape_web::{AppState, app, auth};

pub struct BenchService {
    _dir: tempfile::TempDir,
    pub http: SocketAddr,
    pub room: RoomId,
    /// One session cookie per user, in the order of `users`.
    pub cookies: Vec<String>,
    /// The host first, then the speakers, then everyone else.
    pub users: Vec<User>,
    pub live: Arc<Live>,
}

/// Starts the service with `participants` users, the first `speakers` of them on stage (the
/// first is the host); `media` is the SFU, or `None` for signaling only.
pub async fn start(
    title: &str,
    participants: usize,
    speakers: usize,
    media: Option<mpsc::UnboundedSender<MediaCmd>>,
) -> anyhow::Result<BenchService> {
    let dir = tempfile::tempdir()?;
    let catalog = Catalog::open(&dir.path().join("catalog.sqlite")).await?;
    let store = Arc::new(MemoryStore::new());
    let config = Config::default();
    let live = Live::new(
        catalog.clone(),
        store.clone(),
        Arc::new(config.clone()),
        media,
    );
    let mut cookies = Vec::with_capacity(participants);
    let mut users = Vec::with_capacity(participants);
    for i in 0..participants {
        let u = catalog
            .create_user(&format!("user{i}"), &format!("User {i}"), "unused")
            .await?;
        let token = auth::secret();
        catalog
            .create_session(
                &auth::digest(&token),
                u.id,
                "csrf",
                Timestamp::now().add_millis(86_400_000),
            )
            .await?;
        cookies.push(format!("{}={token}", auth::COOKIE_NAME));
        users.push(u);
    }
    let room = Room {
        id: RoomId::new(),
        title: title.into(),
        description: String::new(),
        language: "en".into(),
        scheduled_at: None,
        visibility: Visibility::Public,
        host_id: users.first().map(|u| u.id),
        state: RoomState::Open,
        invite_token: None,
        captions: true,
        created_at: Timestamp::now(),
        ended_at: None,
    };
    catalog.create_room(&room).await?;
    for u in users.iter().take(speakers).skip(1) {
        catalog
            .set_room_role(room.id, u.id, Some(StoredRole::Speaker))
            .await?;
    }
    let state = AppState::new(
        catalog,
        store,
        Arc::new(roomtape_search::SearchIndex::in_memory()?),
        config,
        live.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http = listener.local_addr()?;
    let limits = roomtape_web::Limits {
        max_connections_per_ip: None,
        ..Default::default()
    };
    tokio::spawn(roomtape_web::serve_with(
        listener,
        app(state),
        std::future::pending(),
        limits,
    ));
    Ok(BenchService {
        _dir: dir,
        http,
        room: room.id,
        cookies,
        users,
        live,
    })
}
