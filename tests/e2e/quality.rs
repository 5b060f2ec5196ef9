//! Transcripts judged as a listener would: languages decided on speech, and (on real human
//! speech from the dev set) words at the second they were said, lines in spoken order.

use std::path::{Path, PathBuf};

use crate::support::*;

fn segments(env: &Env, id: &str) -> Vec<serde_json::Value> {
    env.json(&["export", id, "--format", "json"])["segments"]
        .as_array()
        .unwrap()
        .clone()
}

fn text_of(segs: &[serde_json::Value]) -> String {
    segs.iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}

const INDONESIAN: &str = "Selamat pagi semuanya. Hari ini kita akan membahas rencana \
    pembangunan jalan baru di kota kami. Pemerintah daerah sudah menyetujui anggaran untuk \
    tahun depan.";

/// The language of the story that started the project, in a room that says it is Indonesian:
/// recognisable with base, and every line says `id`.
#[test]
fn indonesian_is_transcribed_when_the_room_says_so() {
    let env = Env::new();
    let model = multilingual_model();
    let wav = env.path("id.wav");
    speak(INDONESIAN, "id", &wav);
    let out = env.ok(&[
        "import",
        wav.to_str().unwrap(),
        "--title",
        "Rapat warga",
        "--speaker",
        "Budi",
        "--language",
        "id",
    ]);
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    env.ok(&["transcribe", &id, "--model", &model, "--threads", "1"]);
    let segs = segments(&env, &id);
    assert!(!segs.is_empty());
    assert!(segs.iter().all(|s| s["language"] == "id"), "{segs:?}");
    let hyp = text_of(&segs);
    let wer = wer(INDONESIAN, &hyp);
    assert!(wer <= 0.6, "WER {wer:.2}: {hyp}");
    for w in [
        "selamat",
        "pagi",
        "hari",
        "ini",
        "kita",
        "pemerintah",
        "tahun",
    ] {
        assert!(hyp.to_lowercase().contains(w), "{w} missing from {hyp}");
    }
}

/// The real-speech dev set (`make devset`): `ROOMTAPE_TEST_DEVSET`, else target/devset.
fn devset(name: &str) -> (PathBuf, serde_json::Value) {
    let root = std::env::var("ROOMTAPE_TEST_DEVSET")
        .unwrap_or_else(|_| format!("{}/target/devset", env!("CARGO_MANIFEST_DIR")));
    let dir = Path::new(&root).join(name);
    let set = std::fs::read(dir.join("set.json")).unwrap_or_else(|e| {
        panic!("the dev set is missing at {root} ({e}): `make test` builds it (scripts/devset.sh)")
    });
    (dir, serde_json::from_slice(&set).unwrap())
}

/// One word said or heard: its scoring form and its time.
struct Timed {
    word: String,
    start_ms: i64,
    end_ms: i64,
}

fn timed(text: &str, start_ms: i64, end_ms: i64) -> Vec<Timed> {
    roomtape_transcribe::metrics::timed_words(text, start_ms, end_ms)
        .into_iter()
        .map(|(word, start_ms, end_ms)| Timed {
            word,
            start_ms,
            end_ms,
        })
        .collect()
}

/// The transcript's words in the order the transcript lists them.
fn said(segs: &[serde_json::Value]) -> Vec<Timed> {
    let ms = |v: &serde_json::Value| v.as_i64().unwrap();
    segs.iter()
        .flat_map(|s| s["words"].as_array().unwrap())
        .flat_map(|w| {
            timed(
                w["text"].as_str().unwrap(),
                ms(&w["start_ms"]),
                ms(&w["end_ms"]),
            )
        })
        .collect()
}

/// The reference's words with their own times where the set has them.
fn reference(set: &serde_json::Value) -> Vec<Timed> {
    let ms = |v: &serde_json::Value| v.as_i64().unwrap();
    set["lines"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| match l["words"].as_array() {
            Some(ws) => ws
                .iter()
                .flat_map(|w| {
                    timed(
                        w["text"].as_str().unwrap(),
                        ms(&w["start_ms"]),
                        ms(&w["end_ms"]),
                    )
                })
                .collect::<Vec<_>>(),
            None => timed(
                l["text"].as_str().unwrap(),
                ms(&l["start_ms"]),
                ms(&l["end_ms"]),
            ),
        })
        .collect()
}

fn import_set(env: &Env, dir: &Path, set: &serde_json::Value) -> String {
    let tracks = set["tracks"].as_array().unwrap();
    let file = if tracks.len() == 1 {
        dir.join(tracks[0]["file"].as_str().unwrap())
    } else {
        let merged = env.path("tracks.wav");
        let mut args: Vec<String> = vec!["-M".into()];
        args.extend(
            tracks
                .iter()
                .map(|t| dir.join(t["file"].as_str().unwrap()).display().to_string()),
        );
        args.push(merged.display().to_string());
        tool("sox", &args.iter().map(String::as_str).collect::<Vec<_>>());
        merged
    };
    let mut args = vec![
        "import".to_string(),
        file.display().to_string(),
        "--title".into(),
        set["name"].as_str().unwrap().into(),
        "--language".into(),
        set["language"].as_str().unwrap().into(),
    ];
    if tracks.len() > 1 {
        args.push("--split-channels".into());
    }
    for t in tracks {
        args.push("--speaker".into());
        args.push(t["speaker"].as_str().unwrap().into());
    }
    let out = env.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    out.split_whitespace().nth(1).unwrap().to_string()
}

/// No word without length, none outside its line, lines in the order they start.
fn assert_well_formed(segs: &[serde_json::Value]) {
    let ms = |v: &serde_json::Value| v.as_i64().unwrap();
    let mut last = i64::MIN;
    for s in segs {
        assert!(ms(&s["start_ms"]) >= last, "lines out of order at {s}");
        last = ms(&s["start_ms"]);
        let ws = s["words"].as_array().unwrap();
        assert!(!ws.is_empty(), "a line without words: {s}");
        assert_eq!(
            s["start_ms"], ws[0]["start_ms"],
            "a line starts with its first word"
        );
        for w in ws {
            assert!(
                ms(&w["end_ms"]) > ms(&w["start_ms"]),
                "a word without length: {w}"
            );
            assert!(
                ms(&w["start_ms"]) >= ms(&s["start_ms"]) && ms(&w["end_ms"]) <= ms(&s["end_ms"]),
                "{w} outside its line {s}"
            );
        }
    }
}

/// An audiobook reader with pauses between passages: nearly every word lands within half a
/// second of where it was said (by the set's forced alignment), at the plain model's accuracy.
#[test]
fn real_speech_is_timed_to_within_half_a_second() {
    let env = Env::new();
    let (dir, set) = devset("librivox-en");
    let id = import_set(&env, &dir, &set);
    env.ok(&[
        "transcribe",
        &id,
        "--model",
        &test_model(),
        "--threads",
        "1",
    ]);
    let segs = segments(&env, &id);
    assert_well_formed(&segs);
    let (r, h) = (reference(&set), said(&segs));
    let rw: Vec<String> = r.iter().map(|t| t.word.clone()).collect();
    let hw: Vec<String> = h.iter().map(|t| t.word.clone()).collect();
    let matched = roomtape_transcribe::metrics::matched_words(&rw, &hw);
    assert!(
        matched.len() * 10 >= r.len() * 9,
        "{} of {} words recognised",
        matched.len(),
        r.len()
    );
    let close = matched
        .iter()
        .filter(|(i, j)| {
            (h[*j].start_ms - r[*i].start_ms).abs() <= 500
                && (h[*j].end_ms - r[*i].end_ms).abs() <= 500
        })
        .count();
    assert!(
        close * 100 >= matched.len() * 95,
        "{close} of {} words within 0.5 s of where they were said",
        matched.len()
    );
    let reference_text: Vec<&str> = set["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    let w = wer(&reference_text.join(" "), &text_of(&segs));
    assert!(w <= 0.1, "WER {w:.3}");
}

/// A two-speaker call, one track each: the merged transcript reads in the order people spoke,
/// so its word error in that order is close to each speaker's own.
#[test]
fn a_two_speaker_call_reads_in_the_order_people_spoke() {
    let env = Env::new();
    let (dir, set) = devset("call-en");
    let id = import_set(&env, &dir, &set);
    env.ok(&[
        "transcribe",
        &id,
        "--model",
        &test_model(),
        "--threads",
        "1",
    ]);
    let segs = segments(&env, &id);
    assert_well_formed(&segs);
    let lines = set["lines"].as_array().unwrap();
    let spoken: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    let merged = wer(&spoken.join(" "), &text_of(&segs));
    let mut per_speaker = Vec::new();
    for (i, t) in set["tracks"].as_array().unwrap().iter().enumerate() {
        let theirs: Vec<&str> = lines
            .iter()
            .filter(|l| l["track"] == i)
            .map(|l| l["text"].as_str().unwrap())
            .collect();
        let name = t["speaker"].as_str().unwrap();
        let mine: Vec<serde_json::Value> = segs
            .iter()
            .filter(|s| s["speaker"] == name)
            .cloned()
            .collect();
        per_speaker.push(wer(&theirs.join(" "), &text_of(&mine)));
    }
    let worst = per_speaker.iter().copied().fold(0.0, f64::max);
    assert!(
        merged <= worst + 0.03,
        "merged WER {merged:.3} against {per_speaker:?} per speaker: lines out of spoken order"
    );
}

/// A Spanish speaker whose track starts with seconds of noise, in a room on `auto`: the
/// language is decided on the speech, for every line.
#[test]
fn a_speakers_language_is_decided_on_their_speech_not_on_noise() {
    let env = Env::new();
    let (dir, _) = devset("prompts-es");
    let wav = env.path("es.wav");
    let noise = env.path("noise.wav");
    tool(
        "sox",
        &[
            "-n",
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            noise.to_str().unwrap(),
            "synth",
            "4",
            "pinknoise",
            "vol",
            "0.2",
        ],
    );
    let track = dir.join("track0.wav");
    tool(
        "sox",
        &[
            noise.to_str().unwrap(),
            track.to_str().unwrap(),
            wav.to_str().unwrap(),
            "trim",
            "0",
            "40",
        ],
    );
    let out = env.ok(&[
        "import",
        wav.to_str().unwrap(),
        "--title",
        "Avisos",
        "--speaker",
        "Operadora",
    ]);
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    env.ok(&[
        "transcribe",
        &id,
        "--model",
        &multilingual_model(),
        "--threads",
        "1",
    ]);
    let segs = segments(&env, &id);
    assert!(segs.len() >= 3, "{segs:?}");
    assert!(segs.iter().all(|s| s["language"] == "es"), "{segs:#?}");
}
