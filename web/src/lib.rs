//! `roomtape-web`: the HTTP service. Only this crate speaks HTTP.
//!
//! [`app`] builds the router from shared state, so tests drive it in-process with
//! `tower::ServiceExt::oneshot` and `serve` binds it to a socket.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use roomtape_core::{ArchiveStore, Catalog, Recording, Track};
use roomtape_search::{SearchIndex, Sort, Viewer};

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub catalog: Catalog,
    pub store: Arc<dyn ArchiveStore>,
    pub search: Arc<SearchIndex>,
}

/// The service's routes.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/recordings", get(list_recordings))
        .route("/api/v1/search", get(search))
        .fallback(not_found)
        .with_state(state)
}

/// The one error type of handlers: logs internals, shows clients a code and a message.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl AppError {
    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    fn internal(e: impl std::fmt::Display) -> Self {
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
        if e.is_not_found() {
            AppError {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                message: e.to_string(),
            }
        } else {
            AppError::internal(e)
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

async fn healthz(State(state): State<AppState>) -> Result<&'static str, AppError> {
    state.catalog.ping().await?;
    Ok("ok\n")
}

#[derive(Serialize)]
struct RecordingJson {
    #[serde(flatten)]
    recording: Recording,
    tracks: Vec<Track>,
}

async fn list_recordings(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, AppError> {
    let mut items = Vec::new();
    for recording in state.catalog.recordings().await? {
        let tracks = state.catalog.tracks(recording.id).await?;
        items.push(RecordingJson { recording, tracks });
    }
    Ok(Json(serde_json::json!({ "recordings": items })))
}

/// Query parameters of `/api/v1/search`, all as text so every mistake gets a message naming it.
#[derive(serde::Deserialize)]
struct SearchParams {
    q: Option<String>,
    sort: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
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

async fn search(
    State(state): State<AppState>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<roomtape_search::Results>, AppError> {
    let Query(p) = params.map_err(|e| AppError::bad_request("bad_parameter", e.body_text()))?;
    let q = p.q.unwrap_or_default();
    let parsed = roomtape_search::query::parse(&q)
        .map_err(|e| AppError::bad_request("bad_query", e.to_string()))?;
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
    let page = number_param("page", p.page.as_deref(), 1, 10_000)?;
    let per_page = number_param("per_page", p.per_page.as_deref(), 20, 100)?;
    // Accounts arrive with live rooms; until then every web caller is anonymous.
    let viewer = Viewer::Anonymous;
    let index = state.search.clone();
    let results =
        tokio::task::spawn_blocking(move || index.search(&parsed, &viewer, sort, page, per_page))
            .await
            .map_err(AppError::internal)?
            .map_err(|e| match e {
                roomtape_search::Error::Query(m) => AppError::bad_request("bad_query", m),
                other => AppError::internal(other),
            })?;
    Ok(Json(results))
}

async fn not_found() -> AppError {
    AppError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: "no such page".into(),
    }
}

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
        let app = app(AppState {
            catalog,
            store,
            search,
        });
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

/// Serves `app` on `listener` until `shutdown` completes, then drains open connections.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
