//! Search by meaning with the real all-MiniLM-L6-v2 model (`ROOMTAPE_TEST_EMBED_MODEL`, else
//! the provisioned `data/models/all-minilm-l6-v2`): paraphrases found that share no word with
//! the query, the access rule inside the vector search, hybrid ranking, and vectors kept for
//! unchanged lines.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use roomtape_search::embed::{Embedder, dot};
use roomtape_search::query::parse;
use roomtape_search::{Mode, Results, SearchIndex, SegmentDoc, Sort, Viewer};

fn model_dir() -> PathBuf {
    let p = std::env::var("ROOMTAPE_TEST_EMBED_MODEL").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/models/all-minilm-l6-v2"),
        PathBuf::from,
    );
    assert!(
        Embedder::present(&p),
        "the embedding model is missing at {}: `make test` provisions it \
         (scripts/models.sh all-minilm-l6-v2)",
        p.display()
    );
    p
}

/// One model for the whole test binary (loading takes a moment).
fn embedder() -> Arc<Embedder> {
    static E: OnceLock<Arc<Embedder>> = OnceLock::new();
    E.get_or_init(|| Arc::new(Embedder::load(&model_dir(), 1).expect("the model loads")))
        .clone()
}

const JAN: i64 = 1_767_225_600_000; // 2026-01-01
const DAY: i64 = 86_400_000;

fn line(rec: &str, speaker: &str, start_s: i64, text: &str, public: bool) -> SegmentDoc {
    SegmentDoc {
        recording_id: rec.into(),
        room_id: None,
        title: format!("Talk {rec}"),
        speaker_id: format!("id-{speaker}"),
        speaker: speaker.into(),
        language: "en".into(),
        start_ms: start_s * 1000,
        end_ms: start_s * 1000 + 4000,
        text: text.into(),
        translation: None,
        date_ms: JAN + DAY * rec.len() as i64,
        public,
        readers: vec!["u-owner".into()],
        vector: None,
    }
}

/// Lines of three talks; none but the first shares a word with the paraphrase queries below.
fn talks() -> Vec<(String, Vec<SegmentDoc>)> {
    let a = [
        "We discussed a ceasefire with both delegations last night.",
        "The weather in Jakarta was unbearably hot this week.",
        "Our library will open a new reading room in spring.",
    ];
    let b = [
        "Inflation has pushed the price of rice up by a third.",
        "The striker scored twice in the second half.",
        "Doctors warn that the new virus spreads quickly in schools.",
    ];
    let c = [
        "I am not sure the council will approve the budget.",
        "My grandmother taught me to bake bread on Sundays.",
        "Thank you all for joining us today.",
    ];
    [("r1", "Ana", a), ("r22", "Budi", b), ("r333", "Chen", c)]
        .into_iter()
        .map(|(rec, who, texts)| {
            let docs = texts
                .iter()
                .enumerate()
                .map(|(i, t)| line(rec, who, 10 * i as i64, t, true))
                .collect();
            (rec.to_string(), docs)
        })
        .collect()
}

fn index_of(batch: &[(String, Vec<SegmentDoc>)]) -> SearchIndex {
    let ix = SearchIndex::in_memory().unwrap();
    ix.set_embedder(embedder());
    ix.replace_recordings(batch).unwrap();
    ix
}

fn run(ix: &SearchIndex, q: &str, viewer: &Viewer, mode: Option<Mode>) -> Results {
    ix.search(&parse(q).unwrap(), viewer, Sort::Relevance, mode, 1, 20)
        .unwrap()
}

/// The texts of the hits, in order (marks removed).
fn texts(r: &Results) -> Vec<String> {
    r.recordings
        .iter()
        .flat_map(|g| &g.hits)
        .map(|h| h.snippet_html.replace("<mark>", "").replace("</mark>", ""))
        .collect()
}

#[test]
fn the_model_puts_paraphrases_near_and_unrelated_lines_far() {
    let e = embedder();
    let v = e
        .embed(&[
            "where did they talk about stopping the fighting",
            "We discussed a ceasefire with both delegations last night.",
            "My grandmother taught me to bake bread on Sundays.",
            "",
        ])
        .unwrap();
    for x in &v {
        assert_eq!(x.len(), roomtape_search::embed::DIMS);
        let norm = dot(x, x);
        assert!((norm - 1.0).abs() < 1e-3, "unit vectors: {norm}");
    }
    let near = dot(&v[0], &v[1]);
    let far = dot(&v[0], &v[2]);
    assert!(near > 0.35 && far < 0.15, "ceasefire {near}, bread {far}");
    // The figures sentence-transformers' own quick start prints for this model.
    let st = e
        .embed(&[
            "The weather is lovely today.",
            "It's so sunny outside!",
            "He drove to the stadium.",
        ])
        .unwrap();
    for (a, b, want) in [(0, 1, 0.6660), (0, 2, 0.1046), (1, 2, 0.1411)] {
        let got = dot(&st[a], &st[b]);
        assert!(
            (got - want).abs() < 0.002,
            "{a}·{b}: {got}, sentence-transformers {want}"
        );
    }
    // Batching and padding do not change a vector.
    let alone = e
        .embed_one("We discussed a ceasefire with both delegations last night.")
        .unwrap();
    assert!(dot(&alone, &v[1]) > 0.9999);
}

#[test]
fn a_paraphrase_is_found_by_meaning_and_not_by_words() {
    let ix = index_of(&talks());
    let q = "where did they talk about stopping the fighting";
    let words = run(&ix, q, &Viewer::Anonymous, Some(Mode::Words));
    assert_eq!(words.total, 0, "no line has these words");
    let meaning = run(&ix, q, &Viewer::Anonymous, Some(Mode::Meaning));
    assert_eq!(meaning.mode, Mode::Meaning);
    assert!(
        texts(&meaning)[0].contains("ceasefire"),
        "{:?}",
        texts(&meaning)
    );
    // Unrelated lines fall under the similarity floor: the answer is short, not everything.
    assert!(meaning.total < 5, "{:?}", texts(&meaning));
    // The default where vectors exist is hybrid, and it finds the line too.
    let hybrid = run(&ix, q, &Viewer::Anonymous, None);
    assert_eq!(hybrid.mode, Mode::Hybrid);
    assert!(texts(&hybrid)[0].contains("ceasefire"));
    for (q, want) in [
        ("food getting more expensive", "rice"),
        ("a football match", "striker"),
        ("an illness going around classrooms", "virus"),
        ("cooking with my family", "bread"),
    ] {
        let r = run(&ix, q, &Viewer::Anonymous, Some(Mode::Meaning));
        assert!(texts(&r)[0].contains(want), "{q}: {:?}", texts(&r));
    }
}

#[test]
fn hybrid_keeps_an_exact_phrase_first() {
    let ix = index_of(&talks());
    for q in ["\"reading room\"", "council budget", "Thank you all"] {
        let words = run(&ix, q, &Viewer::Anonymous, Some(Mode::Words));
        let hybrid = run(&ix, q, &Viewer::Anonymous, Some(Mode::Hybrid));
        assert!(words.total >= 1);
        assert_eq!(texts(&words)[0], texts(&hybrid)[0], "{q}");
        assert!(hybrid.total >= words.total);
    }
}

#[test]
fn a_private_line_is_never_found_and_never_moves_a_public_one() {
    let mut batch = talks();
    let public_only = index_of(&batch);
    // A private recording that says exactly what is asked, and more like it.
    batch.push((
        "rsecret".into(),
        vec![
            line(
                "rsecret",
                "Dana",
                0,
                "They talked about stopping the fighting.",
                false,
            ),
            line("rsecret", "Dana", 5, "Secret talks to stop the war.", false),
        ],
    ));
    let with_private = index_of(&batch);
    let q = "where did they talk about stopping the fighting";
    for mode in [Mode::Meaning, Mode::Hybrid] {
        let a = run(&public_only, q, &Viewer::Anonymous, Some(mode));
        let b = run(&with_private, q, &Viewer::Anonymous, Some(mode));
        let stranger = run(&with_private, q, &Viewer::User("u-x".into()), Some(mode));
        assert_eq!(
            a, b,
            "{mode:?}: the private lines change nothing an outsider sees"
        );
        assert_eq!(a, stranger, "{mode:?}");
        assert!(
            !texts(&b).iter().any(|t| t.contains("stop")),
            "{:?}",
            texts(&b)
        );
        // Its owner finds it first, and an admin too.
        for v in [Viewer::User("u-owner".into()), Viewer::Admin] {
            let own = run(&with_private, q, &v, Some(mode));
            assert!(texts(&own)[0].contains("stopping the fighting"), "{v:?}");
        }
    }
}

#[test]
fn unchanged_lines_keep_their_vectors_and_filters_apply() {
    let e = Arc::new(Embedder::load(&model_dir(), 1).unwrap());
    let ix = SearchIndex::in_memory().unwrap();
    ix.set_embedder(e.clone());
    let mut batch = talks();
    ix.replace_recordings(&batch).unwrap();
    assert_eq!(e.texts_embedded(), 9);
    // Published again with one line corrected: only that line goes through the model.
    batch[0].1[1].text = "The weather in Jakarta was very hot this week.".into();
    for d in &mut batch[0].1 {
        d.title = "A new title".into();
    }
    ix.replace_recordings(&batch[..1]).unwrap();
    assert_eq!(e.texts_embedded(), 10);
    // Filters narrow the meaning search as they do the words.
    let q = "talks about peace";
    let r = run(
        &ix,
        &format!("{q} speaker:Ana"),
        &Viewer::Anonymous,
        Some(Mode::Meaning),
    );
    assert!(
        r.recordings
            .iter()
            .all(|g| g.hits.iter().all(|h| h.speaker == "Ana"))
    );
    assert!(texts(&r)[0].contains("ceasefire"));
    let r = run(
        &ix,
        &format!("{q} speaker:Chen"),
        &Viewer::Anonymous,
        Some(Mode::Meaning),
    );
    assert!(!texts(&r).iter().any(|t| t.contains("ceasefire")));
    let r = run(
        &ix,
        &format!("{q} -ceasefire"),
        &Viewer::Anonymous,
        Some(Mode::Meaning),
    );
    assert!(!texts(&r).iter().any(|t| t.contains("ceasefire")));
    // A translation is what a line's meaning is taken from.
    let mut es = line("r4444", "Eva", 0, "Hablamos de un alto el fuego.", true);
    es.language = "es".into();
    es.translation = Some("We talked about a ceasefire.".into());
    ix.replace_recording("r4444", &[es]).unwrap();
    let r = run(
        &ix,
        "stopping the fighting lang:es",
        &Viewer::Anonymous,
        Some(Mode::Meaning),
    );
    assert_eq!(texts(&r), vec!["Hablamos de un alto el fuego.".to_string()]);
}

#[test]
fn meaning_without_a_model_is_a_clear_error_and_words_stay_the_default() {
    let ix = SearchIndex::in_memory().unwrap();
    ix.replace_recordings(&talks()).unwrap();
    let q = parse("ceasefire").unwrap();
    let r = ix
        .search(&q, &Viewer::Anonymous, Sort::Relevance, None, 1, 20)
        .unwrap();
    assert_eq!((r.mode, r.total), (Mode::Words, 1));
    for mode in [Mode::Meaning, Mode::Hybrid] {
        let err = ix
            .search(&q, &Viewer::Anonymous, Sort::Relevance, Some(mode), 1, 20)
            .unwrap_err();
        assert!(err.to_string().contains("embedding model"), "{err}");
    }
    // Lines indexed before the model came are found and given vectors later.
    ix.set_embedder(embedder());
    let mut stale = ix.recordings_without_vectors(100).unwrap();
    stale.sort();
    assert_eq!(stale, vec!["r1", "r22", "r333"]);
}

#[test]
fn hybrid_pages_go_on_in_the_words_order_past_the_fused_lines() {
    // 250 lines with the word, more than the hybrid depth: every one is reachable by paging,
    // each once.
    let docs: Vec<SegmentDoc> = (0..250)
        .map(|i| line("rbig", "Ana", i, &format!("budget line number {i}"), true))
        .collect();
    let ix = index_of(&[("rbig".into(), docs)]);
    let q = parse("budget").unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for page in 1..=13 {
        let r = ix
            .search(
                &q,
                &Viewer::Anonymous,
                Sort::Relevance,
                Some(Mode::Hybrid),
                page,
                20,
            )
            .unwrap();
        total = r.total;
        for h in r.recordings.iter().flat_map(|g| &g.hits) {
            assert!(seen.insert(h.start_ms), "line at {} twice", h.start_ms);
        }
    }
    assert_eq!(total, 250);
    assert_eq!(seen.len(), 250);
}

/// A recording in the catalog: Spanish lines with English translations, and English lines.
async fn catalog_with_a_spanish_talk(dir: &std::path::Path) -> roomtape_core::Catalog {
    use roomtape_core::{
        Catalog, Recording, RecordingId, RecordingSource, RecordingState, Segment, Speaker,
        SpeakerId, Timestamp, Track, TrackId, Transcript, TranscriptSpeaker, Translation,
        Visibility,
    };
    let catalog = Catalog::open(&dir.join("catalog.sqlite")).await.unwrap();
    let id = RecordingId::new();
    let rec = Recording {
        id,
        room_id: None,
        title: "Mesa redonda".into(),
        source: RecordingSource::Import,
        state: RecordingState::Recorded,
        recovered: false,
        error: None,
        started_at: Timestamp::now(),
        ended_at: None,
        duration_ms: Some(60_000),
        language: "es".into(),
        visibility: Visibility::Public,
        owner_id: None,
        description: String::new(),
    };
    let track = Track {
        id: TrackId::new(),
        recording_id: id,
        speaker: Speaker {
            id: SpeakerId::new(),
            name: "Lucía".into(),
        },
        file: "tracks/x.opus".into(),
        offset_ms: 0,
        duration_ms: 60_000,
    };
    catalog
        .create_recording(&rec, std::slice::from_ref(&track))
        .await
        .unwrap();
    let lines = [
        (
            "Anoche hablamos de un alto el fuego con las dos delegaciones.",
            "Last night we discussed a ceasefire with both delegations.",
        ),
        (
            "El mercado de pescado abre a las seis.",
            "The fish market opens at six.",
        ),
    ];
    let t = Transcript {
        recording_id: id,
        title: rec.title.clone(),
        model: "test".into(),
        created_at: Timestamp::now(),
        speakers: vec![TranscriptSpeaker {
            id: track.speaker.id,
            name: track.speaker.name.clone(),
            track_id: track.id,
        }],
        segments: lines
            .iter()
            .enumerate()
            .map(|(i, (es, en))| Segment {
                speaker_id: track.speaker.id,
                speaker: track.speaker.name.clone(),
                track_id: track.id,
                start_ms: i as i64 * 5000,
                end_ms: i as i64 * 5000 + 4000,
                language: Some("es".into()),
                text: (*es).into(),
                words: Vec::new(),
                translation: Some(Translation {
                    lang: "en".into(),
                    text: (*en).into(),
                }),
            })
            .collect(),
    };
    catalog.store_transcript(&t).await.unwrap();
    catalog
}

#[tokio::test]
async fn reindex_and_a_late_model_rebuild_the_vectors_from_the_catalog() {
    use roomtape_search::indexer;
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog_with_a_spanish_talk(dir.path()).await;
    let question = "where did they talk about stopping the fighting";
    let first =
        |ix: &SearchIndex| texts(&run(ix, question, &Viewer::Anonymous, Some(Mode::Meaning)));

    // Indexed before the model was there: words only, no vectors.
    let (ix, _) = SearchIndex::open(&dir.path().join("index")).unwrap();
    let ix = Arc::new(ix);
    indexer::drain(&ix, &catalog).await.unwrap();
    assert!(
        ix.search(
            &parse(question).unwrap(),
            &Viewer::Anonymous,
            Sort::Relevance,
            Some(Mode::Meaning),
            1,
            20
        )
        .is_err()
    );
    // The model arrives: the next pass gives the lines their vectors (from the translations).
    ix.set_embedder(embedder());
    assert_eq!(ix.recordings_without_vectors(10).unwrap().len(), 1);
    assert_eq!(indexer::drain(&ix, &catalog).await.unwrap(), 1);
    assert!(ix.recordings_without_vectors(10).unwrap().is_empty());
    let late = first(&ix);
    assert!(
        late.first().is_some_and(|t| t.contains("alto el fuego")),
        "the Spanish line is found by the meaning of its translation: {late:?}"
    );

    // A full reindex into a new directory rebuilds the same vectors and finds the same lines.
    let (fresh, _) = SearchIndex::open(&dir.path().join("second")).unwrap();
    let fresh = Arc::new(fresh);
    fresh.set_embedder(embedder());
    let before = embedder().texts_embedded();
    assert_eq!(indexer::reindex(&fresh, &catalog).await.unwrap(), 1);
    assert!(
        embedder().texts_embedded() >= before + 2,
        "the reindex went through the model"
    );
    assert!(fresh.recordings_without_vectors(10).unwrap().is_empty());
    assert_eq!(first(&fresh), late);
    // Reindexing in place keeps one document a line and their vectors.
    indexer::reindex(&ix, &catalog).await.unwrap();
    assert_eq!(ix.num_docs(), 2);
    assert_eq!(first(&ix), late);
}

#[test]
fn the_model_is_read_only_when_first_used_and_a_broken_one_says_where() {
    let e = Embedder::open(&model_dir(), 1).unwrap();
    assert!(!e.is_loaded(), "opening reads nothing");
    let ix = SearchIndex::in_memory().unwrap();
    ix.set_embedder(Arc::new(e));
    // Words need no model.
    run(&ix, "harbour", &Viewer::Admin, Some(Mode::Words));
    assert!(!ix.embedder().unwrap().is_loaded());
    run(&ix, "harbour", &Viewer::Admin, Some(Mode::Meaning));
    assert!(ix.embedder().unwrap().is_loaded());

    let dir = tempfile::tempdir().unwrap();
    let missing = Embedder::open(dir.path(), 1).unwrap_err().to_string();
    assert!(
        missing.contains(&dir.path().display().to_string()),
        "{missing}"
    );
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(model_dir().join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("model.safetensors"), b"not weights").unwrap();
    let lazy = Embedder::open(dir.path(), 1).expect("present");
    let broken = lazy.embed_one("hello").unwrap_err().to_string();
    assert!(broken.contains("model"), "{broken}");
    // Asked again, the same answer, not a panic or a retry storm.
    assert_eq!(lazy.embed_one("hello").unwrap_err().to_string(), broken);
    assert!(Embedder::load(dir.path(), 1).is_err());
}
