//! Webhooks from a real `roomtape serve` to receivers inside the test: signed deliveries of
//! `recording.finished` and `transcript.ready` for a recording the service's worker transcribes,
//! a receiver that fails twice and is retried, one that cannot be reached and is given up, and
//! nobody else's webhooks in sight.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::*;

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
    at: Instant,
    unix: i64,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A local HTTP receiver: `/flaky` answers 500 to its first two requests, everything else 200.
fn start_receiver(rt: &tokio::runtime::Runtime) -> (String, Arc<Mutex<Vec<Received>>>) {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let seen = got.clone();
    let handler = move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: String| {
        let seen = seen.clone();
        async move {
            let mut all = seen.lock().unwrap();
            let path = uri.path().to_string();
            let before = all.iter().filter(|r| r.path == path).count();
            all.push(Received {
                path: path.clone(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect(),
                body,
                at: Instant::now(),
                unix: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64,
            });
            if path == "/flaky" && before < 2 {
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            } else {
                axum::http::StatusCode::OK
            }
        }
    };
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(handler);
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), got)
}

/// An HTTP/1.1 request with a bearer token: `(status, body)`.
fn call(addr: &str, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn json_of(status: u16, body: &str, want: u16) -> Value {
    assert_eq!(status, want, "{body}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The test's own HMAC-SHA256, hex.
fn hmac_hex(key: &str, msg: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(msg.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a delivery's signature with `secret` as a receiver would.
fn signed_with(r: &Received, secret: &str) -> bool {
    let ts = r.header("Roomtape-Timestamp");
    let sig = r.header("Roomtape-Signature");
    sig == format!("v1={}", hmac_hex(secret, &format!("{ts}.{}", r.body)))
}

fn add_user(env: &Env, name: &str) -> String {
    let out = env
        .cmd(&["users", "add", name])
        .env("ROOMTAPE_PASSWORD", "correct horse battery")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.ok(&["users", "token", name]).trim().to_string()
}

fn deliveries(addr: &str, token: &str, hook: &str) -> Vec<Value> {
    let (status, body) = call(
        addr,
        "GET",
        &format!("/api/v1/webhooks/{hook}/deliveries"),
        token,
        None,
    );
    json_of(status, &body, 200)["deliveries"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn webhooks_are_signed_retried_and_listed_with_their_outcome() {
    let env = Env::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (receiver, got) = start_receiver(&rt);
    // A port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/gone", l.local_addr().unwrap())
    };
    // The first account is the admin, who hears of everyone's recordings.
    let boss = add_user(&env, "boss");
    let ana = add_user(&env, "ana");
    let bob = add_user(&env, "bob");
    let (server, addr) = env.serve_with(&[
        ("ROOMTAPE_TRANSCRIBE_MODEL", &test_model()),
        ("ROOMTAPE_TRANSCRIBE_THREADS", "1"),
        ("ROOMTAPE_WEBHOOKS_RETRY_BASE_MS", "300"),
        ("ROOMTAPE_WEBHOOKS_MAX_ATTEMPTS", "3"),
        ("ROOMTAPE_WEBHOOKS_TIMEOUT_MS", "3000"),
        ("ROOMTAPE_WEBHOOKS_ALLOW_PRIVATE", "true"),
    ]);

    let create = |token: &str, body: Value| {
        let (status, text) = call(&addr, "POST", "/api/v1/webhooks", token, Some(&body));
        json_of(status, &text, 201)
    };
    let ok = create(&ana, json!({"url": format!("{receiver}/ok")}));
    assert_eq!(
        ok["events"],
        json!(["recording.finished", "transcript.ready"])
    );
    let secret = ok["secret"].as_str().unwrap().to_string();
    let flaky = create(
        &ana,
        json!({"url": format!("{receiver}/flaky"), "events": ["recording.finished"]}),
    );
    let gone = create(&ana, json!({"url": dead, "events": ["recording.finished"]}));
    let admin = create(&boss, json!({"url": format!("{receiver}/admin")}));
    let bobs = create(
        &bob,
        json!({"url": format!("{receiver}/bob"), "events": ["transcript.ready"]}),
    );
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();

    // Mistakes are 400s that say what is wrong.
    for (body, says) in [
        (json!({"url": "ftp://example.org/x"}), "http:// or https://"),
        (
            json!({"url": format!("{receiver}/x"), "events": ["recording.started"]}),
            "recording.started",
        ),
        (
            json!({"url": format!("{receiver}/x"), "events": []}),
            "at least one",
        ),
        (json!({"events": ["transcript.ready"]}), "url"),
    ] {
        let (status, text) = call(&addr, "POST", "/api/v1/webhooks", &ana, Some(&body));
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains(says), "{body}: {text}");
        assert!(text.contains("\"error\":{\"code\""), "{text}");
    }

    // Only the owner sees and deletes a webhook.
    let (status, text) = call(&addr, "GET", "/api/v1/webhooks", &ana, None);
    let listed = json_of(status, &text, 200)["webhooks"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    assert!(!text.contains(&secret), "lists never show the secret");
    let (status, text) = call(&addr, "GET", "/api/v1/webhooks", &bob, None);
    assert_eq!(
        json_of(status, &text, 200)["webhooks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let path = format!("/api/v1/webhooks/{}/deliveries", id(&ok));
    assert_eq!(call(&addr, "GET", &path, &bob, None).0, 404);
    let path = format!("/api/v1/webhooks/{}", id(&ok));
    assert_eq!(call(&addr, "DELETE", &path, &bob, None).0, 404);

    // Ana's recording: imported finished, then transcribed by the service's worker.
    let voice = env.path("hook.wav");
    speak("Webhooks tell you when it is ready.", "en", &voice);
    let rec = env.json(&[
        "import",
        voice.to_str().unwrap(),
        "--title",
        "Hooked <b>talk</b>",
        "--owner",
        "ana",
        "--language",
        "en",
    ])["id"]
        .as_str()
        .unwrap()
        .to_string();

    let count = |path: &str| {
        got.lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count()
    };
    let state_of = |hook: &Value| {
        deliveries(&addr, &ana, &id(hook))
            .first()
            .map(|d| d["state"].as_str().unwrap().to_string())
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while !(count("/ok") >= 2
        && count("/admin") >= 2
        && state_of(&flaky).as_deref() == Some("delivered")
        && state_of(&gone).as_deref() == Some("failed"))
    {
        assert!(
            Instant::now() < deadline,
            "deliveries did not finish: {:?}",
            got.lock()
                .unwrap()
                .iter()
                .map(|r| &r.path)
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    let got = got.lock().unwrap().clone();

    // The two events, in order, signed with the webhook's secret and a fresh timestamp.
    let to_ok: Vec<&Received> = got.iter().filter(|r| r.path == "/ok").collect();
    assert_eq!(to_ok.len(), 2, "each event once: {to_ok:?}");
    let listed = deliveries(&addr, &ana, &id(&ok));
    for (r, (kind, state)) in to_ok.iter().zip([
        ("recording.finished", "recorded"),
        ("transcript.ready", "transcribed"),
    ]) {
        assert!(signed_with(r, &secret), "bad signature: {r:?}");
        assert!(!signed_with(r, flaky["secret"].as_str().unwrap()));
        let ts: i64 = r.header("Roomtape-Timestamp").parse().unwrap();
        assert!(
            (ts - r.unix).abs() <= 5,
            "stale timestamp {ts} at {}",
            r.unix
        );
        assert_eq!(r.header("Roomtape-Event"), kind);
        assert!(r.header("Content-Type").starts_with("application/json"));
        let v = r.json();
        assert_eq!(v["type"], kind);
        assert!(v["id"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
        assert!(v["created_at"].as_str().unwrap().ends_with('Z'), "{v}");
        let recording = &v["data"]["recording"];
        assert_eq!(recording["id"], rec.as_str());
        assert_eq!(recording["title"], "Hooked <b>talk</b>");
        assert_eq!(recording["state"], state);
        assert_eq!(recording["visibility"], "private");
        assert!(recording["duration_ms"].as_i64().unwrap() > 1000, "{v}");
        let links = &v["data"]["links"];
        assert_eq!(links["replay"], format!("http://{addr}/r/{rec}"));
        assert_eq!(
            links["transcript"],
            format!("http://{addr}/api/v1/recordings/{rec}/transcript")
        );
        let delivery = r.header("Roomtape-Delivery");
        let row = listed
            .iter()
            .find(|d| d["id"] == delivery)
            .unwrap_or_else(|| panic!("delivery {delivery} is not listed: {listed:?}"));
        assert_eq!(row["event"], kind);
        assert_eq!(row["event_id"], v["id"]);
        assert_eq!(
            (&row["state"], &row["attempts"], &row["last_status"]),
            (&json!("delivered"), &json!(1), &json!(200))
        );
    }

    // The transcript link works for the owner once transcript.ready has arrived.
    let link = to_ok[1].json()["data"]["links"]["transcript"]
        .as_str()
        .unwrap()
        .to_string();
    let path = link.strip_prefix(&format!("http://{addr}")).unwrap();
    let (status, text) = call(&addr, "GET", path, &ana, None);
    assert_eq!(status, 200, "{path}: {text}");

    // The admin hears of Ana's recording too, under the admin's own secret; Bob does not.
    let to_admin: Vec<&Received> = got.iter().filter(|r| r.path == "/admin").collect();
    assert_eq!(to_admin.len(), 2);
    assert!(
        to_admin
            .iter()
            .all(|r| signed_with(r, admin["secret"].as_str().unwrap()))
    );
    assert_eq!(
        to_admin[1].json()["id"],
        to_ok[1].json()["id"],
        "one event, one id"
    );
    assert!(!got.iter().any(|r| r.path == "/bob"));
    assert!(deliveries(&addr, &bob, &id(&bobs)).is_empty());

    // 500, 500, 200: three attempts of one delivery, backing off, then delivered.
    let to_flaky: Vec<&Received> = got.iter().filter(|r| r.path == "/flaky").collect();
    assert_eq!(to_flaky.len(), 3, "{to_flaky:?}");
    let first = to_flaky[0].header("Roomtape-Delivery");
    assert!(
        to_flaky
            .iter()
            .all(|r| r.header("Roomtape-Delivery") == first)
    );
    assert!(
        to_flaky
            .iter()
            .all(|r| signed_with(r, flaky["secret"].as_str().unwrap()))
    );
    let gap1 = to_flaky[1].at - to_flaky[0].at;
    let gap2 = to_flaky[2].at - to_flaky[1].at;
    assert!(gap1 >= Duration::from_millis(300), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(600), "{gap2:?}");
    let list = deliveries(&addr, &ana, &id(&flaky));
    assert_eq!(list.len(), 1, "{list:?}");
    let d = &list[0];
    assert_eq!(d["id"], first);
    assert_eq!(
        (
            &d["state"],
            &d["attempts"],
            &d["last_status"],
            &d["last_error"]
        ),
        (&json!("delivered"), &json!(3), &json!(200), &Value::Null)
    );

    // Nobody listens: given up after the third attempt, with the reason listed.
    let list = deliveries(&addr, &ana, &id(&gone));
    assert_eq!(list.len(), 1, "{list:?}");
    let d = &list[0];
    assert_eq!(
        (
            &d["state"],
            &d["attempts"],
            &d["last_status"],
            &d["next_attempt_at"]
        ),
        (&json!("failed"), &json!(3), &Value::Null, &Value::Null)
    );
    let error = d["last_error"].as_str().unwrap().to_lowercase();
    assert!(error.contains("refused"), "{error}");

    // The page lists webhooks and their deliveries' outcome.
    let (status, page) = call(&addr, "GET", "/webhooks", &ana, None);
    assert_eq!(status, 200);
    assert!(page.contains(&format!("{receiver}/flaky")), "{page}");
    assert!(page.contains("delivered") && page.contains("failed"));

    // Deleting a webhook removes it and its deliveries.
    let path = format!("/api/v1/webhooks/{}", id(&gone));
    assert_eq!(call(&addr, "DELETE", &path, &ana, None).0, 204);
    assert_eq!(call(&addr, "DELETE", &path, &ana, None).0, 404);
    let path = format!("/api/v1/webhooks/{}/deliveries", id(&gone));
    assert_eq!(call(&addr, "GET", &path, &ana, None).0, 404);

    server.stop();
}
