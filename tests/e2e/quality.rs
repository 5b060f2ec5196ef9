//! Transcripts judged as a listener would: languages decided on speech, and (on real human
//! speech from the dev set) words at the second they were said, lines in spoken order.

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
