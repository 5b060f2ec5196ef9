//! The public API in-process (`oneshot`): cursor pages without gaps or duplicates, the access
//! rules (404 for what the caller may not see, 403 for what they see but may not change),
//! transcript formats by `?format=` and `Accept`, and the one error shape for every mistake.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use roomtape_core::{
    ArchiveStore, Catalog, Config, MemoryStore, Recording, RecordingId, RecordingSource,
    RecordingState, Room, RoomId, RoomState, Segment, Speaker, SpeakerId, Timestamp, Track,
    TrackId, Transcript, TranscriptSpeaker, User, Visibility, Word,
};
use roomtape_search::SearchIndex;
use roomtape_web::{AppState, app, auth};

struct Api {
    app: Router,
    catalog: Catalog,
    store: Arc<MemoryStore>,
    search: Arc<SearchIndex>,
    _dir: tempfile::TempDir,
}

/// An account and its API token.
struct Who {
    user: User,
    token: String,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: {:?} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// The answer is the one error shape with this status and code.
    #[track_caller]
    fn error(&self, status: StatusCode, code: &str) {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert!(
            self.content_type().starts_with("application/json"),
            "{:?}",
            self.headers
        );
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
    }
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("c.sqlite")).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let config = Config::default();
    let live = roomtape_web::live::Live::new(
        catalog.clone(),
        store.clone(),
        Arc::new(config.clone()),
        None,
    );
    let search = Arc::new(SearchIndex::in_memory().unwrap());
    let state = AppState::new(catalog.clone(), store.clone(), search.clone(), config, live);
    Api {
        app: app(state),
        catalog,
        store,
        search,
        _dir: dir,
    }
}

impl Api {
    async fn user(&self, name: &str) -> Who {
        let user = self.catalog.create_user(name, name, "x").await.unwrap();
        let token = auth::new_api_token();
        self.catalog
            .create_api_token(user.id, "test", &auth::digest(&token), &token[..10])
            .await
            .unwrap();
        Who { user, token }
    }

    /// A finished recording of `owner` with one track per speaker (speaker ids are user ids).
    async fn recording(
        &self,
        owner: &Who,
        visibility: Visibility,
        started_at: i64,
        speakers: &[&Who],
    ) -> (RecordingId, Vec<Track>) {
        let id = RecordingId::new();
        let rec = Recording {
            id,
            room_id: None,
            title: format!("Talk at {started_at}"),
            source: RecordingSource::Import,
            state: RecordingState::Recorded,
            recovered: false,
            error: None,
            started_at: Timestamp(started_at),
            ended_at: Some(Timestamp(started_at + 60_000)),
            duration_ms: Some(60_000),
            language: "en".into(),
            visibility,
            owner_id: Some(owner.user.id),
            description: String::new(),
        };
        let tracks: Vec<Track> = speakers
            .iter()
            .map(|w| {
                let t = TrackId::new();
                Track {
                    id: t,
                    recording_id: id,
                    speaker: Speaker {
                        id: SpeakerId::from(w.user.id.as_uuid()),
                        name: w.user.display_name.clone(),
                    },
                    file: roomtape_core::layout::track_file(t),
                    offset_ms: 0,
                    duration_ms: 60_000,
                }
            })
            .collect();
        self.catalog.create_recording(&rec, &tracks).await.unwrap();
        (id, tracks)
    }

    /// A transcript of one line per text, all spoken on `track`, two seconds apart.
    async fn transcript_of(&self, id: RecordingId, track: &Track, lines: &[&str]) {
        let t = Transcript {
            recording_id: id,
            title: String::new(),
            model: "tiny.en".into(),
            created_at: Timestamp::now(),
            speakers: vec![TranscriptSpeaker {
                id: track.speaker.id,
                name: track.speaker.name.clone(),
                track_id: track.id,
            }],
            segments: lines
                .iter()
                .enumerate()
                .map(|(i, text)| Segment {
                    speaker_id: track.speaker.id,
                    speaker: track.speaker.name.clone(),
                    track_id: track.id,
                    start_ms: i as i64 * 2000,
                    end_ms: i as i64 * 2000 + 1500,
                    language: Some("en".into()),
                    text: text.to_string(),
                    words: Vec::new(),
                    translation: None,
                })
                .collect(),
        };
        self.catalog.store_transcript(&t).await.unwrap();
    }

    async fn transcript(&self, id: RecordingId, tracks: &[Track]) {
        let seg = |i: usize, t: &Track, text: &str| Segment {
            speaker_id: t.speaker.id,
            speaker: t.speaker.name.clone(),
            track_id: t.id,
            start_ms: i as i64 * 2000,
            end_ms: i as i64 * 2000 + 1500,
            language: Some("en".into()),
            text: text.into(),
            // 300 ms a word from the line's start, as an aligner would give them.
            words: text
                .split_whitespace()
                .enumerate()
                .map(|(k, w)| Word {
                    text: w.into(),
                    start_ms: i as i64 * 2000 + k as i64 * 300,
                    end_ms: i as i64 * 2000 + k as i64 * 300 + 250,
                    p: 0.9,
                })
                .collect(),
            translation: None,
        };
        let t = Transcript {
            recording_id: id,
            title: String::new(),
            model: "tiny.en".into(),
            created_at: Timestamp::now(),
            speakers: tracks
                .iter()
                .map(|t| TranscriptSpeaker {
                    id: t.speaker.id,
                    name: t.speaker.name.clone(),
                    track_id: t.id,
                })
                .collect(),
            segments: vec![
                seg(0, &tracks[0], "Good morning and welcome."),
                seg(1, &tracks[tracks.len() - 1], "Thank you for having me."),
            ],
        };
        self.catalog.store_transcript(&t).await.unwrap();
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        who: Option<&Who>,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(w) = who {
            req = req.header(header::AUTHORIZATION, format!("Bearer {}", w.token));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some((ct, b)) => req.header(header::CONTENT_TYPE, ct).body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .unwrap();
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

    async fn get(&self, uri: &str, who: Option<&Who>) -> Answer {
        self.call(Method::GET, uri, who, &[], None).await
    }

    async fn send_json(&self, method: Method, uri: &str, who: Option<&Who>, v: Value) -> Answer {
        self.call(
            method,
            uri,
            who,
            &[],
            Some(("application/json", v.to_string().into_bytes())),
        )
        .await
    }

    /// Follows `next_cursor` from the first page to the last; returns every item's id.
    async fn all_pages(&self, path: &str, key: &str, limit: u32, who: Option<&Who>) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let sep = if path.contains('?') { '&' } else { '?' };
            let mut uri = format!("{path}{sep}limit={limit}");
            if let Some(c) = &cursor {
                uri.push_str(&format!("&cursor={}", roomtape_web::account::urlencode(c)));
            }
            let a = self.get(&uri, who).await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text());
            let v = a.json();
            let items = v[key].as_array().unwrap();
            assert!(items.len() <= limit as usize);
            ids.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_string()));
            match v["next_cursor"].as_str() {
                Some(c) => {
                    assert_eq!(items.len(), limit as usize, "only full pages have a next");
                    cursor = Some(c.to_string());
                }
                None => return ids,
            }
        }
        panic!("pages never ended");
    }
}

fn ids_of(list: &[(RecordingId, i64)]) -> Vec<String> {
    // Newest first; equal times by id, descending.
    let mut l = list.to_vec();
    l.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    l.iter().map(|(id, _)| id.to_string()).collect()
}

#[tokio::test]
async fn recording_pages_have_no_gaps_or_duplicates_and_list_only_what_the_caller_may_see() {
    let api = api().await;
    let admin = api.user("admin").await;
    let olga = api.user("olga").await;
    let sam = api.user("sam").await;
    let otto = api.user("otto").await;

    let mut public = Vec::new();
    let mut olgas_private = Vec::new();
    let mut sams = Vec::new();
    let mut unlisted = Vec::new();
    for i in 0..23i64 {
        // Several recordings share a start time, so the cursor must break ties by id.
        let at = 1_700_000_000_000 + (i / 3) * 1000;
        let (id, _) = api.recording(&olga, Visibility::Public, at, &[&olga]).await;
        public.push((id, at));
    }
    for i in 0..5i64 {
        let at = 1_700_000_000_500 + i * 1000;
        let (id, _) = api
            .recording(&olga, Visibility::Private, at, &[&olga])
            .await;
        olgas_private.push((id, at));
    }
    for i in 0..4i64 {
        let at = 1_700_000_000_700 + i * 1000;
        let (id, _) = api
            .recording(&olga, Visibility::Private, at, &[&olga, &sam])
            .await;
        sams.push((id, at));
    }
    let (u, _) = api
        .recording(&olga, Visibility::Unlisted, 1_700_000_000_900, &[&olga])
        .await;
    unlisted.push((u, 1_700_000_000_900));

    for limit in [1, 7, 23, 100] {
        let seen = api
            .all_pages("/api/v1/recordings", "recordings", limit, None)
            .await;
        assert_eq!(seen, ids_of(&public), "anonymous, limit {limit}");
    }
    let everything: Vec<_> = [&public, &olgas_private, &sams, &unlisted]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    let mine: Vec<_> = everything.clone();
    assert_eq!(
        api.all_pages("/api/v1/recordings", "recordings", 4, Some(&olga))
            .await,
        ids_of(&mine),
        "the owner lists all of hers"
    );
    let sam_sees: Vec<_> = public.iter().chain(&sams).copied().collect();
    assert_eq!(
        api.all_pages("/api/v1/recordings", "recordings", 6, Some(&sam))
            .await,
        ids_of(&sam_sees),
        "a speaker lists public ones and those they spoke in"
    );
    assert_eq!(
        api.all_pages("/api/v1/recordings", "recordings", 5, Some(&otto))
            .await,
        ids_of(&public)
    );
    assert_eq!(
        api.all_pages("/api/v1/recordings", "recordings", 9, Some(&admin))
            .await,
        ids_of(&everything)
    );
    assert_eq!(
        api.all_pages(
            "/api/v1/recordings?owner=olga",
            "recordings",
            50,
            Some(&sam)
        )
        .await,
        ids_of(&sam_sees)
    );
    assert!(
        api.all_pages(
            "/api/v1/recordings?owner=sam",
            "recordings",
            50,
            Some(&admin)
        )
        .await
        .is_empty()
    );
    assert!(
        api.all_pages("/api/v1/recordings?owner=nobody", "recordings", 50, None)
            .await
            .is_empty()
    );
    // Every item carries its tracks.
    let v = api.get("/api/v1/recordings?limit=1", None).await.json();
    assert_eq!(v["recordings"][0]["tracks"][0]["speaker"]["name"], "olga");

    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=nonsense",
        "cursor=1.2",
    ] {
        api.get(&format!("/api/v1/recordings?{bad}"), None)
            .await
            .error(StatusCode::BAD_REQUEST, "bad_parameter");
    }
}

#[tokio::test]
async fn who_may_see_and_change_a_recording() {
    let api = api().await;
    let admin = api.user("admin").await;
    let olga = api.user("olga").await;
    let sam = api.user("sam").await;
    let otto = api.user("otto").await;
    let at = Timestamp::now().0;
    let (private, ptracks) = api
        .recording(&olga, Visibility::Private, at, &[&olga, &sam])
        .await;
    let (public, _) = api.recording(&olga, Visibility::Public, at, &[&olga]).await;
    let (unlisted, _) = api
        .recording(&olga, Visibility::Unlisted, at, &[&olga])
        .await;
    api.transcript(private, &ptracks).await;

    let absent = RecordingId::new();
    let not_there = api.get(&format!("/api/v1/recordings/{absent}"), None).await;
    not_there.error(StatusCode::NOT_FOUND, "not_found");
    // A private recording answers others exactly as one that does not exist.
    for who in [None, Some(&otto)] {
        for path in ["", "/tracks", "/transcript", "/transcript?format=vtt"] {
            let a = api
                .get(&format!("/api/v1/recordings/{private}{path}"), who)
                .await;
            a.error(StatusCode::NOT_FOUND, "not_found");
            assert_eq!(
                a.json()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .replace(&private.to_string(), "ID"),
                not_there.json()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .replace(&absent.to_string(), "ID")
            );
        }
    }
    let flags = |a: Answer| {
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        let v = a.json();
        (
            v["access"]["view"].as_bool().unwrap(),
            v["access"]["manage"].as_bool().unwrap(),
            v["access"]["speaker"].as_bool().unwrap(),
        )
    };
    let uri = format!("/api/v1/recordings/{private}");
    assert_eq!(flags(api.get(&uri, Some(&sam)).await), (true, false, true));
    // The owner spoke in it too.
    assert_eq!(flags(api.get(&uri, Some(&olga)).await), (true, true, true));
    assert_eq!(
        flags(api.get(&uri, Some(&admin)).await),
        (true, true, false)
    );
    for id in [public, unlisted] {
        let u = format!("/api/v1/recordings/{id}");
        assert_eq!(flags(api.get(&u, None).await), (true, false, false));
        assert_eq!(flags(api.get(&u, Some(&otto)).await), (true, false, false));
    }
    assert_eq!(
        api.get(&format!("{uri}/transcript"), Some(&sam))
            .await
            .status,
        StatusCode::OK
    );

    // Changing: 401 without a caller, 404 for who cannot see it, 403 for who only sees it.
    let publish = json!({"visibility": "public"});
    api.send_json(Method::PATCH, &uri, None, publish.clone())
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    api.send_json(Method::PATCH, &uri, Some(&otto), publish.clone())
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    api.send_json(Method::PATCH, &uri, Some(&sam), publish.clone())
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    let pub_uri = format!("/api/v1/recordings/{public}");
    api.send_json(Method::PATCH, &pub_uri, Some(&otto), publish.clone())
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    api.call(Method::DELETE, &pub_uri, Some(&otto), &[], None)
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    api.call(Method::DELETE, &uri, Some(&otto), &[], None)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    let speaker = ptracks[1].speaker.id;
    let rename = format!("{uri}/speakers/{speaker}");
    api.send_json(
        Method::PATCH,
        &rename,
        Some(&sam),
        json!({"name": "Sam S."}),
    )
    .await
    .error(StatusCode::FORBIDDEN, "forbidden");
    api.send_json(
        Method::PATCH,
        &format!("{uri}/transcript/segments/0"),
        Some(&sam),
        json!({"text": "x"}),
    )
    .await
    .error(StatusCode::FORBIDDEN, "forbidden");

    // The owner publishes and retitles; a bad title changes nothing.
    let a = api
        .send_json(
            Method::PATCH,
            &uri,
            Some(&olga),
            json!({"visibility": "unlisted", "title": "\u{7}"}),
        )
        .await;
    a.error(StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(
        api.get(&uri, Some(&olga)).await.json()["visibility"],
        "private"
    );
    let a = api
        .send_json(
            Method::PATCH,
            &uri,
            Some(&olga),
            json!({"visibility": "unlisted", "title": "Budget hearing"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["visibility"], "unlisted");
    assert_eq!(a.json()["title"], "Budget hearing");
    assert_eq!(api.get(&uri, None).await.status, StatusCode::OK);
    // Names and lines.
    let a = api
        .send_json(
            Method::PATCH,
            &rename,
            Some(&admin),
            json!({"name": "Sam S."}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["tracks"][1]["speaker"]["name"], "Sam S.");
    let a = api
        .send_json(
            Method::PATCH,
            &format!("{uri}/transcript/segments/1"),
            Some(&olga),
            json!({"text": "Thanks for having me."}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let t = api.get(&format!("{uri}/transcript"), None).await.json();
    assert_eq!(t["segments"][1]["text"], "Thanks for having me.");
    // "Thank you" became "Thanks": the words kept keep their times, the new one takes the
    // place of those it replaced; a quote of the line still seeks to its words.
    let words: Vec<(String, i64, i64)> = t["segments"][1]["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["text"].as_str().unwrap().to_string(),
                w["start_ms"].as_i64().unwrap(),
                w["end_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    let expect = [
        ("Thanks", 2000, 2600),
        ("for", 2600, 2850),
        ("having", 2900, 3150),
        ("me.", 3200, 3450),
    ];
    let expect: Vec<(String, i64, i64)> = expect
        .iter()
        .map(|&(w, a, b)| (w.to_string(), a, b))
        .collect();
    assert_eq!(words, expect);
    assert_eq!(t["segments"][1]["words"][1]["p"], 0.9);
    assert_eq!(t["segments"][1]["speaker"], "Sam S.");
    // Issue 19: the host corrects a line's English translation (the line keeps its text);
    // `?lang=en` then exports it, WebVTT saying its language; empty removes it again.
    let seg1 = format!("{uri}/transcript/segments/1");
    let a = api
        .send_json(
            Method::PATCH,
            &seg1,
            Some(&olga),
            json!({"text": "Thanks for having me.", "translation": "Gracias\u{7}"}),
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::BAD_REQUEST,
        "a control character: {}",
        a.text()
    );
    let a = api
        .send_json(
            Method::PATCH,
            &seg1,
            Some(&olga),
            json!({"text": "Thanks for having me.", "translation": "Thank you for inviting me."}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(
        a.json()["segments"][1]["translation"],
        json!({"lang": "en", "text": "Thank you for inviting me."})
    );
    assert_eq!(a.json()["segments"][1]["text"], "Thanks for having me.");
    assert!(a.json()["segments"][0].get("translation").is_none());
    let vtt = api
        .get(&format!("{uri}/transcript?format=vtt&lang=en"), None)
        .await;
    assert!(
        vtt.text().starts_with("WEBVTT\nLanguage: en\n"),
        "{}",
        vtt.text()
    );
    assert!(vtt.text().contains("Thank you for inviting me."));
    let vtt = api.get(&format!("{uri}/transcript?format=vtt"), None).await;
    assert!(!vtt.text().contains("inviting"));
    api.get(&format!("{uri}/transcript?lang=fr"), None)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_parameter");
    let a = api
        .send_json(
            Method::PATCH,
            &seg1,
            Some(&olga),
            json!({"text": "Thanks for having me.", "translation": ""}),
        )
        .await;
    assert!(
        a.json()["segments"][1].get("translation").is_none(),
        "{}",
        a.text()
    );
    api.send_json(
        Method::PATCH,
        &format!("{uri}/transcript/segments/7"),
        Some(&olga),
        json!({"text": "x"}),
    )
    .await
    .error(StatusCode::NOT_FOUND, "not_found");
    api.send_json(
        Method::PATCH,
        &format!("{uri}/speakers/{}", SpeakerId::new()),
        Some(&olga),
        json!({"name": "x"}),
    )
    .await
    .error(StatusCode::NOT_FOUND, "not_found");

    // Deleting: the archive goes too.
    api.store
        .put_atomic(&format!("{public}/manifest.json"), b"{}")
        .unwrap();
    let a = api
        .call(Method::DELETE, &pub_uri, Some(&olga), &[], None)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert!(a.body.is_empty());
    assert!(
        !api.store
            .exists(&format!("{public}/manifest.json"))
            .unwrap()
    );
    api.get(&pub_uri, Some(&olga))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn transcripts_come_in_the_format_asked_for() {
    let api = api().await;
    let olga = api.user("olga").await;
    let sam = api.user("sam").await;
    let (id, tracks) = api
        .recording(
            &olga,
            Visibility::Public,
            Timestamp::now().0,
            &[&olga, &sam],
        )
        .await;
    let uri = format!("/api/v1/recordings/{id}/transcript");
    api.get(&uri, None)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    api.transcript(id, &tracks).await;

    let get = |q: &'static str, accept: Option<&'static str>| {
        let uri = format!("{uri}{q}");
        let api = &api;
        async move {
            let h: Vec<(&str, &str)> = accept.iter().map(|a| ("accept", *a)).collect();
            api.call(Method::GET, &uri, None, &h, None).await
        }
    };
    let json = get("", None).await;
    assert_eq!(json.status, StatusCode::OK);
    assert!(json.content_type().starts_with("application/json"));
    assert_eq!(
        json.json()["segments"][0]["text"],
        "Good morning and welcome."
    );
    assert_eq!(json.json()["recording_id"], id.to_string());

    for (q, accept, ctype, start) in [
        ("?format=vtt", None, "text/vtt", "WEBVTT"),
        ("", Some("text/vtt"), "text/vtt", "WEBVTT"),
        ("?format=srt", None, "application/x-subrip", "1\n"),
        (
            "",
            Some("application/x-subrip"),
            "application/x-subrip",
            "1\n",
        ),
        ("?format=txt", None, "text/plain", "Talk at"),
        (
            "",
            Some("text/plain;q=0.9, image/png"),
            "text/plain",
            "Talk at",
        ),
        ("?format=json", Some("text/vtt"), "application/json", "{"),
        ("", Some("application/*"), "application/json", "{"),
        ("?format=vtt", Some("image/png"), "text/vtt", "WEBVTT"),
    ] {
        let a = get(q, accept).await;
        assert_eq!(a.status, StatusCode::OK, "{q} {accept:?}: {}", a.text());
        assert!(
            a.content_type().starts_with(ctype),
            "{q} {accept:?}: {}",
            a.content_type()
        );
        assert!(a.text().starts_with(start), "{q} {accept:?}: {}", a.text());
    }
    let vtt = get("?format=vtt", None).await.text();
    assert!(vtt.contains("<v sam>Thank you for having me."), "{vtt}");

    get("", Some("image/png"))
        .await
        .error(StatusCode::NOT_ACCEPTABLE, "not_acceptable");
    get("", Some("text/vtt;q=0, application/json;q=0"))
        .await
        .error(StatusCode::NOT_ACCEPTABLE, "not_acceptable");
    get("?format=docx", None)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_parameter");
}

#[tokio::test]
async fn every_mistake_gets_the_one_error_shape_and_its_status() {
    let api = api().await;
    let olga = api.user("olga").await;
    let (id, _) = api
        .recording(&olga, Visibility::Public, Timestamp::now().0, &[&olga])
        .await;
    let uri = format!("/api/v1/recordings/{id}");

    api.get("/api/v1/nothing-here", None)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    api.get("/api/v1/recordings/not-a-uuid", None)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_parameter");
    api.get(&format!("{uri}/transcript/segments/x"), None)
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let a = api.call(Method::PUT, &uri, Some(&olga), &[], None).await;
    a.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let allow = a.headers.get(header::ALLOW).unwrap().to_str().unwrap();
    for m in ["GET", "PATCH", "DELETE"] {
        assert!(allow.contains(m), "{allow}");
    }
    api.call(Method::POST, "/api/v1/recordings", None, &[], None)
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");

    // Bodies: not JSON, malformed, wrong shape, unknown fields, wrong types.
    api.call(
        Method::PATCH,
        &uri,
        Some(&olga),
        &[],
        Some(("text/plain", b"visibility=public".to_vec())),
    )
    .await
    .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    api.call(Method::PATCH, &uri, Some(&olga), &[], None)
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    for body in [
        "{\"visibility\":",
        "[null, null]",
        "\"public\"",
        "{\"visibility\": \"everyone\"}",
        "{\"colour\": \"red\"}",
        "{\"title\": 5}",
    ] {
        api.call(
            Method::PATCH,
            &uri,
            Some(&olga),
            &[],
            Some(("application/json", body.as_bytes().to_vec())),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "bad_body");
    }
    // Authentication.
    let bad = Who {
        user: olga.user.clone(),
        token: "rt_nonsense".into(),
    };
    api.get("/api/v1/recordings", Some(&bad))
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    api.get("/api/v1/me", None)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    api.get("/api/v1/jobs", None)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");

    // Status codes of success: 201 on create, 204 on delete.
    let a = api
        .send_json(
            Method::POST,
            "/api/v1/tokens",
            Some(&olga),
            json!({"name": "sync"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let made = a.json();
    let fresh = Who {
        user: olga.user.clone(),
        token: made["token"].as_str().unwrap().to_string(),
    };
    assert_eq!(
        api.get("/api/v1/me", Some(&fresh)).await.json()["username"],
        "olga"
    );
    let tokens = api.get("/api/v1/tokens", Some(&olga)).await.json();
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 2);
    assert!(!tokens.to_string().contains(made["token"].as_str().unwrap()));
    let a = api
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", made["id"].as_str().unwrap()),
            Some(&olga),
            &[],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    api.get("/api/v1/me", Some(&fresh))
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");

    // The document itself.
    let doc = api.get("/api/v1/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.content_type().starts_with("application/json"));
    assert!(doc.json()["openapi"].as_str().unwrap().starts_with("3.1"));
    let mix = &doc.json()["paths"]["/recordings/{id}/mix"]["get"];
    assert!(
        mix["responses"]["206"]["content"]["audio/ogg"].is_object(),
        "the mix is described: {mix}"
    );
}

#[tokio::test]
async fn jobs_are_shown_to_who_manages_their_recordings() {
    let api = api().await;
    let admin = api.user("admin").await;
    let olga = api.user("olga").await;
    let sam = api.user("sam").await;
    let mut olgas = BTreeSet::new();
    for _ in 0..5 {
        let (id, _) = api
            .recording(
                &olga,
                Visibility::Public,
                Timestamp::now().0,
                &[&olga, &sam],
            )
            .await;
        olgas.insert(
            api.catalog
                .enqueue_transcription(id)
                .await
                .unwrap()
                .to_string(),
        );
    }
    let (sams, _) = api
        .recording(&sam, Visibility::Private, Timestamp::now().0, &[&sam])
        .await;
    let sam_job = api.catalog.enqueue_transcription(sams).await.unwrap();

    let seen = api.all_pages("/api/v1/jobs", "jobs", 2, Some(&olga)).await;
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), olgas);
    assert_eq!(
        api.all_pages("/api/v1/jobs", "jobs", 2, Some(&sam)).await,
        vec![sam_job.to_string()],
        "a speaker does not manage the recordings they spoke in"
    );
    assert_eq!(
        api.all_pages("/api/v1/jobs", "jobs", 4, Some(&admin))
            .await
            .len(),
        6
    );
    let uri = format!("/api/v1/jobs/{sam_job}");
    api.get(&uri, Some(&olga))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    let a = api.get(&uri, Some(&admin)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["state"], "queued");
    assert_eq!(a.json()["recording_id"], sams.to_string());
}

#[tokio::test]
async fn rooms_page_by_cursor_and_private_rooms_stay_hidden() {
    let api = api().await;
    let olga = api.user("olga").await;
    let otto = api.user("otto").await;
    let mut public = Vec::new();
    for i in 0..9 {
        let a = api
            .send_json(
                Method::POST,
                "/api/v1/rooms",
                Some(&olga),
                json!({"title": format!("Room {i}")}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
        public.push(a.json()["id"].as_str().unwrap().to_string());
    }
    let a = api
        .send_json(
            Method::POST,
            "/api/v1/rooms",
            Some(&olga),
            json!({"title": "Secret", "visibility": "private"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let private = a.json()["id"].as_str().unwrap().to_string();
    let link = a.json()["invite_link"].as_str().unwrap().to_string();
    let invite = link.split("invite=").nth(1).unwrap().to_string();
    // An ended room leaves the lobby.
    let ended = Room {
        id: RoomId::new(),
        title: "Over".into(),
        description: String::new(),
        language: "auto".into(),
        scheduled_at: None,
        visibility: Visibility::Public,
        host_id: Some(olga.user.id),
        state: RoomState::Ended,
        invite_token: None,
        captions: true,
        created_at: Timestamp::now(),
        ended_at: Some(Timestamp::now()),
    };
    api.catalog.create_room(&ended).await.unwrap();

    let mut seen = api.all_pages("/api/v1/rooms", "rooms", 4, None).await;
    seen.reverse();
    assert_eq!(seen, public, "newest first, every public room once");

    let uri = format!("/api/v1/rooms/{private}");
    api.get(&uri, None)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    api.get(&uri, Some(&otto))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    api.get(&format!("{uri}?invite=wrong"), Some(&otto))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    let a = api
        .get(&format!("{uri}?invite={invite}"), Some(&otto))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.json().get("invite_link").is_none(),
        "only the host sees the link"
    );
    assert!(a.json().get("invite_token").is_none());
    let a = api.get(&uri, Some(&olga)).await;
    assert_eq!(a.json()["invite_link"], link.as_str());
    let a = api.get(&format!("/api/v1/rooms/{}", public[0]), None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["title"], "Room 0");
    assert_eq!(a.json()["live"], false);
}

#[tokio::test]
async fn a_track_is_served_with_ranges_to_its_speaker_and_the_host_only() {
    let api = api().await;
    let olga = api.user("olga").await;
    let sam = api.user("sam").await;
    let otto = api.user("otto").await;
    let (id, tracks) = api
        .recording(
            &olga,
            Visibility::Public,
            Timestamp::now().0,
            &[&olga, &sam],
        )
        .await;
    let bytes: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    for t in &tracks {
        api.store
            .put_atomic(&roomtape_core::layout::file_key(id, &t.file), &bytes)
            .unwrap();
    }
    let olgas = format!("/api/v1/recordings/{id}/tracks/{}/audio", tracks[0].id);
    let sams = format!("/api/v1/recordings/{id}/tracks/{}/audio", tracks[1].id);

    for (uri, who) in [(&olgas, &olga), (&sams, &olga), (&sams, &sam)] {
        let a = api.get(uri, Some(who)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_eq!(a.content_type(), "audio/ogg");
        assert_eq!(a.body, bytes);
    }
    api.get(&olgas, Some(&sam))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    api.get(&sams, Some(&otto))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    api.get(&sams, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    api.get(
        &format!("/api/v1/recordings/{id}/tracks/{}/audio", TrackId::new()),
        Some(&olga),
    )
    .await
    .error(StatusCode::NOT_FOUND, "not_found");

    let a = api
        .call(
            Method::GET,
            &sams,
            Some(&sam),
            &[("range", "bytes=100-199")],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.body, bytes[100..200]);
    assert_eq!(a.headers[header::CONTENT_RANGE], "bytes 100-199/5000");
    api.call(
        Method::GET,
        &sams,
        Some(&sam),
        &[("range", "bytes=9000-")],
        None,
    )
    .await
    .error(StatusCode::RANGE_NOT_SATISFIABLE, "bad_range");
    let list = api
        .get(&format!("/api/v1/recordings/{id}/tracks"), None)
        .await;
    assert_eq!(list.json()["tracks"].as_array().unwrap().len(), 2);

    // The mix is for whoever may see the recording, with ranges; 404 until it is built.
    let mix = format!("/api/v1/recordings/{id}/mix");
    api.get(&mix, None)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    let mixed: Vec<u8> = bytes.iter().rev().copied().collect();
    api.store
        .put_atomic(
            &roomtape_core::layout::file_key(id, roomtape_core::layout::MIX_FILE),
            &mixed,
        )
        .unwrap();
    let a = api.get(&mix, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.content_type(), "audio/ogg");
    assert_eq!(a.body, mixed);
    let a = api
        .call(Method::GET, &mix, None, &[("range", "bytes=10-19")], None)
        .await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.body, mixed[10..20]);
    let (hidden, _) = api
        .recording(&olga, Visibility::Private, Timestamp::now().0, &[&olga])
        .await;
    let hidden_mix = format!("/api/v1/recordings/{hidden}/mix");
    api.store
        .put_atomic(
            &roomtape_core::layout::file_key(hidden, roomtape_core::layout::MIX_FILE),
            &mixed,
        )
        .unwrap();
    api.get(&hidden_mix, None)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    api.get(&hidden_mix, Some(&otto))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(api.get(&hidden_mix, Some(&olga)).await.body, mixed);
}

/// Regression: BM25 statistics came from the whole index and each hit carried its score, so a
/// word added to a private recording changed what an anonymous caller received for public
/// lines (the score, and with it the order of hits and the part of a line shown as snippet).
#[tokio::test]
async fn a_private_edit_changes_nothing_that_others_receive_from_search() {
    let api = api().await;
    let olga = api.user("olga").await;
    let otto = api.user("otto").await;
    let (public, ptracks) = api
        .recording(&olga, Visibility::Public, 1_700_000_000_000, &[&olga])
        .await;
    let filler = "and then we talked about the paving of the square and the new bus lines \
                  and the opening hours of the pool and the parking near the station, at length";
    let long = format!("Winter is coming, {filler}, {filler}, and the budget.");
    api.transcript_of(
        public,
        &ptracks[0],
        &[
            "The new library opens in spring.",
            "Library hours: the library is open late, and the library cafe too.",
            &long,
            "The roof will be finished before winter.",
            "Budget talks continue with the library board.",
            "Libraries and librarians, a short history.",
        ],
    )
    .await;
    let (private, stracks) = api
        .recording(&olga, Visibility::Private, 1_700_000_100_000, &[&olga])
        .await;
    api.transcript_of(
        private,
        &stracks[0],
        &[
            "Nothing to see here.",
            "Still nothing.",
            "A third line.",
            "And a fourth.",
        ],
    )
    .await;
    roomtape_search::indexer::drain(&api.search, &api.catalog)
        .await
        .unwrap();

    let queries = [
        "library",
        "library OR roof",
        "winter budget",
        "libr*",
        "the library",
        "\"the library\" OR winter",
    ];
    let uris: Vec<String> = queries
        .iter()
        .flat_map(|q| {
            let q = roomtape_web::account::urlencode(q);
            [
                format!("/api/v1/search?q={q}"),
                format!("/api/v1/search?q={q}&sort=newest"),
            ]
        })
        .collect();
    let answers = async |who: Option<&Who>| {
        let mut bodies = Vec::new();
        for uri in &uris {
            let a = api.get(uri, who).await;
            assert_eq!(a.status, StatusCode::OK, "{uri}: {}", a.text());
            bodies.push(a.text());
        }
        bodies
    };
    let anonymous = answers(None).await;
    let other = answers(Some(&otto)).await;
    let owner = answers(Some(&olga)).await;
    let first = serde_json::from_str::<Value>(&anonymous[0]).unwrap();
    assert_eq!(first["total"], 3, "{first}");
    // A hit's link can be quoted anywhere: it names the service.
    let link = first["recordings"][0]["hits"][0]["link"].as_str().unwrap();
    assert!(link.starts_with("http://localhost/r/"), "{link}");
    assert!(link.contains("?t="), "{link}");
    assert!(
        !anonymous[0].contains("score"),
        "no raw score is handed out: {}",
        anonymous[0]
    );

    // The owner puts words asked for into the private recording, many times, in lines of
    // every length: with statistics of the whole index, "roof" would fall below "library"
    // and the long line's snippet would move from "winter" to "budget".
    let edits = [
        "roof roof roof winter winter",
        "The roof. Winter. The roof again, and again the roof, librarian.",
        "winter roofs roof rooftop libretto",
        &format!("winter {filler} winter {filler} roof"),
    ];
    for (i, text) in edits.iter().enumerate() {
        let a = api
            .send_json(
                Method::PATCH,
                &format!("/api/v1/recordings/{private}/transcript/segments/{i}"),
                Some(&olga),
                json!({ "text": text }),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    }
    assert!(
        roomtape_search::indexer::drain(&api.search, &api.catalog)
            .await
            .unwrap()
            > 0
    );

    // Byte for byte the same, for anyone who may not see the private recording.
    for (uri, (before, after)) in uris.iter().zip(anonymous.iter().zip(answers(None).await)) {
        assert_eq!(before, &after, "anonymous {uri}");
    }
    for (uri, (before, after)) in uris
        .iter()
        .zip(other.iter().zip(answers(Some(&otto)).await))
    {
        assert_eq!(before, &after, "another user, {uri}");
    }
    // The edit did reach the index: its owner finds it.
    let private = private.to_string();
    assert!(!owner.iter().any(|b| b.contains(&private)));
    let owner_after = answers(Some(&olga)).await;
    assert!(owner_after[2].contains(&private), "{}", owner_after[2]);
}

/// The podcast feed: episode notes say who spoke, for how long and how it begins (until the
/// host writes their own, which are text, never markup); the host is the host and the other
/// speakers guests; a mix made before MP3s were made beside it is enclosed as Opus at first
/// and converted in the background, after which the MP3 is the enclosure and the Opus mix
/// its alternate; the artwork is a square PNG with a validator.
#[tokio::test]
async fn the_feed_describes_episodes_names_the_host_and_encloses_an_mp3_of_older_mixes() {
    use roomtape_core::layout::{MIX_FILE, MIX_MP3_FILE, file_key};
    let api = api().await;
    let hana = api.user("hana").await;
    let sam = api.user("sam").await;
    let (id, tracks) = api
        .recording(&hana, Visibility::Public, 1_700_000_000_000, &[&hana, &sam])
        .await;
    api.transcript_of(
        id,
        &tracks[1],
        &["Welcome to the bicycle path meeting.", "Second line."],
    )
    .await;
    let feed = api.get("/feeds/hana.xml", None).await;
    assert_eq!(feed.status, StatusCode::OK);
    assert!(
        !feed.text().contains("<item>"),
        "no audio yet: nothing to enclose"
    );

    // An Opus mix from before MP3s: two seconds of tone.
    let mut enc = roomtape_ingest::OpusTrackEncoder::new(
        api.store.as_ref(),
        &file_key(id, MIX_FILE),
        32_000,
        opus::Application::Audio,
        Vec::new(),
    )
    .unwrap();
    let tone: Vec<f32> = (0..96_000).map(|i| 0.3 * (i as f32 * 0.06).sin()).collect();
    enc.push(&tone).unwrap();
    enc.finish().unwrap();
    let opus_len = api.store.size(&file_key(id, MIX_FILE)).unwrap();

    let feed = api.get("/feeds/hana.xml", None).await.text();
    assert!(
        feed.contains(&format!(
            "<enclosure url=\"http://localhost/r/{id}/mix.opus\" length=\"{opus_len}\" type=\"audio/ogg\"/>"
        )),
        "{feed}"
    );
    assert!(feed.contains("<podcast:person role=\"host\" group=\"cast\">hana</podcast:person>"));
    assert!(feed.contains("<podcast:person role=\"guest\" group=\"cast\">sam</podcast:person>"));
    assert_eq!(
        feed.matches("role=\"host\"").count(),
        2,
        "channel and item, once each"
    );
    assert!(
        feed.contains("A room hosted by hana with sam. 1 min, recorded 14 Nov 2023."),
        "{feed}"
    );
    assert!(feed.contains("It begins: “Welcome to the bicycle path meeting. Second line.”"));
    assert!(feed.contains(&format!("Replay and transcript: http://localhost/r/{id}")));
    assert!(feed.contains("<link>http://localhost/replays?host=hana</link>"));
    assert!(feed.contains("<itunes:image href=\"http://localhost/feeds/hana.png\"/>"));
    assert!(feed.contains("<language>en</language>"));
    assert!(
        !feed.contains("transcript.en.vtt"),
        "no translations: no English transcript"
    );
    // Issue 19: once a line has an English translation, the English transcript is linked too.
    api.catalog
        .correct_translation(id, 1, "The second line.")
        .await
        .unwrap();
    let feed = api.get("/feeds/hana.xml", None).await.text();
    assert!(
        feed.contains(&format!(
            "<podcast:transcript url=\"http://localhost/r/{id}/transcript.en.vtt\" type=\"text/vtt\" language=\"en\"/>"
        )),
        "{feed}"
    );

    // The feed set off the conversion: soon the MP3 is there and is the enclosure.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !api.store.exists(&file_key(id, MIX_MP3_FILE)).unwrap() {
        assert!(std::time::Instant::now() < deadline, "no MP3 was made");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mp3_len = api.store.size(&file_key(id, MIX_MP3_FILE)).unwrap();
    let feed = api.get("/feeds/hana.xml", None).await.text();
    assert!(
        feed.contains(&format!(
            "<enclosure url=\"http://localhost/r/{id}/mix.mp3\" length=\"{mp3_len}\" type=\"audio/mpeg\"/>"
        )),
        "{feed}"
    );
    assert!(feed.contains("<podcast:alternateEnclosure type=\"audio/ogg; codecs=opus\""));
    let mp3 = api
        .call(
            Method::GET,
            &format!("/r/{id}/mix.mp3"),
            None,
            &[("range", "bytes=0-9")],
            None,
        )
        .await;
    assert_eq!(mp3.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(mp3.content_type(), "audio/mpeg");
    assert_eq!(mp3.body.len(), 10);
    assert_eq!(mp3.body[0], 0xFF, "an MPEG frame first (no ID3 tag)");

    // The host's own notes replace the made ones, line breaks kept, markup as text.
    let a = api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/recordings/{id}"),
            Some(&hana),
            json!({"description": "  Line one <b>bold</b>\r\nLine two  "}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["description"], "Line one <b>bold</b>\nLine two");
    let feed = api.get("/feeds/hana.xml", None).await.text();
    assert!(feed.contains("<description>Line one &lt;b&gt;bold&lt;/b&gt;\nLine two\n\nReplay"));
    assert!(!feed.contains("A room hosted by"));
    for bad in [
        json!({"description": "a\u{7}b"}),
        json!({"description": "x".repeat(4001)}),
    ] {
        api.send_json(
            Method::PATCH,
            &format!("/api/v1/recordings/{id}"),
            Some(&hana),
            bad,
        )
        .await
        .error(StatusCode::BAD_REQUEST, "invalid");
    }
    api.send_json(
        Method::PATCH,
        &format!("/api/v1/recordings/{id}"),
        Some(&sam),
        json!({"description": "not mine"}),
    )
    .await
    .error(StatusCode::FORBIDDEN, "forbidden");

    // A private recording's MP3 is not made for those who may not hear it.
    let (hidden, _) = api
        .recording(&hana, Visibility::Private, 1_700_000_100_000, &[&hana])
        .await;
    api.store
        .put_atomic(
            &file_key(hidden, MIX_FILE),
            &api.store.get(&file_key(id, MIX_FILE)).unwrap(),
        )
        .unwrap();
    api.get(&format!("/r/{hidden}/mix.mp3"), Some(&sam))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    assert!(!api.store.exists(&file_key(hidden, MIX_MP3_FILE)).unwrap());
    // Its owner gets it, made on the spot.
    let a = api.get(&format!("/r/{hidden}/mix.mp3"), Some(&hana)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(
        a.body,
        api.store.get(&file_key(hidden, MIX_MP3_FILE)).unwrap()
    );

    // The artwork: square RGB PNG of 1400 px, cached with a validator.
    let art = api.get("/feeds/hana.png", None).await;
    assert_eq!(art.status, StatusCode::OK);
    assert_eq!(art.content_type(), "image/png");
    assert_eq!(&art.body[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&art.body[16..24], &[0, 0, 5, 0x78, 0, 0, 5, 0x78]);
    let tag = art.headers[header::ETAG].to_str().unwrap().to_string();
    let again = api
        .call(
            Method::GET,
            "/feeds/hana.png",
            None,
            &[("if-none-match", &tag)],
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    api.get("/feeds/nobody.png", None)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    api.get("/feeds/hana.gif", None)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
}

/// A cookie session must send its CSRF token in `X-CSRF-Token` on every API write, and that is
/// checked before the body is read; a bearer token needs none.
#[tokio::test]
async fn api_writes_by_cookie_need_the_csrf_header_before_anything_else() {
    let api = api().await;
    let ana = api.user("ana").await;
    let (cookie_token, csrf) = (auth::secret(), auth::secret());
    api.catalog
        .create_session(
            &auth::digest(&cookie_token),
            ana.user.id,
            &csrf,
            Timestamp::now().add_millis(3_600_000),
        )
        .await
        .unwrap();
    let cookie = format!("{}={cookie_token}", auth::COOKIE_NAME);
    let json = || Some(("application/json", br#"{"name": "laptop"}"#.to_vec()));
    for (what, headers, body, want) in [
        ("no header", vec![("cookie", cookie.as_str())], json(), 403),
        (
            "a wrong token",
            vec![("cookie", cookie.as_str()), (auth::CSRF_HEADER, "forged")],
            json(),
            403,
        ),
        (
            "no header and a body that is not JSON",
            vec![("cookie", cookie.as_str())],
            Some(("text/plain", b"x".to_vec())),
            403,
        ),
        (
            "the session's token",
            vec![
                ("cookie", cookie.as_str()),
                (auth::CSRF_HEADER, csrf.as_str()),
            ],
            json(),
            201,
        ),
    ] {
        let r = api
            .call(Method::POST, "/api/v1/tokens", None, &headers, body)
            .await;
        assert_eq!(r.status.as_u16(), want, "{what}: {}", r.text());
        if want == 403 {
            r.error(StatusCode::FORBIDDEN, "csrf");
        }
    }
    // A bearer token cannot be forged by another site: no CSRF header needed.
    let r = api
        .send_json(
            Method::POST,
            "/api/v1/tokens",
            Some(&ana),
            serde_json::json!({"name": "ci"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[tokio::test]
async fn room_captions_keep_the_rooms_access_rules_and_say_when_there_are_none() {
    let api = api().await;
    let olga = api.user("olga").await;
    let otto = api.user("otto").await;
    let made = |v: Value| {
        let api = &api;
        let olga = &olga;
        async move {
            let a = api
                .send_json(Method::POST, "/api/v1/rooms", Some(olga), v)
                .await;
            assert_eq!(a.status, StatusCode::CREATED);
            a.json()
        }
    };
    // A room is made with captions offered unless its host says otherwise.
    let public = made(json!({"title": "Open"})).await;
    assert_eq!(public["captions"], true);
    let quiet = made(json!({"title": "Quiet", "captions": false})).await;
    assert_eq!(quiet["captions"], false);
    let private = made(json!({"title": "Secret", "visibility": "private"})).await;
    let captions = |r: &Value| format!("/api/v1/rooms/{}/captions", r["id"].as_str().unwrap());
    // Outsiders of a private room learn nothing; this server (no model) makes no captions.
    api.get(&captions(&private), Some(&otto))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    api.get(&captions(&private), None)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    api.get(&captions(&public), None)
        .await
        .error(StatusCode::CONFLICT, "captions_unavailable");
    api.get(&captions(&private), Some(&olga))
        .await
        .error(StatusCode::CONFLICT, "captions_unavailable");
    api.get("/api/v1/rooms/not-a-room/captions", None)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_parameter");
    api.get(&format!("/api/v1/rooms/{}/captions", RoomId::new()), None)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    let id: RoomId = public["id"].as_str().unwrap().parse().unwrap();
    api.catalog.end_room(id).await.unwrap();
    api.get(&captions(&public), None)
        .await
        .error(StatusCode::GONE, "ended");
    api.send_json(
        Method::POST,
        "/api/v1/rooms",
        Some(&olga),
        json!({"title": "Odd", "captions": "maybe"}),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "bad_body");
}
