//! Issue 19, translations: a line said in another language gets an English translation beside
//! it (Whisper's translate task, the real multilingual base model), stored with the original,
//! exported either way, and found by an English query, by its words or by its meaning; a line
//! said in English is not translated; reindexing rebuilds it (and its vector) from the catalog;
//! an Indonesian track the model cannot translate gets no made-up English.

use crate::support::*;

const SPANISH: &str = "Buenos días a todos. Hoy hablamos del nuevo puente sobre el río. \
                       La construcción empieza en marzo y durará dos años.";

/// English words a translation of [`SPANISH`] would use, none of them a Spanish word of it.
const ENGLISH: &[&str] = &[
    "morning",
    "today",
    "bridge",
    "river",
    "construction",
    "begins",
    "starts",
    "march",
    "years",
];

fn import(env: &Env, wav: &std::path::Path, title: &str, speaker: &str, lang: &str) -> String {
    let out = env.ok(&[
        "import",
        wav.to_str().unwrap(),
        "--title",
        title,
        "--speaker",
        speaker,
        "--language",
        lang,
    ]);
    out.split_whitespace().nth(1).unwrap().to_string()
}

fn transcribe(env: &Env, id: &str) {
    env.ok(&[
        "transcribe",
        id,
        "--model",
        &multilingual_model(),
        "--threads",
        "1",
    ]);
}

#[test]
fn a_spanish_line_gets_an_english_translation_that_an_english_query_finds() {
    let env = Env::new();
    env.install_embed_model();
    let es = env.path("es.wav");
    speak(SPANISH, "es", &es);
    let en = env.path("en.wav");
    speak("Good evening. The council meets on Thursday.", "en-us", &en);
    let spanish = import(&env, &es, "Puente", "Lucía", "es");
    let english = import(&env, &en, "Council", "Ann", "auto");
    transcribe(&env, &spanish);
    transcribe(&env, &english);

    // Stored beside the original, which stays the record.
    let t = env.json(&["export", &spanish, "--format", "json"]);
    let segs = t["segments"].as_array().unwrap();
    assert!(!segs.is_empty(), "{t:#}");
    let mut said = String::new();
    for s in segs {
        assert_eq!(s["language"], "es", "{s:#}");
        assert!(
            !s["text"].as_str().unwrap().is_empty(),
            "the original is kept: {s:#}"
        );
        if let Some(tr) = s.get("translation") {
            assert_eq!(tr["lang"], "en", "{s:#}");
            said.push_str(tr["text"].as_str().unwrap());
            said.push(' ');
        }
    }
    let said = said.to_lowercase();
    let found: Vec<&str> = ENGLISH
        .iter()
        .copied()
        .filter(|w| said.contains(w))
        .collect();
    assert!(
        found.len() >= 2,
        "an English rendering of {SPANISH:?}; the translations say {said:?}"
    );
    // English speech is not translated.
    let t = env.json(&["export", &english, "--format", "json"]);
    for s in t["segments"].as_array().unwrap() {
        assert_eq!(s["language"], "en", "{s:#}");
        assert!(s.get("translation").is_none(), "{s:#}");
    }

    // Exports either way: WebVTT in English says so in its header.
    let vtt = env.ok(&["export", &spanish, "--format", "vtt", "--lang", "en"]);
    assert!(vtt.starts_with("WEBVTT\nLanguage: en\n\n"), "{vtt}");
    assert!(vtt.to_lowercase().contains(found[0]), "{vtt}");
    let original = env.ok(&["export", &spanish, "--format", "vtt"]);
    assert!(!original.contains("Language: en"));
    let bad = env.fails(&["export", &spanish, "--lang", "klingon"]);
    let bad = String::from_utf8_lossy(&bad.stderr);
    assert!(bad.contains("original or en"), "{bad}");

    // An English query finds the Spanish line by its translation, the hit showing both.
    let search = |q: &str| env.json(&["search", q, "--limit", "100", "--mode", "words"]);
    for w in &found {
        let r = search(w);
        let hit = r["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["recording_id"] == spanish.as_str())
            .unwrap_or_else(|| panic!("{w:?} finds the Spanish recording: {r:#}"));
        let h = &hit["hits"][0];
        assert!(
            h["translation_html"]
                .as_str()
                .is_some_and(|t| t.to_lowercase().contains(&format!("<mark>{w}"))),
            "the match is marked in the translation: {h:#}"
        );
        assert!(!h["snippet_html"].as_str().unwrap().is_empty());
    }
    // `lang:` filters by the language spoken.
    let r = search(&format!("{} lang:en", found[0]));
    assert!(
        r["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["recording_id"] != spanish.as_str()),
        "{r:#}"
    );
    // Reindexing rebuilds the translations from the catalog.
    env.ok(&["reindex"]);
    let r = search(found[0]);
    assert_eq!(
        r["recordings"][0]["recording_id"],
        spanish.as_str(),
        "{r:#}"
    );

    // By meaning: an English question in other words than the translation's finds the
    // Spanish line, which words alone do not.
    let question = "when is the building work going to start";
    let by = |mode: &str| env.json(&["search", question, "--mode", mode, "--limit", "5"]);
    let meaning = by("meaning");
    assert_eq!(meaning["mode"], "meaning", "{meaning:#}");
    assert_eq!(
        meaning["recordings"][0]["recording_id"],
        spanish.as_str(),
        "{meaning:#}"
    );
    assert_eq!(by("words")["total"], 0);
    let hybrid = env.json(&["search", question, "--limit", "5"]);
    assert_eq!(
        hybrid["mode"], "hybrid",
        "the default where the model is installed"
    );
    assert_eq!(hybrid["recordings"][0]["recording_id"], spanish.as_str());
}

#[test]
fn an_indonesian_track_is_transcribed_and_never_given_a_made_up_translation() {
    // base transcribes espeak-ng's Indonesian well enough, but its translate task renders it
    // as the sign-offs of subtitled videos ("Thank you for watching."): those must never be
    // stored as what was said.
    let env = Env::new();
    let id_wav = env.path("id.wav");
    speak(
        "Selamat pagi semuanya. Hari ini kita akan membahas rencana pembangunan jalan baru \
         di kota kami.",
        "id",
        &id_wav,
    );
    let id = import(&env, &id_wav, "Rapat warga", "Budi", "id");
    transcribe(&env, &id);
    let t = env.json(&["export", &id, "--format", "json"]);
    let segs = t["segments"].as_array().unwrap();
    assert!(!segs.is_empty(), "{t:#}");
    let mut said = String::new();
    for s in segs {
        assert_eq!(s["language"], "id", "{s:#}");
        said.push_str(s["text"].as_str().unwrap());
        if let Some(tr) = s.get("translation") {
            let tr = tr["text"].as_str().unwrap().to_lowercase();
            assert!(
                !tr.contains("watching") && !tr.contains("subscribe"),
                "a stock phrase stored as a translation: {s:#}"
            );
        }
    }
    let said = said.to_lowercase();
    assert!(
        ["selamat", "pagi", "hari", "kita"]
            .iter()
            .filter(|w| said.contains(*w))
            .count()
            >= 3,
        "{said}"
    );
}
