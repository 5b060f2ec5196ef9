//! `roomtape-web`: the HTTP service. Only this crate speaks HTTP.
//!
//! [`app`] builds the router from shared state, so tests drive it in-process with
//! `tower::ServiceExt::oneshot` and `serve` binds it to a socket.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use roomtape_core::{ArchiveStore, Catalog, Recording, Track};

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub catalog: Catalog,
    pub store: Arc<dyn ArchiveStore>,
}

/// The service's routes.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/recordings", get(list_recordings))
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
        let app = app(AppState { catalog, store });
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
