//! Webhook delivery: events the catalog queued become signed POSTs to their receivers, retried
//! with backoff, never to an address inside this network unless the operator allows it. It
//! runs beside the service's other background loops; the HTTP API and pages that register
//! webhooks live in `roomtape-web`, which checks URLs with [`check_url`].
//!
//! The catalog decides who gets which event (triggers fill an outbox; see
//! `roomtape_core::Catalog::fan_out_webhook_events`); [`run`] turns events into deliveries and
//! POSTs the due ones, at most one at a time per webhook and [`WebhooksConfig::concurrency`] in
//! all, so a slow receiver holds up nobody else.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::Rng as _;
use sha2::Sha256;
use tokio::sync::watch;

use roomtape_core::{
    Catalog, DeliveryOutcome, DueDelivery, Timestamp, WebhookEvent, WebhookId, WebhooksConfig,
};

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2000;
/// Finished deliveries are kept this long.
const KEEP_FINISHED_MS: i64 = 30 * 86_400_000;
/// The longest wait between two attempts.
const MAX_RETRY_DELAY_MS: u64 = 3_600_000;

// ---- signatures ----

/// The signature of one request: hex HMAC-SHA256 with key `secret` over
/// `"<timestamp>.<body>"`, as sent (after `v1=`) in `Roomtape-Signature`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The body of a delivery: the event with a snapshot of its recording and absolute links.
pub fn payload(event: &WebhookEvent, base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let rec = event.recording_id;
    serde_json::json!({
        "id": event.id,
        "type": event.kind,
        "created_at": event.created_at.to_rfc3339(),
        "data": {
            "recording": event.recording,
            "links": {
                "replay": format!("{base}/r/{rec}"),
                "transcript": format!("{base}/api/v1/recordings/{rec}/transcript"),
            },
        },
    })
    .to_string()
}

// ---- the SSRF guard ----

/// Why a webhook URL is refused, in words for the person who gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(String);

impl UrlError {
    fn new(message: impl Into<String>) -> Self {
        UrlError(message.into())
    }
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UrlError {}

/// Whether `ip` is an address of the public internet (not loopback, private, link-local,
/// shared, documentation, multicast or otherwise reserved). An IPv6 address that carries an
/// IPv4 address its packets are delivered to (mapped, NAT64, 6to4, Teredo) is public only when
/// that IPv4 address is; every other IPv6 address must be global unicast (2000::/3, the only
/// block IANA allocates for it) outside its special-purpose ranges.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let v4_at = |shift: u32| IpAddr::V4(Ipv4Addr::from((bits >> shift) as u32));
            let s = v6.segments();
            // ::ffff:0:0/96, IPv4-mapped: a dual-stack socket sends to the IPv4 address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            // 64:ff9b::/96, the well-known NAT64 prefix (RFC 6052): the last 32 bits.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public(v4_at(0));
            }
            // 2002::/16, 6to4 (RFC 3056): tunnelled to the IPv4 address in bits 16..48.
            if s[0] == 0x2002 {
                return is_public(v4_at(80));
            }
            // 2001::/32, Teredo (RFC 4380): the server in bits 32..64, the client's address
            // inverted in the last 32 bits.
            if s[0] == 0x2001 && s[1] == 0 {
                return is_public(v4_at(64)) && is_public(IpAddr::V4(Ipv4Addr::from(!bits as u32)));
            }
            // Outside 2000::/3 lie loopback, unspecified, IPv4-compatible ::/96 (deprecated, and
            // `[::127.0.0.1]` is loopback to some stacks), IPv4-translated, local-use NAT64
            // 64:ff9b:1::/48, discard-only 100::/64, unique-local fc00::/7, link-local,
            // site-local, multicast and unallocated space. Inside it: documentation
            // (2001:db8::/32, 3fff::/20), benchmarking (2001:2::/48) and ORCHID (2001:10::/28).
            (s[0] & 0xe000) == 0x2000
                && !((s[0] == 0x2001 && s[1] == 0x0db8)
                    || (s[0] == 0x3fff && s[1] < 0x1000)
                    || (s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0)
                    || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010))
        }
    }
}

/// The IP address a URL's host names literally, if it is one.
fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Checks a webhook URL: http or https, a host, no credentials, at most [`MAX_URL_LEN`]
/// characters, and unless `allow_private`, no host that is plainly not public.
pub fn check_url(raw: &str, allow_private: bool) -> Result<reqwest::Url, UrlError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(UrlError::new("url must not be empty"));
    }
    if raw.chars().count() > MAX_URL_LEN {
        return Err(UrlError::new(format!(
            "url must be at most {MAX_URL_LEN} characters"
        )));
    }
    let url = reqwest::Url::parse(raw).map_err(|e| {
        UrlError::new(format!(
            "url {:?} is not a valid URL: {e}",
            roomtape_core::truncate_for_message(raw)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::new(format!(
            "url must start with http:// or https://, not {}:",
            roomtape_core::truncate_for_message(url.scheme())
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlError::new("url must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::new(
            "url must not contain a user name or password (it would be shown in lists)",
        ));
    }
    if !allow_private {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let name = host.trim_end_matches('.');
        let private = match literal_ip(&url) {
            Some(ip) => !is_public(ip),
            None => name == "localhost" || name.ends_with(".localhost"),
        };
        if private {
            return Err(UrlError::new(format!(
                "url must point at a public address, not {host} (this server's webhooks.allow_private is off)"
            )));
        }
    }
    Ok(url)
}

// ---- delivery ----

/// How long to wait after failed attempt number `attempt` (from 1): `base_ms` doubled for each
/// attempt before, at most an hour, plus `jitter` (0–1) times a quarter of that, so receivers
/// that failed together are not all retried in the same instant.
pub fn retry_delay_ms(base_ms: u64, attempt: u32, jitter: f64) -> u64 {
    let doubled = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(32));
    let delay = doubled.min(MAX_RETRY_DELAY_MS.max(base_ms));
    delay.saturating_add((delay as f64 / 4.0 * jitter.clamp(0.0, 1.0)) as u64)
}

/// A resolver that hands the HTTP client only public addresses.
#[derive(Debug)]
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} has no public address (webhooks.allow_private is off)"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

struct Sender {
    client: reqwest::Client,
    catalog: Catalog,
    config: WebhooksConfig,
}

fn client(config: &WebhooksConfig) -> reqwest::Result<reqwest::Client> {
    let timeout = Duration::from_millis(config.timeout_ms.max(1));
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        // Sent straight to the receiver: a proxy would also hide where it really goes.
        .no_proxy()
        .user_agent(concat!("roomtape-webhooks/", env!("CARGO_PKG_VERSION")));
    if !config.allow_private {
        b = b.dns_resolver(Arc::new(PublicOnly));
    }
    b.build()
}

/// Why a request failed, in words: the innermost causes, without the URL (which is listed).
fn describe(e: &reqwest::Error, timeout_ms: u64) -> String {
    if e.is_timeout() {
        return format!("timed out after {timeout_ms} ms");
    }
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !causes.iter().any(|c: &String| c.contains(&text)) {
            causes.push(text);
        }
        source = s.source();
    }
    let text = if causes.is_empty() {
        e.to_string()
    } else {
        causes.join(": ")
    };
    text.chars().take(500).collect()
}

/// One attempt: `Ok(status)` when the receiver answered, `Err(why)` when it did not.
async fn send(s: &Sender, d: &DueDelivery) -> Result<u16, String> {
    let url = reqwest::Url::parse(&d.url).map_err(|e| format!("bad URL: {e}"))?;
    if !s.config.allow_private
        && let Some(ip) = literal_ip(&url)
        && !is_public(ip)
    {
        return Err(format!(
            "{ip} is not a public address (webhooks.allow_private is off)"
        ));
    }
    let timestamp = Timestamp::now().as_millis().div_euclid(1000);
    let signature = sign(&d.secret, timestamp, d.payload.as_bytes());
    let res = s
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Roomtape-Event", &d.event)
        .header("Roomtape-Delivery", d.id.to_string())
        .header("Roomtape-Timestamp", timestamp.to_string())
        .header("Roomtape-Signature", format!("v1={signature}"))
        .body(d.payload.clone())
        .send()
        .await
        .map_err(|e| describe(&e, s.config.timeout_ms))?;
    Ok(res.status().as_u16())
}

async fn attempt(s: Arc<Sender>, d: DueDelivery) {
    let result = send(&s, &d).await;
    let failed = |status: Option<u16>, error: String| {
        if d.attempt >= s.config.max_attempts {
            DeliveryOutcome::Failed { status, error }
        } else {
            let jitter = rand::rng().random::<f64>();
            let wait = retry_delay_ms(s.config.retry_base_ms, d.attempt, jitter);
            DeliveryOutcome::Retry {
                status,
                error,
                at: Timestamp::now().add_millis(i64::try_from(wait).unwrap_or(i64::MAX)),
            }
        }
    };
    let outcome = match result {
        Ok(status) if (200..300).contains(&status) => DeliveryOutcome::Delivered { status },
        Ok(status) => failed(
            Some(status),
            if (300..400).contains(&status) {
                format!("HTTP {status} (redirects are not followed)")
            } else {
                format!("HTTP {status}")
            },
        ),
        Err(why) => failed(None, why),
    };
    match &outcome {
        DeliveryOutcome::Delivered { status } => {
            tracing::debug!(delivery = %d.id, url = %d.url, status, attempt = d.attempt, "webhook delivered");
        }
        DeliveryOutcome::Retry { error, .. } => {
            tracing::debug!(delivery = %d.id, url = %d.url, attempt = d.attempt, "webhook attempt failed: {error}");
        }
        DeliveryOutcome::Failed { error, .. } => {
            tracing::warn!(delivery = %d.id, url = %d.url, attempt = d.attempt, "webhook delivery failed for good: {error}");
        }
    }
    if let Err(e) = s
        .catalog
        .finish_webhook_delivery(d.id, d.attempt, &outcome)
        .await
    {
        tracing::warn!(delivery = %d.id, "recording a webhook attempt: {e}");
    }
}

/// The delivery loop `serve` runs: every `poll`, events become deliveries (with links under
/// `base_url`) and due deliveries are sent, until `stop` turns true. Attempts under way then are
/// cut short and given back, to be made again at the next start.
pub async fn run(
    catalog: Catalog,
    config: WebhooksConfig,
    base_url: String,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let client = match client(&config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("webhooks are off: cannot make an HTTP client: {e}");
            return;
        }
    };
    let lease_ms = i64::try_from(config.timeout_ms)
        .unwrap_or(i64::MAX / 2)
        .saturating_add(60_000);
    let concurrency = config.concurrency.max(1) as usize;
    let sender = Arc::new(Sender {
        client,
        catalog: catalog.clone(),
        config,
    });
    let mut running: HashMap<tokio::task::Id, DueDelivery> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { break },
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let id = match done { Ok((id, ())) => id, Err(e) => e.id() };
                running.remove(&id);
            }
            _ = tick.tick() => {}
        }
        if *stop.borrow() {
            break;
        }
        match catalog
            .fan_out_webhook_events(100, |e| payload(e, &base_url))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!("{n} event(s) fanned out to webhooks"),
            Err(e) => tracing::warn!("webhook events: {e}"),
        }
        if last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
            last_prune = Some(tokio::time::Instant::now());
            let before = Timestamp::now().add_millis(-KEEP_FINISHED_MS);
            if let Err(e) = catalog.prune_webhook_deliveries(before).await {
                tracing::warn!("pruning webhook deliveries: {e}");
            }
        }
        let free = concurrency.saturating_sub(tasks.len());
        if free == 0 {
            continue;
        }
        let busy: Vec<WebhookId> = running.values().map(|d| d.webhook_id).collect();
        match catalog
            .claim_webhook_deliveries(free as u32, lease_ms, &busy)
            .await
        {
            Ok(due) => {
                for d in due {
                    let handle = tasks.spawn(attempt(sender.clone(), d.clone()));
                    running.insert(handle.id(), d);
                }
            }
            Err(e) => tracing::warn!("claiming webhook deliveries: {e}"),
        }
    }
    tasks.abort_all();
    while let Some(done) = tasks.join_next_with_id().await {
        if let Err(e) = done
            && let Some(d) = running.remove(&e.id())
            && let Err(e) = catalog.release_webhook_delivery(d.id, d.attempt).await
        {
            tracing::warn!(delivery = %d.id, "giving back a webhook attempt: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_hmac(key: &[u8], msg: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(msg);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            hex_hmac(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_signature_covers_timestamp_and_body_under_the_secret() {
        let body = br#"{"id":"e1","type":"transcript.ready"}"#;
        let sig = sign("whsec_abc", 1_795_588_138, body);
        let mut signed = b"1795588138.".to_vec();
        signed.extend_from_slice(body);
        assert_eq!(sig, hex_hmac(b"whsec_abc", &signed));
        assert_eq!(sig.len(), 64);
        assert_ne!(
            sig,
            sign("whsec_abd", 1_795_588_138, body),
            "another secret"
        );
        assert_ne!(sig, sign("whsec_abc", 1_795_588_139, body), "another time");
        assert_ne!(
            sig,
            sign(
                "whsec_abc",
                1_795_588_138,
                br#"{"id":"e2","type":"transcript.ready"}"#
            ),
            "another body"
        );
    }

    #[test]
    fn urls_are_checked() {
        for ok in [
            "https://example.org/hook",
            "http://example.org:8080/a?b=c",
            "https://93.184.215.14/x",
        ] {
            assert!(check_url(ok, false).is_ok(), "{ok}");
        }
        for (bad_url, says) in [
            ("", "empty"),
            ("ftp://example.org/", "http:// or https://"),
            ("not a url", "not a valid URL"),
            ("https://user:pw@example.org/", "user name or password"),
            ("http://127.0.0.1:9000/", "public address"),
            ("http://localhost/", "public address"),
            ("http://[::1]/", "public address"),
            ("http://169.254.169.254/latest/meta-data", "public address"),
            ("http://10.1.2.3/", "public address"),
            ("http://[::ffff:192.168.1.1]/", "public address"),
        ] {
            let e = check_url(bad_url, false).unwrap_err();
            assert!(e.to_string().contains(says), "{bad_url}: {e}");
        }
        let long = format!("https://example.org/{}", "a".repeat(MAX_URL_LEN));
        assert!(
            check_url(&long, false)
                .unwrap_err()
                .to_string()
                .contains("at most")
        );
        assert!(check_url("http://127.0.0.1:9000/", true).is_ok());
    }

    /// Regression: IPv4-compatible `[::127.0.0.1]`, NAT64 and 6to4 forms of private
    /// addresses were accepted. Every IPv6 form that embeds an IPv4 address is judged by it.
    #[test]
    fn ipv6_forms_of_private_ipv4_addresses_are_refused() {
        for (refused, form) in [
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("::127.0.0.1", "IPv4-compatible loopback"),
            ("::10.0.0.1", "IPv4-compatible private"),
            ("::169.254.169.254", "IPv4-compatible link-local"),
            ("::0.0.0.0", "IPv4-compatible unspecified"),
            (
                "::8.8.8.8",
                "IPv4-compatible (deprecated, even of a public address)",
            ),
            ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
            ("::ffff:192.168.1.1", "IPv4-mapped private"),
            ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
            ("::ffff:0.0.0.0", "IPv4-mapped unspecified"),
            ("::ffff:0:127.0.0.1", "IPv4-translated"),
            ("64:ff9b::127.0.0.1", "NAT64 loopback"),
            ("64:ff9b::a00:1", "NAT64 private"),
            ("64:ff9b::a9fe:a9fe", "NAT64 link-local"),
            ("64:ff9b::", "NAT64 unspecified"),
            ("64:ff9b:1::808:808", "local-use NAT64"),
            ("64:ff9b:1:ffff::", "local-use NAT64"),
            ("2002:7f00:1::", "6to4 loopback"),
            ("2002:7f00:1:0:1:2:3:4", "6to4 loopback"),
            ("2002:c0a8:101::1", "6to4 private"),
            ("2002:a9fe:a9fe::1", "6to4 link-local"),
            ("2002::1", "6to4 unspecified"),
            ("2001:0:7f00:1::f7f7:f7f7", "Teredo, loopback server"),
            ("2001:0:a00:1::f7f7:f7f7", "Teredo, private server"),
            (
                "2001:0:4136:e378:8000:63bf:f5ff:fffe",
                "Teredo, private client",
            ),
            (
                "2001:0:4136:e378:8000:63bf:80ff:fffe",
                "Teredo, loopback client",
            ),
            (
                "2001:0:4136:e378:8000:63bf:5601:5601",
                "Teredo, link-local client",
            ),
            (
                "2001:0:4136:e378:8000:63bf:ffff:ffff",
                "Teredo, unspecified client",
            ),
            ("fe80::1", "link-local"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("100::1", "discard-only"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("2001:2::1", "benchmarking"),
            ("2001:10::1", "ORCHID"),
            ("5f00::1", "not global unicast"),
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(!is_public(ip), "{refused} ({form}) passed as public");
            let url = format!("http://[{refused}]:8080/hook");
            let e = check_url(&url, false).unwrap_err();
            assert!(e.to_string().contains("public address"), "{url}: {e}");
            assert!(check_url(&url, true).is_ok(), "{url} with allow_private");
        }
        for public in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public} refused");
            assert!(check_url(&format!("https://[{public}]/"), false).is_ok());
        }
        for v4 in [
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://localhost./",
        ] {
            assert!(check_url(v4, false).is_err(), "{v4}");
        }
    }

    /// Names are checked again when they are resolved at send time, so a name that points
    /// inside (or is changed to, after the check) is never connected to.
    #[tokio::test]
    async fn the_resolver_hands_out_only_public_addresses() {
        use reqwest::dns::Resolve as _;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let Err(e) = PublicOnly.resolve(name).await else {
            panic!("localhost resolved to an address the client may use");
        };
        assert!(e.to_string().contains("no public address"), "{e}");
    }

    #[test]
    fn retries_back_off_exponentially_with_bounded_jitter() {
        assert_eq!(retry_delay_ms(1000, 1, 0.0), 1000);
        assert_eq!(retry_delay_ms(1000, 2, 0.0), 2000);
        assert_eq!(retry_delay_ms(1000, 4, 0.0), 8000);
        assert_eq!(retry_delay_ms(1000, 4, 1.0), 10_000);
        assert_eq!(retry_delay_ms(30_000, 20, 0.0), MAX_RETRY_DELAY_MS);
        assert_eq!(retry_delay_ms(u64::MAX, 64, 1.0), u64::MAX);
    }
}
