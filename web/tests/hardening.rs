//! The service facing strangers, in-process (`oneshot`, with the client's address set as a real
//! connection would): brute force that cannot lock an owner out, client addresses through
//! trusted proxies only, sign-up limits, the Host check against DNS rebinding, redirects after
//! log-in that stay on this site, private rooms that look missing to outsiders (their calendar
//! files too), and a recording changed or deleted on the web by its owner only.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use tower::ServiceExt as _;

use roomtape_core::{
    Catalog, Config, MemoryStore, Recording, RecordingId, RecordingSource, RecordingState, Room,
    RoomId, RoomState, StoredRole, Timestamp, User, Visibility,
};
use roomtape_search::SearchIndex;
use roomtape_web::{AppState, account::urlencode, app, auth};

const PASSWORD: &str = "correct horse battery";

struct Service {
    app: Router,
    catalog: Catalog,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// The service with settings given as `ROOMTAPE_*` variables.
async fn service(env: &[(&str, &str)]) -> Service {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = Config::load_with_env(None, &env).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("c.sqlite")).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let live = roomtape_web::live::Live::new(
        catalog.clone(),
        store.clone(),
        Arc::new(config.clone()),
        None,
    );
    let state = AppState::new(
        catalog.clone(),
        store,
        Arc::new(SearchIndex::in_memory().unwrap()),
        config,
        live,
    );
    Service {
        app: app(state),
        catalog,
        _dir: dir,
    }
}

impl Service {
    /// A request from the TCP peer `peer` (as `serve` records it), with headers and a body.
    async fn call(
        &self,
        method: Method,
        uri: &str,
        peer: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<(&str, String)>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = match body {
            Some((ct, b)) => req.header(header::CONTENT_TYPE, ct).body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        if let Some(p) = peer {
            let addr: SocketAddr = p.parse().unwrap();
            req.extensions_mut().insert(ConnectInfo(addr));
        }
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = axum::body::to_bytes(res.into_body(), 1 << 24)
            .await
            .unwrap()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn form(
        &self,
        uri: &str,
        peer: &str,
        headers: &[(&str, &str)],
        fields: &[(&str, &str)],
    ) -> Answer {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.call(
            Method::POST,
            uri,
            Some(peer),
            headers,
            Some(("application/x-www-form-urlencoded", body)),
        )
        .await
    }

    async fn login(&self, peer: &str, headers: &[(&str, &str)], user: &str, pw: &str) -> Answer {
        self.form(
            "/login",
            peer,
            headers,
            &[("username", user), ("password", pw), ("next", "/")],
        )
        .await
    }

    /// An account with [`PASSWORD`] and an API token.
    async fn user(&self, name: &str) -> (User, String) {
        let hash = roomtape_core::hash_password(PASSWORD).unwrap();
        let user = self.catalog.create_user(name, name, &hash).await.unwrap();
        let token = auth::new_api_token();
        self.catalog
            .create_api_token(user.id, "test", &auth::digest(&token), &token[..10])
            .await
            .unwrap();
        (user, format!("Bearer {token}"))
    }
}

#[track_caller]
fn signed_in(a: &Answer) {
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text());
    assert!(
        a.header(header::SET_COOKIE)
            .is_some_and(|c| c.starts_with(auth::COOKIE_NAME)),
        "{:?}",
        a.headers
    );
}

#[tokio::test]
async fn an_attack_on_a_user_name_never_locks_its_owner_out() {
    let s = service(&[]).await;
    s.user("ana").await;
    let attacker = "198.51.100.9:40000";
    let mut checked = 0;
    for _ in 0..30 {
        let a = s.login(attacker, &[], "ana", "wrong password").await;
        match a.status {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(a.header(header::RETRY_AFTER).is_some());
            }
            other => panic!("{other}: {}", a.text()),
        }
    }
    // Brute force stays slow: the attacker's stream is cut to a few guesses…
    assert!((5..=9).contains(&checked), "{checked} guesses checked");
    // …while the owner, from their own address, gets in with the right password, every time.
    for port in [1, 2, 3] {
        signed_in(
            &s.login(&format!("203.0.113.5:{port}"), &[], "ana", PASSWORD)
                .await,
        );
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_one_abusive_client_does_not_lock_out_the_others() {
    let s = service(&[("ROOMTAPE_SERVER_TRUSTED_PROXIES", "127.0.0.1, ::1")]).await;
    s.user("bruno").await;
    let proxy = "127.0.0.1:51000";
    let mut refused = 0;
    for i in 0..25 {
        let a = s
            .login(
                proxy,
                &[("x-forwarded-for", "198.51.100.9")],
                &format!("guess{i}"),
                "wrong password",
            )
            .await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert!(refused > 0, "the abusive client is slowed down");
    // Another client behind the same proxy is not.
    signed_in(
        &s.login(
            proxy,
            &[("x-forwarded-for", "9.9.9.9, 203.0.113.5")],
            "bruno",
            PASSWORD,
        )
        .await,
    );
    signed_in(
        &s.login(
            "[::1]:51000",
            &[("forwarded", "for=\"[2001:db8::5]:4711\";proto=https")],
            "bruno",
            PASSWORD,
        )
        .await,
    );

    // A client that is not a trusted proxy cannot pick its address with the header.
    let stranger = "192.0.2.50:40000";
    let mut refused = 0;
    for i in 0..25 {
        let forged = format!("203.0.113.{i}");
        let a = s
            .login(
                stranger,
                &[("x-forwarded-for", forged.as_str())],
                &format!("guess{i}"),
                "wrong password",
            )
            .await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert!(refused > 0, "forged X-Forwarded-For headers were believed");
}

#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let s = service(&[]).await;
    let signup = |peer: &'static str, name: String| {
        let s = &s;
        async move {
            s.form(
                "/signup",
                peer,
                &[],
                &[
                    ("username", &name),
                    ("display_name", &name),
                    ("password", PASSWORD),
                ],
            )
            .await
        }
    };
    for i in 0..10 {
        signed_in(&signup("192.0.2.1:1000", format!("user{i}")).await);
    }
    let a = signup("192.0.2.1:1001", "one_too_many".into()).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text());
    let wait: u64 = a.header(header::RETRY_AFTER).unwrap().parse().unwrap();
    assert!((1..=600).contains(&wait), "{wait}");
    assert!(
        s.catalog
            .user_login("one_too_many")
            .await
            .unwrap()
            .is_none(),
        "no account made"
    );
    signed_in(&signup("192.0.2.2:1000", "elsewhere".into()).await);
}

#[tokio::test]
async fn requests_for_other_host_names_are_refused() {
    let s = service(&[]).await;
    let get = |uri: &'static str, host: Option<&'static str>| {
        let s = &s;
        async move {
            let h: Vec<(&str, &str)> = host.map(|h| ("host", h)).into_iter().collect();
            s.call(Method::GET, uri, Some("127.0.0.1:5000"), &h, None)
                .await
        }
    };
    // A rebinding page's own origin passes the same-origin check, so the host is what tells.
    let evil = "rebind.evil.example:8080";
    let a = s
        .form(
            "/signup",
            "127.0.0.1:5000",
            &[
                ("host", evil),
                ("origin", "http://rebind.evil.example:8080"),
            ],
            &[
                ("username", "mallory"),
                ("display_name", "Mallory"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST, "{}", a.text());
    assert!(a.text().contains("server.public_url"), "{}", a.text());
    assert_eq!(s.catalog.user_count().await.unwrap(), 0, "no admin made");
    assert_eq!(
        get("/", Some("evil.example")).await.status,
        StatusCode::MISDIRECTED_REQUEST
    );
    let a = get("/api/v1/rooms", Some("evil.example")).await;
    assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST);
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["error"]["code"], "misdirected_request", "{v}");
    for host in [
        "localhost",
        "localhost:8080",
        "127.0.0.1:40123",
        "[::1]:8080",
    ] {
        assert_eq!(get("/healthz", Some(host)).await.status, StatusCode::OK);
    }
    assert_eq!(get("/healthz", None).await.status, StatusCode::OK);

    // With a public URL, only its host; links are made from it.
    let s = service(&[("ROOMTAPE_SERVER_PUBLIC_URL", "https://rooms.example.org")]).await;
    s.user("ana").await;
    let feed = |host: &'static str| {
        let s = &s;
        async move {
            s.call(
                Method::GET,
                "/feeds/ana.xml",
                Some("127.0.0.1:5000"),
                &[("host", host)],
                None,
            )
            .await
        }
    };
    let a = feed("rooms.example.org").await;
    assert_eq!(a.status, StatusCode::OK);
    let text = a.text();
    assert!(
        text.contains("<atom:link href=\"https://rooms.example.org/feeds/ana.xml\" rel=\"self\""),
        "{text}"
    );
    assert!(text.contains("<link>https://rooms.example.org/replays?host=ana</link>"));
    assert_eq!(feed("rooms.example.org:443").await.status, StatusCode::OK);
    for other in ["localhost:8080", "evil.example", "rooms.example.org:8443"] {
        let a = feed(other).await;
        assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST, "{other}");
        assert!(!a.text().contains("<rss"));
    }
}

#[tokio::test]
async fn after_log_in_only_paths_on_this_site_are_followed() {
    let s = service(&[]).await;
    s.user("ana").await;
    let go = |next: &'static str| {
        let s = &s;
        async move {
            let a = s
                .form(
                    "/login",
                    "203.0.113.5:1000",
                    &[],
                    &[("username", "ana"), ("password", PASSWORD), ("next", next)],
                )
                .await;
            signed_in(&a);
            a.header(header::LOCATION).unwrap().to_string()
        }
    };
    for bad in [
        "/\t/evil.example/",
        "/%09/evil.example/",
        "//evil.example",
        "/\\evil.example",
        "/%5Cevil.example",
        "/%2F/evil.example",
        "/%252F%252Fevil.example",
        "/\r\nSet-Cookie: a=b",
        "/%0d%0aSet-Cookie: a=b",
        "/x\u{0}y",
        "/x\u{7f}",
        "/x\u{85}",
        "https://evil.example/",
        "evil.example",
        "",
    ] {
        assert_eq!(go(bad).await, "/", "{bad:?}");
    }
    assert_eq!(
        go("/rooms/abc?invite=x&y=1").await,
        "/rooms/abc?invite=x&y=1"
    );
    assert_eq!(go("/r/café au lait").await, "/r/caf%C3%A9%20au%20lait");
    assert_eq!(go("/search?q=%22a%20b%22").await, "/search?q=%22a%20b%22");
}

#[tokio::test]
async fn a_private_room_answers_outsiders_as_a_missing_room_does() {
    let s = service(&[]).await;
    let (olga, olga_auth) = s.user("olga").await;
    let (otto, otto_auth) = s.user("otto").await;
    let room = |visibility, state| Room {
        id: RoomId::new(),
        title: "Board meeting".into(),
        description: String::new(),
        language: "en".into(),
        scheduled_at: None,
        visibility,
        host_id: Some(olga.id),
        state,
        invite_token: Some("letmein".into()),
        captions: true,
        created_at: Timestamp::now(),
        ended_at: None,
    };
    let private = room(Visibility::Private, RoomState::Open);
    let ended = room(Visibility::Private, RoomState::Ended);
    let removed = room(Visibility::Private, RoomState::Open);
    for r in [&private, &ended, &removed] {
        s.catalog.create_room(r).await.unwrap();
    }
    s.catalog
        .set_room_role(removed.id, otto.id, Some(StoredRole::Removed))
        .await
        .unwrap();
    let missing = RoomId::new();
    let page = |id: RoomId, query: &'static str, who: Option<&str>| {
        let s = &s;
        let who = who.map(str::to_string);
        async move {
            let h: Vec<(&str, &str)> = who
                .as_deref()
                .map(|w| ("authorization", w))
                .into_iter()
                .collect();
            let uri = format!("/rooms/{id}{query}");
            s.call(Method::GET, &uri, Some("203.0.113.5:1000"), &h, None)
                .await
        }
    };
    let gone = page(missing, "", Some(&otto_auth)).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    for (id, query) in [
        (private.id, ""),
        (private.id, "?invite=wrong"),
        (ended.id, ""),
        (removed.id, ""),
        (removed.id, "?invite=letmein"),
    ] {
        let a = page(id, query, Some(&otto_auth)).await;
        assert_eq!(a.status, gone.status, "{query}");
        assert_eq!(a.text(), gone.text(), "the same page, byte for byte");
    }
    // Before log-in nothing is said about the room: every room link leads to the log-in page.
    let anon_missing = page(missing, "", None).await;
    let anon_private = page(private.id, "", None).await;
    assert_eq!(anon_missing.status, StatusCode::SEE_OTHER);
    assert_eq!(anon_private.status, anon_missing.status);
    assert_eq!(
        anon_private
            .header(header::LOCATION)
            .unwrap()
            .replace(&private.id.to_string(), "ID"),
        anon_missing
            .header(header::LOCATION)
            .unwrap()
            .replace(&missing.to_string(), "ID"),
    );
    assert_eq!(anon_private.body, anon_missing.body);
    // The API's one link-making route for rooms says the same.
    let invite = |id: RoomId| {
        let s = &s;
        let who = otto_auth.clone();
        async move {
            s.call(
                Method::POST,
                &format!("/api/v1/rooms/{id}/speaker-invites"),
                Some("203.0.113.5:1000"),
                &[("authorization", who.as_str())],
                None,
            )
            .await
        }
    };
    let (a, b) = (invite(private.id).await, invite(missing).await);
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    assert_eq!(a.text(), b.text());

    // Those who may enter still do.
    assert_eq!(
        page(private.id, "?invite=letmein", Some(&otto_auth))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        page(private.id, "", Some(&olga_auth)).await.status,
        StatusCode::OK
    );
    let a = page(ended.id, "?invite=letmein", Some(&otto_auth)).await;
    assert_eq!(a.status, StatusCode::GONE, "invited guests learn it ended");
}

#[tokio::test]
async fn a_room_link_opened_signed_out_leads_through_sign_up_back_into_the_room() {
    let s = service(&[]).await;
    let (olga, _) = s.user("olga").await;
    let room = |visibility, title: &str| Room {
        id: RoomId::new(),
        title: title.into(),
        description: String::new(),
        language: "en".into(),
        scheduled_at: None,
        visibility,
        host_id: Some(olga.id),
        state: RoomState::Open,
        invite_token: (visibility == Visibility::Private).then(|| "letmein".into()),
        captions: true,
        created_at: Timestamp::now(),
        ended_at: None,
    };
    let public = room(Visibility::Public, "Harbour talk");
    let private = room(Visibility::Private, "Board meeting");
    for r in [&public, &private] {
        s.catalog.create_room(r).await.unwrap();
    }
    let get = |uri: String| {
        let s = &s;
        async move {
            s.call(Method::GET, &uri, Some("203.0.113.5:1000"), &[], None)
                .await
        }
    };

    // A public room is heard at once, without an account, as a guest who can sign in later.
    let a = get(format!("/rooms/{}", public.id)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let html = a.text();
    assert!(html.contains("\"guest\":true"), "{html}");
    assert!(
        html.contains(&format!("/login?next=/rooms/{}", public.id)),
        "raising a hand leads to log-in and back: {html}"
    );

    // A private room's invite link goes to log-in, which names the room (the token proves
    // the visitor was invited) and whose "Sign up" keeps the whole link.
    let link = format!("/rooms/{}?invite=letmein", private.id);
    let a = get(link.clone()).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let login = a.header(header::LOCATION).unwrap().to_string();
    assert_eq!(login, format!("/login?next={}", urlencode(&link)));
    let page = get(login.clone()).await.text();
    assert!(page.contains("join “Board meeting”"), "{page}");
    let signup = format!("/signup?next={}", urlencode(&link));
    assert!(
        page.contains(&signup.replace('&', "&amp;")),
        "sign-up carries the link: {page}"
    );
    let form = get(signup).await.text();
    assert!(form.contains("join “Board meeting”"), "{form}");
    assert!(
        form.contains(&format!(
            "name=\"next\" value=\"{}\"",
            link.replace('&', "&amp;")
        )),
        "{form}"
    );
    // Without the token the page says nothing of the room.
    let blind = get(format!(
        "/login?next={}",
        urlencode(&format!("/rooms/{}", private.id))
    ))
    .await
    .text();
    assert!(!blind.contains("Board meeting"), "{blind}");
    assert!(!blind.contains("id=\"destination\""), "{blind}");

    // Signing up with it lands in the room, let in by the invite.
    let a = s
        .form(
            "/signup",
            "203.0.113.9:1000",
            &[],
            &[
                ("username", "nina"),
                ("display_name", "Nina"),
                ("password", PASSWORD),
                ("next", &link),
            ],
        )
        .await;
    signed_in(&a);
    assert_eq!(a.header(header::LOCATION), Some(link.as_str()));
    let cookie = a
        .header(header::SET_COOKIE)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let a = s
        .call(
            Method::GET,
            &link,
            Some("203.0.113.9:1000"),
            &[("cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert!(a.text().contains("\"guest\":false"));
}

#[tokio::test]
async fn a_server_can_keep_guests_out() {
    let s = service(&[("ROOMTAPE_SERVER_GUEST_LISTENERS", "false")]).await;
    let (olga, _) = s.user("olga").await;
    let room = Room {
        id: RoomId::new(),
        title: "Harbour talk".into(),
        description: String::new(),
        language: "en".into(),
        scheduled_at: None,
        visibility: Visibility::Public,
        host_id: Some(olga.id),
        state: RoomState::Open,
        invite_token: None,
        captions: true,
        created_at: Timestamp::now(),
        ended_at: None,
    };
    s.catalog.create_room(&room).await.unwrap();
    let uri = format!("/rooms/{}", room.id);
    let a = s
        .call(Method::GET, &uri, Some("203.0.113.5:1000"), &[], None)
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        a.header(header::LOCATION).unwrap(),
        format!("/login?next={}", urlencode(&uri))
    );
}

const PEER: &str = "203.0.113.9:4000";

/// Issue 15, item 9: the owner retitles, describes and deletes a recording from its edit
/// page; a bad value changes nothing, deleting asks for a tick first, and nobody else can.
#[tokio::test]
async fn a_host_edits_and_deletes_a_recording_on_the_web_and_nobody_else_can() {
    let s = service(&[]).await;
    let (olga, olga_auth) = s.user("olga").await;
    let (_otto, otto_auth) = s.user("otto").await;
    let id = RecordingId::new();
    let rec = Recording {
        id,
        room_id: None,
        title: "Budget night".into(),
        source: RecordingSource::Import,
        state: RecordingState::Transcribed,
        recovered: false,
        error: None,
        started_at: Timestamp::now(),
        ended_at: Some(Timestamp::now()),
        duration_ms: Some(60_000),
        language: "en".into(),
        visibility: Visibility::Public,
        owner_id: Some(olga.id),
        description: String::new(),
    };
    s.catalog.create_recording(&rec, &[]).await.unwrap();
    let olga_h = [("authorization", olga_auth.as_str())];
    let otto_h = [("authorization", otto_auth.as_str())];
    let edit = format!("/r/{id}/edit");
    let page = s.call(Method::GET, &edit, Some(PEER), &olga_h, None).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(
        html.contains(&format!("action=\"/r/{id}/details\"")),
        "{html}"
    );
    assert!(html.contains(&format!("action=\"/r/{id}/delete\"")));
    assert!(html.contains("name=\"confirm\"") && html.contains("required"));

    // Someone else: refused, and nothing changes.
    let details = format!("/r/{id}/details");
    let delete = format!("/r/{id}/delete");
    let page = s.call(Method::GET, &edit, Some(PEER), &otto_h, None).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let a = s
        .form(
            &details,
            PEER,
            &otto_h,
            &[("title", "Mine now"), ("description", "")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = s.form(&delete, PEER, &otto_h, &[("confirm", "yes")]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // Bad values are refused with a reason, before anything is written.
    for (title, description, why) in [
        ("   ", "fine", "must not be empty"),
        ("Fine", "bell\u{7} inside", "control characters"),
        (&*"x".repeat(201), "", "at most 200"),
    ] {
        let a = s
            .form(
                &details,
                PEER,
                &olga_h,
                &[("title", title), ("description", description)],
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{title:?}: {}", a.text());
        assert!(a.text().contains(why), "{}", a.text());
    }
    let r = s.catalog.recording(id).await.unwrap();
    assert_eq!(
        (r.title.as_str(), r.description.as_str()),
        ("Budget night", "")
    );
    // The owner's change.
    let a = s
        .form(
            &details,
            PEER,
            &olga_h,
            &[
                ("title", " Budget night, corrected "),
                ("description", "Who came.\r\nWhat was said."),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text());
    assert_eq!(
        a.header(header::LOCATION),
        Some(format!("/r/{id}").as_str())
    );
    let r = s.catalog.recording(id).await.unwrap();
    assert_eq!(r.title, "Budget night, corrected");
    assert_eq!(r.description, "Who came.\nWhat was said.");

    // Deleting without the tick: refused, still there.
    let a = s.form(&delete, PEER, &olga_h, &[]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.text().contains("cannot be undone") || a.text().contains("deleted for good"));
    assert!(s.catalog.recording(id).await.is_ok());
    let a = s.form(&delete, PEER, &olga_h, &[("confirm", "yes")]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text());
    assert_eq!(a.header(header::LOCATION), Some("/replays?deleted=1"));
    assert!(s.catalog.recording(id).await.unwrap_err().is_not_found());
    let gone = s
        .call(Method::GET, &format!("/r/{id}"), Some(PEER), &olga_h, None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let list = s
        .call(Method::GET, "/replays?deleted=1", Some(PEER), &olga_h, None)
        .await;
    assert!(list.text().contains("The recording was deleted."));
}

/// Issue 15: a scheduled room's calendar file, with the room's link and a reminder; a private
/// room's only for its host or with its invite, looking missing to anyone else.
#[tokio::test]
async fn a_scheduled_room_has_a_calendar_file_for_whoever_may_open_its_link() {
    let s = service(&[]).await;
    let (olga, olga_auth) = s.user("olga").await;
    let (_otto, otto_auth) = s.user("otto").await;
    let start = Timestamp::now().add_millis(3 * 86_400_000);
    let room = |visibility, scheduled_at| Room {
        id: RoomId::new(),
        title: "Town hall; budget, part 2".into(),
        description: "Bring questions.".into(),
        language: "en".into(),
        scheduled_at,
        visibility,
        host_id: Some(olga.id),
        state: RoomState::Open,
        invite_token: Some("letmein".into()),
        captions: true,
        created_at: Timestamp::now(),
        ended_at: None,
    };
    let public = room(Visibility::Public, Some(start));
    let private = room(Visibility::Private, Some(start));
    let unscheduled = room(Visibility::Public, None);
    for r in [&public, &private, &unscheduled] {
        s.catalog.create_room(r).await.unwrap();
    }
    let get = |uri: String, auth: Option<String>| {
        let s = &s;
        async move {
            let h: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| ("authorization", a))
                .into_iter()
                .collect();
            s.call(Method::GET, &uri, Some(PEER), &h, None).await
        }
    };
    let ics = get(format!("/rooms/{}/calendar.ics", public.id), None).await;
    assert_eq!(ics.status, StatusCode::OK, "{}", ics.text());
    assert_eq!(
        ics.header(header::CONTENT_TYPE),
        Some("text/calendar; charset=utf-8")
    );
    let body = ics.text().replace("\r\n ", "");
    assert!(body.starts_with("BEGIN:VCALENDAR\r\n"), "{body}");
    assert!(
        body.contains("SUMMARY:Town hall\\; budget\\, part 2\r\n"),
        "{body}"
    );
    assert!(
        body.contains(&format!("URL:http://localhost/rooms/{}\r\n", public.id)),
        "{body}"
    );
    assert!(body.contains("BEGIN:VALARM") && body.contains("TRIGGER:-PT10M"));
    // The room page offers it, and the lobby too.
    let page = get(format!("/rooms/{}", public.id), Some(otto_auth.clone())).await;
    assert!(
        page.text()
            .contains(&format!("/rooms/{}/calendar.ics", public.id)),
        "{}",
        page.text()
    );
    assert!(page.text().contains("calendar.google.com"));
    let lobby = get("/".into(), None).await;
    assert!(
        lobby
            .text()
            .contains(&format!("/rooms/{}/calendar.ics", public.id))
    );

    // Private: missing to outsiders, given with the invite (which its link keeps).
    let uri = format!("/rooms/{}/calendar.ics", private.id);
    for (q, who) in [
        ("", None),
        ("", Some(otto_auth.clone())),
        ("?invite=wrong", Some(otto_auth.clone())),
    ] {
        let a = get(format!("{uri}{q}"), who).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{q}");
    }
    for (q, who) in [("?invite=letmein", None), ("", Some(olga_auth.clone()))] {
        let a = get(format!("{uri}{q}"), who).await;
        assert_eq!(a.status, StatusCode::OK, "{q}: {}", a.text());
        let body = a.text().replace("\r\n ", "");
        assert!(body.contains("?invite=letmein\r\n"), "{body}");
    }
    // No start time: nothing to put in a calendar.
    let a = get(format!("/rooms/{}/calendar.ics", unscheduled.id), None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.text().contains("no start time"));
}
