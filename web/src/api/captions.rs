//! `GET /api/v1/rooms/{id}/captions`: a live room's captions as Server-Sent Events.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use tokio::sync::broadcast::error::RecvError;

use roomtape_core::RoomId;

use crate::api::{ApiPath, ApiQuery};
use crate::auth::Session;
use crate::live::captions::{CaptionEvent, FeedMsg, Follower};
use crate::live::protocol::RoomCaptions;
use crate::rooms::{RoomQuery, entry, find_room, guest_entry};
use crate::{AppError, AppState};

/// Whether the room offers captions now (the data of a `state` event).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CaptionState {
    /// `on` or `off` (its host turned them off; they may come back).
    #[schema(value_type = String, example = "on")]
    pub captions: RoomCaptions,
}

/// How many captions a slow consumer missed (the data of a `lagged` event).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Lagged {
    pub missed: u64,
}

/// A live room's captions, as they are made, as Server-Sent Events (`text/event-stream`):
///
/// - `state` first, and whenever the host turns captions on or off: [`CaptionState`];
/// - `caption`: a [`CaptionEvent`] — a speaker's `partial` (replaces their previous partial),
///   `final` (never changes), or `paused` / `resumed` when the server cannot keep up;
/// - `lagged`: the consumer read too slowly and missed some captions;
/// - `ended`: the room ended; the stream closes.
///
/// A comment is sent every 15 s to keep the connection open. The same people may follow the
/// captions as may enter the room (guests too, where the server lets guests listen). Captions
/// are made only while someone follows them, in the room or here.
#[utoipa::path(
    get,
    path = "/api/v1/rooms/{id}/captions",
    tag = "rooms",
    params(("id" = RoomId, Path, description = "Room id"), RoomQuery),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The event stream; `caption` events carry a CaptionEvent", content_type = "text/event-stream", body = CaptionEvent),
        (status = 400, description = "The id is not a UUID", body = crate::ErrorBody),
        (status = 401, description = "Sign in to follow this room (the server lets no guests in)", body = crate::ErrorBody),
        (status = 403, description = "The host removed the caller from this room", body = crate::ErrorBody),
        (status = 404, description = "No such room, or a private one the caller may not enter", body = crate::ErrorBody),
        (status = 409, description = "This server makes no live captions", body = crate::ErrorBody),
        (status = 410, description = "The room has ended", body = crate::ErrorBody),
    )
)]
pub async fn room_captions(
    State(state): State<AppState>,
    session: Option<Session>,
    ApiPath(id): ApiPath<RoomId>,
    ApiQuery(q): ApiQuery<RoomQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let room = find_room(&state, id).await?;
    match &session {
        // No speaker invite is used up by reading captions.
        Some(s) => {
            entry(&state, &room, s, q.invite.as_deref(), None).await?;
        }
        None => guest_entry(&state, &room)?,
    }
    if state.live.is_ending(room.id) {
        return Err(AppError::new(
            StatusCode::GONE,
            "ended",
            "this room has ended",
        ));
    }
    if !state.live.captions_available() {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            "captions_unavailable",
            "this server makes no live captions",
        ));
    }
    let offered = if room.captions {
        RoomCaptions::On
    } else {
        RoomCaptions::Off
    };
    let follower = state.live.follow_captions(room.id);
    let first = state_event(offered);
    let stream = futures_util::stream::unfold(
        (Some(first), Some(follower)),
        |(first, follower)| async move {
            if let Some(e) = first {
                return Some((Ok(e), (None, follower)));
            }
            let mut f: Follower = follower?;
            let e = match f.rx.recv().await {
                Ok(FeedMsg::Caption(c)) => json_event("caption", &*c),
                Ok(FeedMsg::Offered(c)) => state_event(c),
                Ok(FeedMsg::Ended) | Err(RecvError::Closed) => {
                    return Some((Ok(Event::default().event("ended").data("{}")), (None, None)));
                }
                Err(RecvError::Lagged(missed)) => json_event("lagged", &Lagged { missed }),
            };
            Some((Ok(e), (None, Some(f))))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn state_event(captions: RoomCaptions) -> Event {
    json_event("state", &CaptionState { captions })
}

fn json_event(name: &str, data: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name).data("{}"))
}
