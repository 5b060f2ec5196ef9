//! `GET /rooms/<id>/ws`: a participant's signaling connection.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::SinkExt as _;
use tokio::sync::mpsc;

use super::hub::{HubMsg, role_of};
use super::limits::{Kind, Limiter, Verdict};
use super::outbox::Outbox;
use super::protocol::{self, MAX_MESSAGE, ServerMsg};
use crate::auth::{self, Session};
use crate::rooms::{Entry, EntryQuery, entry, find_room, parse_room_id};
use crate::{AppError, AppState};

pub async fn handler(
    State(state): State<AppState>,
    session: Option<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<EntryQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, AppError> {
    // A WebSocket carries cookies from any site: only our own pages may open one.
    if !auth::same_origin(&headers, &state.config.server.public_url) {
        return Err(AppError::forbidden("cross-site WebSocket refused"));
    }
    let room = find_room(&state, parse_room_id(&id)?).await?;
    let (user, e, guest) = match &session {
        Some(session) => {
            let e = entry(
                &state,
                &room,
                session,
                q.invite.as_deref(),
                q.speak.as_deref(),
            )
            .await?;
            (session.user.clone(), e, false)
        }
        None => {
            crate::rooms::guest_entry(&state, &room)?;
            (crate::rooms::guest_user(), Entry::Listener, true)
        }
    };
    // Judged after entry, so outsiders of a private room learn nothing from it.
    if state.live.is_ending(room.id) {
        return Err(AppError::new(
            StatusCode::GONE,
            "ended",
            "this room has ended",
        ));
    }
    let live = state.live.clone();
    Ok(upgrade
        // Each read zero-fills up to this much (tungstenite's default is 128 KiB): in a room of
        // thousands that was most of the CPU a change cost. Messages are small; bigger ones
        // take more reads.
        .read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_MESSAGE * 2)
        .max_frame_size(MAX_MESSAGE * 2)
        .on_upgrade(move |socket| async move {
            // The room may have ended while the upgrade was answered: no new room task for it.
            if live.is_ending(room.id) {
                return;
            }
            let hub = live.hub(&room);
            let conn = live.next_conn();
            let out = Arc::new(Outbox::default());
            if hub
                .tx
                .send(HubMsg::Join {
                    conn,
                    user,
                    guest,
                    role: role_of(e),
                    out: out.clone(),
                })
                .is_err()
            {
                return;
            }
            run(socket, conn, hub.tx, &out).await;
        }))
}

/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 4096;

/// Sends the room's news to the client as it comes (coalesced while the client is slow) and
/// hands the client's messages to the room, within this connection's limits.
async fn run(
    mut socket: WebSocket,
    conn: super::ConnId,
    hub: mpsc::UnboundedSender<HubMsg>,
    out: &Outbox,
) {
    let mut limits = Limiter::new(Instant::now());
    loop {
        tokio::select! {
            batch = out.next() => {
                let Some(batch) = batch else { break };
                if send_all(&mut socket, &batch).await.is_err() {
                    break;
                }
            }
            m = socket.recv() => {
                let reply = match m {
                    Some(Ok(Message::Text(t))) => {
                        let parsed = protocol::parse(t.as_str());
                        let kind = parsed.as_ref().map_or(Kind::Invalid, Kind::of);
                        match limits.check(kind, Instant::now()) {
                            Verdict::Pass => match parsed {
                                Ok(msg) => {
                                    if hub.send(HubMsg::Client { conn, msg }).is_err() {
                                        break;
                                    }
                                    None
                                }
                                Err(e) => Some(e),
                            },
                            Verdict::Drop { tell } => tell.then(slow_down),
                            Verdict::Close => {
                                tracing::info!(conn, "closing a connection that kept sending too fast");
                                let _ = send_all(&mut socket, &[ServerMsg::error(
                                    "rate_limited",
                                    "too many messages; this connection is closed",
                                )]).await;
                                let _ = socket
                                    .send(Message::Close(Some(CloseFrame {
                                        code: close_code::POLICY,
                                        reason: "too many messages".into(),
                                    })))
                                    .await;
                                break;
                            }
                        }
                    }
                    Some(Ok(Message::Binary(_))) => match limits.check(Kind::Invalid, Instant::now()) {
                        Verdict::Pass => {
                            Some(ServerMsg::error("bad_message", "messages are JSON text"))
                        }
                        Verdict::Drop { tell } => tell.then(slow_down),
                        Verdict::Close => break,
                    },
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        // Oversized frames and protocol violations end here.
                        tracing::debug!(conn, "WebSocket error: {e}");
                        break;
                    }
                };
                if let Some(r) = reply
                    && send_all(&mut socket, &[r]).await.is_err()
                {
                    break;
                }
            }
        }
    }
    let _ = hub.send(HubMsg::Leave { conn });
    let _ = socket.send(Message::Close(None)).await;
}

fn slow_down() -> ServerMsg {
    ServerMsg::error(
        "slow_down",
        "you are sending too fast; some messages were dropped",
    )
}

/// Writes messages and flushes once.
async fn send_all(socket: &mut WebSocket, msgs: &[ServerMsg]) -> Result<(), axum::Error> {
    for m in msgs {
        let Ok(text) = serde_json::to_string(m) else {
            continue;
        };
        socket.feed(Message::Text(text.into())).await?;
    }
    socket.flush().await
}
