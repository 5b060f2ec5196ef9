//! `/api/v1/recordings`: lists, one recording with the caller's rights, publishing, tracks and
//! their audio, transcripts in four formats, speaker names and line corrections.
//!
//! Access follows [`roomtape_core::Access`], the rules the pages use: a recording the caller
//! may not view answers exactly as one that does not exist (404).

use axum::http::header::{ACCEPT, VARY};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use roomtape_core::export::Format;
use roomtape_core::{
    Access, ListViewer, Recording, RecordingId, SpeakerId, Track, TrackId, Transcript, Visibility,
};

use super::{ApiJson, ApiPath, ApiQuery, page};
use crate::auth::{self, Session};
use crate::{AppError, AppState, ErrorBody};

/// What the caller may do with a recording.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct AccessFlags {
    /// May see the replay, transcript, mix and search hits.
    pub view: bool,
    /// May change visibility, title, names and lines, delete it, and download every track.
    pub manage: bool,
    /// Spoke in it (their own track is theirs to download).
    pub speaker: bool,
}

impl From<Access> for AccessFlags {
    fn from(a: Access) -> Self {
        AccessFlags {
            view: a.view,
            manage: a.manage,
            speaker: a.speaker,
        }
    }
}

/// A recording with its tracks.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingItem {
    #[serde(flatten)]
    pub recording: Recording,
    pub tracks: Vec<Track>,
}

/// A page of recordings, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingPage {
    pub recordings: Vec<RecordingItem>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// One recording, its tracks, and what the caller may do with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingDetail {
    #[serde(flatten)]
    pub recording: Recording,
    pub tracks: Vec<Track>,
    pub access: AccessFlags,
}

/// A recording's tracks.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrackList {
    pub tracks: Vec<Track>,
}

/// Query of `GET /recordings`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// The `next_cursor` of the previous page; absent for the first page.
    #[param(
        pattern = r"^-?[0-9]{1,18}\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub cursor: Option<String>,
    /// Items per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Only recordings owned by this user name (an unknown name lists nothing).
    pub owner: Option<String>,
}

/// Changes to a recording; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordingUpdate {
    pub visibility: Option<Visibility>,
    /// 1–200 characters, no control characters.
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    /// The host's notes: up to 4000 characters, line breaks kept, no other control
    /// characters; empty clears them.
    #[schema(max_length = 4000)]
    pub description: Option<String>,
}

/// A speaker's new display name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpeakerUpdate {
    /// 1–100 characters, no control characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

/// A transcript line's corrected text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentUpdate {
    /// 1–5000 characters, no control characters. Word timings of the line are dropped.
    #[schema(min_length = 1, max_length = 5000)]
    pub text: String,
    /// The line's corrected English translation (0–5000 characters; empty removes it).
    #[schema(max_length = 5000)]
    pub translation: Option<String>,
}

/// `?format=` of a transcript.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TranscriptParams {
    /// `json`, `vtt`, `srt` or `txt`; wins over `Accept`.
    #[param(inline)]
    pub format: Option<TranscriptFormat>,
    /// `original` (the default: what was said) or `en`: each line's English translation
    /// where it has one (WebVTT then says `Language: en`). JSON always carries both, the
    /// translation as `translation: {lang, text}`.
    #[param(inline)]
    pub lang: Option<TranscriptLang>,
}

/// Which text a transcript export carries.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TranscriptLang {
    Original,
    En,
}

/// A transcript export format.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TranscriptFormat {
    Json,
    Vtt,
    Srt,
    Txt,
}

impl From<TranscriptFormat> for Format {
    fn from(f: TranscriptFormat) -> Self {
        match f {
            TranscriptFormat::Json => Format::Json,
            TranscriptFormat::Vtt => Format::Vtt,
            TranscriptFormat::Srt => Format::Srt,
            TranscriptFormat::Txt => Format::Txt,
        }
    }
}

/// A recording the caller may view, its tracks and the caller's rights; 404 otherwise — the
/// pages' gate ([`crate::replay::viewable`]), so the API and the pages cannot disagree.
pub async fn viewable(
    state: &AppState,
    id: RecordingId,
    session: Option<&Session>,
) -> Result<(Recording, Vec<Track>, Access), AppError> {
    let v = crate::replay::viewable(state, &id.to_string(), session).await?;
    Ok((v.recording, v.tracks, v.access))
}

/// A recording the caller manages (403 when they only view it, 404 when not even that), after
/// the CSRF check of cookie sessions.
async fn managed(
    state: &AppState,
    id: RecordingId,
    session: &Session,
    headers: &HeaderMap,
) -> Result<(Recording, Vec<Track>, Access), AppError> {
    let v = crate::replay::managing(state, &id.to_string(), session, auth::csrf_header(headers))
        .await?;
    Ok((v.recording, v.tracks, v.access))
}

/// Recordings the caller may list, newest first.
///
/// Anonymous callers see published public recordings; a signed-in user also those they own or
/// spoke in; an admin every recording. Unlisted recordings are reachable by id only.
#[utoipa::path(
    get,
    path = "/api/v1/recordings",
    tag = "recordings",
    params(ListParams),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "A page of recordings", body = RecordingPage),
        (status = 400, description = "A bad `cursor` or `limit`", body = ErrorBody),
        (status = 401, description = "An unknown or revoked API token", body = ErrorBody),
    )
)]
pub async fn list_recordings(
    State(state): State<AppState>,
    session: Option<Session>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<RecordingPage>, AppError> {
    let (limit, cursor) = page(q.cursor.as_deref(), q.limit)?;
    let viewer = match &session {
        Some(s) => ListViewer::User(&s.user),
        None => ListViewer::Anonymous,
    };
    let owner = match q.owner.as_deref() {
        None => None,
        Some(name) => match state.catalog.user_by_username(name).await {
            Ok(u) => Some(u.id),
            Err(e) if e.is_not_found() => {
                return Ok(Json(RecordingPage {
                    recordings: Vec::new(),
                    next_cursor: None,
                }));
            }
            Err(e) => return Err(e.into()),
        },
    };
    let (recs, next) = state
        .catalog
        .list_recordings(viewer, owner, cursor.as_ref(), limit)
        .await?;
    let mut recordings = Vec::with_capacity(recs.len());
    for recording in recs {
        let tracks = state.catalog.tracks(recording.id).await?;
        recordings.push(RecordingItem { recording, tracks });
    }
    Ok(Json(RecordingPage {
        recordings,
        next_cursor: next.map(|c| c.encode()),
    }))
}

/// One recording with its tracks and the caller's rights.
#[utoipa::path(
    get,
    path = "/api/v1/recordings/{id}",
    tag = "recordings",
    params(("id" = RecordingId, Path, description = "Recording id")),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The recording", body = RecordingDetail),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "An unknown or revoked API token", body = ErrorBody),
        (status = 404, description = "No such recording, or not one the caller may see", body = ErrorBody),
    )
)]
pub async fn get_recording(
    State(state): State<AppState>,
    session: Option<Session>,
    ApiPath(id): ApiPath<RecordingId>,
) -> Result<Json<RecordingDetail>, AppError> {
    let (recording, tracks, access) = viewable(&state, id, session.as_ref()).await?;
    Ok(Json(RecordingDetail {
        recording,
        tracks,
        access: access.into(),
    }))
}

/// Publishes, retitles or describes a recording (owner or admin).
#[utoipa::path(
    patch,
    path = "/api/v1/recordings/{id}",
    tag = "recordings",
    params(("id" = RecordingId, Path, description = "Recording id")),
    request_body = RecordingUpdate,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The changed recording", body = RecordingDetail),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The caller may see the recording but not change it", body = ErrorBody),
        (status = 404, description = "No such recording, or not one the caller may see", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
    )
)]
pub async fn update_recording(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    ApiPath(id): ApiPath<RecordingId>,
    ApiJson(change): ApiJson<RecordingUpdate>,
) -> Result<Json<RecordingDetail>, AppError> {
    managed(&state, id, &session, &headers).await?;
    crate::replay::change_details(
        &state,
        id,
        change.visibility,
        change.title.as_deref(),
        change.description.as_deref(),
    )
    .await?;
    let (recording, tracks, access) = viewable(&state, id, Some(&session)).await?;
    Ok(Json(RecordingDetail {
        recording,
        tracks,
        access: access.into(),
    }))
}

/// Deletes a recording, its archive, transcript and search hits (owner or admin).
#[utoipa::path(
    delete,
    path = "/api/v1/recordings/{id}",
    tag = "recordings",
    params(("id" = RecordingId, Path, description = "Recording id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The caller may see the recording but not delete it", body = ErrorBody),
        (status = 404, description = "No such recording, or not one the caller may see", body = ErrorBody),
        (status = 409, description = "The recording is still being recorded", body = ErrorBody),
    )
)]
pub async fn delete_recording(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    ApiPath(id): ApiPath<RecordingId>,
) -> Result<StatusCode, AppError> {
    let (rec, _, _) = managed(&state, id, &session, &headers).await?;
    crate::replay::delete(&state, &rec).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A recording's tracks, one per speaker.
#[utoipa::path(
    get,
    path = "/api/v1/recordings/{id}/tracks",
    tag = "recordings",
    params(("id" = RecordingId, Path, description = "Recording id")),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The tracks", body = TrackList),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "An unknown or revoked API token", body = ErrorBody),
        (status = 404, description = "No such recording, or not one the caller may see", body = ErrorBody),
    )
)]
pub async fn list_tracks(
    State(state): State<AppState>,
    session: Option<Session>,
    ApiPath(id): ApiPath<RecordingId>,
) -> Result<Json<TrackList>, AppError> {
    let (_, tracks, _) = viewable(&state, id, session.as_ref()).await?;
    Ok(Json(TrackList { tracks }))
}

/// One speaker's own track as Ogg/Opus, with byte ranges (owner, admin, or that speaker).
#[utoipa::path(
    get,
    path = "/api/v1/recordings/{id}/tracks/{track_id}/audio",
    tag = "recordings",
    params(
        ("id" = RecordingId, Path, description = "Recording id"),
        ("track_id" = TrackId, Path, description = "Track id"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`"),
    ),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The whole track", content_type = "audio/ogg", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "audio/ogg", body = Vec<u8>),
        (status = 304, description = "Unchanged since the `If-None-Match` validator"),
        (status = 400, description = "An id is not a UUID", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The caller may see the recording but not this track", body = ErrorBody),
        (status = 404, description = "No such recording or track, or not one the caller may see", body = ErrorBody),
        (status = 416, description = "The range lies outside the file", body = ErrorBody),
    )
)]
pub async fn track_audio(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    ApiPath((id, track_id)): ApiPath<(RecordingId, TrackId)>,
) -> Result<Response, AppError> {
    let (_, tracks, access) = viewable(&state, id, Some(&session)).await?;
    let track = tracks
        .iter()
        .find(|t| t.id == track_id)
        .ok_or_else(|| AppError::not_found(format!("no track {track_id} in recording {id}")))?;
    if !access.track(&track.speaker.id, Some(&session.user)) {
        return Err(AppError::forbidden(
            "only the recording's owner, an admin or the track's own speaker may download it",
        ));
    }
    let key = roomtape_core::layout::file_key(id, &track.file);
    crate::media::serve_file(
        &state,
        &key,
        &headers,
        "audio/ogg",
        crate::media::Cache::Private,
        None,
    )
    .await
}

/// The recording's mix, every speaker together, as Ogg/Opus with byte ranges (whoever may see
/// the recording; the same file as the replay page's `/r/{id}/mix.opus`).
#[utoipa::path(
    get,
    path = "/api/v1/recordings/{id}/mix",
    tag = "recordings",
    params(
        ("id" = RecordingId, Path, description = "Recording id"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`"),
    ),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The whole mix", content_type = "audio/ogg", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "audio/ogg", body = Vec<u8>),
        (status = 304, description = "Unchanged since the `If-None-Match` validator"),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 404, description = "No such recording, not one the caller may see, or its mix is not built yet", body = ErrorBody),
        (status = 416, description = "The range lies outside the file", body = ErrorBody),
    )
)]
pub async fn mix_audio(
    State(state): State<AppState>,
    session: Option<Session>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<RecordingId>,
) -> Result<Response, AppError> {
    let (recording, _, _) = viewable(&state, id, session.as_ref()).await?;
    crate::media::serve_file(
        &state,
        &roomtape_core::layout::file_key(id, roomtape_core::layout::MIX_FILE),
        &headers,
        "audio/ogg",
        crate::media::Cache::of(&recording),
        None,
    )
    .await
}

/// Picks the transcript format: `?format=` first, else the best `Accept` we can give.
fn transcript_format(
    query: Option<TranscriptFormat>,
    headers: &HeaderMap,
) -> Result<Format, AppError> {
    if let Some(f) = query {
        return Ok(f.into());
    }
    let accept = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    negotiate(&accept).ok_or_else(|| {
        AppError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "transcripts come as application/json, text/vtt, application/x-subrip or text/plain",
        )
    })
}

/// The format an `Accept` header prefers among ours (JSON when it is empty).
pub fn negotiate(accept: &str) -> Option<Format> {
    const OURS: [(&str, Format); 4] = [
        ("application/json", Format::Json),
        ("text/vtt", Format::Vtt),
        ("application/x-subrip", Format::Srt),
        ("text/plain", Format::Txt),
    ];
    if accept.trim().is_empty() {
        return Some(Format::Json);
    }
    // (q, order) of each media range; the highest q wins, the earlier one on a tie.
    let mut best: Option<(u16, usize, Format)> = None;
    for (order, range) in accept.split(',').enumerate() {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1000u16;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))
                    .map_or(0, |q| (q * 1000.0).round() as u16);
            }
        }
        if q == 0 {
            continue;
        }
        let Some((main, sub)) = media.split_once('/') else {
            continue;
        };
        let found = OURS.iter().find(|(ours, _)| {
            let (m, s) = ours.split_once('/').unwrap_or((ours, ""));
            (main == "*" && sub == "*") || (main == m && (sub == "*" || sub == s))
        });
        if let Some((_, f)) = found
            && best.is_none_or(|(bq, bo, _)| q > bq || (q == bq && order < bo))
        {
            best = Some((q, order, *f));
        }
    }
    best.map(|(_, _, f)| f)
}

/// A recording's transcript as JSON, WebVTT, SRT or text.
///
/// The format comes from `?format=` or else from `Accept`: `application/json` (the default),
/// `text/vtt`, `application/x-subrip` or `text/plain`.
#[utoipa::path(
    get,
    path = "/api/v1/recordings/{id}/transcript",
    tag = "recordings",
    params(
        ("id" = RecordingId, Path, description = "Recording id"),
        TranscriptParams,
    ),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The transcript", content(
            (Transcript = "application/json"),
            (String = "text/vtt"),
            (String = "application/x-subrip"),
            (String = "text/plain"),
        )),
        (status = 400, description = "A bad id or format", body = ErrorBody),
        (status = 401, description = "An unknown or revoked API token", body = ErrorBody),
        (status = 404, description = "No such recording (or not one the caller may see), or no transcript yet", body = ErrorBody),
        (status = 406, description = "`Accept` names no format we give", body = ErrorBody),
    )
)]
pub async fn get_transcript(
    State(state): State<AppState>,
    session: Option<Session>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<RecordingId>,
    ApiQuery(q): ApiQuery<TranscriptParams>,
) -> Result<Response, AppError> {
    viewable(&state, id, session.as_ref()).await?;
    let format = transcript_format(q.format, &headers)?;
    let t = state
        .catalog
        .transcript(id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("recording {id} has no transcript yet")))?;
    let lang = match q.lang {
        Some(TranscriptLang::En) => roomtape_core::export::Lang::English,
        _ => roomtape_core::export::Lang::Original,
    };
    let mut res = crate::replay::transcript_download(&t, format, lang, &id.to_string());
    res.headers_mut().insert(
        VARY,
        axum::http::HeaderValue::from_static("Accept, Authorization, Cookie"),
    );
    Ok(res)
}

/// Renames a speaker in a recording: their tracks and every line they said (owner or admin).
#[utoipa::path(
    patch,
    path = "/api/v1/recordings/{id}/speakers/{speaker_id}",
    tag = "recordings",
    params(
        ("id" = RecordingId, Path, description = "Recording id"),
        ("speaker_id" = SpeakerId, Path, description = "Speaker id"),
    ),
    request_body = SpeakerUpdate,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The recording's tracks with the new name", body = TrackList),
        (status = 400, description = "A bad id or name", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The caller may see the recording but not change it", body = ErrorBody),
        (status = 404, description = "No such recording or speaker in it, or not one the caller may see", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
    )
)]
pub async fn rename_speaker(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    ApiPath((id, speaker)): ApiPath<(RecordingId, SpeakerId)>,
    ApiJson(change): ApiJson<SpeakerUpdate>,
) -> Result<Json<TrackList>, AppError> {
    managed(&state, id, &session, &headers).await?;
    state
        .catalog
        .rename_speaker(id, speaker, &change.name)
        .await?;
    Ok(Json(TrackList {
        tracks: state.catalog.tracks(id).await?,
    }))
}

/// Corrects the text of transcript line `index` (0-based); search is updated (owner or admin).
#[utoipa::path(
    patch,
    path = "/api/v1/recordings/{id}/transcript/segments/{index}",
    tag = "recordings",
    params(
        ("id" = RecordingId, Path, description = "Recording id"),
        ("index" = i64, Path, minimum = 0, description = "The line's position in the transcript, from 0"),
    ),
    request_body = SegmentUpdate,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The corrected transcript", body = Transcript),
        (status = 400, description = "A bad id, index or text", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "The caller may see the recording but not change it", body = ErrorBody),
        (status = 404, description = "No such recording or line, or not one the caller may see", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
    )
)]
pub async fn correct_segment(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    ApiPath((id, index)): ApiPath<(RecordingId, i64)>,
    ApiJson(change): ApiJson<SegmentUpdate>,
) -> Result<Json<Transcript>, AppError> {
    managed(&state, id, &session, &headers).await?;
    crate::replay::correct(
        &state,
        id,
        index,
        &change.text,
        change.translation.as_deref(),
    )
    .await?;
    let t = state
        .catalog
        .transcript(id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("recording {id} has no transcript")))?;
    Ok(Json(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_pick_the_best_format_we_have() {
        assert_eq!(negotiate(""), Some(Format::Json));
        assert_eq!(negotiate("*/*"), Some(Format::Json));
        assert_eq!(negotiate("text/vtt"), Some(Format::Vtt));
        assert_eq!(negotiate("application/x-subrip"), Some(Format::Srt));
        assert_eq!(negotiate("text/plain; charset=utf-8"), Some(Format::Txt));
        assert_eq!(
            negotiate("text/plain;q=0.5, text/vtt;q=0.9"),
            Some(Format::Vtt)
        );
        assert_eq!(negotiate("text/*"), Some(Format::Vtt));
        assert_eq!(negotiate("image/png, text/vtt;q=0"), None);
        assert_eq!(negotiate("image/png"), None);
        assert_eq!(negotiate("garbage"), None);
    }
}
