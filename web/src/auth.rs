//! Who is asking: cookie sessions (HttpOnly, SameSite=Lax, Secure behind TLS) with a CSRF token
//! each, `Authorization: Bearer` API tokens, and a log-in rate limiter (password hashes are the catalog's: `roomtape_core::hash_password`).
//! Secrets are random 32-byte values; the catalog keeps only their SHA-256.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use roomtape_core::{IpCidr, User};

use crate::{AppError, AppState};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "roomtape_session";
/// The header that carries the CSRF token on script requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A new random secret, URL-safe.
pub fn secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// A fresh API token secret (`rt_` and 256 random bits); store only its [`digest`].
pub fn new_api_token() -> String {
    format!("rt_{}", secret())
}

/// What the catalog keeps of a secret.
pub fn digest(secret: &str) -> String {
    let d = Sha256::digest(secret.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a new password: 8 to 256 characters.
pub fn check_new_password(p: &str) -> Result<(), AppError> {
    let n = p.chars().count();
    if !(8..=256).contains(&n) {
        return Err(AppError::bad_request(
            "bad_password",
            "a password must be 8 to 256 characters",
        ));
    }
    Ok(())
}

/// How a request proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Cookie,
    Bearer,
}

/// A signed-in caller.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: User,
    /// The session's CSRF token (cookie sessions only).
    pub csrf: String,
    pub via: Via,
}

impl Session {
    /// State-changing requests made with a cookie must carry the session's CSRF token (in the
    /// form or the `X-CSRF-Token` header); bearer requests cannot be forged by another site.
    pub fn check_csrf(&self, provided: Option<&str>) -> Result<(), AppError> {
        if self.via == Via::Bearer {
            return Ok(());
        }
        match provided {
            Some(t) if same_secret(t, &self.csrf) => Ok(()),
            _ => Err(AppError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "missing or wrong CSRF token; reload the page and try again",
            )),
        }
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The CSRF header of a request, if any.
pub fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())
}

async fn session_of(parts: &Parts, state: &AppState) -> Result<Option<Session>, AppError> {
    if let Some(auth) = parts.headers.get(AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 200)
            .ok_or_else(|| {
                AppError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        let user = state
            .catalog
            .user_by_api_token(&digest(token))
            .await?
            .ok_or_else(|| AppError::unauthorized("unknown or revoked API token"))?;
        return Ok(Some(Session {
            user,
            csrf: String::new(),
            via: Via::Bearer,
        }));
    }
    let Some(token) = cookie_value(&parts.headers, COOKIE_NAME) else {
        return Ok(None);
    };
    if token.len() > 200 {
        return Ok(None);
    }
    Ok(state
        .catalog
        .session(&digest(token))
        .await?
        .map(|(user, csrf)| Session {
            user,
            csrf,
            via: Via::Cookie,
        }))
}

impl FromRequestParts<AppState> for Session {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        session_of(parts, state)
            .await?
            .ok_or_else(|| AppError::unauthorized("sign in first"))
    }
}

/// A session whose request may change something: a bearer token, or a cookie with the
/// session's CSRF token in the `X-CSRF-Token` header. API handlers that change state take this
/// in place of [`Session`]; the check runs before the body is read, so a forged request's body
/// is never parsed. (Forms carry the token in their body and check it with
/// [`Session::check_csrf`].)
#[derive(Clone, Debug)]
pub struct WriteSession(pub Session);

impl FromRequestParts<AppState> for WriteSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let session =
            <Session as FromRequestParts<AppState>>::from_request_parts(parts, state).await?;
        session.check_csrf(csrf_header(&parts.headers))?;
        Ok(WriteSession(session))
    }
}

impl OptionalFromRequestParts<AppState> for Session {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, AppError> {
        session_of(parts, state).await
    }
}

/// The `Set-Cookie` value that starts a session.
pub fn session_cookie(token: &str, secure: bool, max_age: Duration) -> HeaderValue {
    let v = format!(
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` value that ends it.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    let v = format!(
        "{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The session cookie token of a request (to end it).
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    cookie_value(headers, COOKIE_NAME)
}

/// True when a browser request comes from our own pages: no `Origin` (same-origin navigations
/// and non-browser clients), or an `Origin` equal to the public URL's or to the `Host`.
pub fn same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let public = public_url.trim_end_matches('/');
    if !public.is_empty() && origin == public {
        return true;
    }
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest == host)
}

/// The caller's address as the limiters see it: the TCP peer, or — when the peer is one of
/// `server.trusted_proxies` — the client its forwarding headers name. `None` only in-process,
/// where there is no connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientAddr(client_addr(
            peer,
            &parts.headers,
            &state.config.server.trusted_proxies,
        )))
    }
}

/// The client behind `peer`. Headers are believed only from a trusted proxy, and only as far as
/// the chain of trusted proxies goes: the answer is the right-most address that is not itself a
/// trusted proxy (everything left of it was written by the client and may be made up). A hop
/// that names no address (`unknown`, an obfuscated name, garbage) ends the chain at the last
/// trusted hop. When a request carries both `X-Forwarded-For` and `Forwarded` and they name
/// different clients, one of them came from the client, and nothing tells which: the proxy's
/// own address is used, so a forged header can neither pick an address nor hide one.
pub fn client_addr(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpCidr],
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let walk = |hops: Vec<Option<IpAddr>>| {
        let mut last = peer;
        for hop in hops.into_iter().rev() {
            match hop.map(|ip| ip.to_canonical()) {
                Some(ip) if is_trusted(ip) => last = ip,
                Some(ip) => return ip,
                None => return last,
            }
        }
        last
    };
    let xff = header_list(headers, "x-forwarded-for")
        .map(|l| l.iter().map(|v| node_addr(v)).collect::<Vec<_>>());
    let fwd = header_list(headers, "forwarded").map(|l| {
        l.iter()
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| node_addr(v))
            })
            .collect::<Vec<_>>()
    });
    Some(match (xff.map(walk), fwd.map(walk)) {
        (None, None) => peer,
        (Some(a), None) | (None, Some(a)) => a,
        (Some(a), Some(b)) if a == b => a,
        (Some(_), Some(_)) => peer,
    })
}

/// The comma-separated items of every `name` header, in order; `None` without such a header.
fn header_list<'a>(headers: &'a HeaderMap, name: &str) -> Option<Vec<&'a str>> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    Some(
        values
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, each possibly quoted.
fn node_addr(v: &str) -> Option<IpAddr> {
    let v = v.trim().trim_matches('"');
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = v.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    v.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

/// How log-ins and sign-ups are slowed down. See [`LoginLimiter`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long a failure (or a sign-up) is remembered.
    pub window: Duration,
    /// Failures of one user name before attempts at it are spaced out.
    pub name_free: usize,
    /// Failures from one address before its attempts are spaced out, whatever the name.
    pub addr_free: usize,
    /// An address with fewer failures than this is not suspect: the user name's spacing does
    /// not apply to it, so its correct password always gets in.
    pub suspect_after: usize,
    /// The first spacing; each further failure doubles it, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Sign-ups (each costs an argon2 hash) one address may make in a window.
    pub signups: usize,
    pub signup_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            window: Duration::from_secs(3600),
            name_free: 5,
            addr_free: 20,
            suspect_after: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            signups: 10,
            signup_window: Duration::from_secs(600),
        }
    }
}

/// Brute-force protection that cannot lock an owner out.
///
/// Failures are counted per user name and per address (an IPv6 address by its /64, which one
/// subscriber usually holds whole) over `window`. Past its free failures a key is spaced out:
/// the next attempt must wait `base_delay`, doubling with each further failure, at most
/// `max_delay`, counted from the key's last failure; an attempt inside the wait is refused
/// (429) without looking at the password. An address's spacing applies to everything it tries;
/// a user name's spacing applies only to suspect addresses (those that have failed
/// `suspect_after` times themselves), so an attack on a name never keeps its owner out, and an
/// attacker gets a few guesses per address, not a stream. Nothing is ever locked for longer
/// than `max_delay` past the last failure.
///
/// An attempt counts as a failure from the moment it is let through until it succeeds, so
/// requests sent in parallel cannot all slip into one free slot.
#[derive(Debug)]
pub struct LoginLimiter {
    limits: Limits,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(Limits::default())
    }
}

/// The most remembered events per key: enough for any delay to reach `max_delay`.
const KEEP: usize = 64;
/// Keys kept before the expired ones are swept out.
const MAX_KEYS: usize = 100_000;

/// A log-in attempt let through by [`LoginLimiter::begin`]; counted as a failure unless
/// [`LoginLimiter::succeeded`] is told otherwise.
#[derive(Debug)]
pub struct Attempt {
    keys: [String; 2],
    at: Instant,
}

impl LoginLimiter {
    pub fn new(limits: Limits) -> Self {
        LoginLimiter {
            limits,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn name_key(user: &str) -> String {
        format!("user:{}", user.trim().to_lowercase())
    }

    fn addr_key(kind: &str, ip: Option<IpAddr>) -> String {
        match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{kind}:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            Some(ip) => format!("{kind}:{ip}"),
            None => format!("{kind}:unknown"),
        }
    }

    /// Events of `key` within `window` of `now` (older ones dropped).
    fn recent<'a>(
        map: &'a mut HashMap<String, VecDeque<Instant>>,
        key: &str,
        window: Duration,
        now: Instant,
    ) -> Option<&'a mut VecDeque<Instant>> {
        let q = map.get_mut(key)?;
        while q
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            q.pop_front();
        }
        Some(q)
    }

    /// How long a key with these failures must still wait.
    fn wait(&self, q: Option<&VecDeque<Instant>>, free: usize, now: Instant) -> Duration {
        let Some(q) = q.filter(|q| q.len() >= free) else {
            return Duration::ZERO;
        };
        let doublings = (q.len() - free).min(30) as u32;
        let delay = self
            .limits
            .base_delay
            .saturating_mul(1 << doublings)
            .min(self.limits.max_delay);
        let last = q.back().copied().unwrap_or(now);
        (last + delay).saturating_duration_since(now)
    }

    fn push(&self, map: &mut HashMap<String, VecDeque<Instant>>, key: String, now: Instant) {
        if map.len() >= MAX_KEYS && !map.contains_key(&key) {
            let window = self.limits.window.max(self.limits.signup_window);
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
            if map.len() >= MAX_KEYS {
                // A flood of distinct keys: forget rather than grow without bound.
                map.clear();
            }
        }
        let q = map.entry(key).or_default();
        q.push_back(now);
        if q.len() > KEEP {
            q.pop_front();
        }
    }

    /// Lets a log-in attempt through, or says how many seconds to wait.
    pub fn begin(&self, user: &str, ip: Option<IpAddr>) -> Result<Attempt, u64> {
        self.begin_at(user, ip, Instant::now())
    }

    fn begin_at(&self, user: &str, ip: Option<IpAddr>, now: Instant) -> Result<Attempt, u64> {
        let l = self.limits;
        let (name, addr) = (Self::name_key(user), Self::addr_key("ip", ip));
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let a = Self::recent(&mut map, &addr, l.window, now).map(|q| &*q);
        let mut wait = self.wait(a, l.addr_free, now);
        if a.map_or(0, VecDeque::len) >= l.suspect_after {
            let n = Self::recent(&mut map, &name, l.window, now).map(|q| &*q);
            wait = wait.max(self.wait(n, l.name_free, now));
        }
        if !wait.is_zero() {
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        self.push(&mut map, name.clone(), now);
        self.push(&mut map, addr.clone(), now);
        Ok(Attempt {
            keys: [name, addr],
            at: now,
        })
    }

    /// The attempt had the right password: it is not a failure after all.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in &attempt.keys {
            if let Some(q) = map.get_mut(key)
                && let Some(i) = q.iter().rposition(|t| *t == attempt.at)
            {
                q.remove(i);
            }
        }
    }

    /// Counts a sign-up from `ip`, or says how many seconds to wait when it has made its
    /// `signups` in the last `signup_window`.
    pub fn signup(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        self.signup_at(ip, Instant::now())
    }

    fn signup_at(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        let l = self.limits;
        let key = Self::addr_key("signup", ip);
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = Self::recent(&mut map, &key, l.signup_window, now)
            && q.len() >= l.signups
            && let Some(first) = q.get(q.len() - l.signups)
        {
            let left = (*first + l.signup_window).saturating_duration_since(now);
            return Err(left.as_secs_f64().ceil().max(1.0) as u64);
        }
        self.push(&mut map, key, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            window: Duration::from_secs(3600),
            name_free: 5,
            addr_free: 20,
            suspect_after: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            signups: 3,
            signup_window: Duration::from_secs(600),
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    /// `n` failed attempts, each as soon as it is let through; returns the time after the last.
    fn fail(
        l: &LoginLimiter,
        user: &str,
        from: Option<IpAddr>,
        n: usize,
        mut t: Instant,
    ) -> Instant {
        for _ in 0..n {
            match l.begin_at(user, from, t) {
                Ok(_) => {}
                Err(wait) => {
                    t += Duration::from_secs(wait);
                    l.begin_at(user, from, t).expect("free after the wait");
                }
            }
        }
        t
    }

    #[test]
    fn an_attack_on_a_name_spaces_out_the_attacker_but_never_its_owner() {
        let l = LoginLimiter::new(limits());
        let t0 = Instant::now();
        let attacker = ip("198.51.100.9");
        let t = fail(&l, "Ana", attacker, 5, t0);
        // The attacker's address is suspect now; the name is past its free failures.
        assert_eq!(l.begin_at("ana", attacker, t).unwrap_err(), 1);
        let t = fail(&l, "ana", attacker, 6, t);
        let wait = l.begin_at("ana", attacker, t).unwrap_err();
        assert_eq!(wait, 64, "doubling per failure");
        // The owner, from an address that has not failed, is always let through to the
        // password check, and a right password leaves no failure behind.
        for _ in 0..3 {
            let a = l
                .begin_at("ana", ip("203.0.113.5"), t)
                .expect("owner let through");
            l.succeeded(a);
        }
        // Another name from the attacker's address is not spaced out (below addr_free).
        assert!(l.begin_at("bruno", attacker, t).is_ok());
        // The spacing never exceeds max_delay.
        let t = fail(&l, "ana", attacker, 10, t);
        let wait = l.begin_at("ana", attacker, t).unwrap_err();
        assert!(wait <= 300, "{wait}");
        assert!(
            l.begin_at("ana", attacker, t + Duration::from_secs(300))
                .is_ok()
        );
    }

    #[test]
    fn an_abusive_address_is_spaced_out_for_every_name_and_parallel_attempts_share_a_slot() {
        let l = LoginLimiter::new(limits());
        let t0 = Instant::now();
        let a = ip("198.51.100.9");
        let mut t = t0;
        for i in 0..20 {
            t = fail(&l, &format!("user{i}"), a, 1, t);
        }
        assert_eq!(l.begin_at("someone", a, t).unwrap_err(), 1);
        let t = t + Duration::from_secs(1);
        // One slot: the first of two simultaneous attempts takes it, the second waits.
        let first = l.begin_at("x", a, t);
        assert!(first.is_ok());
        assert_eq!(l.begin_at("y", a, t).unwrap_err(), 2);
        // Everyone else behind another address is untouched.
        assert!(l.begin_at("someone", ip("198.51.100.10"), t).is_ok());
        // IPv6: the /64 is one address.
        let t = fail(&l, "v6", ip("2001:db8:1:2::1"), 20, t);
        assert!(l.begin_at("other", ip("2001:db8:1:2:ffff::9"), t).is_err());
        assert!(l.begin_at("other", ip("2001:db8:1:3::1"), t).is_ok());
        // Failures are forgotten after the window.
        assert!(
            l.begin_at("someone", a, t + Duration::from_secs(3601))
                .is_ok()
        );
    }

    #[test]
    fn sign_ups_are_limited_per_address() {
        let l = LoginLimiter::new(limits());
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.signup_at(ip("192.0.2.1"), t).is_ok());
        }
        assert_eq!(l.signup_at(ip("192.0.2.1"), t).unwrap_err(), 600);
        assert!(l.signup_at(ip("192.0.2.2"), t).is_ok());
        assert!(
            l.signup_at(ip("192.0.2.1"), t + Duration::from_secs(600))
                .is_ok()
        );
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let trusted: Vec<IpCidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_static(v));
            }
            h
        };
        let proxy = ip("10.0.0.1");
        let stranger = ip("203.0.113.7");
        let xff = h(&[("x-forwarded-for", "1.1.1.1, 198.51.100.2, 10.0.0.5")]);
        // From an untrusted peer the headers are ignored.
        assert_eq!(client_addr(stranger, &xff, &trusted), stranger);
        assert_eq!(client_addr(proxy, &xff, &[]), proxy);
        // From a trusted proxy: the right-most address that is not a proxy.
        assert_eq!(client_addr(proxy, &xff, &trusted), ip("198.51.100.2"));
        assert_eq!(client_addr(proxy, &h(&[]), &trusted), proxy);
        let fwd = h(&[
            ("forwarded", "for=1.1.1.1"),
            (
                "forwarded",
                "for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.9",
            ),
        ]);
        assert_eq!(client_addr(proxy, &fwd, &trusted), ip("2001:db8::7"));
        let unknown = h(&[("forwarded", "for=1.1.1.1, for=unknown, for=10.0.0.9")]);
        assert_eq!(client_addr(proxy, &unknown, &trusted), ip("10.0.0.9"));
        // Every hop a proxy: the left-most.
        let all = h(&[("x-forwarded-for", "10.1.1.1,10.2.2.2")]);
        assert_eq!(client_addr(proxy, &all, &trusted), ip("10.1.1.1"));
        // Two headers naming different clients: neither is believed.
        let both = h(&[
            ("x-forwarded-for", "198.51.100.2"),
            ("forwarded", "for=192.0.2.99"),
        ]);
        assert_eq!(client_addr(proxy, &both, &trusted), proxy);
        let agree = h(&[
            ("x-forwarded-for", "198.51.100.2"),
            ("forwarded", "for=198.51.100.2"),
        ]);
        assert_eq!(client_addr(proxy, &agree, &trusted), ip("198.51.100.2"));
        // A dual-stack listener's IPv4-mapped peer is its IPv4 address.
        assert_eq!(
            client_addr(ip("::ffff:10.0.0.1"), &xff, &trusted),
            ip("198.51.100.2")
        );
        assert_eq!(client_addr(None, &xff, &trusted), None);
    }

    #[test]
    fn origins_are_checked_against_host_and_public_url() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h, ""));
        h.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&h, ""));
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h, ""));
        assert!(same_origin(&h, "https://evil.example/"));
    }

    #[test]
    fn secrets_are_random_and_digests_stable() {
        let (a, b) = (secret(), secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(digest("x"), digest("x"));
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
    }
}
