//! Server-rendered pages (maud escapes every interpolated value), and the static files they use,
//! embedded in the binary.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::AppError;
use crate::auth::Session;

/// The frame of every page.
pub fn layout(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(s) = session {
                    meta name="csrf-token" content=(s.csrf);
                }
                title { (title) " · roomtape" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header.top {
                    a.brand href="/" { "roomtape" }
                    nav {
                        a href="/" { "Rooms" }
                        a href="/replays" { "Replays" }
                        a href="/search" { "Search" }
                        @if let Some(s) = session {
                            a href="/rooms/new" { "New room" }
                            a href="/tokens" { "API tokens" }
                            a href="/webhooks" { "Webhooks" }
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="_csrf" value=(s.csrf);
                                button.link type="submit" { "Log out " (s.user.display_name) }
                            }
                        } @else {
                            a href="/login" { "Log in" }
                            a href="/signup" { "Sign up" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// An error shown as a page.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        PageError(e)
    }
}

impl From<roomtape_core::Error> for PageError {
    fn from(e: roomtape_core::Error) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let body = layout(
            status.canonical_reason().unwrap_or("Error"),
            None,
            html! {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                p.error { (self.0.message()) }
                p { a href="/" { "Back to the rooms" } }
            },
        );
        (status, body).into_response()
    }
}

/// A form page: title, an optional error, and the form.
pub fn form_page(
    title: &str,
    session: Option<&Session>,
    error: Option<&str>,
    form: Markup,
) -> Markup {
    layout(
        title,
        session,
        html! {
            section.card.narrow {
                h1 { (title) }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                (form)
            }
        },
    )
}

const STYLE: &str = include_str!("../static/style.css");
const ROOM_JS: &str = include_str!("../static/room.js");
const REPLAY_JS: &str = include_str!("../static/replay.js");

/// `/static/<file>`
pub async fn static_file(
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Response, AppError> {
    let (body, kind) = match name.as_str() {
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "room.js" => (ROOM_JS, "text/javascript; charset=utf-8"),
        "replay.js" => (REPLAY_JS, "text/javascript; charset=utf-8"),
        _ => return Err(AppError::not_found("no such file")),
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response())
}

/// JSON for a `<script type="application/json">` block: `<`, `>` and `&` escaped so no text
/// in it can end the script element.
pub fn json_island(v: &serde_json::Value) -> PreEscaped<String> {
    let s = v
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    PreEscaped(s)
}
