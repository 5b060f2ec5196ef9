//! The public API under `/api/v1`, described by an OpenAPI 3.1 document built from the code.
//!
//! Every handler carries a `#[utoipa::path]` with its path written in full (`/api/v1/…`) and is
//! registered here with `utoipa_axum::routes!`, so a route cannot exist without its description.
//! [`document`] serves the paths relative to the server `/api/v1`. Handlers take their inputs
//! through [`ApiJson`], [`ApiQuery`] and [`ApiPath`], which turn every malformed input into the
//! one error shape ([`crate::ErrorBody`]).

use std::sync::OnceLock;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use roomtape_core::Cursor;

use crate::{AppError, AppState, ErrorBody, account, rooms};

pub mod captions;
pub mod jobs;
pub mod recordings;

/// Where the API lives; every documented path starts with it.
pub const PREFIX: &str = "/api/v1";

/// Items on a page unless `limit` says otherwise, and the most it may ask for.
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "roomtape API",
        version = env!("CARGO_PKG_VERSION"),
        description = "Rooms, recordings, tracks, transcripts, search, jobs, API tokens and webhooks \
            of a roomtape server. Authenticate with `Authorization: Bearer <token>` (an API token) \
            or the session cookie (then state-changing requests need `X-CSRF-Token`). Lists are \
            newest first and paged by cursor: pass a page's `next_cursor` as `cursor` to get the \
            next one. Every error is `{\"error\": {\"code\", \"message\"}}`."
    ),
    servers((url = "/api/v1", description = "this server")),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorBody)),
    tags(
        (name = "recordings", description = "Recordings, their tracks and transcripts"),
        (name = "rooms", description = "Live rooms"),
        (name = "search", description = "Full-text search of transcripts"),
        (name = "jobs", description = "Transcription jobs"),
        (name = "account", description = "The caller's account and API tokens"),
        (name = "webhooks", description = "Event deliveries to the caller's URLs"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// The two ways to authenticate: `bearer` (API tokens) and `cookie` (a browser session).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`rt_…`), made on /tokens or with POST /tokens",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::COOKIE_NAME,
                "The session cookie set by /login; state-changing requests must also send \
                 the page's CSRF token in X-CSRF-Token",
            ))),
        );
    }
}

/// Every `/api/v1` route with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(openapi_json))
        .routes(routes!(account::api_me))
        .routes(routes!(account::api_list_tokens, account::api_create_token))
        .routes(routes!(account::api_revoke_token))
        .routes(routes!(rooms::api_list_rooms, rooms::api_create_room))
        .routes(routes!(rooms::api_get_room))
        .routes(routes!(captions::room_captions))
        .routes(routes!(rooms::api_rotate_invite, rooms::api_revoke_invite))
        .routes(routes!(rooms::api_speaker_invite))
        .routes(routes!(recordings::list_recordings))
        .routes(routes!(
            recordings::get_recording,
            recordings::update_recording,
            recordings::delete_recording
        ))
        .routes(routes!(recordings::list_tracks))
        .routes(routes!(recordings::track_audio))
        .routes(routes!(recordings::mix_audio))
        .routes(routes!(recordings::get_transcript))
        .routes(routes!(recordings::rename_speaker))
        .routes(routes!(recordings::correct_segment))
        .routes(routes!(jobs::list_jobs))
        .routes(routes!(jobs::get_job))
        .routes(routes!(crate::search))
        .merge(crate::webhooks::api_routes())
}

/// The OpenAPI document: [`router`]'s description with paths relative to the server `/api/v1`.
///
/// # Panics
/// When a route was registered outside `/api/v1` (a programming error the tests catch).
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = router().into_openapi();
    let paths = std::mem::take(&mut doc.paths.paths);
    for (path, item) in paths {
        let short = path
            .strip_prefix(PREFIX)
            .filter(|p| p.starts_with('/'))
            .unwrap_or_else(|| panic!("API route {path} is outside {PREFIX}"));
        doc.paths.paths.insert(short.to_string(), item);
    }
    doc
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    security(()),
    responses(
        (status = 200, description = "This document (OpenAPI 3.1)", body = serde_json::Value, content_type = "application/json"),
    )
)]
async fn openapi_json() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let body = DOC.get_or_init(|| document().to_json().unwrap_or_default());
    ([(CONTENT_TYPE, "application/json")], body.clone()).into_response()
}

/// A JSON object as request body; a malformed one is `400 bad_body`, one without a JSON
/// `Content-Type` `415 unsupported_media_type`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            // Every body is an object; serde would also take a struct's fields from an array.
            Ok(axum::Json(v)) if !v.is_object() => Err(AppError::bad_request(
                "bad_body",
                "the body must be a JSON object",
            )),
            Ok(axum::Json(v)) => serde_json::from_value(v)
                .map(ApiJson)
                .map_err(|e| AppError::bad_request("bad_body", format!("bad body: {e}"))),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AppError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON, with Content-Type: application/json",
            )),
            Err(e @ (JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_))) => {
                Err(AppError::bad_request("bad_body", e.body_text()))
            }
            Err(e) if e.status().is_client_error() => {
                Err(AppError::new(e.status(), "bad_body", e.body_text()))
            }
            Err(e) => Err(AppError::internal(e.body_text())),
        }
    }
}

/// Query parameters; any that do not parse are `400 bad_parameter`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| AppError::bad_request("bad_parameter", e.body_text()))
    }
}

/// Path parameters; any that do not parse (an id that is not a UUID) are `400 bad_parameter`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(p) => Ok(ApiPath(p.0)),
            Err(e @ PathRejection::FailedToDeserializePathParams(_)) => {
                Err(AppError::bad_request("bad_parameter", e.body_text()))
            }
            Err(e) => Err(AppError::internal(e.body_text())),
        }
    }
}

/// `cursor` and `limit` of a paged list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The `next_cursor` of the previous page; absent for the first page.
    #[param(
        pattern = r"^-?[0-9]{1,18}\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub cursor: Option<String>,
    /// Items per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

impl PageParams {
    /// The checked page size and decoded cursor.
    pub fn resolve(&self) -> Result<(u32, Option<Cursor>), AppError> {
        page(self.cursor.as_deref(), self.limit)
    }
}

/// Checks a page size and decodes a cursor, naming the parameter in the error.
pub fn page(cursor: Option<&str>, limit: Option<u32>) -> Result<(u32, Option<Cursor>), AppError> {
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(n) => {
            return Err(AppError::bad_request(
                "bad_parameter",
                format!("limit must be from 1 to {MAX_LIMIT}, not {n}"),
            ));
        }
    };
    let cursor = cursor
        .map(Cursor::decode)
        .transpose()
        .map_err(|e| AppError::bad_request("bad_parameter", e.to_string()))?;
    Ok((limit, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_path_under_the_server() {
        let doc: serde_json::Value = serde_json::from_str(&document().to_json().unwrap()).unwrap();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            doc["openapi"]
        );
        assert_eq!(doc["servers"][0]["url"], "/api/v1");
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/recordings",
            "/recordings/{id}",
            "/recordings/{id}/transcript",
            "/rooms",
            "/jobs",
            "/search",
            "/openapi.json",
        ] {
            assert!(paths.contains_key(p), "{p} is missing: {:?}", paths.keys());
        }
        // Operation ids are unique (code generators name functions after them).
        let mut ids = std::collections::BTreeSet::new();
        for item in paths.values() {
            for op in item.as_object().unwrap().values() {
                if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                    assert!(ids.insert(id.to_string()), "operationId {id} twice");
                }
            }
        }
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["cookie"]["in"], "cookie");
    }

    #[test]
    fn page_sizes_and_cursors_are_checked() {
        assert_eq!(page(None, None).unwrap(), (DEFAULT_LIMIT, None));
        assert!(page(None, Some(0)).is_err());
        assert!(page(None, Some(MAX_LIMIT + 1)).is_err());
        assert!(page(Some("nonsense"), Some(5)).is_err());
        let c = Cursor {
            started_at: 5,
            id: roomtape_core::RecordingId::new().to_string(),
        };
        assert_eq!(page(Some(&c.encode()), Some(5)).unwrap(), (5, Some(c)));
    }
}
