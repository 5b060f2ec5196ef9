//! The OpenAPI document against the running service: schemathesis (from PyPI, `make pytools`)
//! reads `/api/v1/openapi.json` from `roomtape serve` and sends generated requests to every
//! operation, checking that status codes, content types, headers and bodies are what the
//! document says, that invalid input is refused, that unsupported methods get 405 and that
//! operations needing a token refuse requests without one.

use std::process::Command;

use crate::support::*;

/// Operations left out of the run, because they would destroy the run's own fixtures: revoking
/// tokens (its stateful phase lists the caller's tokens and would revoke its own credentials)
/// and deleting recordings (it would delete the recording the other operations are pointed at).
/// Both are covered by `web/tests/api.rs`.
const DESTRUCTIVE: [&str; 2] = ["api_revoke_token", "delete_recording"];

/// Operations pointed at the imported recording (and its track, speaker and job) instead of
/// random ids, so their successful answers are checked too. Their requests are generated
/// valid only: a fixed path would turn schemathesis's "invalid id" cases into valid requests.
const ON_THE_RECORDING: [&str; 8] = [
    "get_recording",
    "update_recording",
    "list_tracks",
    "track_audio",
    "mix_audio",
    "get_transcript",
    "rename_speaker",
    "correct_segment",
];

#[test]
fn schemathesis_finds_the_running_service_true_to_its_openapi_document() {
    let env = Env::new();
    let _admin = user_with_token(&env, "root", "Root");
    let token = user_with_token(&env, "olga", "Olga");
    let script = [
        (0, 0.5, "Good morning and welcome to the weekly meeting."),
        (
            1,
            4.0,
            "Thank you, the new library will open in the spring.",
        ),
    ];
    let (room, _) = make_room(&env, &["en-us+m3", "en-us+f4"], &script, 8.0);
    let out = env.json(&[
        "import",
        room.to_str().unwrap(),
        "--split-channels",
        "--title",
        "API check",
        "--speaker",
        "Olga",
        "--speaker",
        "Bruno",
        "--owner",
        "olga",
        "--speaker-account",
        "olga",
        "--language",
        "en",
    ]);
    let id = out["id"].as_str().unwrap().to_string();
    let track = &out["tracks"][0];
    let job = out["job"].as_str().unwrap().to_string();
    env.ok(&[
        "transcribe",
        &id,
        "--model",
        &test_model(),
        "--threads",
        "2",
    ]);
    let (served, addr) = env.serve();

    let config = env.path("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[[operations]]\n\
             include-operation-id = {on:?}\n\
             parameters = {{ \"path.id\" = \"{id}\", \"path.track_id\" = \"{track_id}\", \"path.speaker_id\" = \"{speaker_id}\" }}\n\
             generation.mode = \"positive\"\n\n\
             [[operations]]\n\
             include-operation-id = \"get_job\"\n\
             parameters = {{ \"path.id\" = \"{job}\" }}\n\
             generation.mode = \"positive\"\n",
            on = ON_THE_RECORDING,
            track_id = track["track_id"].as_str().unwrap(),
            speaker_id = track["speaker_id"].as_str().unwrap(),
        ),
    )
    .unwrap();

    let python = test_python();
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "schemathesis.cli", "--config-file"])
        .arg(&config)
        .args(["run", &format!("http://{addr}/api/v1/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // Every check but "valid data is accepted": the server refuses some texts the schema
        // cannot describe (control characters, unknown language codes, impossible dates).
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args([
            "--max-examples",
            "40",
            "--request-timeout",
            "10",
            "--no-color",
        ])
        .current_dir(env.dir.path());
    for op in DESTRUCTIVE {
        cmd.args(["--exclude-operation-id", op]);
    }
    if let Ok(seed) = std::env::var("ROOMTAPE_SCHEMATHESIS_SEED") {
        cmd.args(["--seed", &seed]);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {python} -m schemathesis (run `make pytools`): {e}")
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found the service and its OpenAPI document disagreeing:\n{stdout}\n{stderr}"
    );
    // It really ran: every operation but the excluded ones was selected and tested.
    let count = |label: &str| -> usize {
        let line = stdout
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label:?} in the output:\n{stdout}"));
        let n = line.trim().split('/').next().unwrap_or("");
        n.parse()
            .unwrap_or_else(|_| panic!("{label} {line}\n{stdout}"))
    };
    let (selected, tested) = (count("Selected:"), count("Tested:"));
    let doc: serde_json::Value =
        serde_json::from_str(&http_get(&addr, "/api/v1/openapi.json").1).unwrap();
    let operations: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{method} {path}"))
        })
        .collect();
    assert_eq!(tested, selected, "{stdout}");
    // schemathesis leaves out the operation at the document's own URL (it has just read it).
    assert!(operations.iter().any(|o| o == "get /openapi.json"));
    assert_eq!(
        selected,
        operations.len() - DESTRUCTIVE.len() - 1,
        "every operation but {DESTRUCTIVE:?} and the document was tested: {operations:?}\n{stdout}"
    );
    // The summary, for whoever runs the test with --nocapture.
    let lines: Vec<&str> = stdout.lines().collect();
    println!("{}", lines[lines.len().saturating_sub(25)..].join("\n"));
    served.stop();
}
