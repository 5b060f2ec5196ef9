//! Who is asking: cookie sessions (HttpOnly, SameSite=Lax, Secure behind TLS) with a CSRF token
//! each, `Authorization: Bearer` API tokens, argon2 password hashes, and a log-in rate limiter.
//! Secrets are random 32-byte values; the catalog keeps only their SHA-256.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use roomtape_core::User;

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

/// An argon2id hash of `password` (PHC string).
pub fn hash_password(password: &str) -> Result<String, AppError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(AppError::internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(AppError::internal)
}

/// True when `password` matches the stored hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
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

/// The client's address, when the server was started with connection info.
pub fn client_ip(parts_ext: Option<&ConnectInfo<SocketAddr>>) -> Option<IpAddr> {
    parts_ext.map(|c| c.0.ip())
}

/// Failed log-ins per user name and per address in a sliding window; over the limit, log-in is
/// refused with 429 until the window moves on. A success clears the user name's count.
#[derive(Debug)]
pub struct LoginLimiter {
    window: Duration,
    per_user: usize,
    per_ip: usize,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(Duration::from_secs(600), 5, 20)
    }
}

impl LoginLimiter {
    pub fn new(window: Duration, per_user: usize, per_ip: usize) -> Self {
        LoginLimiter {
            window,
            per_user,
            per_ip,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(user: &str, ip: Option<IpAddr>) -> Vec<(String, bool)> {
        let mut k = vec![(format!("user:{}", user.trim().to_lowercase()), true)];
        if let Some(ip) = ip {
            k.push((format!("ip:{ip}"), false));
        }
        k
    }

    /// `Some(seconds to wait)` when this user name or address has failed too often.
    pub fn blocked(&self, user: &str, ip: Option<IpAddr>) -> Option<u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = None;
        for (key, is_user) in Self::keys(user, ip) {
            let Some(q) = map.get_mut(&key) else { continue };
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) > self.window)
            {
                q.pop_front();
            }
            let limit = if is_user { self.per_user } else { self.per_ip };
            if q.len() >= limit
                && let Some(first) = q.front()
            {
                let left = self.window.saturating_sub(now.duration_since(*first));
                wait = Some(wait.unwrap_or(0).max(left.as_secs().max(1)));
            }
        }
        wait
    }

    pub fn failed(&self, user: &str, ip: Option<IpAddr>) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            // Bounded memory under a flood of distinct names: forget the oldest state.
            map.clear();
        }
        for (key, _) in Self::keys(user, ip) {
            map.entry(key).or_default().push_back(now);
        }
    }

    pub fn succeeded(&self, user: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("user:{}", user.trim().to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct hors", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn the_limiter_blocks_after_repeated_failures_per_user() {
        let l = LoginLimiter::new(Duration::from_secs(60), 3, 100);
        let ip = Some("10.0.0.1".parse().unwrap());
        for _ in 0..3 {
            assert!(l.blocked("ana", ip).is_none());
            l.failed("Ana", ip);
        }
        assert!(l.blocked("ana", ip).is_some());
        assert!(l.blocked("bruno", ip).is_none());
        l.succeeded("ANA");
        assert!(l.blocked("ana", ip).is_none());
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
