//! Webhooks: users register URLs; `recording.finished` and `transcript.ready` are delivered
//! signed, retried with backoff, and listed with their outcome.

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// The `/api/v1/webhooks` routes.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
