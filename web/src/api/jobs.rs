//! `/api/v1/jobs`: transcription jobs of the recordings the caller manages (every job for an
//! admin). Someone else's job answers as one that does not exist (404).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use roomtape_core::{Access, Job, JobId};

use super::{ApiPath, ApiQuery, PageParams};
use crate::auth::Session;
use crate::{AppError, AppState, ErrorBody};

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Jobs of the recordings the caller manages, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    tag = "jobs",
    params(PageParams),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage),
        (status = 400, description = "A bad `cursor` or `limit`", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    session: Session,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<JobPage>, AppError> {
    let (limit, cursor) = q.resolve()?;
    let (jobs, next) = state
        .catalog
        .list_jobs(&session.user, cursor.as_ref(), limit)
        .await?;
    Ok(Json(JobPage {
        jobs,
        next_cursor: next.map(|c| c.encode()),
    }))
}

/// One job of a recording the caller manages.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = JobId, Path, description = "Job id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such job, or not one of the caller's recordings", body = ErrorBody),
    )
)]
pub async fn get_job(
    State(state): State<AppState>,
    session: Session,
    ApiPath(id): ApiPath<JobId>,
) -> Result<Json<Job>, AppError> {
    let missing = || AppError::not_found(format!("no job {id}"));
    let job = match state.catalog.job(id).await {
        Ok(j) => j,
        Err(e) if e.is_not_found() => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    let rec = match state.catalog.recording(job.recording_id).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    // Managing needs no speaker list: owners and admins manage whoever spoke.
    if !Access::of(&rec, &[], Some(&session.user)).manage {
        return Err(missing());
    }
    Ok(Json(job))
}
