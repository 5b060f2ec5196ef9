//! Bad files get one clear line naming the file and the reason, a non-zero exit, no panic, and
//! leave nothing half-made behind.

use crate::support::*;

fn assert_rejected(env: &Env, file: &std::path::Path, reason: &str) {
    let out = env.fails(&["import", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, got: {stderr}");
    let line = lines[0];
    assert!(line.starts_with("roomtape: import "), "{line}");
    assert!(
        line.contains(&file.display().to_string()),
        "names the file: {line}"
    );
    assert!(line.contains(reason), "says {reason:?}: {line}");
    assert!(!line.contains("panicked"), "{line}");
}

fn assert_nothing_left(env: &Env) {
    // A refused first import leaves no catalog at all; a later one leaves it empty.
    if env.data().join("catalog.sqlite").exists() {
        let listed = env.json(&["recordings", "list"]);
        assert_eq!(listed, serde_json::json!([]), "no recording in the catalog");
    }
    let archives = env.data().join("archives");
    let left: Vec<_> = std::fs::read_dir(&archives)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing in the archive store: {left:?}");
}

#[test]
fn bad_files_are_refused_cleanly() {
    let env = Env::new();
    let voice = env.path("v.wav");
    speak("This sentence will be cut in half.", "en", &voice);
    let wav = std::fs::read(&voice).unwrap();

    let empty = env.path("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    assert_rejected(&env, &empty, "empty");

    let text = env.path("notes.wav");
    std::fs::write(&text, "Dear diary, this is not audio at all.\n".repeat(20)).unwrap();
    assert_rejected(&env, &text, "not a recognised audio file");

    let cut_wav = env.path("cut.wav");
    std::fs::write(&cut_wav, &wav[..wav.len() / 2]).unwrap();
    assert_rejected(&env, &cut_wav, "truncated");

    let mp3 = env.path("full.mp3");
    tool("sox", &[voice.to_str().unwrap(), mp3.to_str().unwrap()]);
    let mp3_bytes = std::fs::read(&mp3).unwrap();
    let cut_mp3 = env.path("cut.mp3");
    std::fs::write(&cut_mp3, &mp3_bytes[..mp3_bytes.len() / 2 + 7]).unwrap();
    assert_rejected(&env, &cut_mp3, "truncated");

    // A header that claims ten hours over one second of samples.
    let liar = env.path("ten-hours.wav");
    let rate = 16_000u32;
    let claimed = 10 * 3600 * rate * 2;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + claimed).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&claimed.to_le_bytes());
    b.extend((0..rate).flat_map(|i| (((i as f32 * 0.05).sin() * 8000.0) as i16).to_le_bytes()));
    std::fs::write(&liar, b).unwrap();
    assert_rejected(&env, &liar, "10:00:00.000");

    let gsm = env.path("gsm.wav");
    tool(
        "sox",
        &[
            voice.to_str().unwrap(),
            "-r",
            "8000",
            "-e",
            "gsm-full-rate",
            gsm.to_str().unwrap(),
        ],
    );
    assert_rejected(
        &env,
        &gsm,
        "unsupported: WAV audio encoding 0x0031 (GSM 6.10)",
    );

    let missing = env.path("missing.wav");
    assert_rejected(&env, &missing, "No such file");

    assert_nothing_left(&env);
}

#[test]
fn unknown_ids_and_bad_settings_are_clear_errors() {
    let env = Env::new();
    let out = env.fails(&["recordings", "show", "0123"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not found"), "{err}");
    let out = env
        .cmd(&["recordings", "list"])
        .env("ROOMTAPE_RECORDER_JITTER_MS", "soon")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ROOMTAPE_RECORDER_JITTER_MS") && err.contains("integer"),
        "{err}"
    );
}

#[test]
fn wrong_languages_models_and_speaker_names_are_refused_with_what_is_wrong() {
    let env = Env::new();
    let voice = env.path("v.wav");
    speak("One voice, one channel.", "en", &voice);
    let v = voice.to_str().unwrap();
    let stderr = |args: &[&str]| String::from_utf8_lossy(&env.fails(args).stderr).to_string();

    // A language Whisper does not know: refused before anything is stored, with the list.
    let err = stderr(&["import", v, "--language", "klingon"]);
    assert!(err.contains("unknown language \"klingon\""), "{err}");
    assert!(err.contains("en, zh, de"), "lists the valid codes: {err}");
    assert_nothing_left(&env);

    // Speaker names that name no track: refused, not dropped.
    let err = stderr(&["import", v, "--speaker", "Ana", "--speaker", "Bo"]);
    assert!(err.contains("--split-channels"), "{err}");
    let stereo = env.path("stereo.wav");
    tool("sox", &["-M", v, v, stereo.to_str().unwrap()]);
    let err = stderr(&[
        "import",
        stereo.to_str().unwrap(),
        "--split-channels",
        "--speaker",
        "Ana",
        "--speaker",
        "Bo",
        "--speaker",
        "Cy",
    ]);
    assert!(err.contains("3 speaker names for 2 channel(s)"), "{err}");
    assert_nothing_left(&env);

    // A model file that is not there is called a missing file, not a bad name.
    env.ok(&["import", v]);
    let listed = env.json(&["recordings", "list"]);
    let id = listed[0]["id"].as_str().unwrap();
    let err = stderr(&["transcribe", "--model", "/missing/file.bin", id]);
    assert!(
        err.contains("model file \"/missing/file.bin\" does not exist"),
        "{err}"
    );
}

#[test]
fn reading_commands_never_create_a_catalog_and_say_where_they_looked() {
    let env = Env::new();
    let cwd = env.path("elsewhere");
    std::fs::create_dir_all(&cwd).unwrap();
    let run = |args: &[&str], vars: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_roomtape"))
            .args(args)
            .current_dir(&cwd)
            .env_remove("ROOMTAPE_DATA_DIR")
            .env_remove("ROOMTAPE_CONFIG")
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let want = std::path::absolute(cwd.join("data/catalog.sqlite")).unwrap();
    for args in [
        &["jobs"][..],
        &["recordings", "list"],
        &["recordings", "show", "0123"],
        &["search", "anything"],
        &["export", "0123"],
        &["users", "list"],
        &["users", "token", "ana"],
        &["reindex"],
        &["recover"],
    ] {
        let (ok, err) = run(args, &[]);
        assert!(!ok, "{args:?} succeeded without a catalog");
        assert!(
            err.contains(want.to_str().unwrap()) && err.contains("the default ./data"),
            "{args:?} says where it looked: {err}"
        );
        assert!(
            err.contains("--data-dir") && err.contains("ROOMTAPE_DATA_DIR"),
            "{args:?} says how to point elsewhere: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!cwd.join("data").exists(), "{args:?} created ./data");
    }
    // The same through the variable and the flag: nothing is created there either.
    let other = env.path("other-data");
    let (ok, err) = run(&["jobs"], &[("ROOMTAPE_DATA_DIR", other.to_str().unwrap())]);
    assert!(!ok && err.contains("from ROOMTAPE_DATA_DIR"), "{err}");
    let (ok, err) = run(&["--data-dir", other.to_str().unwrap(), "jobs"], &[]);
    assert!(!ok && err.contains("from --data-dir"), "{err}");
    assert!(
        err.contains(other.join("catalog.sqlite").to_str().unwrap()),
        "{err}"
    );
    assert!(!other.exists(), "a reading command created {other:?}");
    // A command that writes starts the catalog; then the reading ones work there.
    let (ok, err) = run(
        &["users", "add", "ana"],
        &[("ROOMTAPE_PASSWORD", "a long passphrase")],
    );
    assert!(ok, "{err}");
    assert!(cwd.join("data/catalog.sqlite").is_file());
    let (ok, err) = run(&["jobs"], &[]);
    assert!(ok, "{err}");
    let (ok, err) = run(&["users", "list"], &[]);
    assert!(ok, "{err}");
}
