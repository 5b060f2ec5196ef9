//! The Host check, against DNS rebinding: a hostile page whose name is made to resolve to this
//! server talks to it as its own origin (its `Origin` equals its `Host`), so the same-origin
//! checks pass — on a fresh install it could even sign up as the admin. The browser still sends
//! the hostile name as `Host`, so only requests for our own name are answered: the host of
//! `server.public_url`, or, while that is empty, a loopback name (`localhost`, `127.0.0.1`,
//! `[::1]`) on any port, which no other site can resolve to.
//!
//! A request with no host at all (HTTP/1.0, in-process tests) is answered: browsers always send
//! one (HTTP/1.1 `Host`, HTTP/2 `:authority`), so such a request is not a rebinding page's, and
//! links made for it come from `public_url` or `localhost`, never from anything it sent.

use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{AppError, AppState};

/// The host (`name[:port]`, lower-case) a request was accepted for; in the request's extensions
/// after [`check`], absent when it named none. Links are made from this, never from the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHost(pub String);

/// Answers requests for any other host with 421 Misdirected Request.
pub async fn check(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let public_url = &state.config.server.public_url;
    let mut hosts = req.headers().get_all(HOST).iter();
    let header = hosts.next().map(|v| v.to_str().ok());
    let several = hosts.next().is_some();
    // An absolute-form request line or HTTP/2's `:authority` puts a host in the URI as well.
    let in_uri = req.uri().authority().map(|a| a.as_str().to_string());
    let mut accepted = None;
    let mut ok = !several;
    for h in [header, in_uri.as_deref().map(Some)].into_iter().flatten() {
        match h.and_then(|h| allowed(public_url, h)) {
            Some(h) if accepted.as_ref().is_none_or(|a| *a == h) => accepted = Some(h),
            _ => ok = false,
        }
    }
    if !ok {
        return misdirected(req.uri(), public_url);
    }
    if let Some(h) = accepted {
        req.extensions_mut().insert(RequestHost(h));
    }
    next.run(req).await
}

fn misdirected(uri: &Uri, public_url: &str) -> Response {
    let why = match authority_of(public_url) {
        Some((host, port)) => format!(
            "this server answers only to {host}{} (its server.public_url)",
            port.map(|p| format!(":{p}")).unwrap_or_default()
        ),
        None if public_url.trim().is_empty() => "this server answers only to localhost, \
             127.0.0.1 and [::1] until server.public_url is set to the address people use"
            .to_string(),
        None => "server.public_url is not a URL like https://rooms.example.org, so this \
                 server answers to no host name"
            .to_string(),
    };
    let status = StatusCode::MISDIRECTED_REQUEST;
    if uri.path().starts_with(crate::api::PREFIX) {
        return AppError::new(status, "misdirected_request", why).into_response();
    }
    (
        status,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("421 Misdirected Request: {why}.\n"),
    )
        .into_response()
}

/// `Some(host)` (lower-case) when `host` names this server.
pub fn allowed(public_url: &str, host: &str) -> Option<String> {
    let (name, port) = split_host(host)?;
    if public_url.trim().is_empty() {
        return matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]")
            .then(|| host.to_ascii_lowercase());
    }
    let (want, want_port) = authority_of(public_url)?;
    let default = default_port(public_url);
    (name == want && port.or(default) == want_port.or(default)).then(|| host.to_ascii_lowercase())
}

/// Host name (lower-case) and port of a URL like `https://rooms.example.org:8443/base`.
fn authority_of(url: &str) -> Option<(String, Option<u16>)> {
    let rest = url.trim().split_once("://").map_or(url.trim(), |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    split_host(authority)
}

fn default_port(url: &str) -> Option<u16> {
    let scheme = url.trim().split_once("://")?.0.to_ascii_lowercase();
    match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `name[:port]` or `[v6][:port]` → (lower-case name, port); `None` when malformed.
fn split_host(h: &str) -> Option<(String, Option<u16>)> {
    let (name, port) = if h.starts_with('[') {
        let end = h.find(']')?;
        let (name, rest) = h.split_at(end + 1);
        match rest {
            "" => (name, None),
            r => (name, Some(r.strip_prefix(':')?)),
        }
    } else {
        match h.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (h, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok()?)
        }
        Some(_) => return None,
    };
    let valid = !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        })
        && (name.starts_with('[') || !name.contains([':', '[', ']']));
    valid.then(|| (name.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_host_names_are_answered() {
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:40123",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(allowed("", ok).is_some(), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.2",
            "127.0.0.1:",
            "127.0.0.1:x",
            "127.0.0.1:99999",
            "[::1]x",
            "::1",
            "",
            "local host",
            "localhost:80:80",
        ] {
            assert!(allowed("", bad).is_none(), "{bad}");
        }
        let p = "https://Rooms.Example.org/";
        assert_eq!(
            allowed(p, "rooms.example.org").as_deref(),
            Some("rooms.example.org")
        );
        assert!(allowed(p, "rooms.example.org:443").is_some());
        assert!(allowed(p, "ROOMS.example.org").is_some());
        assert!(allowed(p, "rooms.example.org:8443").is_none());
        assert!(allowed(p, "localhost").is_none());
        assert!(allowed(p, "evil.example").is_none());
        let p = "http://rooms.example.org:8080";
        assert!(allowed(p, "rooms.example.org:8080").is_some());
        assert!(allowed(p, "rooms.example.org").is_none());
        assert!(allowed("http://[2001:db8::1]:8080", "[2001:db8::1]:8080").is_some());
        assert!(allowed("rooms.example.org", "rooms.example.org").is_some());
    }
}
