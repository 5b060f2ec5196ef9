//! Rooms: the lobby, creating a room, who may enter, invite links.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use maud::{Markup, html};
use serde::Deserialize;

use roomtape_core::{
    Room, RoomId, RoomState, StoredRole, Timestamp, User, UserId, Visibility, clean_text,
};

use crate::account::{login_redirect, login_target};
use crate::api::{ApiJson, ApiPath, ApiQuery};
use crate::auth::{self, Session, WriteSession};
use crate::pages::{PageError, form_page, json_island, layout};
use crate::{AppError, AppState};

/// What someone may do in a room before anything happens live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    Host,
    Cohost,
    /// On stage: a lasting speaker role, or a speaker invite just used.
    Speaker,
    Listener,
}

/// Room fields from a form or JSON.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewRoom {
    /// 1–120 characters.
    #[schema(min_length = 1, max_length = 120)]
    title: String,
    /// Up to 2000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: String,
    /// `auto` (the default) or a Whisper language code such as `en`.
    #[serde(default)]
    language: String,
    /// `YYYY-MM-DDTHH:MM` (UTC) or RFC 3339; empty: starts now.
    #[serde(default)]
    scheduled_at: String,
    /// `public` (the default), `unlisted` or `private`.
    #[serde(default)]
    #[schema(value_type = Visibility)]
    visibility: String,
    /// Offer live captions in the room (default `true`; its host may change it live).
    #[serde(default = "yes")]
    captions: bool,
    #[serde(default)]
    #[schema(ignore)]
    _csrf: String,
}

fn yes() -> bool {
    true
}

fn parse_time(s: &str) -> Result<Option<Timestamp>, AppError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    use time::format_description::well_known::Rfc3339;
    let with_zone = if s.len() == 16 {
        format!("{s}:00Z")
    } else {
        s.to_string()
    };
    let t = time::OffsetDateTime::parse(&with_zone, &Rfc3339).map_err(|_| {
        AppError::bad_request(
            "invalid",
            "scheduled_at must be a date and time like 2026-12-01T18:30 (UTC)",
        )
    })?;
    Ok(Some(Timestamp(
        (t.unix_timestamp_nanos() / 1_000_000) as i64,
    )))
}

impl NewRoom {
    fn into_room(self, host: &Session) -> Result<Room, AppError> {
        let title = clean_text("title", &self.title, 120, false)?;
        let description = clean_text("description", &self.description, 2000, true)?;
        let language = roomtape_core::spoken_language(&self.language)?;
        let visibility: Visibility = match self.visibility.trim() {
            "" => Visibility::Public,
            v => v.parse()?,
        };
        Ok(Room {
            id: RoomId::new(),
            title,
            description,
            language,
            scheduled_at: parse_time(&self.scheduled_at)?,
            visibility,
            host_id: Some(host.user.id),
            state: RoomState::Open,
            invite_token: (visibility == Visibility::Private).then(auth::secret),
            captions: self.captions,
            created_at: Timestamp::now(),
            ended_at: None,
        })
    }
}

/// The answer for a room that does not exist, and for a private room to anyone who may not
/// enter it: the same status and body, so a private room's existence is not given away.
pub fn no_such_room() -> AppError {
    AppError::not_found("no such room")
}

/// A room by id, or [`no_such_room`].
pub(crate) async fn find_room(state: &AppState, id: RoomId) -> Result<Room, AppError> {
    match state.catalog.room(id).await {
        Ok(r) => Ok(r),
        Err(e) if e.is_not_found() => Err(no_such_room()),
        Err(e) => Err(e.into()),
    }
}

/// Decides whether `user` may enter `room`, and as what. Whoever may not enter a private room
/// gets [`no_such_room`], whatever the reason (no invite, removed, ended), so only those who
/// may know of it learn why they are refused.
pub async fn entry(
    state: &AppState,
    room: &Room,
    session: &Session,
    invite: Option<&str>,
    speak: Option<&str>,
) -> Result<Entry, AppError> {
    let user = session.user.id;
    if room.host_id == Some(user) {
        return Ok(Entry::Host);
    }
    let private = room.visibility == Visibility::Private;
    let refuse = |e: AppError| if private { no_such_room() } else { e };
    if room.state == RoomState::Ended {
        // Those who could enter before it ended learn that it has.
        let knew = !private
            || session.user.is_admin
            || invited(room, invite)
            || matches!(
                state.catalog.room_role(room.id, user).await?,
                Some(StoredRole::Cohost | StoredRole::Speaker)
            );
        let ended = AppError::new(StatusCode::GONE, "ended", "this room has ended");
        return Err(if knew { ended } else { no_such_room() });
    }
    let stored = state.catalog.room_role(room.id, user).await?;
    if stored == Some(StoredRole::Removed) {
        return Err(refuse(AppError::forbidden(
            "the host removed you from this room",
        )));
    }
    if let Some(t) = speak
        && stored != Some(StoredRole::Cohost)
        && state.catalog.use_speaker_invite(room.id, t, user).await?
    {
        state
            .catalog
            .set_room_role(room.id, user, Some(StoredRole::Speaker))
            .await?;
        return Ok(Entry::Speaker);
    }
    let by_role = match stored {
        Some(StoredRole::Cohost) => Some(Entry::Cohost),
        Some(StoredRole::Speaker) => Some(Entry::Speaker),
        _ => None,
    };
    if let Some(e) = by_role {
        return Ok(e);
    }
    if session.user.is_admin {
        return Ok(Entry::Listener);
    }
    if private && !invited(room, invite) {
        return Err(no_such_room());
    }
    Ok(Entry::Listener)
}

/// Whether someone without an account may listen to `room`: a live public or unlisted room,
/// where the server lets guests in. A private room is [`no_such_room`] to them.
pub fn guest_entry(state: &AppState, room: &Room) -> Result<(), AppError> {
    if room.visibility == Visibility::Private {
        return Err(no_such_room());
    }
    if !state.config.server.guest_listeners {
        return Err(AppError::unauthorized("sign in to join this room"));
    }
    if room.state == RoomState::Ended {
        return Err(AppError::new(
            StatusCode::GONE,
            "ended",
            "this room has ended",
        ));
    }
    Ok(())
}

/// Someone listening without an account, for this connection only: a fresh id each time
/// (never stored), and a name with a number to tell guests apart.
pub fn guest_user() -> User {
    let id = UserId::new();
    let n = id.as_uuid().as_u128() % 9000 + 1000;
    User {
        id,
        username: String::new(),
        display_name: format!("Guest {n}"),
        is_admin: false,
        created_at: roomtape_core::Timestamp::now(),
    }
}

/// Whether refusing with `e` must stand: it hides a private room (or is the server's fault).
fn hides(e: &AppError) -> bool {
    e.status() == StatusCode::NOT_FOUND || e.status().is_server_error()
}

/// The refusal for someone managing a room they do not host: 403, or [`no_such_room`] when it
/// is private and they may not enter it.
async fn not_host(state: &AppState, room: &Room, session: &Session) -> AppError {
    match entry(state, room, session, None, None).await {
        Err(e) if hides(&e) => e,
        _ => AppError::forbidden("only the host manages the invite link"),
    }
}

/// Whether `invite` is the room's current invite token.
fn invited(room: &Room, invite: Option<&str>) -> bool {
    matches!((invite, &room.invite_token), (Some(a), Some(b)) if auth::same_secret(a, b))
}

/// How long an open room nobody is in stays in the lobby after it was created…
const EMPTY_NEW_ROOM_MS: i64 = 10 * 60_000;
/// …or after its scheduled time, waiting for its host.
const EMPTY_LATE_ROOM_MS: i64 = 30 * 60_000;

/// Where the lobby lists a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LobbySlot {
    /// Someone is in it now (how many).
    Live(usize),
    /// Nobody is in it yet, and it is about to start: just created, or its time just came.
    Starting,
    /// Scheduled for later.
    Upcoming,
    /// Nobody has been in it since well after its start: abandoned without being ended. It
    /// stays open by its link (and is live again when someone enters), but is not listed.
    Unlisted,
}

/// The lobby's rule: a room is live while someone is in it, and only then.
pub fn lobby_slot(room: &Room, here: usize, now: Timestamp) -> LobbySlot {
    if here > 0 {
        return LobbySlot::Live(here);
    }
    match room.scheduled_at {
        Some(t) if t > now => LobbySlot::Upcoming,
        Some(t) if now.0 - t.0.max(room.created_at.0) < EMPTY_LATE_ROOM_MS => LobbySlot::Starting,
        None if now.0 - room.created_at.0 < EMPTY_NEW_ROOM_MS => LobbySlot::Starting,
        _ => LobbySlot::Unlisted,
    }
}

/// `/`: the rooms with people in them now, and the ones about to start or scheduled.
/// `static/lobby.js` fetches the page again every 15 s and swaps in `#lobby`.
pub async fn lobby(
    State(state): State<AppState>,
    session: Option<Session>,
) -> Result<Markup, PageError> {
    let rooms = state.catalog.lobby_rooms().await?;
    let now = Timestamp::now();
    let mut live: Vec<(&Room, usize)> = Vec::new();
    let mut upcoming: Vec<(&Room, LobbySlot)> = Vec::new();
    for r in &rooms {
        match lobby_slot(r, state.live.count(r.id), now) {
            LobbySlot::Live(n) => live.push((r, n)),
            LobbySlot::Unlisted => {}
            slot => upcoming.push((r, slot)),
        }
    }
    // The fullest rooms first; those about to start before the scheduled ones.
    live.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    upcoming.sort_by_key(|(_, slot)| *slot != LobbySlot::Starting);
    Ok(layout(
        "Rooms",
        session.as_ref(),
        html! {
            div #lobby data-refresh-seconds="15" {
                section.card {
                    h1 { "Live now" }
                    @if live.is_empty() { p.muted { "Nobody is talking right now." } }
                    ul.rooms #live-rooms {
                        @for (r, n) in &live {
                            li data-room=(r.id) {
                                a href={ "/rooms/" (r.id) } { (r.title) } " "
                                span.muted.here { (n) " here" }
                            }
                        }
                    }
                }
                section.card {
                    h1 { "Upcoming" }
                    @if upcoming.is_empty() { p.muted { "Nothing scheduled." } }
                    ul.rooms #upcoming-rooms {
                        @for (r, slot) in &upcoming {
                            li data-room=(r.id) {
                                a href={ "/rooms/" (r.id) } { (r.title) } " "
                                span.muted {
                                    @match (slot, r.scheduled_at) {
                                        (LobbySlot::Upcoming, Some(t)) => {
                                            (crate::pages::moment_tag(t)) " · "
                                            a href={ "/rooms/" (r.id) "/calendar.ics" } download="room.ics"
                                                aria-label={ "Add " (r.title) " to your calendar" } { "Add to calendar" }
                                        },
                                        _ => "Starting — nobody here yet",
                                    }
                                }
                            }
                        }
                    }
                }
            }
            script src="/static/lobby.js" defer {}
        },
    ))
}

fn room_form(session: &Session) -> Markup {
    html! {
        form method="post" action="/rooms" {
            input type="hidden" name="_csrf" value=(session.csrf);
            label { "Title" input name="title" required maxlength="120"; }
            label { "Description" textarea name="description" maxlength="2000" {} }
            label { "Language"
                select name="language" {
                    @for l in roomtape_core::LANGUAGES { option value=(l) { (l) } }
                }
            }
            label { "Starts (UTC, empty for now)" input name="scheduled_at" type="datetime-local"; }
            fieldset {
                legend { "Who can find it" }
                label.row { input type="radio" name="visibility" value="public" checked; " Public — listed in the lobby" }
                label.row { input type="radio" name="visibility" value="unlisted"; " Unlisted — anyone with the link" }
                label.row { input type="radio" name="visibility" value="private"; " Private — invite link only" }
            }
            label { "Live captions"
                select name="captions" {
                    option value="true" selected { "Offered to everyone in the room" }
                    option value="false" { "Off" }
                }
            }
            button type="submit" { "Create room" }
        }
    }
}

pub async fn new_room_page(session: Option<Session>) -> Response {
    match session {
        Some(s) => form_page("New room", Some(&s), None, room_form(&s)).into_response(),
        None => login_redirect("/rooms/new"),
    }
}

pub async fn create_room_form(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<NewRoom>,
) -> Result<Response, PageError> {
    session.check_csrf(Some(&f._csrf))?;
    let room = f.into_room(&session)?;
    state.catalog.create_room(&room).await?;
    Ok(Redirect::to(&format!("/rooms/{}", room.id)).into_response())
}

/// A room as the API shows it: the room, whether people are in it now, and (for its host) the
/// private invite link.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RoomView {
    #[serde(flatten)]
    pub room: Room,
    /// People are in the room now.
    pub live: bool,
    /// How many people are in it now.
    pub participants: usize,
    /// The private invite link, shown to the host only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invite_link: Option<String>,
}

impl RoomView {
    fn of(state: &AppState, room: Room, viewer: Option<&Session>) -> RoomView {
        let invite_link = room
            .invite_token
            .as_ref()
            .filter(|_| viewer.is_some_and(|s| room.host_id == Some(s.user.id)))
            .map(|t| format!("/rooms/{}?invite={t}", room.id));
        RoomView {
            live: state.live.is_live(room.id),
            participants: state.live.count(room.id),
            invite_link,
            room,
        }
    }
}

/// A page of the lobby, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RoomPage {
    pub rooms: Vec<RoomView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// A link made for someone.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Link {
    /// A path on this server, e.g. `/rooms/<id>?invite=…`.
    pub link: String,
}

/// Creates a room hosted by the caller.
#[utoipa::path(
    post,
    path = "/api/v1/rooms",
    tag = "rooms",
    request_body = NewRoom,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "The room (a private one with its `invite_link`)", body = RoomView),
        (status = 400, description = "A bad field or body", body = crate::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::ErrorBody),
        (status = 403, description = "A cookie request without its CSRF token", body = crate::ErrorBody),
        (status = 415, description = "The body is not JSON", body = crate::ErrorBody),
    )
)]
pub async fn api_create_room(
    State(state): State<AppState>,
    WriteSession(session): WriteSession,
    ApiJson(f): ApiJson<NewRoom>,
) -> Result<(StatusCode, Json<RoomView>), AppError> {
    let room = f.into_room(&session)?;
    state.catalog.create_room(&room).await?;
    Ok((
        StatusCode::CREATED,
        Json(RoomView::of(&state, room, Some(&session))),
    ))
}

/// The lobby: open public rooms, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/rooms",
    tag = "rooms",
    params(crate::api::PageParams),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "A page of rooms", body = RoomPage),
        (status = 400, description = "A bad `cursor` or `limit`", body = crate::ErrorBody),
        (status = 401, description = "An unknown or revoked API token", body = crate::ErrorBody),
    )
)]
pub async fn api_list_rooms(
    State(state): State<AppState>,
    session: Option<Session>,
    ApiQuery(q): ApiQuery<crate::api::PageParams>,
) -> Result<Json<RoomPage>, AppError> {
    let (limit, cursor) = q.resolve()?;
    let (rooms, next) = state.catalog.list_rooms(cursor.as_ref(), limit).await?;
    Ok(Json(RoomPage {
        rooms: rooms
            .into_iter()
            .map(|r| RoomView::of(&state, r, session.as_ref()))
            .collect(),
        next_cursor: next.map(|c| c.encode()),
    }))
}

/// `?invite=` of `GET /api/v1/rooms/{id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomQuery {
    /// The token of a private room's invite link.
    pub invite: Option<String>,
}

/// One room. A private room is shown to its host, co-hosts, speakers, admins and holders of its
/// invite link; to everyone else it does not exist.
#[utoipa::path(
    get,
    path = "/api/v1/rooms/{id}",
    tag = "rooms",
    params(("id" = RoomId, Path, description = "Room id"), RoomQuery),
    security((), ("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The room", body = RoomView),
        (status = 400, description = "The id is not a UUID", body = crate::ErrorBody),
        (status = 401, description = "An unknown or revoked API token", body = crate::ErrorBody),
        (status = 404, description = "No such room, or a private one the caller may not see", body = crate::ErrorBody),
    )
)]
pub async fn api_get_room(
    State(state): State<AppState>,
    session: Option<Session>,
    ApiPath(id): ApiPath<RoomId>,
    ApiQuery(q): ApiQuery<RoomQuery>,
) -> Result<Json<RoomView>, AppError> {
    let room = find_room(&state, id).await?;
    if room.visibility == Visibility::Private {
        let by_link = invited(&room, q.invite.as_deref());
        let by_person = match &session {
            Some(s) if s.user.is_admin || room.host_id == Some(s.user.id) => true,
            Some(s) => matches!(
                state.catalog.room_role(room.id, s.user.id).await?,
                Some(StoredRole::Cohost | StoredRole::Speaker)
            ),
            None => false,
        };
        if !by_link && !by_person {
            return Err(no_such_room());
        }
    }
    Ok(Json(RoomView::of(&state, room, session.as_ref())))
}

#[derive(Debug, Deserialize)]
pub struct EntryQuery {
    pub invite: Option<String>,
    pub speak: Option<String>,
}

pub(crate) fn parse_room_id(s: &str) -> Result<RoomId, AppError> {
    s.parse().map_err(|_| no_such_room())
}

pub async fn room_page(
    State(state): State<AppState>,
    session: Option<Session>,
    accepted: Option<axum::Extension<crate::host::RequestHost>>,
    Path(id): Path<String>,
    Query(q): Query<EntryQuery>,
) -> Result<Response, PageError> {
    let id = parse_room_id(&id)?;
    let site = crate::feed::base_url(&state, accepted.as_deref());
    // The room's URL becomes its replay when it ends (for whoever may hear the replay).
    if let Ok(room) = state.catalog.room(id).await
        && room.state == RoomState::Ended
        && let Some(rec) = replay_of(&state, &room, session.as_ref()).await?
    {
        return Ok(no_store(Redirect::to(&format!("/r/{rec}")).into_response()));
    }
    let Some(session) = session else {
        // A live public or unlisted room can be heard without an account.
        if let Ok(room) = state.catalog.room(id).await {
            match guest_entry(&state, &room) {
                Ok(()) => return Ok(live_page(&room, None, Entry::Listener, &q, &site)),
                Err(e) if e.status() == StatusCode::GONE => {
                    return Ok(ended_page(&room, None));
                }
                Err(_) => {}
            }
        }
        // Whether a private room exists, or has ended, is not said before log-in: such a link
        // sends a stranger to the log-in page and back.
        let mut back = format!("/rooms/{id}");
        if let Some(i) = &q.invite {
            back.push_str(&format!("?invite={}", crate::account::urlencode(i)));
        }
        if let Some(s) = &q.speak {
            back.push_str(if back.contains('?') { "&" } else { "?" });
            back.push_str(&format!("speak={}", crate::account::urlencode(s)));
        }
        return Ok(login_redirect(&back));
    };
    let room = find_room(&state, id).await?;
    let e = match entry(
        &state,
        &room,
        &session,
        q.invite.as_deref(),
        q.speak.as_deref(),
    )
    .await
    {
        Ok(e) => e,
        Err(e) if e.status() == StatusCode::GONE => {
            return Ok(ended_page(&room, Some(&session)));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(live_page(&room, Some(&session), e, &q, &site))
}

/// The link a scheduled room is announced with: a private room's carries its invite for
/// whoever holds it (its host, or someone who came by the invite link).
fn room_link(site: &str, room: &Room, invite: Option<&str>, is_host: bool) -> String {
    format!(
        "{site}/rooms/{}{}",
        room.id,
        invite_query(room, invite, is_host)
    )
}

/// `?invite=…` for a private room's links, for whoever holds the invite; else nothing.
fn invite_query(room: &Room, invite: Option<&str>, is_host: bool) -> String {
    match &room.invite_token {
        Some(t) if room.visibility == Visibility::Private && (is_host || invited(room, invite)) => {
            format!("?invite={}", crate::account::urlencode(t))
        }
        _ => String::new(),
    }
}

fn event<'a>(room: &'a Room, start: Timestamp, url: &'a str) -> crate::calendar::Event<'a> {
    crate::calendar::Event {
        uid: format!("room-{}@roomtape", room.id),
        title: &room.title,
        description: &room.description,
        url,
        start,
        created: room.created_at,
    }
}

/// `/rooms/<id>/calendar.ics`: a scheduled room as a calendar event with a reminder. Whoever
/// may open the room's link may have it (a private room's needs its invite).
pub async fn calendar(
    State(state): State<AppState>,
    session: Option<Session>,
    accepted: Option<axum::Extension<crate::host::RequestHost>>,
    Path(id): Path<String>,
    Query(q): Query<EntryQuery>,
) -> Result<Response, AppError> {
    let room = find_room(&state, parse_room_id(&id)?).await?;
    let is_host = session
        .as_ref()
        .is_some_and(|s| room.host_id == Some(s.user.id) || s.user.is_admin);
    if room.visibility == Visibility::Private && !is_host && !invited(&room, q.invite.as_deref()) {
        return Err(no_such_room());
    }
    if room.state == RoomState::Ended {
        return Err(AppError::new(
            StatusCode::GONE,
            "gone",
            "this room has ended",
        ));
    }
    let Some(start) = room.scheduled_at else {
        return Err(AppError::not_found(
            "this room has no start time to put in a calendar",
        ));
    };
    let site = crate::feed::base_url(&state, accepted.as_deref());
    let url = room_link(&site, &room, q.invite.as_deref(), is_host);
    let body = event(&room, start, &url).ics(Timestamp::now());
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/calendar; charset=utf-8".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"room.ics\"".to_string(),
            ),
            (axum::http::header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response())
}

/// A live room's page, for someone who entered as `e` (`session` `None`: a guest listening
/// without an account).
fn live_page(
    room: &Room,
    session: Option<&Session>,
    e: Entry,
    q: &EntryQuery,
    site: &str,
) -> Response {
    let is_host = matches!(e, Entry::Host | Entry::Cohost);
    let boot = serde_json::json!({
        "room": room.id,
        "title": room.title,
        "me": session.map(|s| s.user.id),
        "name": session.map(|s| s.user.display_name.as_str()),
        "guest": session.is_none(),
        "login": session.is_none().then(|| login_target(&format!("/rooms/{}", room.id))),
        "invite": q.invite,
        "speak": q.speak,
    });
    let invite_link = room
        .invite_token
        .as_ref()
        .filter(|_| e == Entry::Host)
        .map(|t| format!("/rooms/{}?invite={t}", room.id));
    no_store(
        layout(
            &room.title,
            session,
            html! {
                section.room #room data-room=(room.id) {
                    header.room-head {
                        h1 #room-title { (room.title) }
                        span #recording-indicator.rec hidden { "Recording" }
                        @if !room.description.is_empty() { p.desc { (room.description) } }
                        @if let Some(t) = room.scheduled_at.filter(|t| *t > Timestamp::now()) {
                            @let invite = invite_query(room, q.invite.as_deref(), e == Entry::Host);
                            @let url = format!("{site}/rooms/{}{invite}", room.id);
                            @let ics = format!("/rooms/{}/calendar.ics{invite}", room.id);
                            p.when #schedule {
                                "Starts " (crate::pages::moment_tag(t)) " · "
                                a href=(ics) download="room.ics" { "Add to calendar" }
                                " · "
                                a href=(event(room, t, &url).google_link()) target="_blank" rel="noopener" { "Google Calendar" }
                            }
                        }
                    }
                    p #notice.notice role="status" hidden {}
                    h2 { "On stage" }
                    ul.stage #stage {}
                    h2 { "Listening" }
                    ul.audience #audience {}
                    section.captions-box #captions-box hidden aria-labelledby="captions-h" {
                        div.captions-head {
                            h2 #captions-h { "Live captions" }
                            button #captions-toggle type="button" aria-pressed="false" { "Show captions" }
                        }
                        p #captions-state.hint hidden {}
                        // Final lines only are announced; the line being said is shown, not read.
                        div #captions.captions role="log" aria-live="polite" hidden {}
                        p #captions-partial.captions-partial aria-hidden="true" hidden {}
                    }
                    div.controls {
                        button #hand type="button" { "Raise hand" }
                        button #accept type="button" hidden { "Join the stage" }
                        button #mute type="button" hidden { "Mute" }
                        button #leave-stage type="button" hidden { "Leave stage" }
                        button #leave type="button" { "Leave" }
                    }
                    @if is_host {
                        section.host-controls #host-controls {
                            h2 { "Host" }
                            div.controls {
                                button #record type="button" { "Start recording" }
                                button #captions-allow type="button" hidden { "Turn captions off for the room" }
                                button #speaker-link type="button" { "Invite link to speak" }
                                button #end type="button" { "End room" }
                            }
                            @if let Some(l) = &invite_link {
                                p { "Private invite link: " code #invite-link { (l) } (crate::pages::copy_button("invite-link", "the invite link", true)) }
                            }
                            p { code #speaker-invite {} }
                            h3 { "Raised hands" }
                            ul #hands {}
                        }
                    }
                    div #sinks hidden {}
                    script #boot type="application/json" { (json_island(&boot)) }
                    script type="module" src="/static/room.js" {}
                }
            },
        )
        .into_response(),
    )
}

/// Room pages change with the room (live, then ended, then its replay): never cached, so a
/// browser that saw one state never shows it again later.
fn no_store(mut res: Response) -> Response {
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    res
}

/// The newest recording of `room` the caller may hear, if any.
async fn replay_of(
    state: &AppState,
    room: &Room,
    session: Option<&Session>,
) -> Result<Option<roomtape_core::RecordingId>, AppError> {
    for rec in state.catalog.recordings_of_room(room.id).await? {
        match crate::replay::viewable(state, &rec.id.to_string(), session).await {
            // A private room's link leads only its insiders to an unpublished replay.
            Ok(v)
                if room.visibility == Visibility::Private
                    && v.recording.visibility != Visibility::Public
                    && !(v.access.manage || v.access.speaker) => {}
            Ok(v) => return Ok(Some(v.recording.id)),
            Err(e) if e.status() == StatusCode::NOT_FOUND => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// An ended room with no replay the caller may hear: said plainly, signed in as they are,
/// with where to go next. 410, and never cached.
fn ended_page(room: &Room, session: Option<&Session>) -> Response {
    let when = room.ended_at.map(crate::pages::date).unwrap_or_default();
    let body = layout(
        &room.title,
        session,
        html! {
            section.card.ended #room-ended {
                h1 { (room.title) }
                p.lead { "This room has ended" @if !when.is_empty() { " (" (when) ")" } "." }
                p { "No replay of it is published. If the host publishes one, it will be here, at this link." }
                p { a href="/" { "See rooms that are live now" } " · " a href="/replays" { "Browse replays" } }
            }
        },
    );
    no_store((StatusCode::GONE, body).into_response())
}

/// A one-person link onto the stage (host and co-hosts).
#[utoipa::path(
    post,
    path = "/api/v1/rooms/{id}/speaker-invites",
    tag = "rooms",
    params(("id" = RoomId, Path, description = "Room id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "The link", body = Link),
        (status = 400, description = "The id is not a UUID", body = crate::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::ErrorBody),
        (status = 403, description = "Not a host or co-host of the room", body = crate::ErrorBody),
        (status = 404, description = "No such room, or a private one the caller may not enter", body = crate::ErrorBody),
    )
)]
pub async fn api_speaker_invite(
    State(state): State<AppState>,
    WriteSession(session): WriteSession,
    ApiPath(id): ApiPath<RoomId>,
) -> Result<(StatusCode, Json<Link>), AppError> {
    let room = find_room(&state, id).await?;
    match entry(&state, &room, &session, None, None).await {
        Ok(Entry::Host | Entry::Cohost) => {}
        Err(e) if hides(&e) => return Err(e),
        _ => {
            return Err(AppError::forbidden(
                "only hosts and co-hosts invite speakers",
            ));
        }
    }
    let token = auth::secret();
    state
        .catalog
        .create_speaker_invite(room.id, session.user.id, &token)
        .await?;
    let mut link = format!("/rooms/{}?speak={token}", room.id);
    if let Some(t) = &room.invite_token {
        link.push_str(&format!("&invite={t}"));
    }
    Ok((StatusCode::CREATED, Json(Link { link })))
}

/// Replaces the room's private invite link (the old one stops working; host only).
#[utoipa::path(
    post,
    path = "/api/v1/rooms/{id}/invite",
    tag = "rooms",
    params(("id" = RoomId, Path, description = "Room id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The new link", body = Link),
        (status = 400, description = "The id is not a UUID", body = crate::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::ErrorBody),
        (status = 403, description = "Not the room's host", body = crate::ErrorBody),
        (status = 404, description = "No such room, or a private one the caller may not enter", body = crate::ErrorBody),
    )
)]
pub async fn api_rotate_invite(
    State(state): State<AppState>,
    WriteSession(session): WriteSession,
    ApiPath(id): ApiPath<RoomId>,
) -> Result<Json<Link>, AppError> {
    let room = find_room(&state, id).await?;
    if room.host_id != Some(session.user.id) {
        return Err(not_host(&state, &room, &session).await);
    }
    let token = auth::secret();
    state.catalog.set_room_invite(room.id, Some(&token)).await?;
    Ok(Json(Link {
        link: format!("/rooms/{}?invite={token}", room.id),
    }))
}

/// Removes the room's private invite link (host only).
#[utoipa::path(
    delete,
    path = "/api/v1/rooms/{id}/invite",
    tag = "rooms",
    params(("id" = RoomId, Path, description = "Room id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "The id is not a UUID", body = crate::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::ErrorBody),
        (status = 403, description = "Not the room's host", body = crate::ErrorBody),
        (status = 404, description = "No such room, or a private one the caller may not enter", body = crate::ErrorBody),
    )
)]
pub async fn api_revoke_invite(
    State(state): State<AppState>,
    WriteSession(session): WriteSession,
    ApiPath(id): ApiPath<RoomId>,
) -> Result<StatusCode, AppError> {
    let room = find_room(&state, id).await?;
    if room.host_id != Some(session.user.id) {
        return Err(not_host(&state, &room, &session).await);
    }
    state.catalog.set_room_invite(room.id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
