//! Pages for finding replays: `/search` (the query language of the search index, every hit
//! playing from its second) and `/replays` (published replays, plus the caller's own).

use std::collections::HashMap;

use axum::extract::{Query, State};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use roomtape_core::{
    Cursor, ListViewer, Recording, RecordingId, Speaker, Timestamp, User, UserId, Visibility,
};
use roomtape_search::{Mode, Results, Sort, Viewer};

use crate::auth::Session;
use crate::pages::{self, Icon, PageError, icon, layout};
use crate::replay::clock;
use crate::{AppError, AppState};

/// The search index's view of a caller.
pub fn viewer(session: Option<&Session>) -> Viewer {
    match session {
        None => Viewer::Anonymous,
        Some(s) if s.user.is_admin => Viewer::Admin,
        Some(s) => Viewer::User(s.user.id.to_string()),
    }
}

/// Runs a search for a caller off the async threads; a bad query is a 400 naming the problem.
pub async fn run_search(
    state: &AppState,
    session: Option<&Session>,
    q: &str,
    sort: Sort,
    mode: Option<Mode>,
    page: usize,
    per_page: usize,
) -> Result<Results, AppError> {
    let parsed = roomtape_search::query::parse(q)
        .map_err(|e| AppError::bad_request("bad_query", e.to_string()))?;
    let viewer = viewer(session);
    let index = state.search.clone();
    tokio::task::spawn_blocking(move || index.search(&parsed, &viewer, sort, mode, page, per_page))
        .await
        .map_err(AppError::internal)?
        .map_err(|e| match e {
            roomtape_search::Error::Query(m) => AppError::bad_request("bad_query", m),
            other => AppError::internal(other),
        })
}

/// A `mode` parameter: absent (the service's default) or words, meaning or hybrid.
pub fn mode_param(v: Option<&str>) -> Result<Option<Mode>, AppError> {
    // Absent is the default; present, even empty, must be one of the documented values.
    match v.map(str::trim) {
        None => Ok(None),
        Some(m) => Mode::parse(m).map(Some).ok_or_else(|| {
            AppError::bad_request(
                "bad_parameter",
                format!(
                    "mode must be words, meaning or hybrid, not {:?}",
                    roomtape_core::truncate_for_message(m)
                ),
            )
        }),
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct SearchForm {
    q: Option<String>,
    sort: Option<String>,
    mode: Option<String>,
    page: Option<String>,
}

const PER_PAGE: usize = 20;

/// The page's `mode`: a known one, else the default.
fn browse_mode(v: Option<&str>) -> Option<Mode> {
    v.and_then(Mode::parse)
}

/// `/search?q=&sort=&mode=&page=`
pub async fn search_page(
    State(state): State<AppState>,
    session: Option<Session>,
    Query(f): Query<SearchForm>,
) -> Result<Markup, PageError> {
    let q = f.q.unwrap_or_default();
    let newest = f.sort.as_deref() == Some("newest");
    let page = f
        .page
        .as_deref()
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| (1..=10_000).contains(p))
        .unwrap_or(1);
    let meaning = state.search.embedder().is_some();
    // An unknown mode on the page is the default, not an error page.
    let asked = browse_mode(f.mode.as_deref());
    let (results, error) = if q.trim().is_empty() {
        (None, None)
    } else {
        let sort = if newest {
            Sort::Newest
        } else {
            Sort::Relevance
        };
        match run_search(&state, session.as_ref(), &q, sort, asked, page, PER_PAGE).await {
            Ok(r) => (Some(r), None),
            Err(e) if e.status().is_client_error() => (None, Some(e.message().to_string())),
            Err(e) => return Err(e.into()),
        }
    };
    let mut abouts = Vec::new();
    for rec in results.iter().flat_map(|r| &r.recordings) {
        abouts.push(About::of(&state, &rec.recording_id).await?);
    }
    let shown = results.as_ref().map(|r| r.mode).or(asked);
    let link = |p: usize| {
        format!(
            "/search?q={}&sort={}{}&page={p}",
            crate::account::urlencode(&q),
            if newest { "newest" } else { "relevance" },
            asked.map_or(String::new(), |m| format!("&mode={}", m.name()))
        )
    };
    Ok(layout(
        "Search",
        session.as_ref(),
        html! {
            h1 { "Search every replay" }
            form.search-form method="get" action="/search" role="search" {
                input #q type="search" name="q" value=(q) maxlength="1000" aria-label="Search"
                    placeholder="words, \"a phrase\", speaker:\"Name\", room:…, after:2025-01-01";
                select name="sort" aria-label="Order" {
                    option value="relevance" selected[!newest] { "Best match" }
                    option value="newest" selected[newest] { "Newest" }
                }
                @if meaning {
                    // Hybrid is the default: the words, and lines that say it in other words.
                    select name="mode" aria-label="Find lines by" {
                        option value="hybrid" selected[shown.is_none_or(|m| m == Mode::Hybrid)] { "Words and meaning" }
                        option value="words" selected[shown == Some(Mode::Words)] { "Exact words" }
                        option value="meaning" selected[shown == Some(Mode::Meaning)] { "Meaning" }
                    }
                }
                button type="submit" { "Search" }
            }
            details.help {
                summary { "Query syntax" }
                ul {
                    li { code { "climate policy" } " — lines with both words" }
                    li { code { "\"carbon tax\"" } " — the exact phrase" }
                    li { code { "tax OR levy" } ", " code { "-draft" } ", " code { "elect*" } }
                    li { code { "speaker:\"Ana Lima\"" } ", " code { "room:\"Town hall\"" } ", " code { "lang:en" } }
                    li { code { "after:2025-01-01 before:2025-06-30" } }
                    @if meaning {
                        li { "“Words and meaning” also finds lines that say the same in other words, in any language with an English translation: " code { "stopping the fighting" } " finds “we discussed a ceasefire”." }
                    }
                }
            }
            @if let Some(e) = &error { p.error role="alert" { (e) } }
            @if let Some(r) = &results {
                p.muted #total { (r.total) " matching line" @if r.total != 1 { "s" } }
                @for (rec, about) in r.recordings.iter().zip(&abouts) {
                    section.card.result {
                        h2 { a href={"/r/" (rec.recording_id)} { (rec.title) } }
                        p.muted.meta {
                            @match about {
                                Some(a) => {
                                    (pages::day_tag(a.recording.started_at))
                                    @if let Some(d) = a.recording.duration_ms { " · " (pages::length(d)) }
                                    @if !a.speakers.is_empty() {
                                        " · " span.speakers { (pages::names(&a.speaker_names(), 6)) }
                                    }
                                }
                                None => (pages::day_tag(Timestamp(rec.date_ms))),
                            }
                        }
                        ol.hits {
                            @for h in &rec.hits {
                                li.hit {
                                    a.time href=(h.link) { (icon(Icon::Play)) " " (clock(h.start_ms)) }
                                    " " span.who { (h.speaker) } " "
                                    // Escaped by the index before <mark> was added.
                                    span.snippet { (PreEscaped(&h.snippet_html)) }
                                    @if let Some(t) = &h.translation_html {
                                        // The English translation, matches marked when it is
                                        // what matched.
                                        span.translation lang="en" { span.visually-hidden { "In English: " } (PreEscaped(t)) }
                                    }
                                }
                            }
                        }
                    }
                }
                nav.pages {
                    @if page > 1 { a rel="prev" href=(link(page - 1)) { "← Previous" } " " }
                    @if page * PER_PAGE < r.total { a rel="next" href=(link(page + 1)) { "Next →" } }
                }
            }
        },
    ))
}

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    after: Option<String>,
    /// Only this host's (a username).
    host: Option<String>,
    /// Set after a recording was deleted from the web: say so.
    deleted: Option<String>,
}

/// What a list shows of a recording besides its title: when, how long, who spoke.
struct About {
    recording: Recording,
    /// The speakers, once each, in the order of their tracks.
    speakers: Vec<Speaker>,
}

impl About {
    /// Recording `id` (as the search index spells it); `None` when the catalog no longer has it.
    async fn of(state: &AppState, id: &str) -> Result<Option<About>, AppError> {
        let Ok(id) = id.parse::<RecordingId>() else {
            return Ok(None);
        };
        match state.catalog.recording(id).await {
            Ok(recording) => Ok(Some(About::with(state, recording).await?)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn with(state: &AppState, recording: Recording) -> Result<About, AppError> {
        let mut speakers: Vec<Speaker> = Vec::new();
        for t in state.catalog.tracks(recording.id).await? {
            if !speakers.iter().any(|s| s.id == t.speaker.id) {
                speakers.push(t.speaker);
            }
        }
        Ok(About {
            recording,
            speakers,
        })
    }

    fn speaker_names(&self) -> Vec<&str> {
        self.speakers.iter().map(|s| s.name.as_str()).collect()
    }
}

/// `/replays?host=&after=`: published replays, and the caller's own and those they spoke in,
/// newest first; with `host`, only that host's, and their podcast feed linked.
pub async fn replays_page(
    State(state): State<AppState>,
    session: Option<Session>,
    Query(lq): Query<ListQuery>,
) -> Result<Markup, PageError> {
    let after = lq.after.as_deref().map(Cursor::decode).transpose()?;
    let viewer = match &session {
        Some(s) => ListViewer::User(&s.user),
        None => ListViewer::Anonymous,
    };
    let host = match lq.host.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
        None => None,
        Some(name) => match state.catalog.user_by_username(name).await {
            Ok(u) => Some(u),
            Err(e) if e.is_not_found() => return Err(AppError::not_found("no such host").into()),
            Err(e) => return Err(e.into()),
        },
    };
    let (list, next) = state
        .catalog
        .list_recordings(viewer, host.as_ref().map(|h| h.id), after.as_ref(), 30)
        .await?;
    // Each recording's speakers, and its host (looked up once per host).
    let mut hosts: HashMap<UserId, Option<User>> = HashMap::new();
    if let Some(h) = &host {
        hosts.insert(h.id, Some(h.clone()));
    }
    let mut items = Vec::with_capacity(list.len());
    for r in list {
        if let Some(o) = r.owner_id
            && !hosts.contains_key(&o)
        {
            hosts.insert(o, crate::replay::owner_of(&state, &r).await?);
        }
        items.push(About::with(&state, r).await?);
    }
    let owner = |r: &Recording| r.owner_id.and_then(|o| hosts.get(&o)?.as_ref());
    let more = next.map(|c| {
        let mut l = format!("/replays?after={}", crate::account::urlencode(&c.encode()));
        if let Some(h) = &host {
            l.push_str(&format!("&host={}", crate::account::urlencode(&h.username)));
        }
        l
    });
    let title = match &host {
        Some(h) => format!("Replays by {}", h.display_name),
        None => "Replays".to_string(),
    };
    let head = html! { @if let Some(h) = &host { (pages::feed_link(h)) } };
    Ok(pages::layout_with(
        &title,
        session.as_ref(),
        head,
        html! {
            h1 { (title) }
            @if lq.deleted.is_some() {
                p.notice role="status" { "The recording was deleted." }
            }
            @if let Some(h) = &host {
                p.feed {
                    a href=(pages::feed_path(h)) type="application/rss+xml" { "Podcast feed" }
                    " — paste this link into a podcast app to follow " (h.display_name) "'s public replays. "
                    a href="/replays" { "All replays" }
                }
            }
            @if items.is_empty() { p.muted { "Nothing here yet." } }
            ul.replays {
                @for a in &items {
                    @let r = &a.recording;
                    li.card.replay-item {
                        h2 { a href={"/r/" (r.id)} { (r.title) } }
                        p.muted.meta {
                            (pages::day_tag(r.started_at))
                            @if let Some(d) = r.duration_ms { " · " (pages::length(d)) }
                            @if host.is_none() && let Some(h) = owner(r) {
                                " · by " a href=(pages::host_replays_path(h)) { (h.display_name) }
                            }
                            @if r.visibility != Visibility::Public { " · " span.badge { (r.visibility) } }
                            " · " span class={"badge state-" (r.state.as_str())} { (pages::transcript_state(r.state)) }
                        }
                        @if !a.speakers.is_empty() {
                            p.speakers { "Speakers: " (pages::names(&a.speaker_names(), 8)) }
                        }
                    }
                }
            }
            @if let Some(l) = more {
                a rel="next" href=(l) { "Older →" }
            }
        },
    ))
}
