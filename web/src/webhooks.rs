//! Webhooks' API and pages: users register URLs, see their deliveries and delete them.
//! Delivery itself (signing, the SSRF guard, retries) is `roomtape-webhooks`'s, run beside the
//! service's other background loops.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use roomtape_core::{
    DeliveryState, Timestamp, WEBHOOK_EVENTS, Webhook, WebhookDelivery, WebhookId,
};

use crate::account::login_redirect;
use crate::api::{ApiJson, ApiPath, ApiQuery};
use crate::auth::{self, Session, WriteSession};
use crate::pages::{PageError, layout};
use crate::{AppError, AppState, ErrorBody};

pub use roomtape_webhooks::MAX_URL_LEN;
/// Deliveries listed per webhook unless `limit` says otherwise, and the most it may ask for.
const DEFAULT_DELIVERIES: u32 = 50;
const MAX_DELIVERIES: u32 = 100;

// ---- checking what users send ----

fn bad(message: impl Into<String>) -> AppError {
    AppError::bad_request("invalid", message)
}

/// Checks a webhook URL (see [`roomtape_webhooks::check_url`]); a refusal is a 400.
pub fn check_url(raw: &str, allow_private: bool) -> Result<reqwest::Url, AppError> {
    roomtape_webhooks::check_url(raw, allow_private).map_err(|e| bad(e.to_string()))
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
    WriteSession(session): WriteSession,
    ApiJson(new): ApiJson<NewWebhook>,
) -> Result<(StatusCode, Json<CreatedJson>), AppError> {
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
    WriteSession(session): WriteSession,
    ApiPath(id): ApiPath<WebhookId>,
) -> Result<StatusCode, AppError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
