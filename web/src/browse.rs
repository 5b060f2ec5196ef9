//! Pages for finding replays: `/search` (the query language of the search index, every hit
//! playing from its second) and `/replays` (published replays, plus the caller's own).

use axum::extract::{Query, State};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use roomtape_core::{Cursor, ListViewer};
use roomtape_search::{Results, Sort, Viewer};

use crate::auth::Session;
use crate::pages::{PageError, layout};
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
    page: usize,
    per_page: usize,
) -> Result<Results, AppError> {
    let parsed = roomtape_search::query::parse(q)
        .map_err(|e| AppError::bad_request("bad_query", e.to_string()))?;
    let viewer = viewer(session);
    let index = state.search.clone();
    tokio::task::spawn_blocking(move || index.search(&parsed, &viewer, sort, page, per_page))
        .await
        .map_err(AppError::internal)?
        .map_err(|e| match e {
            roomtape_search::Error::Query(m) => AppError::bad_request("bad_query", m),
            other => AppError::internal(other),
        })
}

#[derive(Debug, Deserialize, Default)]
pub struct SearchForm {
    q: Option<String>,
    sort: Option<String>,
    page: Option<String>,
}

const PER_PAGE: usize = 20;

/// `/search?q=&sort=&page=`
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
    let (results, error) = if q.trim().is_empty() {
        (None, None)
    } else {
        let sort = if newest {
            Sort::Newest
        } else {
            Sort::Relevance
        };
        match run_search(&state, session.as_ref(), &q, sort, page, PER_PAGE).await {
            Ok(r) => (Some(r), None),
            Err(e) if e.status().is_client_error() => (None, Some(e.message().to_string())),
            Err(e) => return Err(e.into()),
        }
    };
    let link = |p: usize| {
        format!(
            "/search?q={}&sort={}&page={p}",
            crate::account::urlencode(&q),
            if newest { "newest" } else { "relevance" }
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
                }
            }
            @if let Some(e) = &error { p.error role="alert" { (e) } }
            @if let Some(r) = &results {
                p.muted #total { (r.total) " matching line" @if r.total != 1 { "s" } }
                @for rec in &r.recordings {
                    section.card.result {
                        h2 { a href={"/r/" (rec.recording_id)} { (rec.title) } }
                        ol.hits {
                            @for h in &rec.hits {
                                li.hit {
                                    a.time href=(h.link) { "▶ " (clock(h.start_ms)) }
                                    " " span.who { (h.speaker) } " "
                                    // Escaped by the index before <mark> was added.
                                    span.snippet { (PreEscaped(&h.snippet_html)) }
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
}

/// `/replays`: published replays, and the caller's own and those they spoke in, newest first.
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
    let (list, next) = state
        .catalog
        .list_recordings(viewer, None, after.as_ref(), 30)
        .await?;
    Ok(layout(
        "Replays",
        session.as_ref(),
        html! {
            h1 { "Replays" }
            @if list.is_empty() { p.muted { "Nothing here yet." } }
            ul.replays {
                @for r in &list {
                    li.card {
                        a href={"/r/" (r.id)} { (r.title) }
                        " " span.muted {
                            (r.started_at.to_rfc3339().get(..10).unwrap_or("")) " · "
                            (clock(r.duration_ms.unwrap_or(0))) " · " (r.visibility)
                        }
                    }
                }
            }
            @if let Some(c) = next {
                a rel="next" href={"/replays?after=" (crate::account::urlencode(&c.encode()))} { "Older →" }
            }
        },
    ))
}
