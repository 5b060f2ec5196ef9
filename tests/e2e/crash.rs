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
