//! A recording process killed with SIGKILL loses at most about a second: `roomtape recover`
//! finishes what reached the disk into tracks that pass opusinfo.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn a_killed_recording_is_recovered() {
    let env = Env::new();
    let mut child = env
        .cmd(&[
            "debug",
            "record-synthetic",
            "--speakers",
            "2",
            "--seconds",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the recorder");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let started = Instant::now();
    let id = first
        .trim()
        .strip_prefix("recording ")
        .expect("prints its id")
        .to_string();
    std::thread::sleep(Duration::from_millis(4500));
    child.kill().expect("SIGKILL");
    let killed_after = started.elapsed().as_secs_f64();
    child.wait().unwrap();

    let listed = env.json(&["recordings", "list"]);
    assert_eq!(listed[0]["state"], "recording", "left open by the crash");

    let report = env.json(&["recover"]);
    assert_eq!(report["recovered"][0]["id"], id.as_str(), "{report}");
    let shown = env.json(&["recordings", "list"]);
    assert_eq!(shown[0]["state"], "recorded");
    assert_eq!(shown[0]["recovered"], true);

    let manifest = env.json(&["recordings", "show", &id]);
    assert_eq!(manifest["recovered"], true);
    assert_eq!(manifest["open"], false);
    let tracks = manifest["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2, "both speakers were recorded");
    let end_ms = tracks
        .iter()
        .map(|t| t["offset_ms"].as_i64().unwrap() + t["duration_ms"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(
        end_ms as f64 >= (killed_after - 1.5) * 1000.0,
        "kept {end_ms} ms of a recording killed after {killed_after:.2} s"
    );
    // The second speaker joined one second in.
    assert!(
        (tracks[1]["offset_ms"].as_i64().unwrap()
            - tracks[0]["offset_ms"].as_i64().unwrap()
            - 1000)
            .abs()
            < 100
    );
    for f in opus_files(&env.archive(&id)) {
        assert_opusinfo_ok(&f);
        let secs = opusdec_seconds(&f, env.dir.path());
        assert!(secs > 1.0, "{} plays {secs} s", f.display());
    }
    // A second run has nothing left to do.
    let again = env.json(&["recover"]);
    assert_eq!(again["recovered"], serde_json::json!([]));
}

/// A long input made with sox (20 minutes of tone: many seconds of importing).
fn long_input(env: &Env) -> std::path::PathBuf {
    let path = env.path("long.flac");
    tool(
        "sox",
        &[
            "-R",
            "-n",
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            path.to_str().unwrap(),
            "synth",
            "1200",
            "sine",
            "300",
        ],
    );
    path
}

/// Starts `roomtape --json import <file>`.
fn start_import(env: &Env, file: &std::path::Path) -> std::process::Child {
    env.cmd(&["--json", "import", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the import")
}

/// Waits until the running import has made its archive directory; returns the recording id
/// (the directory's name).
fn archive_of(env: &Env, importer: &mut std::process::Child) -> String {
    let archives = env.data().join("archives");
    let t0 = Instant::now();
    loop {
        let dir = std::fs::read_dir(&archives)
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .find(|p| p.is_dir());
        if let Some(dir) = dir {
            return dir.file_name().unwrap().to_string_lossy().into_owned();
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = importer.kill();
            panic!("the import wrote no archive");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Regression: recovery at start (`recover`, or `serve` restarted) took the archive of an
/// import still being written for an orphan and removed it; the import then failed with
/// "archive file … not found". The importer's claim keeps it.
#[test]
fn recovery_leaves_an_import_in_progress_alone() {
    let env = Env::new();
    let input = long_input(&env);
    let mut importer = start_import(&env, &input);
    let id = archive_of(&env, &mut importer);

    let report = env.json(&["recover"]);
    assert_eq!(report["orphans_removed"], serde_json::json!([]), "{report}");
    assert_eq!(report["in_progress"], serde_json::json!([id]), "{report}");
    // A service restarted now runs the same recovery before it serves.
    let (served, addr) = env.serve();
    assert_eq!(http_get(&addr, "/healthz").0, 200);
    served.stop();
    let log = std::fs::read_to_string(env.path("serve.log")).unwrap();
    assert!(log.contains("an import is in progress"), "{log}");
    assert!(
        env.archive(&id).is_dir(),
        "the archive is still there after recovery"
    );

    assert!(
        importer.try_wait().unwrap().is_none(),
        "the import ended before recovery had run: the test proved nothing (lengthen the input)"
    );
    let out = importer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let imported: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(imported["id"], id.as_str());
    assert_eq!(imported["duration_ms"], 1_200_000);

    let listed = env.json(&["recordings", "list"]);
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed[0]["state"], "recorded");
    for f in opus_files(&env.archive(&id)) {
        assert!(f.is_file(), "{} is missing", f.display());
    }
    assert!(
        !env.data().join(format!("archives/{id}.lock")).exists(),
        "the claim is released once the catalog row exists"
    );
    // The finished import is nobody's orphan.
    let again = env.json(&["recover"]);
    assert_eq!(again["orphans_removed"], serde_json::json!([]), "{again}");
    assert_eq!(again["in_progress"], serde_json::json!([]), "{again}");
    assert!(env.archive(&id).join("manifest.json").is_file());
}

/// An importer killed halfway releases its claim with its life: recovery removes what it left.
#[test]
fn recovery_removes_an_abandoned_import() {
    let env = Env::new();
    let input = long_input(&env);
    let mut importer = start_import(&env, &input);
    let id = archive_of(&env, &mut importer);
    std::thread::sleep(Duration::from_millis(300));
    importer.kill().expect("SIGKILL");
    importer.wait().unwrap();
    assert!(
        env.archive(&id).is_dir(),
        "the killed import left its archive"
    );

    let report = env.json(&["recover"]);
    assert_eq!(
        report["orphans_removed"],
        serde_json::json!([id]),
        "{report}"
    );
    assert_eq!(report["in_progress"], serde_json::json!([]), "{report}");
    assert!(!env.archive(&id).exists(), "the orphan is removed");
    let left: Vec<_> = std::fs::read_dir(env.data().join("archives"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "nothing is left behind: {left:?}");
    assert_eq!(env.json(&["recordings", "list"]), serde_json::json!([]));
}
