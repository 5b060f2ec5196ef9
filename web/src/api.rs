//! The public API under `/api/v1`, described by an OpenAPI 3.1 document built from the code.

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Every `/api/v1` route with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(crate::webhooks::api_routes())
}
