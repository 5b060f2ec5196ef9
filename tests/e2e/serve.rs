//! `roomtape serve` answers on HTTP (anonymous callers see public recordings only), applies the
//! connection limits of its settings, and stops cleanly on SIGTERM.

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

/// Reads until the service closes the connection; returns when that was, measured from
/// `since`, or `None` if it is still open `within` after `since`.
fn closed_at(
    s: &mut std::net::TcpStream,
    since: std::time::Instant,
    within: std::time::Duration,
) -> Option<std::time::Duration> {
    use std::io::{ErrorKind, Read};
    let mut buf = [0u8; 1024];
    loop {
        let left = within.checked_sub(since.elapsed())?;
        s.set_read_timeout(Some(left.max(std::time::Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(_) => return Some(since.elapsed()),
        }
    }
}

#[test]
fn serve_applies_the_connection_limits_it_is_given() {
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    let env = Env::new();
    let (child, addr) = env.serve_with(&[
        ("ROOMTAPE_SERVER_IDLE_TIMEOUT_SECS", "1"),
        ("ROOMTAPE_SERVER_MAX_CONNECTIONS_PER_IP", "2"),
    ]);
    // The service answers before the test's connections are made.
    assert_eq!(http_get(&addr, "/healthz").0, 200);
    std::thread::sleep(Duration::from_millis(200));
    // Two silent connections fill this address's share; a third is closed at once.
    let start = Instant::now();
    let mut a = TcpStream::connect(&addr).unwrap();
    let mut b = TcpStream::connect(&addr).unwrap();
    let mut c = TcpStream::connect(&addr).unwrap();
    let took = closed_at(&mut c, start, Duration::from_secs(5)).expect("the third was kept");
    assert!(took < Duration::from_millis(500), "{took:?}");
    // The silent ones are closed after the idle timeout, which gives the share back.
    for s in [&mut a, &mut b] {
        let took = closed_at(s, start, Duration::from_secs(5)).expect("an idle one was kept");
        assert!(took > Duration::from_millis(900), "{took:?}");
    }
    assert_eq!(http_get(&addr, "/healthz").0, 200);
    child.stop();
}

/// Signs in through the form: the session cookie, or the status when refused.
fn sign_in(addr: &str, user: &str, password: &str) -> Result<String, u16> {
    let body = format!("username={user}&password={}", url_encode(password));
    let r = http(
        addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    match r.header("set-cookie") {
        Some(c) if r.status == 303 || r.status == 302 => {
            Ok(c.split(';').next().unwrap().to_string())
        }
        _ => Err(r.status),
    }
}

#[test]
fn an_admin_resets_a_password_from_the_cli_and_its_sessions_end() {
    use std::io::Write as _;
    let env = Env::new();
    let api_token = user_with_token(&env, "ana", "Ana");
    let (server, addr) = env.serve();
    let me = |cookie: &str| http(&addr, "GET", "/api/v1/me", &[("Cookie", cookie)], b"").status;
    let old = sign_in(&addr, "ana", "correct horse battery").expect("signed in");
    assert_eq!(me(&old), 200);

    // The new password goes in on stdin: it is never an argument, and never printed.
    let secret = "a brand new passphrase";
    let mut child = env
        .cmd(&["users", "reset-password", "ana"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{secret}").unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("1 session(s) signed out"), "{printed}");
    assert!(
        !printed.contains(secret) && !printed.contains("brand"),
        "{printed}"
    );

    assert_eq!(me(&old), 401, "the old session is over");
    assert!(sign_in(&addr, "ana", "correct horse battery").is_err());
    let new = sign_in(&addr, "ana", secret).expect("the new password works");
    assert_eq!(me(&new), 200);
    // API tokens are not sessions: scripts keep working.
    let bearer = format!("Bearer {api_token}");
    let r = http(
        &addr,
        "GET",
        "/api/v1/me",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(r.status, 200);

    // Too short a password, or an unknown account, changes nothing.
    let out = env
        .cmd(&["users", "reset-password", "ana"])
        .env("ROOMTAPE_PASSWORD", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("8 to 256"));
    assert_eq!(me(&new), 200);
    let out = env
        .cmd(&["users", "reset-password", "nobody"])
        .env("ROOMTAPE_PASSWORD", "long enough though")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    server.stop();
}
