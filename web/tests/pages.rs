//! The server-rendered pages in-process (`oneshot`): the replay's transcript read in turns,
//! what search hits and the replay list tell about each recording, dates people can read, the
//! host's feed linked, and a lobby that lists as live only rooms someone is in.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt as _;

use roomtape_core::{
    Catalog, Config, MemoryStore, Recording, RecordingId, RecordingSource, RecordingState, Room,
    RoomId, RoomState, Segment, Speaker, SpeakerId, Timestamp, Track, TrackId, Transcript,
    TranscriptSpeaker, User, Visibility,
};
use roomtape_search::SearchIndex;
use roomtape_web::{AppState, app};

struct Site {
    app: Router,
    catalog: Catalog,
    search: Arc<SearchIndex>,
    _dir: tempfile::TempDir,
}

async fn site() -> Site {
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
    let state = AppState::new(catalog.clone(), store, search.clone(), config, live);
    Site {
        app: app(state),
        catalog,
        search,
        _dir: dir,
    }
}

/// 5 December 2026, 14:30 UTC.
const DEC_5: i64 = 1_796_481_000_000;

impl Site {
    async fn user(&self, name: &str, display: &str) -> User {
        self.catalog.create_user(name, display, "x").await.unwrap()
    }

    /// A public recording of `owner`, 42 minutes long, with one track per speaker.
    async fn recording(
        &self,
        owner: &User,
        title: &str,
        state: RecordingState,
        speakers: &[&User],
    ) -> (RecordingId, Vec<Track>) {
        let id = RecordingId::new();
        let rec = Recording {
            id,
            room_id: None,
            title: title.into(),
            source: RecordingSource::Import,
            state,
            recovered: false,
            error: None,
            started_at: Timestamp(DEC_5),
            ended_at: Some(Timestamp(DEC_5 + 42 * 60_000)),
            duration_ms: Some(42 * 60_000),
            language: "en".into(),
            visibility: Visibility::Public,
            owner_id: Some(owner.id),
            description: String::new(),
        };
        let tracks: Vec<Track> = speakers
            .iter()
            .map(|u| {
                let t = TrackId::new();
                Track {
                    id: t,
                    recording_id: id,
                    speaker: Speaker {
                        id: SpeakerId::from(u.id.as_uuid()),
                        name: u.display_name.clone(),
                    },
                    file: roomtape_core::layout::track_file(t),
                    offset_ms: 0,
                    duration_ms: 42 * 60_000,
                }
            })
            .collect();
        self.catalog.create_recording(&rec, &tracks).await.unwrap();
        (id, tracks)
    }

    /// Stores a transcript of `lines` (speaker's track index, text), three seconds apart, and
    /// indexes it for search.
    async fn transcript(&self, id: RecordingId, tracks: &[Track], lines: &[(usize, &str)]) {
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
            segments: lines
                .iter()
                .enumerate()
                .map(|(i, (who, text))| Segment {
                    speaker_id: tracks[*who].speaker.id,
                    speaker: tracks[*who].speaker.name.clone(),
                    track_id: tracks[*who].id,
                    start_ms: i as i64 * 3000 + 250,
                    end_ms: i as i64 * 3000 + 2500,
                    language: Some("en".into()),
                    text: text.to_string(),
                    words: Vec::new(),
                    translation: None,
                })
                .collect(),
        };
        self.catalog.store_transcript(&t).await.unwrap();
        self.catalog
            .set_state(id, RecordingState::Transcribed)
            .await
            .unwrap();
        roomtape_search::indexer::drain(&self.search, &self.catalog)
            .await
            .unwrap();
    }

    async fn page(&self, uri: &str) -> String {
        let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let ct = res
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = axum::body::to_bytes(res.into_body(), 1 << 24)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert!(ct.starts_with("text/html"), "{uri}: {ct}");
        body
    }
}

/// The pieces of `html` between `open` and the next `close`, in order.
fn pieces<'a>(html: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(open) {
        let after = &rest[at + open.len()..];
        let end = after.find(close).unwrap_or(after.len());
        out.push(&after[..end]);
        rest = &after[end..];
    }
    out
}

#[tokio::test]
async fn a_speakers_consecutive_lines_are_one_turn_under_one_name_and_time() {
    let site = site().await;
    let ana = site.user("ana", "Ana Lima").await;
    let bo = site.user("bo", "Bo Chen").await;
    let (id, tracks) = site
        .recording(&ana, "Harbour talk", RecordingState::Recorded, &[&ana, &bo])
        .await;
    site.transcript(
        id,
        &tracks,
        &[
            (0, "Good morning."),
            (0, "Welcome to the harbour."),
            (0, "Our guest is Bo."),
            (1, "Thank you for having me."),
            (0, "Let us begin."),
            (0, "First question."),
        ],
    )
    .await;
    let html = site.page(&format!("/r/{id}")).await;
    let transcript = pieces(&html, r#"<ol id="transcript""#, "</section>")[0];

    // Three turns: Ana (lines 0–2), Bo (3), Ana (4–5), each headed by its speaker once.
    let turns = pieces(transcript, r#"<li class="turn""#, r#"<li class="turn""#);
    assert_eq!(turns.len(), 3, "{transcript}");
    let names: Vec<&str> = turns
        .iter()
        .map(|t| pieces(t, r#"<span class="who"#, "</span>")[0])
        .map(|w| &w[w.find('>').unwrap() + 1..])
        .collect();
    assert_eq!(names, ["Ana Lima", "Bo Chen", "Ana Lima"]);
    for t in &turns {
        assert_eq!(t.matches(r#"class="who"#).count(), 1, "{t}");
    }
    // The head shows the turn's start, and plays from it (a plain link without the script).
    assert!(
        turns[2].contains(r#"href="?t=12.250" data-start="12250">0:12</a>"#),
        "{}",
        turns[2]
    );
    // Each line keeps its index, times, speaker, its own play button and pick box.
    let lines: Vec<Vec<&str>> = turns
        .iter()
        .map(|t| pieces(t, r#"<li class="line""#, "</li>"))
        .collect();
    assert_eq!(
        lines.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 1, 2],
        "{transcript}"
    );
    for (i, line) in lines.iter().flatten().enumerate() {
        let start = i * 3000 + 250;
        assert!(
            line.starts_with(&format!(
                r#" id="line-{i}" data-i="{i}" data-start="{start}" data-end="{}""#,
                i * 3000 + 2500
            )),
            "{line}"
        );
        assert!(
            line.contains(r#"<input class="pick" type="checkbox""#),
            "{line}"
        );
        assert!(
            line.contains(r#"<button class="time" type="button""#),
            "{line}"
        );
        assert!(
            !line.contains("who"),
            "the name is the turn's, not the line's: {line}"
        );
    }
    assert!(lines[1][0].contains(r#"data-speaker="1""#));
    assert!(lines[2][1].contains(r#"data-speaker="0""#));
    assert!(lines[2][1].contains("First question."));
}

/// `html` with every `datetime="…"` attribute taken out: what is left must not show raw ISO.
fn without_datetimes(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(at) = rest.find(r#"datetime=""#) {
        out.push_str(&rest[..at]);
        let after = &rest[at + 10..];
        rest = &after[after.find('"').unwrap() + 1..];
    }
    out.push_str(rest);
    out
}

/// `<time datetime="2026-12-05T14:30:00Z" …>5 Dec 2026</time>` appears in `html`.
#[track_caller]
fn shows_the_day(html: &str) {
    assert!(
        html.contains(r#"<time datetime="2026-12-05T14:30:00Z""#)
            && html.contains(">5 Dec 2026</time>"),
        "{html}"
    );
    assert!(!without_datetimes(html).contains("2026-12-05"), "{html}");
}

#[tokio::test]
async fn search_hits_and_replays_say_when_how_long_who_and_where_the_transcript_is() {
    let site = site().await;
    let ana = site.user("ana", "Ana Lima").await;
    let bo = site.user("bo", "Bo Chen").await;
    let (talk, tracks) = site
        .recording(&ana, "Harbour talk", RecordingState::Recorded, &[&ana, &bo])
        .await;
    site.transcript(
        talk,
        &tracks,
        &[
            (0, "The harbour opens at dawn."),
            (1, "And the harbour closes late."),
        ],
    )
    .await;
    let (waiting, _) = site
        .recording(&ana, "Market day", RecordingState::Recorded, &[&ana])
        .await;
    let (bos, _) = site
        .recording(&bo, "Bo alone", RecordingState::Transcribing, &[&bo])
        .await;

    // A search hit: the recording's day (readable, exact in datetime), length and speakers.
    let html = site.page("/search?q=harbour").await;
    let hit = pieces(&html, r#"<section class="card result">"#, "</section>");
    assert_eq!(hit.len(), 1, "{html}");
    let meta = pieces(hit[0], r#"<p class="muted meta">"#, "</p>")[0];
    shows_the_day(meta);
    assert!(meta.contains("42 min"), "{meta}");
    assert!(meta.contains("Ana Lima and Bo Chen"), "{meta}");

    // The list: each recording's speakers, transcript state, host; no raw dates.
    let html = site.page("/replays").await;
    shows_the_day(&html);
    let items = pieces(&html, r#"<li class="card replay-item">"#, "</li>");
    assert_eq!(items.len(), 3, "{html}");
    let item = |id: RecordingId| {
        *items
            .iter()
            .find(|i| i.contains(&format!(r#"href="/r/{id}""#)))
            .unwrap()
    };
    assert!(item(talk).contains("Speakers: Ana Lima and Bo Chen"));
    assert!(item(talk).contains("Transcript ready"));
    assert!(item(talk).contains("42 min"));
    assert!(item(talk).contains(r#"by <a href="/replays?host=ana">Ana Lima</a>"#));
    assert!(item(waiting).contains("Speakers: Ana Lima"));
    assert!(item(waiting).contains("Waiting to be transcribed"));
    assert!(item(bos).contains("Transcribing…"));
    assert!(item(bos).contains(r#"by <a href="/replays?host=bo">Bo Chen</a>"#));
    assert!(!html.contains("application/rss+xml"), "no host, no feed");

    // One host's: only theirs, and their podcast feed linked for people and feed readers.
    let html = site.page("/replays?host=ana").await;
    assert_eq!(
        pieces(&html, r#"<li class="card replay-item">"#, "</li>").len(),
        2
    );
    assert!(!html.contains("Bo alone"));
    assert!(html.contains("Replays by Ana Lima"));
    let head = pieces(&html, "<head>", "</head>")[0];
    assert!(
        head.contains(r#"<link rel="alternate" type="application/rss+xml" title="Ana Lima&#39;s replays (podcast)" href="/feeds/ana.xml">"#)
            || head.contains(r#"<link rel="alternate" type="application/rss+xml" title="Ana Lima's replays (podcast)" href="/feeds/ana.xml">"#),
        "{head}"
    );
    let body = pieces(&html, "<main>", "</main>")[0];
    assert!(
        body.contains(r#"<a href="/feeds/ana.xml" type="application/rss+xml">Podcast feed</a>"#)
    );
    let req = Request::builder()
        .uri("/replays?host=nobody")
        .body(Body::empty())
        .unwrap();
    let res = site.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // The replay: its day, length, and its host with their feed.
    let html = site.page(&format!("/r/{talk}")).await;
    let meta = pieces(&html, r#"<p class="muted" id="meta">"#, "</p>")[0];
    shows_the_day(meta);
    assert!(meta.contains("42 min"), "{meta}");
    assert!(
        meta.contains(r#"by <a href="/replays?host=ana">Ana Lima</a>"#),
        "{meta}"
    );
    assert!(
        meta.contains(r#"<a href="/feeds/ana.xml" type="application/rss+xml">podcast feed</a>"#)
    );
    let head = pieces(&html, "<head>", "</head>")[0];
    assert!(
        head.contains(r#"type="application/rss+xml""#) && head.contains(r#"href="/feeds/ana.xml""#)
    );
}

impl Site {
    /// An open public room of `host`, created `age_ms` ago, scheduled at `scheduled` if given.
    async fn room(&self, host: &User, title: &str, age_ms: i64, scheduled: Option<i64>) -> Room {
        let now = Timestamp::now();
        let room = Room {
            id: RoomId::new(),
            title: title.into(),
            description: String::new(),
            language: "en".into(),
            scheduled_at: scheduled.map(|ms| now.add_millis(ms)),
            visibility: Visibility::Public,
            host_id: Some(host.id),
            state: RoomState::Open,
            invite_token: None,
            captions: true,
            created_at: now.add_millis(-age_ms),
            ended_at: None,
        };
        self.catalog.create_room(&room).await.unwrap();
        room
    }
}

const MIN: i64 = 60_000;

#[tokio::test]
async fn the_lobby_lists_as_live_only_rooms_someone_is_in_and_refreshes_itself() {
    let site = site().await;
    let ana = site.user("ana", "Ana Lima").await;
    // Left without ending, an hour ago: nobody is in it.
    let abandoned = site.room(&ana, "Abandoned talk", 60 * MIN, None).await;
    // Its time came an hour ago and nobody ever came.
    let missed = site
        .room(&ana, "Missed talk", 2 * 60 * MIN, Some(-60 * MIN))
        .await;
    // Just made; its host is on the way.
    let fresh = site.room(&ana, "Fresh talk", MIN, None).await;
    // Its time came five minutes ago.
    let late = site.room(&ana, "Late talk", 60 * MIN, Some(-5 * MIN)).await;
    // Next week.
    let later = site
        .room(&ana, "Later talk", MIN, Some(7 * 24 * 60 * MIN))
        .await;

    let html = site.page("/").await;
    let live = pieces(&html, r#"<ul class="rooms" id="live-rooms">"#, "</ul>")[0];
    let upcoming = pieces(&html, r#"<ul class="rooms" id="upcoming-rooms">"#, "</ul>")[0];
    assert!(!live.contains("<li"), "nobody is in any room: {live}");
    assert!(html.contains("Nobody is talking right now."));
    assert!(!html.contains(" 0 here"), "{html}");
    for gone in [&abandoned, &missed] {
        assert!(
            !html.contains(&gone.id.to_string()),
            "{}: {html}",
            gone.title
        );
    }
    let at = |r: &Room| {
        upcoming
            .find(&format!(r#"data-room="{}""#, r.id))
            .unwrap_or_else(|| panic!("{} not upcoming: {upcoming}", r.title))
    };
    // About to start first, then the scheduled ones, with their time readable and exact.
    assert!(
        at(&fresh) < at(&later) && at(&late) < at(&later),
        "{upcoming}"
    );
    let later_item = &upcoming[at(&later)..];
    let later_item = &later_item[..later_item.find("</li>").unwrap()];
    assert!(later_item.contains("<time datetime=\""), "{later_item}");
    assert!(later_item.contains(" UTC</time>"), "{later_item}");
    let iso_day = later.scheduled_at.unwrap().to_rfc3339()[..10].to_string();
    assert!(
        later_item.contains(&iso_day),
        "exact in datetime: {later_item}"
    );
    assert!(
        !without_datetimes(later_item).contains(&iso_day),
        "{later_item}"
    );
    let fresh_item = &upcoming[at(&fresh)..];
    assert!(fresh_item.starts_with(&format!(r#"data-room="{}""#, fresh.id)));
    assert!(fresh_item[..fresh_item.find("</li>").unwrap()].contains("Starting — nobody here yet"));

    // The page refreshes its lists by itself, with a script of our own (the CSP allows no
    // other), which is served.
    assert!(html.contains(r#"<div id="lobby" data-refresh-seconds="15">"#));
    assert!(html.contains(r#"<script src="/static/lobby.js" defer></script>"#));
    let req = Request::builder()
        .uri("/static/lobby.js")
        .body(Body::empty())
        .unwrap();
    let res = site.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let js = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let js = String::from_utf8(js.to_vec()).unwrap();
    assert!(js.contains("getElementById(\"lobby\")") && js.contains("setInterval"));
}

#[test]
fn a_room_is_live_while_someone_is_in_it_and_listed_while_about_to_start() {
    use roomtape_web::rooms::{LobbySlot, lobby_slot};
    let now = Timestamp(DEC_5);
    let room = |age_min: i64, scheduled_min: Option<i64>| Room {
        id: RoomId::new(),
        title: "t".into(),
        description: String::new(),
        language: "en".into(),
        scheduled_at: scheduled_min.map(|m| now.add_millis(m * MIN)),
        visibility: Visibility::Public,
        host_id: None,
        state: RoomState::Open,
        invite_token: None,
        captions: true,
        created_at: now.add_millis(-age_min * MIN),
        ended_at: None,
    };
    assert_eq!(lobby_slot(&room(600, None), 3, now), LobbySlot::Live(3));
    assert_eq!(lobby_slot(&room(1, Some(60)), 1, now), LobbySlot::Live(1));
    assert_eq!(lobby_slot(&room(9, None), 0, now), LobbySlot::Starting);
    assert_eq!(lobby_slot(&room(10, None), 0, now), LobbySlot::Unlisted);
    assert_eq!(
        lobby_slot(&room(600, Some(60)), 0, now),
        LobbySlot::Upcoming
    );
    assert_eq!(
        lobby_slot(&room(600, Some(-29)), 0, now),
        LobbySlot::Starting
    );
    assert_eq!(
        lobby_slot(&room(600, Some(-30)), 0, now),
        LobbySlot::Unlisted
    );
    // Scheduled in the past when it was made: its wait starts when it was made.
    assert_eq!(
        lobby_slot(&room(5, Some(-600)), 0, now),
        LobbySlot::Starting
    );
}

/// The body of `uri` as JSON, with its `Cache-Control`.
async fn json(site: &Site, uri: &str) -> (serde_json::Value, String) {
    let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let res = site.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{uri}");
    let cache = res
        .headers()
        .get(header::CACHE_CONTROL)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (serde_json::from_slice(&body).unwrap(), cache)
}

#[tokio::test]
async fn a_replay_waiting_for_its_transcript_says_how_far_it_is_and_what_is_left() {
    let site = site().await;
    let ana = site.user("ana", "Ana Lima").await;
    let (id, tracks) = site
        .recording(&ana, "Night shift", RecordingState::Recorded, &[&ana])
        .await;
    let uri = format!("/r/{id}");
    let status = format!("/r/{id}/status.json");

    // Waiting in the queue: no bare "No transcript yet", and a live region the script updates.
    let html = site.page(&uri).await;
    assert!(!html.contains("No transcript yet"), "{html}");
    let el = pieces(&html, "id=\"transcript-status\"", "</p>");
    assert_eq!(el.len(), 1, "{html}");
    assert!(el[0].contains("role=\"status\""), "{}", el[0]);
    assert!(el[0].contains("data-state=\"recorded\""), "{}", el[0]);
    assert!(el[0].contains("Waiting to be transcribed"), "{}", el[0]);
    let (s, cache) = json(&site, &status).await;
    assert_eq!(cache, "no-store", "a poller must never see a cached answer");
    assert_eq!(s["state"], "recorded");
    assert!(s["progress"].is_null() && s["eta_seconds"].is_null(), "{s}");

    // A worker takes it and reports half done: the page and the JSON say so, with an estimate.
    let job = site.catalog.enqueue_transcription(id).await.unwrap();
    let leased = site
        .catalog
        .lease_job("w1", 60_000, Some(job))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(leased.id, job);
    assert!(
        site.catalog
            .renew_lease(job, "w1", 60_000, 0.5)
            .await
            .unwrap()
    );
    let (s, _) = json(&site, &status).await;
    assert_eq!(s["state"], "transcribing", "{s}");
    assert_eq!(s["progress"], 0.5, "{s}");
    assert!(s["eta_seconds"].as_u64().is_some(), "{s}");
    let text = s["text"].as_str().unwrap();
    assert!(text.starts_with("Transcribing: 50% done, "), "{text}");
    let html = site.page(&uri).await;
    assert!(html.contains("50% done"), "{html}");

    // Done: the JSON says transcribed (the script then reloads into the transcript).
    site.transcript(id, &tracks, &[(0, "Good evening and welcome.")])
        .await;
    let (s, _) = json(&site, &status).await;
    assert_eq!(s["state"], "transcribed", "{s}");
    let html = site.page(&uri).await;
    assert!(!html.contains("transcript-status"), "{html}");
    assert!(html.contains("Good evening and welcome."));
}

/// The `content` of the `<meta property|name="key">` tag in `html`.
fn meta<'a>(html: &'a str, key: &str) -> Option<&'a str> {
    ["property", "name"].iter().find_map(|attr| {
        let tag = format!(r#"<meta {attr}="{key}" content=""#);
        let at = html.find(&tag)? + tag.len();
        Some(&html[at..at + html[at..].find('"')?])
    })
}

/// Issue 15, item 9: a shared replay or quote link unfolds into a preview in chat apps and
/// social networks (Open Graph and Twitter card tags): the quote's words, who said them, where.
#[tokio::test]
async fn a_shared_quote_link_previews_its_words_and_who_said_them() {
    let site = site().await;
    let ana = site.user("ana", "Ana Lima").await;
    let bo = site.user("bo", "Bo Chen").await;
    let (id, tracks) = site
        .recording(&ana, "Harbour talk", RecordingState::Recorded, &[&ana, &bo])
        .await;
    site.transcript(
        id,
        &tracks,
        &[
            (0, "Good morning."),
            (
                1,
                r#"The harbour opens in "May" <script>alert(1)</script>."#,
            ),
            (1, "And the ferry runs daily."),
        ],
    )
    .await;
    let html = site.page(&format!("/r/{id}?q=1-2")).await;
    let title = meta(&html, "og:title").expect("og:title");
    assert!(
        title.starts_with("“The harbour opens in &quot;May&quot; &lt;script&gt;"),
        "{title}"
    );
    assert!(
        title.ends_with("And the ferry runs daily.” — Bo Chen"),
        "{title}"
    );
    assert!(!html.contains("<script>alert"), "the quote is escaped");
    assert_eq!(
        meta(&html, "og:description"),
        Some("Bo Chen in “Harbour talk”, at 0:03–0:08")
    );
    assert_eq!(
        meta(&html, "og:url"),
        Some(format!("http://localhost/r/{id}?q=1-2").as_str())
    );
    assert_eq!(meta(&html, "og:type"), Some("article"));
    assert_eq!(meta(&html, "twitter:card"), Some("summary"));
    assert_eq!(
        meta(&html, "og:image"),
        Some("http://localhost/feeds/ana.png"),
        "the host's artwork"
    );
    // The replay itself: its title, and who is in it.
    let html = site.page(&format!("/r/{id}")).await;
    assert_eq!(meta(&html, "og:title"), Some("Harbour talk"));
    assert_eq!(
        meta(&html, "og:description"),
        Some("A replay with Ana Lima and Bo Chen, 42 min")
    );
    // A quote that is not there: the replay's own preview.
    let html = site.page(&format!("/r/{id}?q=2-9")).await;
    assert_eq!(meta(&html, "og:title"), Some("Harbour talk"));
}

/// Issue 15, item 7: icons are drawn, not left to an emoji font (which may be missing).
#[tokio::test]
async fn no_page_depends_on_an_emoji_font() {
    let site = site().await;
    let ana = site.user("ana", "Ana Lima").await;
    let (id, tracks) = site
        .recording(&ana, "Harbour talk", RecordingState::Recorded, &[&ana])
        .await;
    site.transcript(id, &tracks, &[(0, "Good morning harbour.")])
        .await;
    for uri in [
        format!("/r/{id}"),
        "/search?q=harbour".into(),
        "/replays".into(),
        "/".into(),
    ] {
        let html = site.page(&uri).await;
        let emoji: Vec<char> = html
            .chars()
            .filter(|c| matches!(*c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x23E9..=0x23FA))
            .collect();
        assert!(emoji.is_empty(), "{uri} draws {emoji:?} with an emoji font");
    }
    for (name, js) in [
        ("room.js", include_str!("../static/room.js")),
        ("replay.js", include_str!("../static/replay.js")),
    ] {
        assert!(
            !js.chars()
                .any(|c| matches!(c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x23E9..=0x23FA)),
            "{name} writes emoji"
        );
    }
}

/// Issue 19: a line's English translation is shown under it (marked as English), can be
/// hidden, downloaded, and found by search with the hit showing both.
#[tokio::test]
async fn a_translated_line_reads_in_both_languages_and_is_found_in_english() {
    let site = site().await;
    let ana = site.user("ana", "Ana Lima").await;
    let (id, tracks) = site
        .recording(&ana, "Puente", RecordingState::Recorded, &[&ana])
        .await;
    site.transcript(
        id,
        &tracks,
        &[(0, "Buenos días."), (0, "El puente abre en mayo.")],
    )
    .await;
    site.catalog
        .correct_translation(id, 1, "The bridge opens in May.")
        .await
        .unwrap();
    roomtape_search::indexer::drain(&site.search, &site.catalog)
        .await
        .unwrap();
    let html = site.page(&format!("/r/{id}")).await;
    assert!(
        html.contains(r#"<span class="translation" lang="en"><span class="visually-hidden">In English: </span>The bridge opens in May.</span>"#),
        "{html}"
    );
    assert!(html.contains(r#"<span class="text" lang="en">El puente abre en mayo.</span>"#));
    assert!(html.contains(r#"id="show-translations""#));
    assert!(html.contains(&format!("/r/{id}/transcript.en.vtt")));
    let req = Request::builder()
        .uri(format!("/r/{id}/transcript.en.vtt"))
        .body(Body::empty())
        .unwrap();
    let res = site.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let vtt = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let vtt = String::from_utf8(vtt.to_vec()).unwrap();
    assert!(vtt.starts_with("WEBVTT\nLanguage: en\n"), "{vtt}");
    assert!(vtt.contains("The bridge opens in May.") && vtt.contains("Buenos días."));
    // Found by its English, the hit showing the original and the marked translation.
    let html = site.page("/search?q=bridge").await;
    assert!(html.contains("El puente abre en mayo."), "{html}");
    assert!(html.contains("<mark>bridge</mark>"), "{html}");
}
