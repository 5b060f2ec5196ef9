//! Replays end to end: a two-speaker room with hostile title and names, imported for a host and
//! transcribed by the real tiny.en model; the access matrix (anonymous, another user, the
//! speaker, the host, an admin × private, unlisted, public × page, API, search, feed,
//! downloads); byte ranges; corrections through the host's forms, re-indexed; hostile text shown
//! as text in the markup, snippets, WebVTT and the feed (parsed as XML); then headless Chromium:
//! `?t=30` opens at 30 s, a click on a line seeks there, the current line follows playback, a
//! shared quote plays exactly its span, and no injected script runs.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};

use crate::browser::{Driver, browser};
use crate::support::*;

const TITLE: &str = "<script>window.pwned='title'</script> Town hall & \"more\"";
const HOST_NAME: &str = "\"><img src=x onerror=\"window.pwned='host'\">Hana";
const GUEST_NAME: &str = "<script>window.pwned='guest'</script>Sam";
const HOSTILE_LINE: &str =
    "<script>window.pwned='line'</script> \"><img src=x onerror=\"window.pwned='img'\"> zebra";

fn script() -> Vec<(usize, f64, &'static str)> {
    vec![
        (0, 1.0, "Good evening and welcome to the town hall."),
        (1, 6.0, "Thank you for having me here tonight."),
        (0, 11.0, "Our first topic is the new library."),
        (1, 16.0, "The library will open in the spring."),
        (0, 21.0, "What about the bus routes to the station?"),
        (1, 26.0, "Two new bus routes start in March."),
        (0, 31.0, "That is wonderful news for everyone."),
        (1, 36.0, "We also plan a bicycle path along the river."),
        (0, 41.0, "Thank you all for coming tonight."),
    ]
}

/// Logs in through the form; returns the session cookie.
fn login(addr: &str, user: &str) -> String {
    let body = format!("username={user}&password=correct+horse+battery");
    let r = http(
        addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    assert!(r.status == 303 || r.status == 302, "login: {}", r.status);
    let cookie = r.header("set-cookie").expect("a session cookie");
    cookie.split(';').next().unwrap().to_string()
}

/// The CSRF token in a page's forms.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"_csrf\" value=\"").expect("a CSRF field") + 20;
    page[at..at + page[at..].find('"').unwrap()].to_string()
}

fn form(addr: &str, cookie: &str, path: &str, fields: &[(&str, &str)]) -> Reply {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", url_encode(v).replace("%20", "+")))
        .collect();
    http(
        addr,
        "POST",
        path,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", cookie),
        ],
        body.join("&").as_bytes(),
    )
}

fn get(addr: &str, path: &str, token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = Vec::new();
    if let Some(a) = &auth {
        h.push(("Authorization", a.as_str()));
    }
    http(addr, "GET", path, &h, b"")
}

fn search_total(addr: &str, q: &str, token: Option<&str>) -> u64 {
    let r = get(addr, &format!("/api/v1/search?q={}", url_encode(q)), token);
    assert_eq!(r.status, 200, "search: {}", r.text());
    r.json()["total"].as_u64().unwrap()
}

#[test]
fn replays_are_published_searched_fed_and_played_with_access_rules() {
    let env = Env::new();
    let root = user_with_token(&env, "root", "Root Admin");
    let hana = user_with_token(&env, "hana", "Hana");
    let sam = user_with_token(&env, "sam", "Sam");
    let otto = user_with_token(&env, "otto", "Otto");

    let (room, lines) = make_room(&env, &["en-us+m3", "en-us+f4"], &script(), 45.0);
    let out = env.json(&[
        "import",
        room.to_str().unwrap(),
        "--split-channels",
        "--title",
        TITLE,
        "--speaker",
        HOST_NAME,
        "--speaker",
        GUEST_NAME,
        "--owner",
        "hana",
        "--speaker-account",
        "hana",
        "--speaker-account",
        "sam",
        "--language",
        "en",
    ]);
    let id = out["id"].as_str().unwrap().to_string();
    let tracks: Vec<String> = out["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["track_id"].as_str().unwrap().to_string())
        .collect();
    env.ok(&[
        "transcribe",
        &id,
        "--model",
        &test_model(),
        "--threads",
        "1",
    ]);
    let (server, addr) = env.serve();

    // The host corrects a line (hostile text on purpose) and a name through the forms.
    let cookie = login(&addr, "hana");
    let edit = http(
        &addr,
        "GET",
        &format!("/r/{id}/edit"),
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(edit.status, 200);
    let csrf = csrf_of(&edit.text());
    let r = form(
        &addr,
        &cookie,
        &format!("/r/{id}/lines/2"),
        &[("_csrf", &csrf), ("text", HOSTILE_LINE)],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let r = form(
        &addr,
        &cookie,
        &format!("/r/{id}/lines/2"),
        &[("_csrf", "forged"), ("text", "x")],
    );
    assert_eq!(r.status, 403, "a forged CSRF token is refused");
    // Another user cannot post the host's forms.
    let otto_cookie = login(&addr, "otto");
    let r = form(
        &addr,
        &otto_cookie,
        &format!("/r/{id}/visibility"),
        &[("_csrf", &csrf), ("visibility", "public")],
    );
    assert!(
        r.status == 403 || r.status == 404,
        "otto publishing: {}",
        r.status
    );

    // The access matrix.
    let callers: [(&str, Option<&str>); 5] = [
        ("anonymous", None),
        ("otto", Some(&otto)),
        ("sam", Some(&sam)),
        ("hana", Some(&hana)),
        ("root", Some(&root)),
    ];
    for vis in ["private", "unlisted", "public"] {
        env.ok(&["recordings", "publish", &id, "--visibility", vis]);
        for (who, token) in callers {
            let insider = matches!(who, "sam" | "hana" | "root");
            let view = insider || vis != "private";
            let code = if view { 200 } else { 404 };
            let ctx = format!("{who} × {vis}");
            for path in [
                format!("/r/{id}"),
                format!("/r/{id}/mix.opus"),
                format!("/r/{id}/peaks.json"),
                format!("/r/{id}/transcript.vtt"),
                format!("/r/{id}/transcript.json"),
                format!("/api/v1/recordings/{id}"),
                format!("/api/v1/recordings/{id}/transcript?format=srt"),
            ] {
                let r = get(&addr, &path, token);
                assert_eq!(r.status, code, "{ctx}: {path}: {}", r.text());
            }
            // Hana's own track: hers and the admin's; Sam's track: also Sam's.
            let manage = matches!(who, "hana" | "root");
            for (i, t) in tracks.iter().enumerate() {
                let own = manage || (who == "sam" && i == 1);
                let want = if !view {
                    404
                } else if own {
                    200
                } else {
                    403
                };
                let r = get(&addr, &format!("/r/{id}/tracks/{t}.opus"), token);
                assert_eq!(r.status, want, "{ctx}: track {i}");
            }
            // Search: public for everyone; otherwise only for the insiders.
            let want = if vis == "public" || insider { 1 } else { 0 };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let n = search_total(&addr, "\"bicycle path\"", token);
                if n == want {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{ctx}: search found {n}, not {want}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            // Lists: /replays and the API list show it when public or the caller's own.
            let listed = vis == "public" || insider;
            let page = get(&addr, "/replays", token).text();
            assert_eq!(page.contains(&id), listed, "{ctx}: /replays");
            let api = get(&addr, "/api/v1/recordings", token);
            assert_eq!(api.status, 200);
            assert_eq!(api.text().contains(&id), listed, "{ctx}: API list");
        }
        // The feed is public: only public replays, for everyone.
        let feed = get(&addr, "/feeds/hana.xml", None);
        assert_eq!(feed.status, 200);
        assert_eq!(feed.text().contains(&id), vis == "public", "feed × {vis}");
    }
    assert_eq!(get(&addr, "/feeds/nobody.xml", None).status, 404);

    // Byte ranges and validators on the mix.
    let mix = std::fs::read(env.archive(&id).join("mix.opus")).unwrap();
    let r = http(
        &addr,
        "GET",
        &format!("/r/{id}/mix.opus"),
        &[("Range", "bytes=0-99")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-type"), Some("audio/ogg"));
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-99/{}", mix.len()).as_str())
    );
    assert_eq!(r.body, mix[..100]);
    let r = http(
        &addr,
        "GET",
        &format!("/r/{id}/mix.opus"),
        &[("Range", "bytes=-50")],
        b"",
    );
    assert_eq!(r.body, mix[mix.len() - 50..]);
    let r = http(
        &addr,
        "GET",
        &format!("/r/{id}/mix.opus"),
        &[("Range", &format!("bytes={}-", mix.len()))],
        b"",
    );
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{}", mix.len()).as_str())
    );
    assert_eq!(
        http(
            &addr,
            "GET",
            &format!("/r/{id}/mix.opus"),
            &[("Range", "bytes=9-1")],
            b""
        )
        .status,
        416
    );
    let whole = get(&addr, &format!("/r/{id}/mix.opus"), None);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, mix);
    assert!(whole.header("cache-control").unwrap().contains("public"));
    let etag = whole.header("etag").unwrap().to_string();
    let r = http(
        &addr,
        "GET",
        &format!("/r/{id}/mix.opus"),
        &[("If-None-Match", &etag)],
        b"",
    );
    assert_eq!(r.status, 304);

    // Hostile text is text: in the page markup, search snippets, WebVTT and the feed.
    let page = get(&addr, &format!("/r/{id}"), None).text();
    for raw in ["<script>window", "<img src=x", "onerror=\"window"] {
        assert!(!page.contains(raw), "the replay page holds raw {raw:?}");
    }
    assert!(
        page.contains("&lt;script&gt;window.pwned='title'"),
        "the title is shown as text"
    );
    assert!(page.contains("&lt;img src=x"), "names are shown as text");
    let r = get(&addr, "/api/v1/search?q=zebra", None).json();
    let snippet = r["recordings"][0]["hits"][0]["snippet_html"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        snippet.contains("&lt;script&gt;") && !snippet.contains("<script"),
        "{snippet}"
    );
    let results = get(&addr, "/search?q=zebra", None).text();
    assert!(
        !results.contains("<script>window") && results.contains("<mark>zebra</mark>"),
        "{results}"
    );
    let vtt = get(&addr, &format!("/r/{id}/transcript.vtt"), None).text();
    assert!(vtt.starts_with("WEBVTT"));
    assert!(!vtt.contains("<script") && !vtt.contains("<img"), "{vtt}");
    // The feed, checked offline against what Apple Podcasts and Podcasting 2.0 require: the
    // channel's required tags, an enclosure of a type Apple takes (the MP3 mix, its length
    // the file's), the Opus mix beside it, square RGB artwork of 1400–3000 px, the host as
    // host and the guest as guest; and the MP3 itself decodes to the recording's length.
    let feed = env.path("feed.xml");
    std::fs::write(&feed, get(&addr, "/feeds/hana.xml", None).body).unwrap();
    let art = env.path("art.png");
    let art_answer = get(&addr, "/feeds/hana.png", None);
    assert_eq!(art_answer.status, 200);
    assert_eq!(art_answer.header("content-type"), Some("image/png"));
    std::fs::write(&art, &art_answer.body).unwrap();
    let mp3_path = env.path("mix.mp3");
    let mp3 = get(&addr, &format!("/r/{id}/mix.mp3"), None);
    assert_eq!(mp3.status, 200, "{}", mp3.text());
    assert_eq!(mp3.header("content-type"), Some("audio/mpeg"));
    std::fs::write(&mp3_path, &mp3.body).unwrap();
    let duration_ms: i64 =
        get(&addr, &format!("/api/v1/recordings/{id}"), None).json()["duration_ms"]
            .as_i64()
            .unwrap();
    let check = format!(
        r#"
import struct, xml.etree.ElementTree as ET, av
NS = {{"podcast": "https://podcastindex.org/namespace/1.0",
      "itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd",
      "atom": "http://www.w3.org/2005/Atom"}}
root = ET.parse({feed:?}).getroot()
assert root.tag == "rss" and root.get("version") == "2.0"
ch = root.find("channel")
# Apple's required channel tags, and RSS's.
for tag in ["title", "description", "link", "language", "itunes:image", "itunes:category",
            "itunes:explicit", "itunes:author", "atom:link", "podcast:guid"]:
    assert ch.find(tag, NS) is not None, "channel lacks " + tag
assert ch.findtext("itunes:explicit", namespaces=NS) in ("true", "false")
assert "/feeds/" not in ch.findtext("link"), "the channel link is a page, not the feed"
assert ch.find("atom:link", NS).get("rel") == "self"
assert len(ch.findtext("language")) in (2, 3, 5), ch.findtext("language")
art = ch.find("itunes:image", NS).get("href")
assert art.startswith("http") and art.endswith("/feeds/hana.png"), art
png = open({art:?}, "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n"
w, h, depth, colour = struct.unpack(">IIBB", png[16:26])
assert w == h and 1400 <= w <= 3000, (w, h)
assert depth == 8 and colour == 2, "8-bit RGB, no alpha"
assert len(png) < 512 * 1024
items = ch.findall("item")
assert len(items) == 1, len(items)
item = items[0]
for tag in ["title", "enclosure", "guid", "pubDate", "description", "itunes:duration"]:
    assert item.find(tag, NS) is not None, "item lacks " + tag
assert item.findtext("title") == {TITLE:?}, item.findtext("title")
assert item.findtext("description").strip(), "episode notes"
enc = item.find("enclosure")
assert enc.get("type") in ("audio/mpeg", "audio/x-m4a", "audio/mp4"), enc.attrib
assert enc.get("type") == "audio/mpeg" and enc.get("url").endswith("/r/{id}/mix.mp3"), enc.attrib
assert int(enc.get("length")) == {mp3_len}, enc.attrib
alts = {{a.get("type"): a for a in item.findall("podcast:alternateEnclosure", NS)}}
assert set(alts) == {{"audio/mpeg", "audio/ogg; codecs=opus"}}, list(alts)
opus = alts["audio/ogg; codecs=opus"]
assert int(opus.get("length")) == {len}
assert opus.find("podcast:source", NS).get("uri").endswith("/r/{id}/mix.opus")
assert alts["audio/mpeg"].get("default") == "true"
kinds = sorted(t.get("type") for t in item.findall("podcast:transcript", NS))
assert kinds == ["application/json", "application/x-subrip", "text/vtt"], kinds
people = {{(p.get("role"), p.text) for p in item.findall("podcast:person", NS)}}
assert people == {{("host", {HOST_NAME:?}), ("guest", {GUEST_NAME:?})}}, people
# The MP3 plays: MPEG audio of the recording's length.
with av.open({mp3_path:?}) as f:
    s = f.streams.audio[0]
    assert s.codec_context.name in ("mp3", "mp3float"), s.codec_context.name
    n = sum(fr.samples for fr in f.decode(s))
    secs = n / s.codec_context.sample_rate
assert abs(secs - {duration_ms} / 1000) < 0.2, (secs, {duration_ms})
print("feed ok")
"#,
        len = mix.len(),
        mp3_len = mp3.body.len(),
    );
    let out = std::process::Command::new(test_python())
        .args(["-c", &check])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "feed check: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A renamed speaker is re-indexed.
    let edit = http(
        &addr,
        "GET",
        &format!("/r/{id}/edit"),
        &[("Cookie", &cookie)],
        b"",
    );
    let csrf = csrf_of(&edit.text());
    let sam_id =
        get(&addr, &format!("/api/v1/recordings/{id}"), Some(&hana)).json()["tracks"][1]["speaker"]
            ["id"]
            .as_str()
            .unwrap()
            .to_string();
    let r = form(
        &addr,
        &cookie,
        &format!("/r/{id}/speakers/{sam_id}"),
        &[("_csrf", &csrf), ("name", "Samuel Okafor")],
    );
    assert_eq!(r.status, 303);
    let deadline = Instant::now() + Duration::from_secs(10);
    while search_total(&addr, "speaker:\"Samuel Okafor\" library", None) == 0 {
        assert!(
            Instant::now() < deadline,
            "the renamed speaker is searchable"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // In the browser.
    let transcript = get(&addr, &format!("/r/{id}/transcript.json"), None).json();
    let segs: Vec<(i64, i64)> = transcript["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["start_ms"].as_i64().unwrap(),
                s["end_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(
        segs.len() >= 6,
        "lines: {segs:?} for {} spoken",
        lines.len()
    );
    let wav = env.path("quiet.wav");
    tool(
        "sox",
        &[
            "-n",
            "-r",
            "48000",
            "-c",
            "1",
            wav.to_str().unwrap(),
            "trim",
            "0",
            "1",
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let driver = Driver::start();
        let c = browser(&driver, &wav).await;
        let base = format!("http://{addr}");
        in_browser(&c, &base, &id, &segs).await;
        lobby_refreshes(&c, &base, &addr, &hana).await;
        let _ = c.close().await;
    });
    server.stop();
}

async fn current_time(c: &Client) -> f64 {
    c.execute(
        "return document.getElementById('player').currentTime",
        vec![],
    )
    .await
    .unwrap()
    .as_f64()
    .unwrap_or(-1.0)
}

async fn wait_until(c: &Client, what: &str, js: &str, secs: u64) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let v = c.execute(js, vec![]).await.unwrap();
        if v.as_bool() == Some(true) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}; time {}",
            current_time(c).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The lobby shows a room made after it was opened, by itself and without reloading.
async fn lobby_refreshes(c: &Client, base: &str, addr: &str, token: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    c.execute("window.stayed = true; return true", vec![])
        .await
        .unwrap();
    let title = "Evening drop-in";
    let page = c.source().await.unwrap();
    assert!(!page.contains(title), "not made yet");
    let auth = format!("Bearer {token}");
    let r = http(
        addr,
        "POST",
        "/api/v1/rooms",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        format!(r#"{{"title": "{title}", "visibility": "public"}}"#).as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    wait_until(
        c,
        "the lobby to show the new room",
        &format!(
            "return window.stayed === true && \
             document.getElementById('upcoming-rooms').textContent.includes('{title}')"
        ),
        30,
    )
    .await;
}

async fn in_browser(c: &Client, base: &str, id: &str, segs: &[(i64, i64)]) {
    // ?t=30 opens at 30 s.
    c.goto(&format!("{base}/r/{id}?t=30")).await.unwrap();
    wait_until(
        c,
        "t=30",
        "const p = document.getElementById('player'); return p.currentTime >= 30 && !p.paused",
        20,
    )
    .await;
    let t = current_time(c).await;
    assert!((30.0..33.0).contains(&t), "opened at {t}");

    // A click on a line seeks there and plays.
    let k = 2;
    let line = c
        .find(Locator::Css(&format!("#transcript li[data-i='{k}'] .time")))
        .await
        .unwrap();
    line.click().await.unwrap();
    let at = segs[k].0 as f64 / 1000.0;
    wait_until(
        c,
        "the click to seek",
        &format!("const t = document.getElementById('player').currentTime; return t >= {at} - 0.1 && t < {at} + 2"),
        10,
    )
    .await;
    // A turn's head (speaker and start time) plays the turn, in place.
    let (turns, head_start) = {
        let v = c
            .execute(
                "const t = document.querySelectorAll('#transcript li.turn');\
                 return [t.length, Number(t[t.length - 1].querySelector('.turn-time').dataset.start)]",
                vec![],
            )
            .await
            .unwrap();
        (v[0].as_u64().unwrap(), v[1].as_f64().unwrap() / 1000.0)
    };
    assert!(turns >= 2 && turns as usize <= segs.len(), "{turns} turns");
    c.find(Locator::Css("#transcript li.turn:last-child .turn-time"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        c,
        "the turn's head to seek",
        &format!("const t = document.getElementById('player').currentTime; return location.search === '?t=30' && t >= {head_start} - 0.1 && t < {head_start} + 2"),
        10,
    )
    .await;
    line.click().await.unwrap();
    wait_until(
        c,
        "the click to seek back",
        &format!("const t = document.getElementById('player').currentTime; return t >= {at} - 0.1 && t < {at} + 2"),
        10,
    )
    .await;

    // The current line follows playback.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (t, cur) = {
        let v = c
            .execute(
                "const p = document.getElementById('player'); const el = document.querySelector('#transcript li.current');\
                 return [p.currentTime, el ? Number(el.dataset.i) : -1]",
                vec![],
            )
            .await
            .unwrap();
        (v[0].as_f64().unwrap(), v[1].as_i64().unwrap())
    };
    let expect = segs
        .iter()
        .rposition(|s| s.0 as f64 / 1000.0 <= t + 0.05)
        .unwrap() as i64;
    assert!(
        cur == expect || cur == expect - 1,
        "current line {cur} at {t} s, expected {expect}"
    );

    // A shared quote (lines 3–4) plays its span and stops at its end.
    c.goto(&format!("{base}/r/{id}?q=3-4")).await.unwrap();
    let quote = c
        .find(Locator::Css("#quote"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(quote.contains("Sam") || quote.contains("Hana"), "{quote}");
    let (qs, qe) = (segs[3].0 as f64 / 1000.0, segs[4].1 as f64 / 1000.0);
    wait_until(c, "the quote to start", &format!("const t = document.getElementById('player').currentTime; return t >= {qs} && t < {qs} + 1.5"), 10).await;
    wait_until(
        c,
        "the quote to stop at its end",
        "return document.getElementById('player').paused",
        (qe - qs) as u64 + 10,
    )
    .await;
    let t = current_time(c).await;
    assert!(
        t >= qe - 0.1 && t < qe + 0.8,
        "stopped at {t}, the quote ends at {qe}"
    );

    // No injected script ran anywhere we went, and the text shows as typed.
    for path in [
        format!("/r/{id}"),
        "/search?q=zebra".to_string(),
        "/replays".to_string(),
    ] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        let pwned = c
            .execute("return window.pwned === undefined", vec![])
            .await
            .unwrap();
        assert_eq!(
            pwned,
            serde_json::Value::Bool(true),
            "a script ran on {path}"
        );
    }
    c.goto(&format!("{base}/r/{id}")).await.unwrap();
    let title = c
        .find(Locator::Css("#title"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(title, TITLE.trim());
    let line = c
        .find(Locator::Css("#transcript li[data-i='2'] .text"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(line, HOSTILE_LINE);
}
