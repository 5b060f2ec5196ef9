//! `GET /rooms/<id>/ws`: a participant's signaling connection.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use tokio::sync::mpsc;

use super::hub::{HubMsg, role_of};
use super::protocol::{self, MAX_MESSAGE, ServerMsg};
use crate::auth::{self, Session};
use crate::rooms::{EntryQuery, entry, find_room, parse_room_id};
use crate::{AppError, AppState};

pub async fn handler(
    State(state): State<AppState>,
    session: Session,
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
    let e = entry(
        &state,
        &room,
        &session,
        q.invite.as_deref(),
        q.speak.as_deref(),
    )
    .await?;
    let live = state.live.clone();
    Ok(upgrade
        .max_message_size(MAX_MESSAGE * 2)
        .max_frame_size(MAX_MESSAGE * 2)
        .on_upgrade(move |socket| async move {
            let hub = live.hub(&room);
            let conn = live.next_conn();
            let (out_tx, out_rx) = mpsc::channel(256);
            if hub
                .tx
                .send(HubMsg::Join {
                    conn,
                    user: session.user,
                    role: role_of(e),
                    out: out_tx,
                })
                .is_err()
            {
                return;
            }
            run(socket, conn, hub.tx, out_rx).await;
        }))
}

async fn run(
    mut socket: WebSocket,
    conn: super::ConnId,
    hub: mpsc::UnboundedSender<HubMsg>,
    mut out: mpsc::Receiver<ServerMsg>,
) {
    loop {
        tokio::select! {
            m = out.recv() => {
                let Some(m) = m else { break };
                let last = matches!(m, ServerMsg::Removed | ServerMsg::Ended)
                    || matches!(&m, ServerMsg::Error { code, .. } if code == "replaced");
                let Ok(text) = serde_json::to_string(&m) else { continue };
                if socket.send(Message::Text(text.into())).await.is_err() || last {
                    break;
                }
            }
            m = socket.recv() => {
                let reply = match m {
                    Some(Ok(Message::Text(t))) => match protocol::parse(t.as_str()) {
                        Ok(msg) => {
                            if hub.send(HubMsg::Client { conn, msg }).is_err() {
                                break;
                            }
                            None
                        }
                        Err(e) => Some(e),
                    },
                    Some(Ok(Message::Binary(_))) => {
                        Some(ServerMsg::error("bad_message", "messages are JSON text"))
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        // Oversized frames and protocol violations end here.
                        tracing::debug!(conn, "WebSocket error: {e}");
                        break;
                    }
                };
                if let Some(r) = reply
                    && let Ok(text) = serde_json::to_string(&r)
                    && socket.send(Message::Text(text.into())).await.is_err()
                {
                    break;
                }
            }
        }
    }
    let _ = hub.send(HubMsg::Leave { conn });
    let _ = socket.send(Message::Close(None)).await;
}
