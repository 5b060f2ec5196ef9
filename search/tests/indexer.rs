//! The index kept in step with a real SQLite catalog through the outbox: transcripts stored,
//! replaced, corrected, published and deleted; a full reindex equals the incremental index.

use std::sync::Arc;

use roomtape_core::{
    Catalog, Recording, RecordingId, RecordingSource, RecordingState, Segment, Speaker, SpeakerId,
    Timestamp, Track, TrackId, Transcript, TranscriptSpeaker, Visibility,
};
use roomtape_search::query::parse;
use roomtape_search::{Results, SearchIndex, Sort, Viewer, indexer};

struct Fixture {
    _dir: tempfile::TempDir,
    catalog: Catalog,
    index: Arc<SearchIndex>,
    index_dir: std::path::PathBuf,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("catalog.sqlite"))
        .await
        .unwrap();
    let index_dir = dir.path().join("index");
    let (index, fresh) = SearchIndex::open(&index_dir).unwrap();
    assert!(fresh, "a new directory is a fresh index");
    Fixture {
        _dir: dir,
        catalog,
        index: Arc::new(index),
        index_dir,
    }
}

/// A recording with one track per speaker and one line per `(speaker, start s, text)`.
async fn add(
    catalog: &Catalog,
    title: &str,
    speakers: &[&str],
    lines: &[(usize, i64, &str)],
) -> (RecordingId, Transcript) {
    let id = RecordingId::new();
    let rec = Recording {
        id,
        room_id: None,
        title: title.into(),
        source: RecordingSource::Import,
        state: RecordingState::Recorded,
        recovered: false,
        error: None,
        started_at: Timestamp::now(),
        ended_at: None,
        duration_ms: Some(60_000),
        language: "en".into(),
        visibility: Default::default(),
        owner_id: None,
        description: String::new(),
    };
    let tracks: Vec<Track> = speakers
        .iter()
        .map(|name| Track {
            id: TrackId::new(),
            recording_id: id,
            speaker: Speaker {
                id: SpeakerId::new(),
                name: (*name).into(),
            },
            file: "tracks/x.opus".into(),
            offset_ms: 0,
            duration_ms: 60_000,
        })
        .collect();
    catalog.create_recording(&rec, &tracks).await.unwrap();
    let t = Transcript {
        recording_id: id,
        title: title.into(),
        model: "test".into(),
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
            .map(|(s, at, text)| Segment {
                speaker_id: tracks[*s].speaker.id,
                speaker: tracks[*s].speaker.name.clone(),
                track_id: tracks[*s].id,
                start_ms: at * 1000,
                end_ms: at * 1000 + 2500,
                language: Some("en".into()),
                text: (*text).into(),
                words: Vec::new(),
                translation: None,
            })
            .collect(),
    };
    catalog.store_transcript(&t).await.unwrap();
    (id, t)
}

fn find(ix: &SearchIndex, q: &str, viewer: &Viewer) -> Results {
    ix.search(&parse(q).unwrap(), viewer, Sort::Relevance, None, 1, 100)
        .unwrap()
}

/// Everything a result page says, for comparing two indexes.
fn summary(r: &Results) -> Vec<(String, String, i64, String)> {
    let mut v: Vec<_> = r
        .recordings
        .iter()
        .flat_map(|g| {
            g.hits.iter().map(|h| {
                (
                    g.recording_id.clone(),
                    h.speaker.clone(),
                    h.start_ms,
                    h.snippet_html.clone(),
                )
            })
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn stored_transcripts_become_searchable_and_stay_single() {
    let fx = fixture().await;
    let (id, mut t) = add(
        &fx.catalog,
        "Harbour council",
        &["Ana Lima", "Bruno Costa"],
        &[
            (0, 3, "The ferry timetable changes in March."),
            (1, 9, "We asked the mayor about the ferry."),
        ],
    )
    .await;
    assert_eq!(find(&fx.index, "ferry", &Viewer::Admin).total, 0);
    assert_eq!(indexer::drain(&fx.index, &fx.catalog).await.unwrap(), 1);
    let r = find(&fx.index, "ferry", &Viewer::Admin);
    assert_eq!(r.total, 2);
    assert_eq!(r.recordings[0].recording_id, id.to_string());
    assert_eq!(indexer::drain(&fx.index, &fx.catalog).await.unwrap(), 0);

    // Stored again (a re-transcription): replaced, never doubled.
    fx.catalog.store_transcript(&t).await.unwrap();
    indexer::drain(&fx.index, &fx.catalog).await.unwrap();
    assert_eq!(find(&fx.index, "ferry", &Viewer::Admin).total, 2);

    // A corrected line is what is found afterwards.
    t.segments[0].text = "The bus timetable changes in March.".into();
    fx.catalog.store_transcript(&t).await.unwrap();
    indexer::drain(&fx.index, &fx.catalog).await.unwrap();
    assert_eq!(find(&fx.index, "ferry", &Viewer::Admin).total, 1);
    assert_eq!(
        find(
            &fx.index,
            "\"bus timetable\" speaker:\"ana lima\"",
            &Viewer::Admin
        )
        .total,
        1
    );

    // Deleting the recording removes its hits.
    fx.catalog.delete_recording(id).await.unwrap();
    indexer::drain(&fx.index, &fx.catalog).await.unwrap();
    assert_eq!(
        find(&fx.index, "timetable OR ferry", &Viewer::Admin).total,
        0
    );
    assert_eq!(fx.index.num_docs(), 0);
}

#[tokio::test]
async fn publishing_decides_who_finds_a_recording() {
    let fx = fixture().await;
    let (id, t) = add(
        &fx.catalog,
        "Closed session",
        &["Ana Lima"],
        &[(0, 1, "The informant lives near the old mill.")],
    )
    .await;
    indexer::drain(&fx.index, &fx.catalog).await.unwrap();
    let speaker = t.speakers[0].id.to_string();
    let q = "\"old mill\"";
    assert_eq!(find(&fx.index, q, &Viewer::Admin).total, 1);
    assert_eq!(find(&fx.index, q, &Viewer::Anonymous).total, 0);
    assert_eq!(
        find(&fx.index, q, &Viewer::User("someone-else".into())).total,
        0
    );
    assert_eq!(
        find(&fx.index, q, &Viewer::User(speaker.clone())).total,
        1,
        "a speaker sees the recording they spoke in"
    );
    // Not even a filter-only or negated query lets it through.
    for q in [
        "speaker:\"Ana Lima\"",
        "-nothing",
        "",
        "room:\"Closed session\"",
    ] {
        assert_eq!(
            find(&fx.index, q, &Viewer::User("someone-else".into())).total,
            0,
            "{q:?}"
        );
    }

    fx.catalog
        .set_visibility(id, Visibility::Unlisted)
        .await
        .unwrap();
    indexer::drain(&fx.index, &fx.catalog).await.unwrap();
    assert_eq!(
        find(&fx.index, q, &Viewer::Anonymous).total,
        0,
        "unlisted is not searchable"
    );
    fx.catalog
        .set_visibility(id, Visibility::Public)
        .await
        .unwrap();
    indexer::drain(&fx.index, &fx.catalog).await.unwrap();
    assert_eq!(find(&fx.index, q, &Viewer::Anonymous).total, 1);
    assert_eq!(
        find(&fx.index, q, &Viewer::User("someone-else".into())).total,
        1
    );
    assert!(
        "everyone"
            .parse::<Visibility>()
            .unwrap_err()
            .to_string()
            .contains("visibility must be")
    );
    fx.catalog
        .set_visibility(id, Visibility::Private)
        .await
        .unwrap();
    indexer::drain(&fx.index, &fx.catalog).await.unwrap();
    assert_eq!(find(&fx.index, q, &Viewer::Anonymous).total, 0);
}

#[tokio::test]
async fn reindex_gives_what_incremental_indexing_gave() {
    let fx = fixture().await;
    for i in 0..5 {
        add(
            &fx.catalog,
            &format!("Weekly call {i}"),
            &["Ana Lima", "Bruno Costa", "Clara Díaz"],
            &[
                (0, 1, "Welcome back to the weekly call."),
                (1, 4, "The harbour report is late again."),
                (2, 8, "Péskov did not answer our questions."),
                (0, 12, "Next week we talk about the harbour budget."),
            ],
        )
        .await;
        indexer::drain(&fx.index, &fx.catalog).await.unwrap();
    }
    let queries = [
        "harbour",
        "\"weekly call\"",
        "peskov",
        "speaker:\"Clara Diaz\" questions",
        "harb* -budget",
        "room:\"Weekly call 3\"",
    ];
    let before: Vec<_> = queries
        .iter()
        .map(|q| summary(&find(&fx.index, q, &Viewer::Admin)))
        .collect();
    assert!(before.iter().all(|s| !s.is_empty()), "{before:?}");

    let (fresh, rebuilt) = SearchIndex::open(&fx.index_dir.with_extension("second")).unwrap();
    assert!(rebuilt);
    let fresh = Arc::new(fresh);
    assert_eq!(indexer::reindex(&fresh, &fx.catalog).await.unwrap(), 5);
    let after: Vec<_> = queries
        .iter()
        .map(|q| summary(&find(&fresh, q, &Viewer::Admin)))
        .collect();
    assert_eq!(before, after);
    // Reindexing in place does not double anything either.
    indexer::reindex(&fx.index, &fx.catalog).await.unwrap();
    assert_eq!(fx.index.num_docs(), 20);
}

#[tokio::test]
async fn a_corrupt_index_directory_is_rebuilt_not_fatal() {
    let fx = fixture().await;
    add(
        &fx.catalog,
        "Town hall",
        &["Ana Lima"],
        &[(0, 1, "The lighthouse will be repaired.")],
    )
    .await;
    indexer::drain(&fx.index, &fx.catalog).await.unwrap();
    drop(fx.index);
    std::fs::write(fx.index_dir.join("meta.json"), b"{ not json").unwrap();
    let (ix, rebuilt) = SearchIndex::open(&fx.index_dir).unwrap();
    assert!(rebuilt, "the caller is told to reindex");
    let ix = Arc::new(ix);
    indexer::reindex(&ix, &fx.catalog).await.unwrap();
    assert_eq!(find(&ix, "lighthouse", &Viewer::Admin).total, 1);
}
