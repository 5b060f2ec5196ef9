//! The podcast feed of a host, `/feeds/<username>.xml`: RSS 2.0 with the Podcasting 2.0
//! namespace — an enclosure per published public replay's mix, its transcripts
//! (`<podcast:transcript>`, WebVTT and JSON) and speakers (`<podcast:person>`).

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

/// `/feeds/<username>.xml`
pub async fn feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
    accepted: Option<Extension<RequestHost>>,
) -> Result<Response, AppError> {
    let name = file
        .strip_suffix(".xml")
        .ok_or_else(|| AppError::not_found("feeds end in .xml"))?;
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
    let mut x = String::new();
    let _ = write!(
        x,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" xmlns:atom="http://www.w3.org/2005/Atom">
<channel>
<title>{title}</title>
<link>{base}/feeds/{user}.xml</link>
<atom:link href="{base}/feeds/{user}.xml" rel="self" type="application/rss+xml"/>
<description>Replays of rooms hosted by {title} on roomtape</description>
<language>en</language>
<generator>roomtape</generator>
<itunes:author>{title}</itunes:author>
"#,
        title = xml_escape(&host.display_name),
        user = xml_escape(&host.username),
    );
    for r in &recordings {
        let mix = keys::file_key(r.id, keys::MIX_FILE);
        let store = state.store.clone();
        let size = tokio::task::spawn_blocking(move || store.size(&mix))
            .await
            .map_err(AppError::internal)?;
        // A replay whose audio is not built yet has nothing to enclose.
        let Ok(size) = size else { continue };
        let tracks = state.catalog.tracks(r.id).await?;
        let has_transcript = state.catalog.transcript(r.id).await?.is_some();
        let page = format!("{base}/r/{}", r.id);
        let _ = write!(
            x,
            "<item>\n<title>{}</title>\n<link>{page}</link>\n<guid isPermaLink=\"false\">{}</guid>\n<pubDate>{}</pubDate>\n<enclosure url=\"{page}/mix.opus\" length=\"{size}\" type=\"audio/ogg\"/>\n<itunes:duration>{}</itunes:duration>\n",
            xml_escape(&r.title),
            r.id,
            rfc2822(r.started_at.0),
            r.duration_ms.unwrap_or(0) / 1000,
        );
        if has_transcript {
            let _ = write!(
                x,
                "<podcast:transcript url=\"{page}/transcript.vtt\" type=\"text/vtt\"/>\n<podcast:transcript url=\"{page}/transcript.json\" type=\"application/json\"/>\n"
            );
        }
        for t in &tracks {
            let role = if Some(t.speaker.id.to_string()) == r.owner_id.map(|o| o.to_string()) {
                "host"
            } else {
                "guest"
            };
            let _ = writeln!(
                x,
                "<podcast:person role=\"{role}\">{}</podcast:person>",
                xml_escape(&t.speaker.name)
            );
        }
        x.push_str("</item>\n");
    }
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
