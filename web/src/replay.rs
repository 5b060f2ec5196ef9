//! The replay page `/r/<id>` and what it serves: the mix and tracks with byte ranges, the
//! peaks, transcript downloads; and the host's publishing: visibility, speaker names, lines.

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use roomtape_core::export::{self, Format};
use roomtape_core::{
    Access, Recording, RecordingId, RecordingState, Segment, SpeakerId, Track, Transcript, User,
    Visibility, layout as keys,
};

use crate::auth::Session;
use crate::media::{self, Cache};
use crate::pages::{self, Icon, PageError, icon, layout};
use crate::{AppError, AppState};

/// The replay routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/r/{id}", get(page))
        .route("/r/{id}/edit", get(edit_page))
        .route("/r/{id}/visibility", post(set_visibility))
        .route("/r/{id}/details", post(set_details))
        .route("/r/{id}/delete", post(delete_form))
        .route("/r/{id}/speakers/{speaker}", post(rename_speaker))
        .route("/r/{id}/lines/{index}", post(correct_line))
        .route("/r/{id}/tracks/{file}", get(track_file))
        .route("/r/{id}/{file}", get(file))
}

/// A recording the caller may view, with its tracks and what the caller may do.
#[derive(Debug)]
pub struct Viewable {
    pub recording: Recording,
    pub tracks: Vec<Track>,
    pub access: Access,
}

/// Loads recording `id` for `session`. Not there, or not theirs to see: the same 404, so
/// private recordings cannot be discovered.
pub async fn viewable(
    state: &AppState,
    id: &str,
    session: Option<&Session>,
) -> Result<Viewable, AppError> {
    let missing = || AppError::not_found("no such recording");
    let id: RecordingId = id.parse().map_err(|_| missing())?;
    let recording = match state.catalog.recording(id).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    let tracks = state.catalog.tracks(id).await?;
    let speakers: Vec<SpeakerId> = tracks.iter().map(|t| t.speaker.id).collect();
    let access = Access::of(&recording, &speakers, session.map(|s| &s.user));
    if !access.view {
        return Err(missing());
    }
    Ok(Viewable {
        recording,
        tracks,
        access,
    })
}

fn cache_of(r: &Recording) -> Cache {
    if r.visibility == Visibility::Public {
        Cache::Public
    } else {
        Cache::Private
    }
}

/// `m:ss` or `h:mm:ss`.
pub fn clock(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// A time in seconds for `?t=`, to the millisecond.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.max(0) / 1000, ms.max(0) % 1000)
}

/// The transcript's turns: runs of consecutive lines by one speaker, as index ranges.
pub fn turns(segments: &[Segment]) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        match out.last_mut() {
            Some(run) if segments[run.start].speaker_id == s.speaker_id => run.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

#[derive(Debug, Deserialize, Default)]
pub struct ReplayQuery {
    /// Start at this second.
    t: Option<String>,
    /// A shared quote: lines `a-b` (0-based, inclusive).
    q: Option<String>,
}

/// Parses `?q=a-b` against a transcript of `n` lines.
fn quote_span(q: Option<&str>, n: usize) -> Option<(usize, usize)> {
    let (a, b) = q?.split_once('-').unwrap_or((q?, q?));
    let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b && b < n && b - a < 200).then_some((a, b))
}

async fn page(
    State(state): State<AppState>,
    session: Option<Session>,
    accepted: Option<axum::Extension<crate::host::RequestHost>>,
    Path(id): Path<String>,
    Query(q): Query<ReplayQuery>,
) -> Result<Response, PageError> {
    let v = viewable(&state, &id, session.as_ref()).await?;
    let r = &v.recording;
    let transcript = state.catalog.transcript(r.id).await?;
    let segments = transcript.as_ref().map_or(&[][..], |t| &t.segments[..]);
    let start_at =
        q.t.as_deref()
            .and_then(|t| t.trim().parse::<f64>().ok())
            .filter(|t| t.is_finite() && *t >= 0.0);
    let quote = quote_span(q.q.as_deref(), segments.len());
    let has_mix = state
        .store
        .exists(&keys::file_key(r.id, keys::MIX_FILE))
        .unwrap_or(false);
    let speaker_index = |sid: &SpeakerId| {
        v.tracks
            .iter()
            .position(|t| t.speaker.id == *sid)
            .unwrap_or(0)
    };
    let user = session.as_ref().map(|s| &s.user);
    let my_tracks: Vec<&Track> = v
        .tracks
        .iter()
        .filter(|t| v.access.track(&t.speaker.id, user))
        .collect();
    let base = format!("/r/{}", r.id);
    let host = owner_of(&state, r).await?;
    let body = html! {
        article.replay #replay data-id=(r.id) data-start=[start_at]
            data-quote-start=[quote.map(|(a, _)| segments[a].start_ms)]
            data-quote-end=[quote.map(|(_, b)| segments[b].end_ms)] {
            header.replay-head {
                h1 #title { (r.title) }
                p.muted #meta {
                    (pages::day_tag(r.started_at))
                    @if let Some(d) = r.duration_ms { " · " (pages::length(d)) }
                    @if let Some(h) = &host {
                        " · by " a href=(pages::host_replays_path(h)) { (h.display_name) }
                        " (" a href=(pages::feed_path(h)) type="application/rss+xml" { "podcast feed" } ")"
                    }
                    " · " span.badge { (r.visibility) }
                    @if r.state != roomtape_core::RecordingState::Transcribed {
                        " · " span.badge { (pages::transcript_state(r.state)) }
                    }
                }
                ul.speakers {
                    @for (i, t) in v.tracks.iter().enumerate() {
                        li { span class={"dot s" (i % 8)} {} (t.speaker.name) }
                    }
                }
                @if v.access.manage {
                    form.inline #visibility-form method="post" action={(base) "/visibility"} {
                        input type="hidden" name="_csrf" value=(session.as_ref().map(|s| s.csrf.as_str()).unwrap_or(""));
                        label.row { "Visibility "
                            select name="visibility" {
                                @for vis in [Visibility::Private, Visibility::Unlisted, Visibility::Public] {
                                    option value=(vis) selected[vis == r.visibility] { (vis) }
                                }
                            }
                            button type="submit" { "Save" }
                        }
                    }
                    " " a href={(base) "/edit"} { "Edit title, names and lines" }
                }
            }
            @if let Some((a, b)) = quote {
                blockquote.quote #quote {
                    @for s in &segments[a..=b] {
                        p { (s.text) }
                    }
                    footer {
                        "— " (segments[a].speaker)
                        @if segments[b].speaker != segments[a].speaker { " and others" }
                        ", " (r.title) " at " (clock(segments[a].start_ms)) "–" (clock(segments[b].end_ms))
                    }
                }
            }
            section.player.card {
                @if has_mix {
                    audio #player controls preload="metadata" src={(base) "/mix.opus"} {}
                    div.player-controls {
                        label.row { "Speed "
                            select #speed {
                                @for s in ["0.75", "1", "1.25", "1.5", "2"] {
                                    option value=(s) selected[s == "1"] { (s) "×" }
                                }
                            }
                        }
                        button #prev-speaker type="button" { (icon(Icon::Previous)) " Previous speaker" }
                        button #next-speaker type="button" { "Next speaker " (icon(Icon::Next)) }
                    }
                    canvas #lanes role="img" height=(24 * v.tracks.len().max(1)) aria-label="Who spoke when; click to seek" {}
                    p.muted.keys { "Keys: " kbd { "Space" } " play or pause, " kbd { "←" } " " kbd { "→" } " 5 seconds back or on." }
                } @else {
                    p.notice { "The audio is not ready yet." }
                }
            }
            section.transcript-box.card {
                div.transcript-tools {
                    input #find type="search" placeholder="Search this replay" aria-label="Search this replay";
                    span #find-count.muted {}
                    button #share type="button" disabled { "Share quote" }
                    input #share-link type="text" readonly hidden aria-label="Quote link";
                    @if segments.iter().any(|s| s.translation.is_some()) {
                        label.row.show-translations { input #show-translations type="checkbox" checked; "English translations" }
                    }
                }
                @if segments.is_empty() {
                    // Kept up to date by replay.js from status.json; the transcript is shown
                    // as soon as it is ready.
                    p.muted #transcript-status role="status" data-state=(r.state.as_str()) {
                        (status_text(&transcript_status(&state, r).await?))
                    }
                }
                // Otter-style turns: a speaker's consecutive lines under one name and start
                // time; each line keeps its own time (click to play), pick box and index.
                ol #transcript aria-label="Transcript" {
                    @for turn in turns(segments) {
                        @let head = &segments[turn.start];
                        @let k = speaker_index(&head.speaker_id);
                        li.turn data-speaker=(k) {
                            p.turn-head {
                                span class={"who s" (k % 8)} { (head.speaker) }
                                " "
                                a.turn-time href={"?t=" (seconds(head.start_ms))} data-start=(head.start_ms) {
                                    (clock(head.start_ms))
                                }
                            }
                            ol.turn-lines {
                                @for i in turn {
                                    @let s = &segments[i];
                                    li.line #{"line-" (i)} data-i=(i) data-start=(s.start_ms) data-end=(s.end_ms)
                                        data-speaker=(k) {
                                        input.pick type="checkbox" aria-label={"Pick the line at " (clock(s.start_ms)) " for a quote"};
                                        button.time type="button" aria-label={"Play from " (clock(s.start_ms))} { (clock(s.start_ms)) }
                                        span.text lang=[s.language.as_deref()] { (s.text) }
                                        @if let Some(tr) = &s.translation {
                                            span.translation lang=(tr.lang) { span.visually-hidden { "In English: " } (tr.text) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.downloads.card {
                h2 { "Downloads" }
                ul {
                    @if !segments.is_empty() {
                        li { "Transcript: "
                            a href={(base) "/transcript.vtt"} download { "WebVTT" } " · "
                            a href={(base) "/transcript.srt"} download { "SRT" } " · "
                            a href={(base) "/transcript.json"} download { "JSON" } " · "
                            a href={(base) "/transcript.txt"} download { "text" }
                        }
                        @if segments.iter().any(|s| s.translation.is_some()) {
                            li { "In English: "
                                a href={(base) "/transcript.en.vtt"} download { "WebVTT" } " · "
                                a href={(base) "/transcript.en.srt"} download { "SRT" } " · "
                                a href={(base) "/transcript.en.txt"} download { "text" }
                            }
                        }
                    }
                    @if has_mix { li { a href={(base) "/mix.opus"} download { "The mix (Ogg/Opus)" } } }
                    @for t in &my_tracks {
                        li { a href={(base) "/tracks/" (t.id) ".opus"} download { (t.speaker.name) "'s track (Ogg/Opus)" } }
                    }
                }
            }
        }
        script src="/static/replay.js" defer {}
    };
    let preview = Preview {
        site: crate::feed::base_url(&state, accepted.as_deref()),
        recording: r,
        tracks: &v.tracks,
        host: host.as_ref(),
        segments,
        quote,
        has_mix,
    };
    let head = html! {
        @if let Some(h) = &host { (pages::feed_link(h)) }
        (preview.tags())
    };
    Ok(pages::layout_with(&r.title, session.as_ref(), head, body).into_response())
}

/// What a chat app or a social network shows for a shared replay or quote link: Open Graph
/// and Twitter card tags, the quote's words and who said them first.
struct Preview<'a> {
    site: String,
    recording: &'a Recording,
    tracks: &'a [Track],
    host: Option<&'a User>,
    segments: &'a [Segment],
    /// The quote's lines (first and last), when the link is a quote's.
    quote: Option<(usize, usize)>,
    has_mix: bool,
}

impl Preview<'_> {
    fn tags(&self) -> Markup {
        let r = self.recording;
        let page = format!("{}/r/{}", self.site, r.id);
        let (title, description, url) = match self.quote {
            Some((a, b)) => {
                let lines = &self.segments[a..=b];
                let said: Vec<&str> = lines.iter().map(|s| s.text.trim()).collect();
                let who = &lines[0].speaker;
                let at = format!(
                    "{}–{}",
                    clock(lines[0].start_ms),
                    clock(lines[lines.len() - 1].end_ms)
                );
                (
                    format!("“{}” — {who}", shorten(&said.join(" "), 160)),
                    format!("{who} in “{}”, at {at}", r.title),
                    format!("{page}?q={a}-{b}"),
                )
            }
            _ => {
                let names: Vec<&str> = self
                    .tracks
                    .iter()
                    .map(|t| t.speaker.name.as_str())
                    .collect();
                let about = if r.description.trim().is_empty() {
                    let mut d = format!("A replay with {}", pages::names(&names, 4));
                    if let Some(ms) = r.duration_ms {
                        d.push_str(&format!(", {}", pages::length(ms)));
                    }
                    d
                } else {
                    shorten(&r.description, 200)
                };
                (r.title.clone(), about, page)
            }
        };
        html! {
            meta name="description" content=(description);
            meta property="og:site_name" content="roomtape";
            meta property="og:type" content="article";
            meta property="og:title" content=(title);
            meta property="og:description" content=(description);
            meta property="og:url" content=(url);
            link rel="canonical" href=(url);
            @if let Some(h) = self.host {
                meta property="og:image" content={(self.site) (pages::feed_path(h).trim_end_matches(".xml")) ".png"};
                meta property="og:image:alt" content={(h.display_name) "'s replays"};
            }
            @if self.has_mix {
                meta property="og:audio" content={(self.site) "/r/" (r.id) "/mix.mp3"};
                meta property="og:audio:type" content="audio/mpeg";
            }
            meta property="article:published_time" content=(r.started_at.to_rfc3339());
            meta name="twitter:card" content="summary";
            meta name="twitter:title" content=(title);
            meta name="twitter:description" content=(description);
        }
    }
}

/// `text` cut at a word to about `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= max {
        return text;
    }
    let cut: String = text.chars().take(max).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(a, _)| a);
    format!("{}…", cut.trim_end_matches([',', '.', ';', ':']))
}

/// The account that owns a recording, if it still exists.
pub async fn owner_of(state: &AppState, r: &Recording) -> Result<Option<User>, AppError> {
    let Some(id) = r.owner_id else {
        return Ok(None);
    };
    match state.catalog.user(id).await {
        Ok(u) => Ok(Some(u)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `/r/<id>/{mix.opus, mix.mp3, peaks.json, transcript.vtt|srt|json|txt}`
async fn file(
    State(state): State<AppState>,
    session: Option<Session>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let v = viewable(&state, &id, session.as_ref()).await?;
    let r = &v.recording;
    match name.as_str() {
        "mix.opus" => {
            media::serve_file(
                &state,
                &keys::file_key(r.id, keys::MIX_FILE),
                &headers,
                "audio/ogg",
                cache_of(r),
                None,
            )
            .await
        }
        "mix.mp3" => media::serve_mix_mp3(&state, r, &headers, None).await,
        "status.json" => {
            let s = transcript_status(&state, r).await?;
            let mut res = axum::Json(serde_json::json!({
                "state": r.state.as_str(),
                "text": status_text(&s),
                "progress": s.progress,
                "eta_seconds": s.eta_seconds,
            }))
            .into_response();
            res.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(res)
        }
        "peaks.json" => {
            media::serve_file(
                &state,
                &keys::file_key(r.id, keys::PEAKS_FILE),
                &headers,
                "application/json",
                cache_of(r),
                None,
            )
            .await
        }
        _ => {
            // `transcript.vtt`, or `transcript.en.vtt` for the English translation.
            let ext = name
                .strip_prefix("transcript.")
                .ok_or_else(|| AppError::not_found("no such file"))?;
            let (lang, ext) = match ext.strip_prefix("en.") {
                Some(ext) => (export::Lang::English, ext),
                None => (export::Lang::Original, ext),
            };
            let format = ext
                .parse::<Format>()
                .map_err(|_| AppError::not_found("no such file"))?;
            let t = state
                .catalog
                .transcript(r.id)
                .await?
                .ok_or_else(|| AppError::not_found("this recording has no transcript yet"))?;
            Ok(transcript_download(&t, format, lang, &r.id.to_string()))
        }
    }
}

/// Where a recording's transcript stands, for whoever waits for it.
#[derive(Debug)]
struct TranscriptStatus {
    state: RecordingState,
    /// The transcription job's progress, 0–1, while it runs.
    progress: Option<f64>,
    /// What is left, from the pace so far (after the first 5%).
    eta_seconds: Option<u64>,
    error: Option<String>,
}

async fn transcript_status(state: &AppState, r: &Recording) -> Result<TranscriptStatus, AppError> {
    let job = state.catalog.latest_job(r.id).await?;
    let running = job
        .as_ref()
        .filter(|j| j.state == roomtape_core::JobState::Running);
    let progress = running.map(|j| j.progress.clamp(0.0, 1.0));
    let mut eta_seconds = None;
    if let (Some(j), Some(p)) = (running, progress)
        && p >= 0.05
    {
        let runs = state.catalog.job_runs(j.id).await?;
        if let Some((_, _, started, _, _)) = runs.last() {
            let elapsed = (roomtape_core::Timestamp::now().0 - started).max(0) as f64 / 1000.0;
            eta_seconds = Some((elapsed / p * (1.0 - p)).round() as u64);
        }
    }
    Ok(TranscriptStatus {
        state: r.state,
        progress,
        eta_seconds,
        error: job
            .filter(|j| j.state == roomtape_core::JobState::Failed)
            .and(r.error.clone()),
    })
}

fn status_text(s: &TranscriptStatus) -> String {
    match s.state {
        RecordingState::Recording => "Recording now: the transcript follows when it ends.".into(),
        RecordingState::Recorded => {
            "Waiting to be transcribed: this page shows the transcript when it is ready.".into()
        }
        RecordingState::Transcribing => {
            let mut t = String::from("Transcribing");
            if let Some(p) = s.progress {
                t.push_str(&format!(": {:.0}% done", p * 100.0));
            }
            match s.eta_seconds {
                Some(0) => t.push_str(", almost there"),
                Some(e) => t.push_str(&format!(
                    ", about {} left",
                    crate::pages::length(e as i64 * 1000)
                )),
                None => {}
            }
            t.push_str(". This page shows the transcript when it is ready.");
            t
        }
        RecordingState::Transcribed => "No words were heard in this recording.".into(),
        RecordingState::Failed => match &s.error {
            Some(e) => format!("Transcription failed: {e}"),
            None => "Transcription failed.".into(),
        },
    }
}

/// A transcript as a download in `format`.
pub fn transcript_download(
    t: &Transcript,
    format: Format,
    lang: export::Lang,
    stem: &str,
) -> Response {
    let body = export::render_in(t, format, lang);
    let stem = match lang {
        export::Lang::English => format!("{stem}.en"),
        export::Lang::Original => stem.to_string(),
    };
    let mut h = HeaderMap::new();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "inline; filename=\"{stem}.{}\"",
        format.extension()
    )) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    (StatusCode::OK, h, body).into_response()
}

/// `/r/<id>/tracks/<track-id>.opus`: the host's (and admins') and the speaker's own.
async fn track_file(
    State(state): State<AppState>,
    session: Option<Session>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let v = viewable(&state, &id, session.as_ref()).await?;
    let wanted = name.strip_suffix(".opus").unwrap_or("");
    let track = v
        .tracks
        .iter()
        .find(|t| t.id.to_string() == wanted)
        .ok_or_else(|| AppError::not_found("no such track"))?;
    if !v
        .access
        .track(&track.speaker.id, session.as_ref().map(|s| &s.user))
    {
        return Err(AppError::forbidden(
            "only the host and the speaker may download a speaker's own track",
        ));
    }
    let download = format!("{}-{}.opus", v.recording.id, track.speaker.name);
    media::serve_file(
        &state,
        &keys::file_key(v.recording.id, &track.file),
        &headers,
        "audio/ogg",
        Cache::Private,
        Some(&download),
    )
    .await
}

/// A change by the host (or an admin): 404 when the caller may not even view the recording,
/// 403 when they only view it or the CSRF token of a cookie session is wrong. Pages and API.
pub async fn managing(
    state: &AppState,
    id: &str,
    session: &Session,
    csrf: Option<&str>,
) -> Result<Viewable, AppError> {
    let v = viewable(state, id, Some(session)).await?;
    if !v.access.manage {
        return Err(AppError::forbidden(
            "only the recording's owner or an admin may change it",
        ));
    }
    session.check_csrf(csrf)?;
    Ok(v)
}

/// Changes what a recording's owner may change (visibility, title, description); every
/// value is checked before any is written, so a bad one changes nothing. The web form and
/// the API's PATCH both come here.
pub async fn change_details(
    state: &AppState,
    id: RecordingId,
    visibility: Option<Visibility>,
    title: Option<&str>,
    description: Option<&str>,
) -> Result<(), AppError> {
    if let Some(t) = title {
        roomtape_core::clean_text("title", t, 200, false)?;
    }
    if let Some(d) = description {
        roomtape_core::clean_text(
            "description",
            &d.replace("\r\n", "\n"),
            roomtape_core::MAX_DESCRIPTION,
            true,
        )?;
    }
    if let Some(v) = visibility {
        state.catalog.set_visibility(id, v).await?;
    }
    if let Some(t) = title {
        state.catalog.set_recording_title(id, t).await?;
    }
    if let Some(d) = description {
        state.catalog.set_recording_description(id, d).await?;
    }
    Ok(())
}

/// Deletes a recording: its catalog rows (transcript, search hits, jobs go with it) and then
/// its archive. Refused while it is still being recorded.
pub async fn delete(state: &AppState, rec: &Recording) -> Result<(), AppError> {
    if rec.state == RecordingState::Recording {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            "conflict",
            "the recording is still being recorded; stop it first",
        ));
    }
    let id = rec.id;
    state.catalog.delete_recording(id).await?;
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.delete_dir(&id.to_string()))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
    Ok(())
}

#[derive(Deserialize)]
struct DetailsForm {
    _csrf: Option<String>,
    title: String,
    #[serde(default)]
    description: String,
}

async fn set_details(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(f): Form<DetailsForm>,
) -> Result<Redirect, PageError> {
    let v = managing(&state, &id, &session, f._csrf.as_deref()).await?;
    change_details(
        &state,
        v.recording.id,
        None,
        Some(&f.title),
        Some(&f.description),
    )
    .await?;
    Ok(Redirect::to(&format!("/r/{}", v.recording.id)))
}

#[derive(Deserialize)]
struct DeleteForm {
    _csrf: Option<String>,
    /// The "I understand" box: deleting is for good.
    confirm: Option<String>,
}

async fn delete_form(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(f): Form<DeleteForm>,
) -> Result<Redirect, PageError> {
    let v = managing(&state, &id, &session, f._csrf.as_deref()).await?;
    if f.confirm.as_deref() != Some("yes") {
        return Err(AppError::bad_request(
            "not_confirmed",
            "tick the box that says you understand the recording is deleted for good",
        )
        .into());
    }
    delete(&state, &v.recording).await?;
    Ok(Redirect::to("/replays?deleted=1"))
}

#[derive(Deserialize)]
struct VisibilityForm {
    _csrf: Option<String>,
    visibility: String,
}

async fn set_visibility(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(f): Form<VisibilityForm>,
) -> Result<Redirect, PageError> {
    let v = managing(&state, &id, &session, f._csrf.as_deref()).await?;
    let vis: Visibility = f.visibility.parse()?;
    state.catalog.set_visibility(v.recording.id, vis).await?;
    Ok(Redirect::to(&format!("/r/{}", v.recording.id)))
}

#[derive(Deserialize)]
struct NameForm {
    _csrf: Option<String>,
    name: String,
}

async fn rename_speaker(
    State(state): State<AppState>,
    session: Session,
    Path((id, speaker)): Path<(String, String)>,
    Form(f): Form<NameForm>,
) -> Result<Redirect, PageError> {
    let v = managing(&state, &id, &session, f._csrf.as_deref()).await?;
    let speaker: SpeakerId = speaker
        .parse()
        .map_err(|_| AppError::not_found("no such speaker"))?;
    state
        .catalog
        .rename_speaker(v.recording.id, speaker, &f.name)
        .await?;
    Ok(Redirect::to(&format!("/r/{}/edit", v.recording.id)))
}

/// Corrects line `index`: its text, and its English translation when one is given (empty
/// removes it). Both are checked before either is written. The edit page and the API's PATCH
/// both come here.
pub async fn correct(
    state: &AppState,
    id: RecordingId,
    index: i64,
    text: &str,
    translation: Option<&str>,
) -> Result<(), AppError> {
    roomtape_core::clean_text("transcript line", text, 5000, false)?;
    if let Some(t) = translation {
        roomtape_core::clean_text("translation", t, 5000, true)?;
    }
    state.catalog.correct_segment(id, index, text).await?;
    if let Some(t) = translation {
        state.catalog.correct_translation(id, index, t).await?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct LineForm {
    _csrf: Option<String>,
    text: String,
    /// Sent by lines that have an English translation: its corrected text (empty removes it).
    translation: Option<String>,
}

async fn correct_line(
    State(state): State<AppState>,
    session: Session,
    Path((id, index)): Path<(String, String)>,
    Form(f): Form<LineForm>,
) -> Result<Redirect, PageError> {
    let v = managing(&state, &id, &session, f._csrf.as_deref()).await?;
    let index: i64 = index
        .parse()
        .map_err(|_| AppError::not_found("no such line"))?;
    correct(
        &state,
        v.recording.id,
        index,
        &f.text,
        f.translation.as_deref(),
    )
    .await?;
    Ok(Redirect::to(&format!(
        "/r/{}/edit#line-{index}",
        v.recording.id
    )))
}

/// `/r/<id>/edit`: speaker names and transcript lines, one small form each.
async fn edit_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Markup, PageError> {
    let v = viewable(&state, &id, Some(&session)).await?;
    if !v.access.manage {
        return Err(
            AppError::forbidden("only the recording's host (or an admin) may change it").into(),
        );
    }
    let r = &v.recording;
    let t = state.catalog.transcript(r.id).await?;
    let base = format!("/r/{}", r.id);
    Ok(layout(
        &format!("Edit {}", r.title),
        Some(&session),
        html! {
            p { a href=(base) { "← Back to the replay" } }
            h1 { "Edit " (r.title) }
            section.card #details {
                h2 { "Title and description" }
                form method="post" action={(base) "/details"} {
                    input type="hidden" name="_csrf" value=(session.csrf);
                    label { "Title"
                        input type="text" name="title" value=(r.title) maxlength="200" required; }
                    label { "Description " span.muted { "(shown on the replay and in the podcast feed)" }
                        textarea name="description" rows="4" maxlength=(roomtape_core::MAX_DESCRIPTION) { (r.description) } }
                    button type="submit" { "Save" }
                }
            }
            section.card {
                h2 { "Speakers" }
                @for tr in &v.tracks {
                    form.edit-speaker method="post" action={(base) "/speakers/" (tr.speaker.id)} {
                        input type="hidden" name="_csrf" value=(session.csrf);
                        label.row { input type="text" name="name" value=(tr.speaker.name) maxlength="100" required;
                            button type="submit" { "Rename" } }
                    }
                }
            }
            section.card {
                h2 { "Lines" }
                @if let Some(t) = &t {
                    @for (i, s) in t.segments.iter().enumerate() {
                        form.edit-line #{"line-" (i)} method="post" action={(base) "/lines/" (i)} {
                            input type="hidden" name="_csrf" value=(session.csrf);
                            span.muted { (clock(s.start_ms)) " " (s.speaker) }
                            label.row { textarea name="text" rows="2" maxlength="5000" required aria-label={"Line at " (clock(s.start_ms))} { (s.text) }
                                button type="submit" { "Save" } }
                            @if let Some(tr) = &s.translation {
                                label { "In English"
                                    textarea name="translation" rows="2" maxlength="5000" lang=(tr.lang) { (tr.text) } }
                            }
                        }
                    }
                } @else {
                    p.muted { "No transcript yet." }
                }
            }
            section.card.danger #delete {
                h2 { "Delete this recording" }
                @if r.state == RecordingState::Recording {
                    p.muted { "It is still being recorded: stop the recording first." }
                } @else {
                    p { "Its audio, transcript and search hits are deleted for good; links to it stop working." }
                    form method="post" action={(base) "/delete"} {
                        input type="hidden" name="_csrf" value=(session.csrf);
                        label.row { input type="checkbox" name="confirm" value="yes" required;
                            "I understand this cannot be undone" }
                        button.danger type="submit" { "Delete recording" }
                    }
                }
            }
        },
    ))
}
