//! Search end to end: a room imported and transcribed by the real tiny.en model is found by
//! what its speakers said, through the CLI and the running service; publishing, re-transcribing,
//! reindexing and deleting keep the index true; hostile queries get 200 or a clear 400.

use std::time::{Duration, Instant};

use crate::support::*;

/// `roomtape search --json QUERY`: the results.
fn search(env: &Env, q: &str) -> serde_json::Value {
    env.json(&["search", q, "--limit", "100"])
}

/// Hits as `(speaker, start seconds)`, in result order.
fn hits(r: &serde_json::Value) -> Vec<(String, f64)> {
    r["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["hits"].as_array().unwrap().iter())
        .map(|h| {
            (
                h["speaker"].as_str().unwrap().to_string(),
                h["start_ms"].as_f64().unwrap() / 1000.0,
            )
        })
        .collect()
}

fn api_search(addr: &str, q: &str) -> (u16, serde_json::Value) {
    let (status, body) = http_get(addr, &format!("/api/v1/search?q={}", url_encode(q)));
    let v = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, v)
}

/// Polls the service until `q` has `total` hits for an anonymous caller.
fn wait_for_total(addr: &str, q: &str, total: u64) {
    let start = Instant::now();
    loop {
        let (status, v) = api_search(addr, q);
        assert_eq!(status, 200, "{v}");
        if v["total"] == total {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{q:?} still has {} hits, want {total}",
            v["total"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_transcribed_room_is_found_by_phrase_speaker_and_second() {
    let env = Env::new();
    let (id, lines) = import_room(&env);
    env.ok(&[
        "transcribe",
        &id,
        "--model",
        &test_model(),
        "--threads",
        "1",
    ]);

    // Bruno said "The new library will open in the spring" at 5.5 s.
    let library = lines.iter().find(|l| l.text.contains("library")).unwrap();
    let r = search(&env, "\"new library\"");
    let found = hits(&r);
    assert_eq!(found.len(), 1, "{r:#}");
    assert_eq!(found[0].0, NAMES[library.speaker]);
    assert!(
        (found[0].1 - library.at).abs() <= 1.0,
        "hit at {:.2} s, said at {:.2} s",
        found[0].1,
        library.at
    );
    let group = &r["recordings"][0];
    assert_eq!(group["recording_id"], id.as_str());
    assert_eq!(group["title"], "Planning meeting");
    let hit = &group["hits"][0];
    assert!(
        hit["snippet_html"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("<mark>new</mark> <mark>library</mark>"),
        "{hit}"
    );
    assert_eq!(
        hit["link"],
        format!("/r/{id}?t={}", hit["start_ms"].as_i64().unwrap() / 1000).as_str()
    );

    // The speaker filter: right speaker found, wrong speaker not, accents and case folded.
    let right = format!("speaker:\"{}\" \"new library\"", NAMES[library.speaker]);
    assert_eq!(hits(&search(&env, &right)).len(), 1);
    let other = NAMES[(library.speaker + 1) % 3];
    let wrong = format!("speaker:\"{other}\" \"new library\"");
    assert_eq!(hits(&search(&env, &wrong)).len(), 0);
    assert_eq!(
        hits(&search(&env, "speaker:\"BRÚNO cOSTA\" library")).len(),
        1
    );
    // Every speaker's words are under that speaker only.
    let welcome = lines.iter().find(|l| l.text.contains("welcome")).unwrap();
    let found = hits(&search(&env, "welcome planning"));
    assert!(!found.is_empty());
    assert!(found.iter().all(|h| h.0 == NAMES[welcome.speaker]));
    assert!(
        (found[0].1 - welcome.at).abs() <= 1.0,
        "{found:?} vs {}",
        welcome.at
    );

    // Re-transcribing replaces the documents; nothing doubles.
    let before = search(&env, "library OR welcome OR wonderful");
    let n = before["total"].as_u64().unwrap();
    assert!(n >= 3, "{before:#}");
    env.ok(&[
        "transcribe",
        &id,
        "--model",
        &test_model(),
        "--threads",
        "1",
    ]);
    assert_eq!(search(&env, "library OR welcome OR wonderful")["total"], n);

    // A full rebuild gives what incremental indexing gave.
    let queries = [
        "library",
        "\"new library\"",
        "speaker:\"Clara Diaz\"",
        "room:\"Planning meeting\" roof",
        "win* -library",
    ];
    let incremental: Vec<_> = queries.iter().map(|q| search(&env, q)).collect();
    let out = env.ok(&["reindex"]);
    assert!(out.contains("reindexed 1 recording"), "{out}");
    std::fs::remove_dir_all(env.data().join("index")).unwrap();
    let rebuilt: Vec<_> = queries.iter().map(|q| search(&env, q)).collect();
    assert_eq!(incremental, rebuilt);

    // The service: private recordings are invisible to anonymous callers; publishing shows
    // them within a moment, deleting removes them.
    let everything = search(&env, "")["total"].as_u64().unwrap();
    assert!(everything >= 5, "one segment per line at least");
    let (server, addr) = env.serve();
    let (status, v) = api_search(&addr, "\"new library\"");
    assert_eq!(status, 200);
    assert_eq!(
        v["total"], 0,
        "a private recording never reaches the public: {v}"
    );
    env.ok(&["recordings", "publish", &id, "--visibility", "unlisted"]);
    std::thread::sleep(Duration::from_millis(600));
    wait_for_total(&addr, "\"new library\"", 0);
    env.ok(&["recordings", "publish", &id]);
    wait_for_total(&addr, "\"new library\"", 1);
    let (_, v) = api_search(&addr, "\"new library\"");
    assert_eq!(
        v["recordings"][0]["hits"][0]["speaker"],
        NAMES[library.speaker]
    );

    // Hostile queries: lenient where a meaning can be found, a 400 naming the problem where not.
    for q in [
        "\"new library",
        "speaker:\"Bruno",
        "nope:field library",
        "library\u{0}\u{7}\u{1b}[31m",
        "((( OR ) -",
        "\u{202e}yrarbil \u{1F600} 図書館 مكتبة",
        "-",
        "\"\"",
        "*",
        "after:2026-13-45 library",
        "before:yesterday",
    ] {
        let (status, v) = api_search(&addr, q);
        assert_eq!(status, 200, "{q:?}: {v}");
        assert!(v["total"].is_u64(), "{q:?}: {v}");
    }
    let long = "library ".repeat(1250);
    let (status, v) = api_search(&addr, &long);
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "bad_query");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("1000"),
        "{v}"
    );
    for (params, code) in [
        ("q=library&page=0", "bad_parameter"),
        ("q=library&page=abc", "bad_parameter"),
        ("q=library&per_page=1000", "bad_parameter"),
        ("q=library&sort=loudest", "bad_parameter"),
    ] {
        let (status, body) = http_get(&addr, &format!("/api/v1/search?{params}"));
        assert_eq!(status, 400, "{params}: {body}");
        assert!(body.contains(code), "{params}: {body}");
    }
    // Bytes that are not UTF-8 are read leniently; text that cannot match matches nothing.
    for params in ["q=%FF%FE", "q=%F0%9F%98%80", "q=*"] {
        let (status, body) = http_get(&addr, &format!("/api/v1/search?{params}"));
        assert_eq!(status, 200, "{params}: {body}");
        assert!(body.contains("\"total\":0"), "{params}: {body}");
    }
    let (status, body) = http_get(&addr, "/api/v1/search?q=");
    assert_eq!(status, 200);
    assert!(
        body.contains(&format!("\"total\":{everything}")),
        "an empty query lists everything: {body}"
    );
    let (status, _) = http_get(&addr, "/healthz");
    assert_eq!(status, 200, "still serving");

    env.ok(&["recordings", "delete", &id]);
    wait_for_total(&addr, "library OR welcome OR wonderful", 0);
    server.stop();
    assert_eq!(search(&env, "library")["total"], 0);

    // The CLI refuses an over-long query in one line.
    let out = env.fails(&["search", &long]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1000"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
