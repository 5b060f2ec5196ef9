//! The index and the query language on a small in-memory corpus.

use roomtape_search::query::parse;
use roomtape_search::{Results, SearchIndex, SegmentDoc, Sort, Viewer};

/// A public segment (the tests make private ones with `public: false`).
fn seg(
    rec: &str,
    title: &str,
    speaker: &str,
    start_ms: i64,
    text: &str,
    date_ms: i64,
    readers: &[&str],
) -> SegmentDoc {
    SegmentDoc {
        recording_id: rec.into(),
        room_id: Some(format!("room-{rec}")),
        title: title.into(),
        speaker_id: format!("id-{speaker}"),
        speaker: speaker.into(),
        language: "en".into(),
        start_ms,
        end_ms: start_ms + 3000,
        text: text.into(),
        translation: None,
        date_ms,
        public: true,
        readers: readers.iter().map(|r| r.to_string()).collect(),
        vector: None,
    }
}

const JAN: i64 = 1_767_225_600_000; // 2026-01-01
const DAY: i64 = 86_400_000;

fn corpus() -> SearchIndex {
    let ix = SearchIndex::in_memory().unwrap();
    ix.replace_recording(
        "r1",
        &[
            seg(
                "r1",
                "Morning Briefing",
                "Ana Lima",
                1_000,
                "Péskov said the talks in Jakarta went well.",
                JAN,
                &["u-ana"],
            ),
            seg(
                "r1",
                "Morning Briefing",
                "Bruno Costa",
                9_000,
                "The budget for 2026 is not final.",
                JAN,
                &["u-bruno"],
            ),
        ],
    )
    .unwrap();
    ix.replace_recording(
        "r2",
        &[SegmentDoc {
            public: false,
            ..seg(
                "r2",
                "Secret board meeting",
                "Clara Diaz",
                42_000,
                "The merger with Peskov Industries is off.",
                JAN + 40 * DAY,
                &["u-clara"],
            )
        }],
    )
    .unwrap();
    ix
}

fn find(ix: &SearchIndex, q: &str, viewer: &Viewer) -> Results {
    ix.search(&parse(q).unwrap(), viewer, Sort::Relevance, None, 1, 20)
        .unwrap()
}

#[test]
fn accents_and_case_fold_and_numbers_are_tokens() {
    let ix = corpus();
    for q in ["peskov", "Peskov", "PÉSKOV", "péskov"] {
        assert_eq!(find(&ix, q, &Viewer::Admin).total, 2, "{q}");
    }
    assert_eq!(find(&ix, "2026", &Viewer::Admin).total, 1);
}

#[test]
fn phrases_speakers_and_links() {
    let ix = corpus();
    let r = find(
        &ix,
        "\"talks in jakarta\" speaker:\"Ana Lima\"",
        &Viewer::Admin,
    );
    assert_eq!(r.total, 1);
    let hit = &r.recordings[0].hits[0];
    assert_eq!(hit.link, "/r/r1?t=1");
    assert!(
        hit.snippet_html.contains("<mark>Jakarta</mark>"),
        "{}",
        hit.snippet_html
    );
    assert_eq!(
        find(
            &ix,
            "\"talks in jakarta\" speaker:\"Bruno\"",
            &Viewer::Admin
        )
        .total,
        0
    );
    assert_eq!(
        find(&ix, "\"jakarta talks\"", &Viewer::Admin).total,
        0,
        "order matters in a phrase"
    );
    assert_eq!(find(&ix, "budg*", &Viewer::Admin).total, 1);
    assert_eq!(find(&ix, "budget OR merger", &Viewer::Admin).total, 2);
    assert_eq!(find(&ix, "peskov -merger", &Viewer::Admin).total, 1);
    assert_eq!(
        find(&ix, "room:\"board meeting\" peskov", &Viewer::Admin).total,
        1
    );
    assert_eq!(
        find(&ix, "peskov after:2026-02-01", &Viewer::Admin).total,
        1
    );
    assert_eq!(
        find(&ix, "peskov before:2026-02-01", &Viewer::Admin).total,
        1
    );
    assert_eq!(find(&ix, "lang:en budget", &Viewer::Admin).total, 1);
    assert_eq!(find(&ix, "lang:id budget", &Viewer::Admin).total, 0);
}

#[test]
fn a_private_recordings_words_never_reach_another_user() {
    let ix = corpus();
    for viewer in [Viewer::Anonymous, Viewer::User("u-ana".into())] {
        let r = find(&ix, "merger", &viewer);
        assert_eq!(r.total, 0, "{viewer:?}");
        assert!(r.recordings.is_empty());
        assert_eq!(
            find(&ix, "peskov", &viewer).total,
            1,
            "{viewer:?} sees only the public one"
        );
    }
    assert_eq!(
        find(&ix, "merger", &Viewer::User("u-clara".into())).total,
        1
    );
}

#[test]
fn snippets_escape_hostile_text() {
    let ix = SearchIndex::in_memory().unwrap();
    ix.replace_recording(
        "r9",
        &[seg(
            "r9",
            "<script>",
            "x",
            0,
            "hello <script>alert('hello')</script> & \"><img src=x onerror=alert(1)>",
            JAN,
            &[],
        )],
    )
    .unwrap();
    let r = find(&ix, "hello", &Viewer::Anonymous);
    let html = &r.recordings[0].hits[0].snippet_html;
    assert!(
        !html.contains("<script>") && !html.contains("<img"),
        "{html}"
    );
    assert!(
        html.contains("&lt;script&gt;") && html.contains("<mark>hello</mark>"),
        "{html}"
    );
}

#[test]
fn replacing_a_recording_never_duplicates_and_deleting_removes() {
    let ix = corpus();
    let again = vec![seg(
        "r1",
        "Morning Briefing",
        "Ana Lima",
        1_000,
        "Péskov said the talks in Jakarta went well.",
        JAN,
        &[],
    )];
    ix.replace_recording("r1", &again).unwrap();
    ix.replace_recording("r1", &again).unwrap();
    assert_eq!(find(&ix, "jakarta", &Viewer::Admin).total, 1);
    ix.delete_recording("r1").unwrap();
    assert_eq!(find(&ix, "jakarta", &Viewer::Admin).total, 0);
}

#[test]
fn pages_and_date_sort() {
    let ix = SearchIndex::in_memory().unwrap();
    let docs: Vec<SegmentDoc> = (0..25)
        .map(|i| {
            seg(
                &format!("r{i}"),
                "Daily",
                "Ana",
                0,
                "weather report",
                JAN + i * DAY,
                &[],
            )
        })
        .collect();
    ix.add_all(docs).unwrap();
    let q = parse("weather").unwrap();
    let p1 = ix
        .search(&q, &Viewer::Anonymous, Sort::Newest, None, 1, 10)
        .unwrap();
    let p3 = ix
        .search(&q, &Viewer::Anonymous, Sort::Newest, None, 3, 10)
        .unwrap();
    assert_eq!(
        (p1.total, p1.recordings.len(), p3.recordings.len()),
        (25, 10, 5)
    );
    assert_eq!(p1.recordings[0].recording_id, "r24");
    assert_eq!(p3.recordings[4].recording_id, "r0");
}

#[test]
fn malformed_queries_never_fail_but_overlong_ones_are_named() {
    let ix = corpus();
    for q in [
        "\"unbalanced",
        "OR",
        "-",
        "\u{1}\u{2}",
        "speaker:",
        "nope:field",
        "😀",
        "*",
        "\"\"",
        "after:notadate",
    ] {
        find(&ix, q, &Viewer::Anonymous);
    }
    assert!(parse(&"x ".repeat(5000)).is_err());
    let dir = tempfile::tempdir().unwrap();
    // A corrupt index directory is rebuilt, not fatal.
    std::fs::write(dir.path().join("meta.json"), "{ not json").unwrap();
    let (ix, rebuilt) = SearchIndex::open(dir.path()).unwrap();
    assert!(rebuilt);
    assert_eq!(ix.num_docs(), 0);
}

/// Regression: a prefix expanded to only the first 50 words of an index segment that begin
/// so, private words included, so words in a private recording could push a public line out of
/// an anonymous caller's results.
#[test]
fn a_prefix_finds_every_public_line_however_many_private_words_share_it() {
    let ix = SearchIndex::in_memory().unwrap();
    let public = seg(
        "pub",
        "Town hall",
        "Ana Lima",
        0,
        "The library opens in spring.",
        JAN,
        &[],
    );
    let private: Vec<SegmentDoc> = (0..60)
        .map(|i| SegmentDoc {
            public: false,
            ..seg(
                "priv",
                "Secret",
                "Clara Diaz",
                i * 1000,
                &format!("the libaa{i:02} code word"),
                JAN,
                &["u-clara"],
            )
        })
        .collect();
    ix.replace_recordings(&[("pub".into(), vec![public]), ("priv".into(), private)])
        .unwrap();
    // One segment, so one term dictionary holds the public and the private words.
    ix.optimize().unwrap();
    for q in ["lib*", "libr*", "the-lib*"] {
        let r = find(&ix, q, &Viewer::Anonymous);
        assert_eq!(r.total, 1, "{q}: {r:?}");
        assert_eq!(r.recordings[0].recording_id, "pub");
    }
    // A prefix stands for at most 50 words, the first the viewer may see.
    for viewer in [Viewer::Admin, Viewer::User("u-clara".into())] {
        assert_eq!(find(&ix, "lib*", &viewer).total, 50, "{viewer:?}");
        assert_eq!(find(&ix, "libr*", &viewer).total, 1, "{viewer:?}");
    }
}
