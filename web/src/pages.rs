//! Server-rendered pages (maud escapes every interpolated value), and the static files they use,
//! embedded in the binary.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use roomtape_core::{RecordingState, Timestamp, User};

use crate::AppError;
use crate::auth::Session;

/// The frame of every page.
pub fn layout(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    layout_with(title, session, html! {}, body)
}

/// The frame of every page, with more in its `<head>` (e.g. `<link rel="alternate">`).
pub fn layout_with(title: &str, session: Option<&Session>, head: Markup, body: Markup) -> Markup {
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
                (head)
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

/// A "Copy" button for the text of element `id` (hidden until copy.js shows it, so a page
/// without scripts shows no dead button), with the place where it says it copied.
pub fn copy_button(id: &str, what: &str, url: bool) -> Markup {
    html! {
        " "
        button.copy type="button" data-copy=(id) data-url=[url.then_some("")] hidden aria-label={"Copy " (what)} { "Copy" }
        " "
        span.muted id={(id) "-copied"} role="status" {}
        script src="/static/copy.js" defer {}
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
const LOBBY_JS: &str = include_str!("../static/lobby.js");
const COPY_JS: &str = include_str!("../static/copy.js");

/// `/static/<file>`
pub async fn static_file(
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Response, AppError> {
    let (body, kind) = match name.as_str() {
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "room.js" => (ROOM_JS, "text/javascript; charset=utf-8"),
        "replay.js" => (REPLAY_JS, "text/javascript; charset=utf-8"),
        "lobby.js" => (LOBBY_JS, "text/javascript; charset=utf-8"),
        "copy.js" => (COPY_JS, "text/javascript; charset=utf-8"),
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

fn utc(t: Timestamp) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0) * 1_000_000).ok()
}

/// A day as people write it: `5 Dec 2026` (UTC).
pub fn date(t: Timestamp) -> String {
    utc(t)
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[day padding:none] [month repr:short] [year]"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// A moment as people write it: `5 Dec 2026, 14:30 UTC`.
pub fn date_time(t: Timestamp) -> String {
    utc(t)
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// `<time datetime="2026-12-05T14:30:00Z">5 Dec 2026</time>`: readable, and exact for machines.
pub fn day_tag(t: Timestamp) -> Markup {
    html! { time datetime=(t.to_rfc3339()) title=(date_time(t)) { (date(t)) } }
}

/// Like [`day_tag`], with the time of day.
pub fn moment_tag(t: Timestamp) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (date_time(t)) } }
}

/// A length as people say it: `40 s`, `42 min`, `1 h 5 min`.
pub fn length(ms: i64) -> String {
    let s = (ms.max(0) + 500) / 1000;
    let m = (s + 30) / 60;
    if s < 60 {
        format!("{s} s")
    } else if m < 60 {
        format!("{m} min")
    } else if m % 60 == 0 {
        format!("{} h", m / 60)
    } else {
        format!("{} h {} min", m / 60, m % 60)
    }
}

/// Where a recording's transcript stands, for people.
pub fn transcript_state(s: RecordingState) -> &'static str {
    match s {
        RecordingState::Recording => "Recording now",
        RecordingState::Recorded => "Waiting to be transcribed",
        RecordingState::Transcribing => "Transcribing…",
        RecordingState::Transcribed => "Transcript ready",
        RecordingState::Failed => "Failed",
    }
}

/// Speaker names as a phrase: `Ana`, `Ana and Bo`, `Ana, Bo and Cy`; past `max`, `and 3 more`.
pub fn names(names: &[&str], max: usize) -> String {
    let max = max.max(1);
    if names.len() > max {
        return format!("{} and {} more", names[..max].join(", "), names.len() - max);
    }
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The path of a host's podcast feed.
pub fn feed_path(host: &User) -> String {
    format!("/feeds/{}.xml", crate::account::urlencode(&host.username))
}

/// The path of a host's replays.
pub fn host_replays_path(host: &User) -> String {
    format!(
        "/replays?host={}",
        crate::account::urlencode(&host.username)
    )
}

/// The `<head>` link that lets feed readers find a host's podcast.
pub fn feed_link(host: &User) -> Markup {
    html! {
        link rel="alternate" type="application/rss+xml"
            title={(host.display_name) "'s replays (podcast)"} href=(feed_path(host));
    }
}

/// Icons drawn as inline SVG, never as emoji: a machine without an emoji font draws those
/// as empty boxes. Decorative (`aria-hidden`): the text beside each says what it does.
#[derive(Clone, Copy, Debug)]
pub enum Icon {
    Play,
    Previous,
    Next,
}

pub fn icon(kind: Icon) -> Markup {
    let path = match kind {
        Icon::Play => "M4 2.5v11l9-5.5z",
        Icon::Previous => "M3 3h2v10H3zM14 3v10L6 8z",
        Icon::Next => "M11 3h2v10h-2zM2 3v10l8-5z",
    };
    html! {
        svg.icon viewBox="0 0 16 16" aria-hidden="true" focusable="false" { path d=(path) {} }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WCAG's relative luminance of `#rrggbb`.
    fn luminance(hex: &str) -> f64 {
        let h = hex.trim_start_matches('#');
        // `#rgb` is `#rrggbb`.
        let h: String = if h.len() == 3 {
            h.chars().flat_map(|c| [c, c]).collect()
        } else {
            h.to_string()
        };
        assert_eq!(h.len(), 6, "a #rrggbb colour: {hex}");
        let c = |i: usize| {
            let v = f64::from(u8::from_str_radix(&h[i..i + 2], 16).unwrap()) / 255.0;
            if v <= 0.039_28 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * c(0) + 0.7152 * c(2) + 0.0722 * c(4)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (x, y) = (luminance(a), luminance(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    /// The `--name: #hex` colours of the first `:root { … }` after `from` in the stylesheet.
    fn palette(css: &str, from: &str) -> std::collections::BTreeMap<String, String> {
        let at = css.find(from).expect(from);
        let block = &css[at..];
        let block = &block[block.find(":root {").unwrap()..];
        let block = &block[..block.find('}').unwrap()];
        block
            .split(['{', ';'])
            .filter_map(|d| d.trim().strip_prefix("--")?.split_once(':'))
            .filter(|(_, v)| v.trim().starts_with('#'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    /// Issue 15, item 7: every colour text is drawn in (the foreground, muted text, links,
    /// the recording and speaking signs, each speaker's colour) reads at 4.5:1 or more on
    /// both backgrounds (the page and a card), in light and in dark mode.
    #[test]
    fn every_text_colour_has_enough_contrast_in_light_and_dark_mode() {
        let css = include_str!("../static/style.css");
        let light = palette(css, ":root {");
        let mut dark = light.clone();
        dark.extend(palette(css, "prefers-color-scheme: dark"));
        let backgrounds = ["bg", "card"];
        let not_text = ["bg", "card", "line"];
        let mut low = Vec::new();
        for (scheme, colours) in [("light", &light), ("dark", &dark)] {
            for (name, fg) in colours
                .iter()
                .filter(|(k, _)| !not_text.contains(&k.as_str()))
            {
                for bg in backgrounds {
                    let r = contrast(fg, &colours[bg]);
                    if r < 4.5 {
                        low.push(format!("{scheme}: --{name} {fg} on --{bg}: {r:.2}:1"));
                    }
                }
            }
        }
        assert!(light.len() >= 15, "the palette was read: {light:?}");
        assert!(low.is_empty(), "{low:#?}");
        // The speakers' colours are the palette's, in both schemes.
        for k in 0..8 {
            assert!(css.contains(&format!(".s{k} {{ color: var(--s{k}); }}")));
            assert!(palette(css, "prefers-color-scheme: dark").contains_key(&format!("s{k}")));
        }
        // The arithmetic itself: black on white is 21:1, the old green name 3.45:1.
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 1e-9);
        assert!((contrast("#2e9d5b", "#ffffff") - 3.45).abs() < 0.01);
    }

    #[test]
    fn dates_and_lengths_read_as_people_write_them() {
        // 5 December 2026, 14:30 UTC.
        let t = Timestamp(1_796_481_000_000);
        assert_eq!(date(t), "5 Dec 2026");
        assert_eq!(date_time(t), "5 Dec 2026, 14:30 UTC");
        assert_eq!(
            day_tag(t).into_string(),
            r#"<time datetime="2026-12-05T14:30:00Z" title="5 Dec 2026, 14:30 UTC">5 Dec 2026</time>"#
        );
        assert_eq!(length(40_000), "40 s");
        assert_eq!(length(42 * 60_000 + 10_000), "42 min");
        assert_eq!(length(59 * 60_000 + 40_000), "1 h");
        assert_eq!(length(65 * 60_000), "1 h 5 min");
        assert_eq!(names(&[], 3), "");
        assert_eq!(names(&["Ana"], 3), "Ana");
        assert_eq!(names(&["Ana", "Bo", "Cy"], 3), "Ana, Bo and Cy");
        assert_eq!(names(&["Ana", "Bo", "Cy", "Di"], 2), "Ana, Bo and 2 more");
    }
}
