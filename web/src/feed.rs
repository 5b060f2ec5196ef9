//! The podcast feed of a host, `/feeds/<username>.xml`: RSS 2.0 with Apple's and the
//! Podcasting 2.0 namespaces — per published public replay, the mix as an MP3 enclosure
//! (what every app plays) with the Ogg/Opus mix beside it (`<podcast:alternateEnclosure>`),
//! episode notes, transcripts (`<podcast:transcript>`: WebVTT, SRT, JSON, and the English
//! WebVTT when lines have translations) and who spoke
//! (`<podcast:person>`: the host as host, the others as guests); the channel has the host's
//! artwork ([`crate::artwork`]), links to their replays and says its language.

use std::fmt::Write as _;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use roomtape_core::{ListViewer, layout as keys};

use crate::host::RequestHost;
use crate::{AppError, AppState};

/// How many replays a feed carries (the newest).
const FEED_ITEMS: u32 = 300;

/// Text for XML content and attribute values: the five special characters escaped and
/// characters XML 1.0 forbids dropped.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The service's absolute base URL: `server.public_url`, else the host the request was
/// accepted for (a loopback name: [`crate::host`] lets no other through), else `localhost`.
pub fn base_url(state: &AppState, host: Option<&RequestHost>) -> String {
    let public = state.config.server.public_url.trim_end_matches('/');
    if !public.is_empty() {
        return public.to_string();
    }
    format!("http://{}", host.map_or("localhost", |h| h.0.as_str()))
}

/// RFC 2822 date, as RSS wants.
fn rfc2822(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_default()
}

/// The channel's one category (Apple's list), until hosts can choose theirs.
const CATEGORY: &str = "Society &amp; Culture";
/// Characters of transcript quoted in an episode's notes when the host wrote none.
const EXCERPT_CHARS: usize = 400;
/// The Podcasting 2.0 namespace for `<podcast:guid>` (a UUIDv5 of the feed's URL).
const PODCAST_GUID_NAMESPACE: uuid::Uuid = uuid::uuid!("ead4c236-bf58-58c6-a2c6-a6b28d128cb6");

/// The feed's language: the one most of the host's replays are in (as set, else as
/// transcribed), else English.
fn channel_language<'a>(langs: impl Iterator<Item = &'a str>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for l in langs.filter(|l| *l != "auto" && !l.is_empty()) {
        match counts.iter_mut().find(|(k, _)| *k == l) {
            Some((_, n)) => *n += 1,
            None => counts.push((l, 1)),
        }
    }
    // The first most frequent: ties go to the newest replay's language.
    let mut best: Option<(&str, usize)> = None;
    for (l, n) in counts {
        if best.is_none_or(|(_, b)| n > b) {
            best = Some((l, n));
        }
    }
    best.map_or("en", |(l, _)| l).to_string()
}

/// What an episode's notes say: the host's description, else who spoke and for how long
/// and how it begins; then where its page and transcript are.
fn episode_notes(
    r: &roomtape_core::Recording,
    host: &str,
    guests: &[&str],
    transcript: Option<&roomtape_core::Transcript>,
    page: &str,
) -> String {
    let mut notes = String::new();
    if r.description.trim().is_empty() {
        notes.push_str(&format!("A room hosted by {host}"));
        if !guests.is_empty() {
            notes.push_str(&format!(
                " with {}",
                crate::pages::names(guests, usize::MAX)
            ));
        }
        notes.push_str(&format!(
            ". {}, recorded {}.",
            crate::pages::length(r.duration_ms.unwrap_or(0)),
            crate::pages::date(r.started_at)
        ));
        if let Some(t) = transcript {
            let mut excerpt = String::new();
            for s in &t.segments {
                if excerpt.chars().count() >= EXCERPT_CHARS {
                    break;
                }
                if !excerpt.is_empty() {
                    excerpt.push(' ');
                }
                excerpt.push_str(s.text.trim());
            }
            if !excerpt.is_empty() {
                let cut: String = excerpt.chars().take(EXCERPT_CHARS).collect();
                let more = if cut.len() < excerpt.len() { "…" } else { "" };
                notes.push_str(&format!("\n\nIt begins: “{}{more}”", cut.trim_end()));
            }
        }
    } else {
        notes.push_str(r.description.trim());
    }
    notes.push_str(&format!("\n\nReplay and transcript: {page}"));
    notes
}

/// One enclosure's file: its URL, size and type.
struct Audio {
    url: String,
    size: u64,
    mime: &'static str,
}

/// `/feeds/<username>.xml`, and the host's artwork `/feeds/<username>.png`.
pub async fn feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
    accepted: Option<Extension<RequestHost>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, AppError> {
    if let Some(name) = file.strip_suffix(".png") {
        return artwork(&state, name, &headers).await;
    }
    let name = file
        .strip_suffix(".xml")
        .ok_or_else(|| AppError::not_found("feeds end in .xml (artwork in .png)"))?;
    let host = state
        .catalog
        .user_by_username(name)
        .await
        .map_err(|_| AppError::not_found("no such host"))?;
    let (recordings, _) = state
        .catalog
        .list_recordings(ListViewer::Anonymous, Some(host.id), None, FEED_ITEMS)
        .await?;
    let base = base_url(&state, accepted.as_deref());
    let title = xml_escape(&host.display_name);
    let feed_url = format!("{base}/feeds/{}.xml", host.username);
    let home = format!(
        "{base}/replays?host={}",
        crate::account::urlencode(&host.username)
    );
    let art = format!(
        "{base}/feeds/{}.png",
        crate::account::urlencode(&host.username)
    );

    let mut items = String::new();
    let mut languages = Vec::new();
    let mut newest = None;
    let mut missing_mp3 = Vec::new();
    for r in &recordings {
        let page = format!("{base}/r/{}", r.id);
        let opus_key = keys::file_key(r.id, keys::MIX_FILE);
        let mp3_key = keys::file_key(r.id, keys::MIX_MP3_FILE);
        let store = state.store.clone();
        let (opus, mp3) = tokio::task::spawn_blocking(move || {
            (store.size(&opus_key).ok(), store.size(&mp3_key).ok())
        })
        .await
        .map_err(AppError::internal)?;
        // A replay whose audio is not built yet has nothing to enclose.
        let Some(opus) = opus else { continue };
        if mp3.is_none() {
            missing_mp3.push(r.id);
        }
        let opus = Audio {
            url: format!("{page}/mix.opus"),
            size: opus,
            mime: "audio/ogg",
        };
        let mp3 = mp3.map(|size| Audio {
            url: format!("{page}/mix.mp3"),
            size,
            mime: "audio/mpeg",
        });
        let tracks = state.catalog.tracks(r.id).await?;
        let transcript = state.catalog.transcript(r.id).await?;
        newest = newest.max(Some(r.started_at.0));
        languages.push(r.language.clone());
        if r.language == "auto"
            && let Some(l) = transcript
                .as_ref()
                .and_then(|t| t.segments.iter().find_map(|s| s.language.clone()))
        {
            languages.push(l);
        }
        // The host hosts the episode whether or not they spoke; everyone else who spoke is
        // a guest, once each.
        let host_speaker = host.id.to_string();
        let mut guests: Vec<&str> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for t in &tracks {
            let sid = t.speaker.id.to_string();
            if sid != host_speaker && seen.insert(sid) {
                guests.push(&t.speaker.name);
            }
        }
        // The host by the name they spoke under here (a renamed speaker keeps the new name),
        // else by their account's.
        let host_name = tracks
            .iter()
            .find(|t| t.speaker.id.to_string() == host_speaker)
            .map_or(host.display_name.as_str(), |t| t.speaker.name.as_str());
        let notes = episode_notes(r, host_name, &guests, transcript.as_ref(), &page);
        let main = mp3.as_ref().unwrap_or(&opus);
        let _ = write!(
            items,
            "<item>\n<title>{t}</title>\n<link>{page}</link>\n<guid isPermaLink=\"false\">{id}</guid>\n<pubDate>{date}</pubDate>\n<description>{notes}</description>\n<itunes:summary>{notes}</itunes:summary>\n<enclosure url=\"{url}\" length=\"{size}\" type=\"{mime}\"/>\n<itunes:duration>{dur}</itunes:duration>\n<itunes:episodeType>full</itunes:episodeType>\n<itunes:explicit>false</itunes:explicit>\n",
            t = xml_escape(&r.title),
            id = r.id,
            date = rfc2822(r.started_at.0),
            notes = xml_escape(&notes),
            url = main.url,
            size = main.size,
            mime = main.mime,
            dur = r.duration_ms.unwrap_or(0) / 1000,
        );
        // Every form of the audio, for apps that choose (Podcasting 2.0).
        let secs = (r.duration_ms.unwrap_or(0) as f64 / 1000.0).max(1.0);
        for (a, default, codecs) in [
            (mp3.as_ref(), true, ""),
            (Some(&opus), mp3.is_none(), "; codecs=opus"),
        ] {
            let Some(a) = a else { continue };
            let _ = write!(
                items,
                "<podcast:alternateEnclosure type=\"{}{codecs}\" length=\"{}\" bitrate=\"{}\"{}>\n<podcast:source uri=\"{}\"/>\n</podcast:alternateEnclosure>\n",
                a.mime,
                a.size,
                (a.size as f64 * 8.0 / secs).round() as u64,
                if default { " default=\"true\"" } else { "" },
                a.url
            );
        }
        if transcript.is_some() {
            let lang = match r.language.as_str() {
                "auto" => String::new(),
                l => format!(" language=\"{}\"", xml_escape(l)),
            };
            let _ = write!(
                items,
                "<podcast:transcript url=\"{page}/transcript.vtt\" type=\"text/vtt\"{lang}/>\n<podcast:transcript url=\"{page}/transcript.srt\" type=\"application/x-subrip\"{lang}/>\n<podcast:transcript url=\"{page}/transcript.json\" type=\"application/json\"{lang}/>\n"
            );
        }
        // Lines in another language have English beside them: that transcript too.
        if transcript
            .as_ref()
            .is_some_and(|t| t.segments.iter().any(|s| s.translation.is_some()))
        {
            let _ = writeln!(
                items,
                "<podcast:transcript url=\"{page}/transcript.en.vtt\" type=\"text/vtt\" language=\"en\"/>"
            );
        }
        let _ = writeln!(
            items,
            "<podcast:person role=\"host\" group=\"cast\">{}</podcast:person>",
            xml_escape(host_name)
        );
        for g in &guests {
            let _ = writeln!(
                items,
                "<podcast:person role=\"guest\" group=\"cast\">{}</podcast:person>",
                xml_escape(g)
            );
        }
        items.push_str("</item>\n");
    }
    if !missing_mp3.is_empty() {
        crate::media::backfill_mp3(&state, missing_mp3);
    }

    let guid = uuid::Uuid::new_v5(
        &PODCAST_GUID_NAMESPACE,
        feed_url
            .split_once("://")
            .map_or(feed_url.as_str(), |(_, rest)| rest)
            .trim_end_matches('/')
            .as_bytes(),
    );
    let language = channel_language(languages.iter().map(String::as_str));
    let mut x = String::new();
    let _ = write!(
        x,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" xmlns:atom="http://www.w3.org/2005/Atom">
<channel>
<title>{title}</title>
<link>{home}</link>
<atom:link href="{feed}" rel="self" type="application/rss+xml"/>
<description>Replays of rooms hosted by {title} on roomtape: every speaker on a track of their own, with a transcript you can search and quote to the second.</description>
<language>{language}</language>
<generator>roomtape</generator>
<lastBuildDate>{built}</lastBuildDate>
<image>
<url>{art}</url>
<title>{title}</title>
<link>{home}</link>
</image>
<itunes:image href="{art}"/>
<podcast:image href="{art}" width="{side}" height="{side}"/>
<itunes:author>{title}</itunes:author>
<itunes:owner>
<itunes:name>{title}</itunes:name>
</itunes:owner>
<itunes:category text="{CATEGORY}"/>
<itunes:explicit>false</itunes:explicit>
<itunes:type>episodic</itunes:type>
<podcast:guid>{guid}</podcast:guid>
<podcast:medium>podcast</podcast:medium>
<podcast:person role="host" group="cast">{title}</podcast:person>
"#,
        home = xml_escape(&home),
        feed = xml_escape(&feed_url),
        art = xml_escape(&art),
        language = xml_escape(&language),
        built = rfc2822(newest.unwrap_or(host.created_at.0)),
        side = crate::artwork::SIDE,
    );
    x.push_str(&items);
    x.push_str("</channel>\n</rss>\n");
    Ok((
        [
            (CONTENT_TYPE, "application/rss+xml; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        x,
    )
        .into_response())
}

/// `/feeds/<username>.png`: the host's artwork (see [`crate::artwork`]).
async fn artwork(
    state: &AppState,
    name: &str,
    headers: &axum::http::HeaderMap,
) -> Result<Response, AppError> {
    let host = state
        .catalog
        .user_by_username(name)
        .await
        .map_err(|_| AppError::not_found("no such host"))?;
    // The picture changes only with the display name: that is its validator.
    let digest = <sha2::Sha256 as sha2::Digest>::digest(
        format!("artwork 1\n{}\n{}", host.username, host.display_name).as_bytes(),
    );
    let tag = format!(
        "\"{}\"",
        digest
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    if headers
        .get(axum::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
    {
        return Ok((
            axum::http::StatusCode::NOT_MODIFIED,
            [(axum::http::header::ETAG, tag)],
        )
            .into_response());
    }
    let (display, seed) = (host.display_name.clone(), host.username.clone());
    let png = tokio::task::spawn_blocking(move || crate::artwork::png(&display, &seed))
        .await
        .map_err(AppError::internal)?;
    Ok((
        [
            (CONTENT_TYPE, "image/png".to_string()),
            (CACHE_CONTROL, "public, max-age=86400".to_string()),
            (axum::http::header::ETAG, tag),
        ],
        png,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_forbidden_characters() {
        assert_eq!(
            xml_escape("<script>\"a\" & 'b'</script>\u{1}\u{7}ok"),
            "&lt;script&gt;&quot;a&quot; &amp; &apos;b&apos;&lt;/script&gt;ok"
        );
    }
}
