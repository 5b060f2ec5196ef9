//! Transcription end to end with the real tiny.en model (one thread): per-speaker attribution,
//! timing, word error, silence, exports checked by real parsers, and the worker's faults.

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn transcript(env: &Env, id: &str) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["export", id, "--format", "json"])).unwrap()
}

/// Every scripted line is found under its speaker, on time, with few word errors, and nothing
/// is transcribed where that speaker was silent.
fn assert_matches_script(t: &serde_json::Value, lines: &[Line]) {
    let names = NAMES;
    let segs = t["segments"].as_array().unwrap();
    for l in lines {
        let (from, to) = ((l.at - 0.5) * 1000.0, (l.at + l.seconds + 0.5) * 1000.0);
        let mine: Vec<&serde_json::Value> = segs
            .iter()
            .filter(|s| s["speaker"] == names[l.speaker])
            .filter(|s| {
                s["end_ms"].as_f64().unwrap() > from && s["start_ms"].as_f64().unwrap() < to
            })
            .collect();
        assert!(
            !mine.is_empty(),
            "no segment of {} for {:?}: {t:#}",
            names[l.speaker],
            l.text
        );
        let start = mine[0]["start_ms"].as_f64().unwrap() / 1000.0;
        assert!(
            (start - l.at).abs() <= 1.0,
            "{:?} starts at {start:.2} s, truth {:.2} s",
            l.text,
            l.at
        );
        let text: Vec<&str> = mine.iter().map(|s| s["text"].as_str().unwrap()).collect();
        let text = text.join(" ");
        let w = wer(l.text, &text);
        let all: Vec<String> = segs
            .iter()
            .map(|s| {
                format!(
                    "{} {}-{}: {}",
                    s["speaker"], s["start_ms"], s["end_ms"], s["text"]
                )
            })
            .collect();
        assert!(
            w <= 0.25,
            "WER {w:.2} for {:?}: heard {text:?}\n{}",
            l.text,
            all.join("\n")
        );
    }
    for s in segs {
        let speaker = names
            .iter()
            .position(|n| s["speaker"] == *n)
            .expect("a known speaker");
        let (a, b) = (
            s["start_ms"].as_f64().unwrap() / 1000.0,
            s["end_ms"].as_f64().unwrap() / 1000.0,
        );
        let spoken = lines
            .iter()
            .any(|l| l.speaker == speaker && a < l.at + l.seconds + 0.5 && b > l.at - 0.5);
        assert!(spoken, "text where {} was silent: {s}", names[speaker]);
    }
    let starts: Vec<i64> = segs
        .iter()
        .map(|s| s["start_ms"].as_i64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "merged by time");
}

#[test]
fn a_three_speaker_room_is_transcribed_per_speaker() {
    let env = Env::new();
    let model = test_model();
    let (id, lines) = import_room(&env);
    env.ok(&["transcribe", &id, "--model", &model, "--threads", "1"]);
    let t = transcript(&env, &id);
    assert_eq!(t["model"], "tiny.en");
    assert_matches_script(&t, &lines);
    let words = t["segments"][0]["words"].as_array().unwrap();
    assert!(!words.is_empty(), "word timings are kept");
    let listed = env.json(&["recordings", "list"]);
    assert_eq!(listed[0]["state"], "transcribed");
    let jobs = env.json(&["jobs"]);
    assert_eq!(jobs[0]["state"], "done");
    assert_eq!(jobs[0]["attempts"], 1);
    // The archive keeps a copy beside the audio.
    let copy: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.archive(&id).join("transcript.json")).unwrap())
            .unwrap();
    assert_eq!(copy["segments"], t["segments"]);

    // Running it again replaces the transcript; nothing is duplicated.
    env.ok(&["transcribe", &id, "--model", &model, "--threads", "1"]);
    let again = transcript(&env, &id);
    assert_eq!(
        again["segments"].as_array().unwrap().len(),
        t["segments"].as_array().unwrap().len()
    );

    // Exports, judged by real parsers.
    let vtt = env.path("t.vtt");
    std::fs::write(&vtt, env.ok(&["export", &id, "--format", "vtt"])).unwrap();
    let srt = env.path("t.srt");
    std::fs::write(&srt, env.ok(&["export", &id, "--format", "srt"])).unwrap();
    let check = format!(
        r#"
import json, sys, webvtt, srt
caps = webvtt.read({vtt:?})
subs = list(srt.parse(open({srt:?}, encoding="utf-8").read()))
print(json.dumps({{"vtt": [[c.voice, c.start, c.text] for c in caps],
                  "srt": [[s.content, s.start.total_seconds()] for s in subs]}}))
"#,
        vtt = vtt.to_str().unwrap(),
        srt = srt.to_str().unwrap()
    );
    let parsed: serde_json::Value =
        serde_json::from_str(&tool(&test_python(), &["-c", &check])).unwrap();
    let segs = t["segments"].as_array().unwrap();
    let vtt = parsed["vtt"].as_array().unwrap();
    assert_eq!(vtt.len(), segs.len());
    for (cue, seg) in vtt.iter().zip(segs) {
        assert_eq!(cue[0], seg["speaker"], "voice tag");
        let ms = seg["start_ms"].as_i64().unwrap();
        let clock = format!(
            "{:02}:{:02}:{:02}.{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        );
        assert_eq!(cue[1], clock.as_str(), "cue start");
        assert_eq!(cue[2], seg["text"], "cue text");
    }
    let subs = parsed["srt"].as_array().unwrap();
    assert_eq!(subs.len(), segs.len());
    assert!(
        subs[0][0]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}: ", segs[0]["speaker"].as_str().unwrap()))
    );
    let txt = env.ok(&["export", &id, "--format", "txt"]);
    assert!(
        NAMES.iter().all(|n| txt.contains(&format!("] {n}:"))),
        "{txt}"
    );
    let bad = env.fails(&["export", &id, "--format", "docx"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown format"));
}

fn spawn_worker(env: &Env, model: &str, lease: u32) -> Child {
    env.cmd(&[
        "worker",
        "--model",
        model,
        "--threads",
        "1",
        "--lease-seconds",
        &lease.to_string(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("start a worker")
}

fn wait_for(
    env: &Env,
    what: &str,
    timeout: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let jobs = env.json(&["jobs"]);
        if done(&jobs) {
            return jobs;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {what}: {jobs:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_killed_worker_hands_its_job_to_another_and_it_completes_once() {
    let env = Env::new();
    let model = test_model();
    let (id, lines) = import_room(&env);
    let mut first = spawn_worker(&env, &model, 2);
    wait_for(
        &env,
        "the first worker to start",
        Duration::from_secs(60),
        |j| j[0]["state"] == "running",
    );
    std::thread::sleep(Duration::from_millis(300));
    first.kill().unwrap();
    first.wait().unwrap();

    let mut second = spawn_worker(&env, &model, 2);
    let jobs = wait_for(&env, "the job to finish", Duration::from_secs(180), |j| {
        j[0]["state"] == "done"
    });
    second.kill().unwrap();
    second.wait().unwrap();
    let job = &jobs[0];
    assert_eq!(job["attempts"], 2, "{job:#}");
    let runs = job["runs"].as_array().unwrap();
    assert_eq!(runs[0]["outcome"], "lease expired");
    assert_eq!(runs[1]["outcome"], "done");
    assert_ne!(runs[0]["worker"], runs[1]["worker"]);
    assert_matches_script(&transcript(&env, &id), &lines);
}

#[test]
fn two_workers_share_the_queue_and_no_job_runs_twice() {
    let env = Env::new();
    let model = test_model();
    let sentences = [
        "The red kite flew over the hill.",
        "Bread is baked every morning.",
        "The train leaves at noon.",
    ];
    for (i, s) in sentences.iter().enumerate() {
        let wav = env.path(&format!("s{i}.wav"));
        speak(s, "en-us", &wav);
        env.ok(&[
            "import",
            wav.to_str().unwrap(),
            "--speaker",
            "Ana",
            "--language",
            "en",
        ]);
    }
    let mut a = spawn_worker(&env, &model, 30);
    let mut b = spawn_worker(&env, &model, 30);
    let jobs = wait_for(&env, "all jobs", Duration::from_secs(180), |j| {
        j.as_array().unwrap().iter().all(|x| x["state"] == "done")
    });
    a.kill().unwrap();
    b.kill().unwrap();
    a.wait().unwrap();
    b.wait().unwrap();
    for job in jobs.as_array().unwrap() {
        let runs = job["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 1, "ran exactly once: {job:#}");
        assert_eq!(runs[0]["outcome"], "done");
    }
}

#[test]
fn a_corrupt_track_fails_its_job_and_the_next_job_still_runs() {
    let env = Env::new();
    let model = test_model();
    let bad = env.path("bad.wav");
    speak(
        "This recording will be damaged on disk before it is transcribed.",
        "en-us",
        &bad,
    );
    let bad_id = env.json(&["import", bad.to_str().unwrap(), "--language", "en"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let good = env.path("good.wav");
    speak("This one is fine.", "en-us", &good);
    env.ok(&["import", good.to_str().unwrap(), "--language", "en"]);
    let track = opus_files(&env.archive(&bad_id))[0].clone();
    let mut bytes = std::fs::read(&track).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 64].fill(0x55);
    std::fs::File::create(&track)
        .unwrap()
        .write_all(&bytes)
        .unwrap();

    let mut w = spawn_worker(&env, &model, 30);
    let jobs = wait_for(&env, "both jobs", Duration::from_secs(120), |j| {
        j.as_array()
            .unwrap()
            .iter()
            .all(|x| x["state"] == "done" || x["state"] == "failed")
    });
    w.kill().unwrap();
    w.wait().unwrap();
    let bad_job = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["recording_id"] == bad_id.as_str())
        .unwrap();
    assert_eq!(bad_job["state"], "failed", "{bad_job:#}");
    assert_eq!(bad_job["attempts"], 1, "a corrupt track is not retried");
    assert!(
        bad_job["error"].as_str().unwrap().contains("corrupt"),
        "{bad_job:#}"
    );
    let good_job = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["recording_id"] != bad_id.as_str())
        .unwrap();
    assert_eq!(good_job["state"], "done");
}

#[test]
fn a_broken_model_is_refused_at_start() {
    let env = Env::new();
    let model = std::fs::read(test_model()).unwrap();
    let cut = env.path("cut.bin");
    std::fs::write(&cut, &model[..model.len() / 3]).unwrap();
    let out = env.fails(&["worker", "--model", cut.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("truncated"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let text = env.path("notes.bin");
    std::fs::write(&text, "not a model").unwrap();
    let out = env.fails(&["transcribe", "0000", "--model", text.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not found") || err.contains("not a whisper.cpp ggml model"),
        "{err}"
    );
    let out = env.fails(&["worker", "--model", text.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a whisper.cpp ggml model"));
    let out = env.fails(&["worker", "--model", "no-such-model"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model \"no-such-model\""));
}

/// A model quantised to q8_0 takes under 60% of the f16 size, loads in whisper.cpp
/// and transcribes the room as well as the f16 one; a second quantisation, or an unknown type,
/// is refused with what is wrong.
#[test]
fn a_quantised_model_is_installed_and_transcribes() {
    let env = Env::new();
    let model = test_model();
    let out = env.ok(&[
        "model", "quantize", &model, "--type", "q8_0", "--name", "tiny-q8",
    ]);
    assert!(out.contains("installed tiny-q8"), "{out}");
    let listed = env.json(&["model", "list"]);
    let q = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "tiny-q8")
        .unwrap()
        .clone();
    let f16 = std::fs::metadata(&model).unwrap().len();
    assert!(q["bytes"].as_u64().unwrap() * 10 < f16 * 6, "{q}");
    assert!(q["description"].as_str().unwrap().contains("q8_0"), "{q}");

    let (id, lines) = import_room(&env);
    env.ok(&["transcribe", &id, "--model", "tiny-q8", "--threads", "1"]);
    let t = transcript(&env, &id);
    assert_eq!(t["model"], "tiny-q8");
    assert_matches_script(&t, &lines);

    let err = env.fails(&[
        "model", "quantize", "tiny-q8", "--type", "q5_0", "--name", "again",
    ]);
    let err = String::from_utf8_lossy(&err.stderr);
    assert!(err.contains("only f16 models can be quantised"), "{err}");
    let err = env.fails(&["model", "quantize", &model, "--type", "q3_k"]);
    let err = String::from_utf8_lossy(&err.stderr);
    assert!(err.contains("unknown quantisation \"q3_k\""), "{err}");
}
