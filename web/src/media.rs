//! Serving archive files (the mix, tracks) over HTTP: byte ranges (RFC 9110 §14), validators
//! and caching headers, so `<audio>` can seek and podcast apps can resume. Bodies are read from
//! the store a piece at a time as the client takes them, whatever the range: a slow client of a
//! twelve-hour mix costs the server the same few hundred KiB as one of a short track.

use std::io::{Read as _, Seek as _, SeekFrom};

use axum::body::{Body, Bytes};
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, IF_NONE_MATCH, IF_RANGE, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use roomtape_core::{OpenFile, ReadFile, RecordingId, layout};
use sha2::{Digest as _, Sha256};

use crate::{AppError, AppState};

/// The most bytes of a file read at once when serving it: what one answer holds in memory
/// besides hyper's write buffer (about 400 KiB at most).
const PIECE: u64 = 64 << 10;

/// Who may cache an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// A published recording: shared caches may keep it.
    Public,
    /// Anything behind access rules: only the browser keeps it.
    Private,
}

impl Cache {
    /// How a recording's files may be cached: by anyone once it is public.
    pub fn of(r: &roomtape_core::Recording) -> Cache {
        if r.visibility == roomtape_core::Visibility::Public {
            Cache::Public
        } else {
            Cache::Private
        }
    }
}

/// A byte range asked for, resolved against the file's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ranged {
    /// No usable Range: the whole file.
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// A bytes range that is malformed or lies past the end: 416.
    Unsatisfiable,
}

/// Reads a `Range` header against a file of `size` bytes. Only one range is served; a list of
/// several is answered with the first (what players ask for).
pub fn parse_range(header: Option<&str>, size: u64) -> Ranged {
    let Some(h) = header else {
        return Ranged::Whole;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        // Another unit: ignore it, as RFC 9110 allows.
        return Ranged::Whole;
    };
    let first = spec.split(',').next().unwrap_or("").trim();
    let Some((a, b)) = first.split_once('-') else {
        return Ranged::Unsatisfiable;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim().is_empty(), b.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(n) if n > 0 && size > 0 => Ranged::Part {
                start: size.saturating_sub(n),
                end: size - 1,
            },
            _ => Ranged::Unsatisfiable,
        },
        // bytes=N-: from N to the end.
        (false, true) => match num(a) {
            Some(start) if start < size => Ranged::Part {
                start,
                end: size - 1,
            },
            _ => Ranged::Unsatisfiable,
        },
        (false, false) => match (num(a), num(b)) {
            (Some(start), Some(end)) if start <= end && start < size => Ranged::Part {
                start,
                end: end.min(size - 1),
            },
            _ => Ranged::Unsatisfiable,
        },
        (true, true) => Ranged::Unsatisfiable,
    }
}

/// A strong validator for an archive file. Finished archive files never change in place (they
/// are replaced whole), so the key and size identify the bytes.
fn etag(key: &str, size: u64) -> String {
    let d = Sha256::digest(format!("{key}\n{size}").as_bytes());
    let hex: String = d.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

fn header(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Answers a GET for archive file `key`: 200 whole, 206 with a range, 304 when the client's
/// copy is current, 416 for a range the file cannot satisfy.
pub async fn serve_file(
    state: &AppState,
    key: &str,
    headers: &HeaderMap,
    content_type: &'static str,
    cache: Cache,
    download_name: Option<&str>,
) -> Result<Response, AppError> {
    let store = state.store.clone();
    let k = key.to_string();
    let OpenFile { size, reader } = tokio::task::spawn_blocking(move || store.open_read(&k))
        .await
        .map_err(AppError::internal)?
        .map_err(|e| {
            if e.is_not_found() {
                AppError::not_found("that audio file is not there (yet)")
            } else {
                AppError::internal(e)
            }
        })?;
    let tag = etag(key, size);
    let mut common = HeaderMap::new();
    common.insert(ETAG, header(&tag));
    common.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    common.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(match cache {
            Cache::Public => "public, max-age=86400",
            Cache::Private => "private, max-age=3600",
        }),
    );
    if let Some(name) = download_name {
        let clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        common.insert(
            CONTENT_DISPOSITION,
            header(&format!("attachment; filename=\"{clean}\"")),
        );
    }
    let matches_tag = |v: &str| v.split(',').any(|t| t.trim() == tag || t.trim() == "*");
    if headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(matches_tag)
    {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    // If-Range: a range only applies to the bytes the client already has.
    let range_ok = headers
        .get(IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == tag);
    let range = if range_ok {
        parse_range(headers.get(RANGE).and_then(|v| v.to_str().ok()), size)
    } else {
        Ranged::Whole
    };
    let (status, start, len) = match range {
        Ranged::Whole => (StatusCode::OK, 0, size),
        Ranged::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Ranged::Unsatisfiable => {
            common.insert(CONTENT_RANGE, header(&format!("bytes */{size}")));
            common.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            let e = AppError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "bad_range",
                format!("the file has {size} bytes; that range is not in it"),
            );
            return Ok((common, e).into_response());
        }
    };
    common.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    common.insert(CONTENT_LENGTH, header(&len.to_string()));
    if status == StatusCode::PARTIAL_CONTENT {
        common.insert(
            CONTENT_RANGE,
            header(&format!("bytes {start}-{}/{size}", start + len - 1)),
        );
    }
    Ok((status, common, file_body(reader, start, len)).into_response())
}

/// One MP3 conversion at a time, whoever asks: converting is CPU work, and a caller asking
/// for many old replays at once must not take more than one core of the server.
static MP3_CONVERSION: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Makes `mix.mp3` from `mix.opus` for a recording whose mix was built before MP3s were made
/// beside it; a no-op when it is there. Errors when there is no Opus mix to convert.
pub async fn ensure_mp3(state: &AppState, id: RecordingId) -> Result<(), AppError> {
    let _one = MP3_CONVERSION.lock().await;
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        if store
            .exists(&layout::file_key(id, layout::MIX_MP3_FILE))
            .unwrap_or(false)
        {
            return Ok(());
        }
        roomtape_ingest::mp3::mp3_from_mix(store.as_ref(), id).map(|_| ())
    })
    .await
    .map_err(AppError::internal)?
    .map_err(|e| match e {
        roomtape_ingest::Error::Core(c) if c.is_not_found() => {
            AppError::not_found("that audio file is not there (yet)")
        }
        e => AppError::internal(e),
    })
}

/// Converts the mixes of `ids` to MP3 in the background, one after another (the feed asks
/// for those it found without one). Only one such run at a time; a run that finds a mix
/// already converted skips it.
pub fn backfill_mp3(state: &AppState, ids: Vec<RecordingId>) {
    static RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if RUNNING.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        for id in ids {
            if let Err(e) = ensure_mp3(&state, id).await {
                tracing::warn!(recording = %id, error = %e.message, "could not make the MP3 mix");
            }
        }
        RUNNING.store(false, std::sync::atomic::Ordering::Release);
    });
}

/// Answers a GET for a recording's `mix.mp3`, converting the Opus mix first when it was
/// built before MP3s were made.
pub async fn serve_mix_mp3(
    state: &AppState,
    r: &roomtape_core::Recording,
    headers: &HeaderMap,
    download_name: Option<&str>,
) -> Result<Response, AppError> {
    ensure_mp3(state, r.id).await?;
    serve_file(
        state,
        &layout::file_key(r.id, layout::MIX_MP3_FILE),
        headers,
        "audio/mpeg",
        Cache::of(r),
        download_name,
    )
    .await
}

/// `len` bytes of an open file from `start`, read a piece at a time as the client takes them:
/// the next piece is read only when hyper asks for it, which it does only when its write
/// buffer has room, so a slow client holds one piece and a socket's worth, not the file.
fn file_body(reader: Box<dyn ReadFile>, start: u64, len: u64) -> Body {
    let pieces = futures_util::stream::try_unfold(
        (reader, start, len),
        |(mut reader, at, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            tokio::task::spawn_blocking(move || {
                let mut buf = vec![0; left.min(PIECE) as usize];
                reader.seek(SeekFrom::Start(at))?;
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    // Shorter than when it was opened: end the answer as broken, not short.
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file got shorter while it was being served",
                    ));
                }
                buf.truncate(n);
                Ok(Some((
                    Bytes::from(buf),
                    (reader, at + n as u64, left - n as u64),
                )))
            })
            .await
            .map_err(std::io::Error::other)?
        },
    );
    Body::from_stream(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = |h: &str| parse_range(Some(h), 1000);
        assert_eq!(parse_range(None, 1000), Ranged::Whole);
        assert_eq!(p("bytes=0-99"), Ranged::Part { start: 0, end: 99 });
        assert_eq!(
            p("bytes=900-"),
            Ranged::Part {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            p("bytes=-100"),
            Ranged::Part {
                start: 900,
                end: 999
            }
        );
        assert_eq!(p("bytes=-5000"), Ranged::Part { start: 0, end: 999 });
        assert_eq!(
            p("bytes=990-5000"),
            Ranged::Part {
                start: 990,
                end: 999
            }
        );
        assert_eq!(p("bytes=0-1, 5-9"), Ranged::Part { start: 0, end: 1 });
        assert_eq!(p("items=0-1"), Ranged::Whole);
        for bad in [
            "bytes=1000-",
            "bytes=5000-6000",
            "bytes=9-1",
            "bytes=abc",
            "bytes=-",
            "bytes=-0",
            "bytes=1-x",
            "bytes=+1-2",
        ] {
            assert_eq!(p(bad), Ranged::Unsatisfiable, "{bad}");
        }
        assert_eq!(parse_range(Some("bytes=0-"), 0), Ranged::Unsatisfiable);
        // Open-ended ranges run to the end: the answer is streamed, whatever its length.
        assert_eq!(
            parse_range(Some("bytes=0-"), 100 << 20),
            Ranged::Part {
                start: 0,
                end: (100 << 20) - 1
            }
        );
    }
}
