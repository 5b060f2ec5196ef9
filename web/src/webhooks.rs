//! Webhooks: users register URLs; `recording.finished` and `transcript.ready` are delivered
//! signed, retried with backoff, and listed with their outcome.
//!
//! The catalog decides who gets which event (triggers fill an outbox; see
//! `roomtape_core::Catalog::fan_out_webhook_events`); [`run`] turns events into deliveries and
//! POSTs the due ones, at most one at a time per webhook and [`WebhooksConfig::concurrency`] in
//! all, so a slow receiver holds up nobody else.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use maud::{Markup, html};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::watch;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use roomtape_core::{
    Catalog, DeliveryOutcome, DeliveryState, DueDelivery, Timestamp, WEBHOOK_EVENTS, Webhook,
    WebhookDelivery, WebhookEvent, WebhookId, WebhooksConfig,
};

use crate::account::login_redirect;
use crate::api::{ApiJson, ApiPath, ApiQuery};
use crate::auth::{self, Session};
use crate::pages::{PageError, layout};
use crate::{AppError, AppState, ErrorBody};

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2000;
/// Deliveries listed per webhook unless `limit` says otherwise, and the most it may ask for.
const DEFAULT_DELIVERIES: u32 = 50;
const MAX_DELIVERIES: u32 = 100;
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

// ---- checking what users send ----

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

fn bad(message: impl Into<String>) -> AppError {
    AppError::bad_request("invalid", message)
}

/// Checks a webhook URL: http or https, a host, no credentials, at most [`MAX_URL_LEN`]
/// characters, and unless `allow_private`, no host that is plainly not public.
pub fn check_url(raw: &str, allow_private: bool) -> Result<reqwest::Url, AppError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(bad("url must not be empty"));
    }
    if raw.chars().count() > MAX_URL_LEN {
        return Err(bad(format!("url must be at most {MAX_URL_LEN} characters")));
    }
    let url = reqwest::Url::parse(raw).map_err(|e| {
        bad(format!(
            "url {:?} is not a valid URL: {e}",
            roomtape_core::truncate_for_message(raw)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "url must start with http:// or https://, not {}:",
            roomtape_core::truncate_for_message(url.scheme())
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("url must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
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
            return Err(bad(format!(
                "url must point at a public address, not {host} (this server's webhooks.allow_private is off)"
            )));
        }
    }
    Ok(url)
}

/// Checks the event types asked for: none given means all; every name must be known.
fn check_events(events: Option<&[String]>) -> Result<Vec<&'static str>, AppError> {
    let Some(events) = events else {
        return Ok(WEBHOOK_EVENTS.to_vec());
    };
    if events.is_empty() {
        return Err(bad(format!(
            "events must name at least one of {}, or be left out for all",
            WEBHOOK_EVENTS.join(", ")
        )));
    }
    let mut out = Vec::new();
    for e in events {
        let known = WEBHOOK_EVENTS
            .iter()
            .find(|k| **k == e.as_str())
            .ok_or_else(|| {
                bad(format!(
                    "unknown event type {:?}; the types are {}",
                    roomtape_core::truncate_for_message(e),
                    WEBHOOK_EVENTS.join(", ")
                ))
            })?;
        if !out.contains(known) {
            out.push(*known);
        }
    }
    // Listed in the order events happen.
    out.sort_by_key(|e| WEBHOOK_EVENTS.iter().position(|k| k == e));
    Ok(out)
}

/// Registers a webhook for the caller: its secret is made here and shown once.
async fn register(
    state: &AppState,
    session: &Session,
    url: &str,
    events: Option<&[String]>,
) -> Result<(Webhook, String), AppError> {
    let url = check_url(url, state.config.webhooks.allow_private)?;
    let events = check_events(events)?;
    let secret = format!("whsec_{}", auth::secret());
    let hook = state
        .catalog
        .create_webhook(
            session.user.id,
            url.as_str(),
            &secret,
            &events,
            state.config.webhooks.max_per_user,
        )
        .await?;
    Ok((hook, secret))
}

/// A webhook id from a page's form action; not a UUID is `400 bad_parameter`, like the API.
fn webhook_id(raw: &str) -> Result<WebhookId, AppError> {
    raw.parse().map_err(|_| {
        AppError::bad_request(
            "bad_parameter",
            format!(
                "id must be a webhook id (a UUID), not {:?}",
                roomtape_core::truncate_for_message(raw)
            ),
        )
    })
}

// ---- the API ----

/// An event type a webhook can receive.
#[derive(Debug, Serialize, ToSchema)]
pub enum WebhookEventType {
    /// A recording is complete (imported, ended live, or recovered after a crash).
    #[serde(rename = "recording.finished")]
    RecordingFinished,
    /// A recording's transcript is stored.
    #[serde(rename = "transcript.ready")]
    TranscriptReady,
}

/// A webhook to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where events are POSTed: an http or https URL of at most 2000 characters (without a
    /// user name or password; a public address unless the server allows private ones).
    #[schema(
        format = "uri",
        max_length = 2000,
        example = "https://example.org/roomtape-hook"
    )]
    pub url: String,
    /// The event types to receive (at least one); all of them when left out.
    #[schema(value_type = Option<Vec<WebhookEventType>>, min_items = 1)]
    pub events: Option<Vec<String>>,
}

/// A registered webhook.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Webhook)]
pub struct WebhookJson {
    #[schema(format = Uuid)]
    pub id: String,
    pub url: String,
    #[schema(value_type = Vec<WebhookEventType>)]
    pub events: Vec<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&Webhook> for WebhookJson {
    fn from(w: &Webhook) -> Self {
        WebhookJson {
            id: w.id.to_string(),
            url: w.url.clone(),
            events: w.events.clone(),
            created_at: w.created_at.to_rfc3339(),
        }
    }
}

/// A webhook just registered, with its signing secret (shown only now).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookCreated)]
pub struct CreatedJson {
    #[schema(format = Uuid)]
    pub id: String,
    pub url: String,
    #[schema(value_type = Vec<WebhookEventType>)]
    pub events: Vec<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The key of every delivery's `Roomtape-Signature`: hex HMAC-SHA256 with this string (as
    /// UTF-8 bytes) as the key, over `"<Roomtape-Timestamp>.<body>"`.
    pub secret: String,
}

/// The caller's webhooks, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookList)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookJson>,
}

/// Where a delivery stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = WebhookDeliveryState)]
pub enum DeliveryStateJson {
    /// Not accepted yet; tried again at `next_attempt_at`.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed; `last_status` and `last_error` say how the last one went.
    Failed,
}

/// One event sent (or being sent) to one webhook, with its outcome.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookDelivery)]
pub struct DeliveryJson {
    /// Also sent as `Roomtape-Delivery`, the same on every attempt.
    #[schema(format = Uuid)]
    pub id: String,
    /// The event's `id` in the body (the same for every webhook that receives the event).
    pub event_id: String,
    #[schema(value_type = WebhookEventType)]
    pub event: String,
    #[schema(format = Uuid)]
    pub recording_id: String,
    pub state: DeliveryStateJson,
    /// Attempts made so far (including one under way).
    pub attempts: u32,
    /// When a pending delivery is tried next.
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// The HTTP status of the last answer, if the receiver answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (e.g. `HTTP 500`, a refused connection, a time-out).
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// When it was delivered or given up.
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
}

impl From<&WebhookDelivery> for DeliveryJson {
    fn from(d: &WebhookDelivery) -> Self {
        DeliveryJson {
            id: d.id.to_string(),
            event_id: d.event_id.clone(),
            event: d.event.clone(),
            recording_id: d.recording_id.to_string(),
            state: match d.state {
                DeliveryState::Pending => DeliveryStateJson::Pending,
                DeliveryState::Delivered => DeliveryStateJson::Delivered,
                DeliveryState::Failed => DeliveryStateJson::Failed,
            },
            attempts: d.attempts,
            next_attempt_at: (d.state == DeliveryState::Pending)
                .then_some(d.next_attempt_at)
                .flatten()
                .map(Timestamp::to_rfc3339),
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            created_at: d.created_at.to_rfc3339(),
            updated_at: d.updated_at.to_rfc3339(),
            finished_at: d.finished_at.map(Timestamp::to_rfc3339),
        }
    }
}

/// A webhook's latest deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookDeliveryList)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryJson>,
}

/// `limit` of the deliveries list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesParams {
    /// How many of the latest deliveries, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// `GET /api/v1/webhooks`
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    operation_id = "list_webhooks",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The caller's webhooks, newest first (without secrets)", body = WebhookList),
        (status = 401, description = "Not signed in, or an unknown or revoked token", body = ErrorBody),
    )
)]
pub async fn list_webhooks(
    State(state): State<AppState>,
    session: Session,
) -> Result<Json<WebhookList>, AppError> {
    let hooks = state.catalog.webhooks(session.user.id).await?;
    Ok(Json(WebhookList {
        webhooks: hooks.iter().map(WebhookJson::from).collect(),
    }))
}

/// `POST /api/v1/webhooks`
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    operation_id = "create_webhook",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("X-CSRF-Token" = Option<String>, Header, description = "The page's CSRF token; required with the session cookie, ignored with a bearer token"),
    ),
    request_body(content = NewWebhook, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered; the answer holds the signing secret, shown only now", body = CreatedJson),
        (status = 400, description = "A malformed body (`bad_body`), or a URL or event type that is not accepted, or too many webhooks (`invalid`)", body = ErrorBody),
        (status = 401, description = "Not signed in, or an unknown or revoked token", body = ErrorBody),
        (status = 403, description = "A cookie request without the right CSRF token", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
    )
)]
pub async fn create_webhook(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    ApiJson(new): ApiJson<NewWebhook>,
) -> Result<(StatusCode, Json<CreatedJson>), AppError> {
    session.check_csrf(auth::csrf_header(&headers))?;
    let (hook, secret) = register(&state, &session, &new.url, new.events.as_deref()).await?;
    let w = WebhookJson::from(&hook);
    Ok((
        StatusCode::CREATED,
        Json(CreatedJson {
            id: w.id,
            url: w.url,
            events: w.events,
            created_at: w.created_at,
            secret,
        }),
    ))
}

/// `DELETE /api/v1/webhooks/{id}`
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    operation_id = "delete_webhook",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("id" = String, Path, format = Uuid, description = "The webhook's id"),
        ("X-CSRF-Token" = Option<String>, Header, description = "The page's CSRF token; required with the session cookie, ignored with a bearer token"),
    ),
    responses(
        (status = 204, description = "Deleted, with its deliveries (pending ones are not sent)"),
        (status = 400, description = "The id is not a UUID (`bad_parameter`)", body = ErrorBody),
        (status = 401, description = "Not signed in, or an unknown or revoked token", body = ErrorBody),
        (status = 403, description = "A cookie request without the right CSRF token", body = ErrorBody),
        (status = 404, description = "The caller has no such webhook", body = ErrorBody),
    )
)]
pub async fn delete_webhook(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    ApiPath(id): ApiPath<WebhookId>,
) -> Result<StatusCode, AppError> {
    session.check_csrf(auth::csrf_header(&headers))?;
    state.catalog.delete_webhook(session.user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/webhooks/{id}/deliveries`
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    operation_id = "list_webhook_deliveries",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("id" = String, Path, format = Uuid, description = "The webhook's id"),
        DeliveriesParams,
    ),
    responses(
        (status = 200, description = "The webhook's latest deliveries with their outcome, newest first", body = DeliveryList),
        (status = 400, description = "The id is not a UUID, or `limit` is not from 1 to 100 (`bad_parameter`)", body = ErrorBody),
        (status = 401, description = "Not signed in, or an unknown or revoked token", body = ErrorBody),
        (status = 404, description = "The caller has no such webhook", body = ErrorBody),
    )
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    session: Session,
    ApiPath(id): ApiPath<WebhookId>,
    ApiQuery(p): ApiQuery<DeliveriesParams>,
) -> Result<Json<DeliveryList>, AppError> {
    let limit = match p.limit {
        None => DEFAULT_DELIVERIES,
        Some(n) if (1..=MAX_DELIVERIES).contains(&n) => n,
        Some(n) => {
            return Err(AppError::bad_request(
                "bad_parameter",
                format!("limit must be from 1 to {MAX_DELIVERIES}, not {n}"),
            ));
        }
    };
    let list = state
        .catalog
        .webhook_deliveries(session.user.id, id, limit)
        .await?;
    Ok(Json(DeliveryList {
        deliveries: list.iter().map(DeliveryJson::from).collect(),
    }))
}

/// The `/api/v1/webhooks` routes.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(delete_webhook))
        .routes(routes!(list_deliveries))
}

// ---- the page ----

/// The `/webhooks` page and its forms.
pub fn page_routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/webhooks", get(page).post(create_form))
        .route("/webhooks/{id}/delete", post(delete_form))
}

#[derive(Debug, Deserialize)]
pub struct HookForm {
    #[serde(default)]
    url: String,
    recording_finished: Option<String>,
    transcript_ready: Option<String>,
    #[serde(default)]
    _csrf: String,
}

async fn page(
    State(state): State<AppState>,
    session: Option<Session>,
) -> Result<Response, PageError> {
    let Some(session) = session else {
        return Ok(login_redirect("/webhooks"));
    };
    Ok(page_markup(&state, &session, Notice::None)
        .await?
        .into_response())
}

enum Notice<'a> {
    None,
    Created(&'a Webhook, &'a str),
    Error(&'a str, &'a str),
}

async fn page_markup(
    state: &AppState,
    session: &Session,
    notice: Notice<'_>,
) -> Result<Markup, AppError> {
    let hooks = state.catalog.webhooks(session.user.id).await?;
    let deliveries = state
        .catalog
        .recent_webhook_deliveries(session.user.id, 50)
        .await?;
    let url_of: HashMap<WebhookId, &str> = hooks.iter().map(|h| (h.id, h.url.as_str())).collect();
    let typed_url = match notice {
        Notice::Error(_, url) => url,
        _ => "",
    };
    Ok(layout(
        "Webhooks",
        Some(session),
        html! {
            section.card {
                h1 { "Webhooks" }
                p {
                    "roomtape POSTs JSON to your URLs when a recording is finished ("
                    code { "recording.finished" } ") and when its transcript is ready ("
                    code { "transcript.ready" } "), for your recordings"
                    @if session.user.is_admin { " (as an admin: everyone's)" }
                    ". Each request carries " code { "Roomtape-Signature: v1=<hex>" } ", the "
                    "HMAC-SHA256 of " code { "<Roomtape-Timestamp>.<body>" } " keyed with the "
                    "webhook's secret; check it, and that the timestamp is recent. Answer with a "
                    "2xx status; anything else is retried with growing pauses."
                }
                @match notice {
                    Notice::Created(hook, secret) => {
                        p.notice role="status" {
                            "Added " code { (hook.url) } ". Its signing secret (shown only now): "
                            code #new-secret { (secret) }
                        }
                    }
                    Notice::Error(message, _) => { p.error role="alert" { (message) } }
                    Notice::None => {}
                }
                form method="post" action="/webhooks" {
                    input type="hidden" name="_csrf" value=(session.csrf);
                    label { "URL" input name="url" type="url" required maxlength=(MAX_URL_LEN) placeholder="https://example.org/hook" value=(typed_url); }
                    fieldset {
                        legend { "Events" }
                        label { input type="checkbox" name="recording_finished" checked; " recording.finished" }
                        label { input type="checkbox" name="transcript_ready" checked; " transcript.ready" }
                    }
                    button type="submit" { "Add webhook" }
                }
                table #webhooks {
                    thead { tr { th { "URL" } th { "Events" } th { "Added" } th {} } }
                    tbody {
                        @for h in &hooks {
                            tr {
                                td { code { (h.url) } }
                                td { (h.events.join(", ")) }
                                td { (crate::pages::moment_tag(h.created_at)) }
                                td {
                                    form.inline method="post" action={ "/webhooks/" (h.id) "/delete" } {
                                        input type="hidden" name="_csrf" value=(session.csrf);
                                        button type="submit" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.card {
                h2 { "Recent deliveries" }
                table #deliveries {
                    thead { tr { th { "Created" } th { "Event" } th { "URL" } th { "Outcome" } th { "Attempts" } th { "Last status" } th { "Last error" } th { "Next attempt" } } }
                    tbody {
                        @for d in &deliveries {
                            tr {
                                td { (crate::pages::moment_tag(d.created_at)) }
                                td { (d.event) }
                                td { code { (url_of.get(&d.webhook_id).copied().unwrap_or("")) } }
                                td { (d.state.as_str()) }
                                td { (d.attempts) }
                                td { (d.last_status.map(|s| s.to_string()).unwrap_or_default()) }
                                td { (d.last_error.as_deref().unwrap_or("")) }
                                td {
                                    @if d.state == DeliveryState::Pending {
                                        @if let Some(x) = d.next_attempt_at { (crate::pages::moment_tag(x)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

async fn create_form(
    State(state): State<AppState>,
    session: Session,
    axum::Form(f): axum::Form<HookForm>,
) -> Result<Response, PageError> {
    session.check_csrf(Some(&f._csrf))?;
    let mut events = Vec::new();
    if f.recording_finished.is_some() {
        events.push(WEBHOOK_EVENTS[0].to_string());
    }
    if f.transcript_ready.is_some() {
        events.push(WEBHOOK_EVENTS[1].to_string());
    }
    match register(&state, &session, &f.url, Some(&events)).await {
        Ok((hook, secret)) => Ok(
            page_markup(&state, &session, Notice::Created(&hook, &secret))
                .await?
                .into_response(),
        ),
        Err(e) if e.status() == StatusCode::BAD_REQUEST => Ok((
            StatusCode::BAD_REQUEST,
            page_markup(&state, &session, Notice::Error(e.message(), &f.url)).await?,
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    _csrf: String,
}

async fn delete_form(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<DeleteForm>,
) -> Result<Response, PageError> {
    session.check_csrf(Some(&f._csrf))?;
    let id = webhook_id(&id)?;
    state.catalog.delete_webhook(session.user.id, id).await?;
    Ok(Redirect::to("/webhooks").into_response())
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
    fn the_openapi_description_is_whole() {
        let doc = serde_json::to_value(api_routes().into_openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let ops = [
            ("/api/v1/webhooks", "get", "list_webhooks"),
            ("/api/v1/webhooks", "post", "create_webhook"),
            ("/api/v1/webhooks/{id}", "delete", "delete_webhook"),
            (
                "/api/v1/webhooks/{id}/deliveries",
                "get",
                "list_webhook_deliveries",
            ),
        ];
        for (path, method, id) in ops {
            let op = &paths[path][method];
            assert_eq!(op["operationId"], id, "{path} {method}: {op}");
            assert_eq!(op["tags"][0], "webhooks");
            assert!(op["responses"]["401"].is_object(), "{id} documents 401");
        }
        // Every schema referred to is in the document.
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(
                schemas.contains_key(name),
                "{name} is referred to but missing"
            );
        }
        for name in [
            "WebhookCreated",
            "WebhookDelivery",
            "WebhookEventType",
            "ErrorBody",
        ] {
            assert!(schemas.contains_key(name), "{name}: {:?}", schemas.keys());
        }
        let created = &schemas["WebhookCreated"]["required"];
        assert!(
            created.as_array().unwrap().contains(&"secret".into()),
            "{created}"
        );
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
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            assert!(e.message().contains(says), "{bad_url}: {}", e.message());
        }
        let long = format!("https://example.org/{}", "a".repeat(MAX_URL_LEN));
        assert!(
            check_url(&long, false)
                .unwrap_err()
                .message()
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
            assert!(
                e.message().contains("public address"),
                "{url}: {}",
                e.message()
            );
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
    fn events_default_to_all_and_unknown_ones_are_named() {
        assert_eq!(check_events(None).unwrap(), WEBHOOK_EVENTS);
        let both = [
            "transcript.ready".to_string(),
            "recording.finished".to_string(),
        ];
        assert_eq!(check_events(Some(&both)).unwrap(), WEBHOOK_EVENTS);
        let e = check_events(Some(&["recording.started".to_string()])).unwrap_err();
        assert!(
            e.message().contains("\"recording.started\""),
            "{}",
            e.message()
        );
        assert!(check_events(Some(&[])).is_err());
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
