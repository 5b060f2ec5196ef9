//! `roomtape-web`: the HTTP service. Only this crate speaks HTTP.
//!
//! [`app`] builds the router from shared state, so tests drive it in-process with
//! `tower::ServiceExt::oneshot` and `serve` binds it to a socket.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use roomtape_core::{ArchiveStore, Catalog, Config};
use roomtape_search::{SearchIndex, Sort};

pub mod account;
pub mod api;
pub mod artwork;
pub mod auth;
pub mod browse;
pub mod calendar;
pub mod feed;
pub mod host;
pub mod live;
pub mod media;
pub mod pages;
pub mod replay;
pub mod rooms;
pub mod server;
pub mod webhooks;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub catalog: Catalog,
    pub store: Arc<dyn ArchiveStore>,
    pub search: Arc<SearchIndex>,
    pub config: Arc<Config>,
    pub limiter: Arc<auth::LoginLimiter>,
    pub live: Arc<live::Live>,
}

impl AppState {
    /// Shared state with defaults for what only the service itself sets up.
    pub fn new(
        catalog: Catalog,
        store: Arc<dyn ArchiveStore>,
        search: Arc<SearchIndex>,
        config: Config,
        live: Arc<live::Live>,
    ) -> Self {
        AppState {
            catalog,
            store,
            search,
            config: Arc::new(config),
            limiter: Arc::new(auth::LoginLimiter::default()),
            live,
        }
    }

    /// Whether cookies are marked `Secure` (the public URL is https).
    pub fn secure_cookies(&self) -> bool {
        self.config.server.public_url.starts_with("https://")
    }
}

/// The service's routes.
pub fn app(state: AppState) -> Router {
    let (api, _openapi) = api::router().split_for_parts();
    Router::new()
        .merge(api)
        .merge(webhooks::page_routes())
        .route("/healthz", get(healthz))
        .route("/", get(rooms::lobby))
        .route("/static/{name}", get(pages::static_file))
        .route("/signup", get(account::signup_page).post(account::signup))
        .route("/login", get(account::login_page).post(account::login))
        .route("/logout", post(account::logout))
        .route(
            "/tokens",
            get(account::tokens_page).post(account::create_token_form),
        )
        .route("/tokens/{id}/revoke", post(account::revoke_token_form))
        .route("/rooms/new", get(rooms::new_room_page))
        .route("/rooms", post(rooms::create_room_form))
        .route("/rooms/{id}", get(rooms::room_page))
        .route("/rooms/{id}/calendar.ics", get(rooms::calendar))
        .route("/rooms/{id}/ws", get(live::ws::handler))
        .route("/search", get(browse::search_page))
        .route("/replays", get(browse::replays_page))
        .route("/feeds/{file}", get(feed::feed))
        .merge(replay::routes())
        .fallback(not_found)
        // After every route: it applies to the routes there are.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            host::check,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Headers on every answer: pages may run only our own scripts (so hostile text that slipped
/// through escaping still could not execute), nothing is sniffed, referrers stay home.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::http::HeaderValue;
    use axum::http::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
             frame-ancestors 'none'; form-action 'self'",
        ),
    );
    res
}

/// The one error shape of every API answer that is not a success.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable machine-readable `code` and a sentence for people.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// The one error type of handlers: logs internals, shows clients a code and a message.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AppError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message shown to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {e}");
        AppError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error; see the server log".into(),
        }
    }
}

impl From<roomtape_core::Error> for AppError {
    fn from(e: roomtape_core::Error) -> Self {
        match e {
            e if e.is_not_found() => AppError::not_found(e.to_string()),
            roomtape_core::Error::Invalid(m) => AppError::bad_request("invalid", m),
            roomtape_core::Error::Conflict(m) => AppError::new(StatusCode::CONFLICT, "conflict", m),
            e => AppError::internal(e),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

async fn healthz(State(state): State<AppState>) -> Result<&'static str, AppError> {
    state.catalog.ping().await?;
    Ok("ok\n")
}

/// Query parameters of `/api/v1/search`, all as text so every mistake gets a message naming it.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchParams {
    /// The query (see the README's Search section); empty lists every line the caller may see.
    #[param(max_length = 1000)]
    q: Option<String>,
    /// `relevance` (the default) or `newest`.
    #[param(value_type = Option<SearchSort>, inline)]
    sort: Option<String>,
    /// `words` (BM25 on the words), `meaning` (sentence embeddings: lines that say the same in
    /// other words, found by their English), or `hybrid` (both, by reciprocal rank fusion).
    /// Default: `hybrid` where the service has the embedding model, else `words`. `meaning` and
    /// `hybrid` are a 400 where it has none.
    #[param(value_type = Option<roomtape_search::Mode>, inline)]
    mode: Option<String>,
    /// Page number, 1–10000 (default 1).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    page: Option<String>,
    /// Lines per page, 1–100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    per_page: Option<String>,
}

/// Order of search results.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Only described: `search` parses the parameter itself.
enum SearchSort {
    Relevance,
    Newest,
}

fn number_param(
    name: &str,
    v: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, AppError> {
    let Some(v) = v else { return Ok(default) };
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(AppError::bad_request(
            "bad_parameter",
            format!(
                "{name} must be a whole number from 1 to {max}, not {:?}",
                roomtape_core::truncate_for_message(v)
            ),
        )),
    }
}

/// Transcript lines matching a query, grouped by recording, as the caller may see them.
///
/// Anonymous callers search published public recordings; a signed-in user also those they own
/// or spoke in; an admin everything. `snippet_html` is escaped HTML with matches in `<mark>`.
#[utoipa::path(
    get,
    path = "/api/v1/search",
    tag = "search",
    params(SearchParams),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "A page of hits", body = roomtape_search::Results),
        (status = 400, description = "A query over 1000 characters, a bad `sort`, `mode`, `page` or `per_page`, or `mode=meaning`/`hybrid` where the embedding model is not installed", body = ErrorBody),
        (status = 401, description = "An unknown or revoked API token", body = ErrorBody),
    )
)]
async fn search(
    State(state): State<AppState>,
    session: Option<auth::Session>,
    accepted: Option<axum::Extension<host::RequestHost>>,
    api::ApiQuery(p): api::ApiQuery<SearchParams>,
) -> Result<Json<roomtape_search::Results>, AppError> {
    let q = p.q.unwrap_or_default();
    let sort = match p.sort.as_deref() {
        None | Some("relevance") => Sort::Relevance,
        Some("newest" | "date") => Sort::Newest,
        Some(other) => {
            return Err(AppError::bad_request(
                "bad_parameter",
                format!(
                    "sort must be relevance or newest, not {:?}",
                    roomtape_core::truncate_for_message(other)
                ),
            ));
        }
    };
    let mode = browse::mode_param(p.mode.as_deref())?;
    let page = number_param("page", p.page.as_deref(), 1, 10_000)?;
    let per_page = number_param("per_page", p.per_page.as_deref(), 20, 100)?;
    let mut results =
        browse::run_search(&state, session.as_ref(), &q, sort, mode, page, per_page).await?;
    // An API consumer quotes a hit elsewhere: its link names the service too.
    let base = feed::base_url(&state, accepted.as_deref());
    for hit in results
        .recordings
        .iter_mut()
        .flat_map(|r| r.hits.iter_mut())
    {
        hit.link.insert_str(0, &base);
    }
    Ok(Json(results))
}

async fn method_not_allowed() -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not take that method",
    )
}

async fn not_found() -> AppError {
    AppError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: "no such page".into(),
    }
}

/// Serves `app` on `listener` with the default [`server::Limits`] until `shutdown` completes,
/// then drains open connections.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve_with(listener, app, shutdown, server::Limits::default()).await
}

pub use server::{Limits, serve_with};

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn health_and_recordings_answer() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&dir.path().join("c.sqlite")).await.unwrap();
        let store = Arc::new(roomtape_core::MemoryStore::new());
        let search = Arc::new(SearchIndex::in_memory().unwrap());
        let config = Arc::new(Config::default());
        let live = live::Live::new(catalog.clone(), store.clone(), config, None);
        let app = app(AppState::new(
            catalog,
            store,
            search,
            Config::default(),
            live,
        ));
        let res = app
            .clone()
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = app
            .clone()
            .oneshot(
                Request::get("/api/v1/recordings")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = app
            .oneshot(Request::get("/nope").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}
