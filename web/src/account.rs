//! Sign-up, log-in, log-out, and API tokens (pages and API).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header::{LOCATION, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use maud::{Markup, html};
use serde::Deserialize;

use roomtape_core::Timestamp;

use crate::api::{ApiJson, ApiPath};
use crate::auth::{self, ClientAddr, Session, WriteSession};
use crate::pages::{PageError, form_page, layout};
use crate::{AppError, AppState};

#[derive(Deserialize)]
pub struct SignupForm {
    username: String,
    display_name: String,
    password: String,
    /// Where to go once the account exists (a path on this site).
    #[serde(default)]
    next: String,
}

impl std::fmt::Debug for SignupForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignupForm")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    next: String,
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    _csrf: String,
}

fn signup_form(username: &str, display_name: &str, next: &str) -> Markup {
    html! {
        form method="post" action="/signup" {
            input type="hidden" name="next" value=(next);
            label { "User name" input name="username" required maxlength="32" autocomplete="username" value=(username); }
            label { "Display name" input name="display_name" required maxlength="64" value=(display_name); }
            label { "Password (8 or more characters)" input name="password" type="password" required minlength="8" autocomplete="new-password"; }
            button type="submit" { "Create account" }
        }
        p { "Have an account? " a href=(with_next("/login", next)) { "Log in" } }
    }
}

/// `path`, carrying `next` along when there is one.
fn with_next(path: &str, next: &str) -> String {
    if next.is_empty() {
        path.to_string()
    } else {
        format!("{path}?next={}", urlencode(next))
    }
}

fn login_form(username: &str, next: &str) -> Markup {
    html! {
        form method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            label { "User name" input name="username" required autocomplete="username" value=(username); }
            label { "Password" input name="password" type="password" required autocomplete="current-password"; }
            button type="submit" { "Log in" }
        }
        p { "No account? " a href=(with_next("/signup", next)) { "Sign up" } }
    }
}

async fn signup_allowed(state: &AppState) -> Result<bool, AppError> {
    Ok(state.config.server.open_signup || state.catalog.user_count().await? == 0)
}

pub async fn signup_page(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Result<Markup, PageError> {
    if !signup_allowed(&state).await? {
        return Err(AppError::forbidden("sign-up is closed on this server").into());
    }
    let lead = destination(&state, &q.next).await;
    Ok(form_page(
        "Sign up",
        None,
        None,
        led(lead, signup_form("", "", &q.next)),
    ))
}

/// What a log-in or sign-up page says about where it leads: the room a link was for, when
/// the caller may know of it (public and unlisted rooms, or a private one whose invite token
/// the link carries). Nothing for anything else, so a private room's existence is not given
/// away.
async fn destination(state: &AppState, next: &str) -> Option<String> {
    let next = safe_next(next);
    let (path, query) = next.split_once('?').unwrap_or((&next, ""));
    let id: roomtape_core::RoomId = path.strip_prefix("/rooms/")?.parse().ok()?;
    let room = state.catalog.room(id).await.ok()?;
    let invite = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("invite="))
        .map(percent_decode);
    let known = room.visibility != roomtape_core::Visibility::Private
        || matches!((&invite, &room.invite_token), (Some(a), Some(b)) if auth::same_secret(a, b));
    known.then(|| format!("Log in or sign up to join “{}”.", room.title))
}

/// Starts a session for `user` and redirects to `next` (when it is a path on this site).
async fn start_session(
    state: &AppState,
    user: &roomtape_core::User,
    next: &str,
) -> Result<Response, AppError> {
    let location =
        HeaderValue::from_str(&safe_next(next)).unwrap_or_else(|_| HeaderValue::from_static("/"));
    let token = auth::secret();
    let days = u64::from(state.config.server.session_days.max(1));
    let age = Duration::from_secs(days * 86_400);
    state
        .catalog
        .create_session(
            &auth::digest(&token),
            user.id,
            &auth::secret(),
            Timestamp::now().add_millis(age.as_millis() as i64),
        )
        .await?;
    let mut res = StatusCode::SEE_OTHER.into_response();
    res.headers_mut().insert(LOCATION, location);
    res.headers_mut().insert(
        SET_COOKIE,
        auth::session_cookie(&token, state.secure_cookies(), age),
    );
    Ok(res)
}

/// Where to go after log-in: a path on this site, else `/` (no open redirects).
///
/// Browsers drop tabs and line breaks from URLs and read `\` as `/`, so `/\t/evil.example/`
/// goes to `//evil.example/`, another site. A path must start with one `/`, and neither it nor
/// any of its percent-decoded forms may hold a second `/` right after it, a `\`, or a control
/// character. What passes is returned with spaces and non-ASCII bytes percent-encoded, so it
/// is always a valid `Location`.
pub fn safe_next(next: &str) -> String {
    fn local(p: &str) -> bool {
        p.starts_with('/')
            && !p.starts_with("//")
            && !p.contains('\\')
            && !p.chars().any(char::is_control)
    }
    if next.len() > 2000 {
        return "/".into();
    }
    let mut form = next.to_string();
    let mut settled = false;
    for _ in 0..4 {
        if !local(&form) {
            return "/".into();
        }
        let decoded = percent_decode(&form);
        if decoded == form {
            settled = true;
            break;
        }
        form = decoded;
    }
    if !settled {
        return "/".into();
    }
    next.bytes()
        .map(|b| match b {
            0x21..=0x7e => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `%XX` sequences decoded (others left as they are); bytes that are not UTF-8 become U+FFFD.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A form page refusing for `wait` seconds, with `Retry-After`.
fn too_many(title: &str, what: &str, wait: u64, form: Markup) -> Response {
    let mut res = (
        StatusCode::TOO_MANY_REQUESTS,
        form_page(
            title,
            None,
            Some(&format!(
                "Too many {what} from your address; try again in {}.",
                if wait < 120 {
                    format!("{wait} seconds")
                } else {
                    format!("{} minutes", wait.div_ceil(60))
                }
            )),
            form,
        ),
    )
        .into_response();
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(wait));
    res
}

pub async fn signup(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<SignupForm>,
) -> Result<Response, PageError> {
    if !auth::same_origin(&headers, &state.config.server.public_url) {
        return Err(AppError::forbidden("cross-site form").into());
    }
    if !signup_allowed(&state).await? {
        return Err(AppError::forbidden("sign-up is closed on this server").into());
    }
    let again = |msg: &str| {
        (
            StatusCode::BAD_REQUEST,
            form_page(
                "Sign up",
                None,
                Some(msg),
                signup_form(&f.username, &f.display_name, &f.next),
            ),
        )
            .into_response()
    };
    if let Err(e) = auth::check_new_password(&f.password) {
        return Ok(again(e.message()));
    }
    // Each sign-up costs an argon2 hash: one address gets a few per window.
    if let Err(wait) = state.limiter.signup(addr) {
        return Ok(too_many(
            "Sign up",
            "sign-ups",
            wait,
            signup_form(&f.username, &f.display_name, &f.next),
        ));
    }
    let hash = roomtape_core::hash_password(&f.password).map_err(AppError::internal)?;
    let user = match state
        .catalog
        .create_user(&f.username, &f.display_name, &hash)
        .await
    {
        Ok(u) => u,
        Err(e @ (roomtape_core::Error::Invalid(_) | roomtape_core::Error::Conflict(_))) => {
            return Ok(again(&e.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(start_session(&state, &user, &f.next).await?)
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

pub async fn login_page(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Markup {
    let lead = destination(&state, &q.next).await;
    form_page("Log in", None, None, led(lead, login_form("", &q.next)))
}

/// `form`, under a line saying where it leads, if there is one.
fn led(lead: Option<String>, form: Markup) -> Markup {
    html! {
        @if let Some(l) = lead { p.lead #destination { (l) } }
        (form)
    }
}

pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, PageError> {
    if !auth::same_origin(&headers, &state.config.server.public_url) {
        return Err(AppError::forbidden("cross-site form").into());
    }
    let attempt = match state.limiter.begin(&f.username, addr) {
        Ok(a) => a,
        Err(wait) => {
            return Ok(too_many(
                "Log in",
                "failed log-ins",
                wait,
                login_form(&f.username, &f.next),
            ));
        }
    };
    let found = state.catalog.user_login(&f.username).await?;
    // Verify against a real hash even for unknown names, so timing does not tell them apart.
    let (user, ok) = match found {
        Some((user, hash)) => {
            let ok = roomtape_core::verify_password(&f.password, &hash);
            (Some(user), ok)
        }
        None => {
            roomtape_core::verify_password(&f.password, dummy_hash());
            (None, false)
        }
    };
    match (user, ok) {
        (Some(user), true) => {
            state.limiter.succeeded(attempt);
            Ok(start_session(&state, &user, &f.next).await?)
        }
        // The attempt stays counted as a failure.
        _ => Ok((
            StatusCode::UNAUTHORIZED,
            form_page(
                "Log in",
                None,
                Some("Wrong user name or password."),
                login_form(&f.username, &f.next),
            ),
        )
            .into_response()),
    }
}

/// An argon2 hash of a random password, verified against when the user name is unknown.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| roomtape_core::hash_password(&auth::secret()).unwrap_or_default())
}

pub async fn logout(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    session.check_csrf(Some(&f._csrf))?;
    if let Some(t) = auth::session_token(&headers) {
        state.catalog.delete_session(&auth::digest(t)).await?;
    }
    let mut res = Redirect::to("/").into_response();
    res.headers_mut()
        .insert(SET_COOKIE, auth::clear_cookie(state.secure_cookies()));
    Ok(res)
}

/// Sends a page request without a session to the log-in page, coming back afterwards.
pub fn login_redirect(back_to: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = login_target(back_to).parse() {
        res.headers_mut().insert(LOCATION, v);
    }
    res
}

/// The log-in page, coming back to `back_to` afterwards.
pub fn login_target(back_to: &str) -> String {
    format!("/login?next={}", urlencode(back_to))
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---- API tokens ----

/// A new API token's name.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    /// 1–64 characters, to tell tokens apart.
    #[schema(min_length = 1, max_length = 64)]
    name: String,
    #[serde(default)]
    #[schema(ignore)]
    _csrf: String,
}

pub async fn tokens_page(
    State(state): State<AppState>,
    session: Option<Session>,
) -> Result<Response, PageError> {
    let Some(session) = session else {
        return Ok(login_redirect("/tokens"));
    };
    Ok(tokens_markup(&state, &session, None).await?.into_response())
}

async fn tokens_markup(
    state: &AppState,
    session: &Session,
    new_secret: Option<&str>,
) -> Result<Markup, AppError> {
    let tokens = state.catalog.api_tokens(session.user.id).await?;
    Ok(layout(
        "API tokens",
        Some(session),
        html! {
            section.card {
                h1 { "API tokens" }
                p { "Send a token as " code { "Authorization: Bearer <token>" } " to the API." }
                @if let Some(t) = new_secret {
                    p.notice { "Your new token (shown only now): " code #new-token { (t) }
                        (crate::pages::copy_button("new-token", "the new token", false)) }
                }
                form method="post" action="/tokens" {
                    input type="hidden" name="_csrf" value=(session.csrf);
                    label { "Name" input name="name" required maxlength="64" placeholder="e.g. archive sync"; }
                    button type="submit" { "Create token" }
                }
                table {
                    thead { tr { th { "Name" } th { "Starts with" } th { "Created" } th { "Last used" } th {} } }
                    tbody {
                        @for t in &tokens {
                            tr {
                                td { (t.name) }
                                td { code { (t.prefix) "…" } }
                                td { (crate::pages::moment_tag(t.created_at)) }
                                td { @if let Some(x) = t.last_used_at { (crate::pages::moment_tag(x)) } @else { "never" } }
                                td {
                                    @if t.revoked_at.is_some() { "revoked" } @else {
                                        form.inline method="post" action={ "/tokens/" (t.id) "/revoke" } {
                                            input type="hidden" name="_csrf" value=(session.csrf);
                                            button type="submit" { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

async fn issue_token(
    state: &AppState,
    session: &Session,
    name: &str,
) -> Result<(String, roomtape_core::ApiToken), AppError> {
    let secret = auth::new_api_token();
    let t = state
        .catalog
        .create_api_token(session.user.id, name, &auth::digest(&secret), &secret[..10])
        .await?;
    Ok((secret, t))
}

pub async fn create_token_form(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<NewToken>,
) -> Result<Markup, PageError> {
    session.check_csrf(Some(&f._csrf))?;
    let (secret, _) = issue_token(&state, &session, &f.name).await?;
    Ok(tokens_markup(&state, &session, Some(&secret)).await?)
}

pub async fn revoke_token_form(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    session.check_csrf(Some(&f._csrf))?;
    state.catalog.revoke_api_token(session.user.id, &id).await?;
    Ok(Redirect::to("/tokens").into_response())
}

/// The caller's API tokens.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TokenList {
    /// Newest first; revoked ones are kept, with `revoked_at` set.
    pub tokens: Vec<roomtape_core::ApiToken>,
}

/// A new API token: the only answer that holds its secret.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: roomtape_core::ApiToken,
    /// The secret to send as `Authorization: Bearer <token>`; shown only now.
    pub token: String,
}

/// The caller's API tokens.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "account",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The tokens", body = TokenList),
        (status = 401, description = "Not signed in", body = crate::ErrorBody),
    )
)]
pub async fn api_list_tokens(
    State(state): State<AppState>,
    session: Session,
) -> Result<Json<TokenList>, AppError> {
    let tokens = state.catalog.api_tokens(session.user.id).await?;
    Ok(Json(TokenList { tokens }))
}

/// Makes an API token for the caller.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "account",
    request_body = NewToken,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "The token, with its secret", body = CreatedToken),
        (status = 400, description = "A bad name or body", body = crate::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::ErrorBody),
        (status = 403, description = "A cookie request without its CSRF token", body = crate::ErrorBody),
        (status = 415, description = "The body is not JSON", body = crate::ErrorBody),
    )
)]
pub async fn api_create_token(
    State(state): State<AppState>,
    WriteSession(session): WriteSession,
    ApiJson(f): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), AppError> {
    let (token, info) = issue_token(&state, &session, &f.name).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { info, token })))
}

/// Revokes one of the caller's API tokens.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "account",
    params(("id" = String, Path, description = "Token id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Revoked (it no longer opens anything)"),
        (status = 401, description = "Not signed in", body = crate::ErrorBody),
        (status = 403, description = "A cookie request without its CSRF token", body = crate::ErrorBody),
        (status = 404, description = "No such token of the caller's", body = crate::ErrorBody),
    )
)]
pub async fn api_revoke_token(
    State(state): State<AppState>,
    WriteSession(session): WriteSession,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, AppError> {
    state.catalog.revoke_api_token(session.user.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "account",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The account", body = roomtape_core::User),
        (status = 401, description = "Not signed in", body = crate::ErrorBody),
    )
)]
pub async fn api_me(session: Session) -> Json<roomtape_core::User> {
    Json(session.user)
}
