//! `roomtape serve` answers on HTTP (anonymous callers see public recordings only) and stops
//! cleanly on SIGTERM.

use crate::support::*;

#[test]
fn serve_lists_recordings_and_stops_on_sigterm() {
    let env = Env::new();
    let voice = env.path("v.wav");
    speak("Served over HTTP.", "en", &voice);
    let id = env.json(&["import", voice.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let private = env.json(&["import", voice.to_str().unwrap(), "--title", "Not yet out"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(&["recordings", "publish", &id, "--visibility", "public"]);

    let (child, addr) = env.serve();

    let (status, body) = http_get(&addr, "/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = http_get(&addr, "/api/v1/recordings");
    assert_eq!(status, 200);
    let v: serde_json::Value =
        serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    // Anonymous callers see the public recording and not the private one.
    let ids: Vec<&str> = v["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()], "{body}");
    assert_ne!(ids[0], private);
    let (status, body) = http_get(&addr, "/api/v1/nothing");
    assert_eq!(status, 404);
    assert!(body.contains("\"code\":\"not_found\""), "{body}");

    child.stop();
}
