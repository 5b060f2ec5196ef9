//! Issue 19, translations: a line said in another language gets an English translation beside
//! it (Whisper's translate task, the real multilingual base model), stored with the original,
//! exported either way, and found by an English query; a line said in English is not
//! translated; reindexing rebuilds it from the catalog.

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
    let search = |q: &str| env.json(&["search", q, "--limit", "100"]);
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
}
