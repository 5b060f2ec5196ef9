//! A recording's tracks to one transcript: decode each track at 16 kHz, find speech, pack the
//! speech into windows of up to 30 s, run Whisper on each, map the times back to the track and
//! then to the room, and merge every speaker's lines by time.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use roomtape_core::{
    ArchiveStore, Manifest, Segment, Timestamp, Transcript, TranscriptSpeaker, Word, layout,
};

use crate::engine::{Engine, RawSegment, WindowRequest};
use crate::vad::{self, Region, VadSettings};
use crate::{Error, Result};

/// Whisper's sample rate.
pub const RATE: usize = 16_000;
/// Longest window handed to Whisper (its encoder sees 30 s; a margin keeps the end in view).
pub const MAX_WINDOW: usize = 29 * RATE;
/// Silence put between two stretches of speech in one window, so Whisper hears the pause.
pub const GAP: usize = RATE / 2;

/// One stretch of track audio placed in a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Where it starts in the window (samples).
    pub win: usize,
    /// Where it starts in the track (samples).
    pub track: usize,
    pub len: usize,
}

/// Audio for one Whisper call, and where each part of it came from.
#[derive(Clone, Debug, Default)]
pub struct Window {
    pub audio: Vec<f32>,
    pub pieces: Vec<Piece>,
}

impl Window {
    /// Track sample of window sample `t`. Inside a gap, `prefer_next` picks the start of the
    /// following piece (for a segment start) or else the end of the previous (for an end).
    pub fn to_track(&self, t: usize, prefer_next: bool) -> Option<usize> {
        for (i, p) in self.pieces.iter().enumerate() {
            if t < p.win {
                return if prefer_next {
                    Some(p.track)
                } else {
                    i.checked_sub(1)
                        .map(|j| self.pieces[j].track + self.pieces[j].len)
                };
            }
            if t < p.win + p.len {
                return Some(p.track + (t - p.win));
            }
        }
        if prefer_next {
            None
        } else {
            self.pieces.last().map(|p| p.track + p.len)
        }
    }

    /// The piece holding window sample `t`, or the nearest one.
    pub fn piece_at(&self, t: usize) -> usize {
        let mut best = (usize::MAX, 0);
        for (i, p) in self.pieces.iter().enumerate() {
            let d = if t < p.win {
                p.win - t
            } else if t >= p.win + p.len {
                t + 1 - (p.win + p.len)
            } else {
                0
            };
            if d < best.0 {
                best = (d, i);
            }
        }
        best.1
    }

    /// True when `[t0, t1)` (window samples) touches no speech at all.
    pub fn only_gap(&self, t0: usize, t1: usize) -> bool {
        !self.pieces.iter().any(|p| t0 < p.win + p.len && t1 > p.win)
    }
}

/// Splits speech regions into chunks of at most `MAX_WINDOW`, cutting long ones at their
/// quietest 100 ms between 20 s and the limit.
fn chunks(pcm: &[f32], regions: &[Region]) -> Vec<Region> {
    let mut out = Vec::new();
    for r in regions {
        let mut start = r.start;
        while r.end - start > MAX_WINDOW {
            let step = RATE / 10;
            let lo = start + 20 * RATE;
            let hi = start + MAX_WINDOW - step;
            let mut best = (f32::MAX, hi);
            let mut t = lo;
            while t + step <= hi {
                let e: f32 = pcm[t..t + step].iter().map(|x| x * x).sum();
                if e < best.0 {
                    best = (e, t + step / 2);
                }
                t += step;
            }
            out.push(Region { start, end: best.1 });
            start = best.1;
        }
        out.push(Region { start, end: r.end });
    }
    out
}

/// Packs speech into as few windows as possible, in order.
pub fn pack(pcm: &[f32], regions: &[Region]) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut w = Window::default();
    for c in chunks(pcm, regions) {
        let need = c.len() + if w.audio.is_empty() { 0 } else { GAP };
        if !w.audio.is_empty() && w.audio.len() + need > MAX_WINDOW {
            windows.push(std::mem::take(&mut w));
        }
        if !w.audio.is_empty() {
            w.audio.resize(w.audio.len() + GAP, 0.0);
        }
        w.pieces.push(Piece {
            win: w.audio.len(),
            track: c.start,
            len: c.len(),
        });
        w.audio.extend_from_slice(&pcm[c.start..c.end]);
    }
    if !w.audio.is_empty() {
        windows.push(w);
    }
    windows
}

/// Whisper's stock phrases for silence and noise, and other lines that are not speech.
fn is_non_speech(text: &str) -> bool {
    let t = text.trim();
    if t.is_empty()
        || t.chars()
            .all(|c| c.is_ascii_punctuation() || c.is_whitespace())
    {
        return true;
    }
    let bracketed =
        (t.starts_with('[') && t.ends_with(']')) || (t.starts_with('(') && t.ends_with(')'));
    bracketed || t.starts_with('♪')
}

/// What the pipeline needs to know about the job.
#[derive(Clone, Debug)]
pub struct Job<'a> {
    pub manifest: &'a Manifest,
    /// `auto` or a Whisper language code.
    pub language: &'a str,
    pub vad: VadSettings,
}

/// The speech of one track, ready for Whisper.
#[derive(Debug)]
pub struct PreparedTrack {
    pub index: usize,
    pub windows: Vec<Window>,
    pub speech_samples: usize,
    pub samples: usize,
}

/// Decodes a track at 16 kHz and finds its speech.
pub fn prepare_track(
    store: &dyn ArchiveStore,
    manifest: &Manifest,
    index: usize,
    vad: &VadSettings,
) -> Result<(Vec<f32>, Vec<Region>)> {
    let t = &manifest.tracks[index];
    let key = layout::file_key(manifest.recording_id, &t.file);
    let bytes = store.get(&key)?;
    let what = |e: roomtape_ingest::Error| {
        Error::Invalid(format!("track of {} ({}): {e}", t.speaker_name, t.file))
    };
    let mut reader =
        roomtape_ingest::PcmReader::new(std::io::Cursor::new(bytes), RATE as u32).map_err(what)?;
    let pcm = reader.read_to_end().map_err(what)?;
    if reader.track().truncated() {
        return Err(Error::Invalid(format!(
            "track of {} ({}) is corrupt or truncated: it stops without end-of-stream at {:.1} s",
            t.speaker_name,
            t.file,
            pcm.len() as f64 / RATE as f64
        )));
    }
    let regions = vad::detect(&pcm, RATE as u32, vad);
    Ok((pcm, regions))
}

/// Transcribes a recording. `progress` gets the fraction done after each window and returns
/// false to stop (then the result is [`Error::Cancelled`]).
pub fn transcribe(
    engine: &Engine,
    store: &dyn ArchiveStore,
    job: &Job<'_>,
    abort: &Arc<AtomicBool>,
    progress: &mut dyn FnMut(f64),
) -> Result<Transcript> {
    let m = job.manifest;
    let mut prepared = Vec::new();
    for i in 0..m.tracks.len() {
        let (pcm, regions) = prepare_track(store, m, i, &job.vad)?;
        let windows = pack(&pcm, &regions);
        prepared.push(PreparedTrack {
            index: i,
            speech_samples: regions.iter().map(Region::len).sum(),
            samples: pcm.len(),
            windows,
        });
    }
    let total: usize = prepared.iter().map(|p| p.windows.len()).sum();
    let names: Vec<&str> = m.tracks.iter().map(|t| t.speaker_name.as_str()).collect();
    let prompt = format!(
        "{}. {}.",
        one_line(&m.title),
        names
            .iter()
            .map(|n| one_line(n))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut state = engine.new_state()?;
    let mut segments = Vec::new();
    let mut done = 0;
    progress(0.0);
    for p in &prepared {
        let t = &m.tracks[p.index];
        for w in &p.windows {
            let raw = engine.run(
                &mut state,
                &WindowRequest {
                    audio: &w.audio,
                    language: job.language,
                    prompt: &prompt,
                    abort,
                },
            )?;
            for r in raw {
                for s in place(&r, w, t.offset_ms) {
                    segments.push(Segment {
                        speaker_id: t.speaker_id,
                        speaker: t.speaker_name.clone(),
                        track_id: t.track_id,
                        ..s
                    });
                }
            }
            done += 1;
            progress(done as f64 / total.max(1) as f64);
        }
    }
    // Merge every speaker's lines by time; overlapping speech keeps both speakers' lines.
    segments.sort_by_key(|s| (s.start_ms, s.end_ms));
    Ok(Transcript {
        recording_id: m.recording_id,
        title: m.title.clone(),
        model: engine.name().to_string(),
        created_at: Timestamp::now(),
        speakers: m
            .tracks
            .iter()
            .map(|t| TranscriptSpeaker {
                id: t.speaker_id,
                name: t.speaker_name.clone(),
                track_id: t.track_id,
            })
            .collect(),
        segments,
    })
}

fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

fn ms_to_samples(ms: i64) -> usize {
    (ms.max(0) as usize) * RATE / 1000
}

fn samples_to_ms(s: usize) -> i64 {
    (s * 1000 / RATE) as i64
}

/// Maps a window segment to room time. A segment that runs across the silence between two
/// pieces of speech (Whisper does not know they were apart) is split at that silence using its
/// word timings, so no line ever spans a stretch where its speaker was quiet. Non-speech and
/// segments that lie wholly in a gap are dropped.
fn place(r: &RawSegment, w: &Window, offset_ms: i64) -> Vec<Segment> {
    if is_non_speech(&r.text) {
        return Vec::new();
    }
    let (t0, t1) = (
        ms_to_samples(r.t0_ms),
        ms_to_samples(r.t1_ms).min(w.audio.len()),
    );
    if w.only_gap(t0, t1.max(t0 + 1)) {
        return Vec::new();
    }
    let segment = |text: String, a: usize, b: usize, words: Vec<Word>| Segment {
        speaker_id: Default::default(),
        speaker: String::new(),
        track_id: Default::default(),
        start_ms: offset_ms + samples_to_ms(a),
        end_ms: offset_ms + samples_to_ms(b.max(a)),
        language: r.language.clone(),
        text,
        words,
    };
    if r.words.is_empty() {
        let Some(start) = w.to_track(t0, true) else {
            return Vec::new();
        };
        let end = w.to_track(t1, false).unwrap_or(start);
        return vec![segment(r.text.clone(), start, end, Vec::new())];
    }
    // Group the words by the piece of speech they fall in.
    let mut groups: Vec<(usize, Vec<&crate::RawWord>)> = Vec::new();
    for x in &r.words {
        // Whisper tends to start a word's timing early (at the end of the word before, across a
        // pause), so place a word by its last 200 ms.
        let tail = (x.t1_ms - 200).max(x.t0_ms);
        let piece = w.piece_at(ms_to_samples((tail + x.t1_ms) / 2));
        match groups.last_mut() {
            Some((p, ws)) if *p == piece => ws.push(x),
            _ => groups.push((piece, vec![x])),
        }
    }
    let mut out = Vec::new();
    for (piece, ws) in groups {
        let p = w.pieces[piece];
        // Clamp every time into its piece: the words were spoken there.
        let clamp = |t: usize| t.clamp(p.win, p.win + p.len);
        let map = |t: usize| p.track + (clamp(t) - p.win);
        let words: Vec<Word> = ws
            .iter()
            .map(|x| {
                let a = map(ms_to_samples(x.t0_ms));
                let b = map(ms_to_samples(x.t1_ms)).max(a);
                Word {
                    text: x.text.clone(),
                    start_ms: offset_ms + samples_to_ms(a),
                    end_ms: offset_ms + samples_to_ms(b),
                    p: x.p,
                }
            })
            .collect();
        let text = ws
            .iter()
            .map(|x| x.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        if is_non_speech(&text) {
            continue;
        }
        // The segment's own bounds, where they fall in this piece, are sharper than words'.
        let a = if (p.win..p.win + p.len).contains(&t0) {
            map(t0)
        } else {
            map(ms_to_samples(ws[0].t0_ms))
        };
        let last = ws[ws.len() - 1];
        let b = if (p.win..=p.win + p.len).contains(&t1) {
            map(t1)
        } else {
            map(ms_to_samples(last.t1_ms))
        };
        out.push(segment(text, a, b, words));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_fills_windows_and_maps_times_back() {
        let pcm: Vec<f32> = (0..RATE * 120).map(|i| (i % 100) as f32 / 100.0).collect();
        let regions = [
            Region {
                start: RATE,
                end: RATE * 11,
            },
            Region {
                start: RATE * 20,
                end: RATE * 35,
            },
            Region {
                start: RATE * 50,
                end: RATE * 95,
            },
        ];
        let windows = pack(&pcm, &regions);
        let total: usize = windows.iter().flat_map(|w| &w.pieces).map(|p| p.len).sum();
        assert_eq!(total, RATE * (10 + 15 + 45), "all speech is sent once");
        assert!(windows.iter().all(|w| w.audio.len() <= MAX_WINDOW));
        assert!(windows.len() <= 4, "{} windows", windows.len());
        let w = &windows[0];
        assert_eq!(
            w.pieces[0],
            Piece {
                win: 0,
                track: RATE,
                len: RATE * 10
            }
        );
        assert_eq!(w.to_track(RATE * 2, true), Some(RATE * 3));
        // In the gap after the first piece: a start snaps forward, an end snaps back.
        let gap = RATE * 10 + GAP / 2;
        assert_eq!(w.to_track(gap, true), Some(RATE * 20));
        assert_eq!(w.to_track(gap, false), Some(RATE * 11));
        assert!(w.only_gap(RATE * 10 + 10, RATE * 10 + 20));
        assert!(!w.only_gap(RATE * 9, RATE * 10 + 20));
    }

    #[test]
    fn silence_words_are_not_speech() {
        for t in ["[BLANK_AUDIO]", " (music) ", "...", "♪ la la ♪", ""] {
            assert!(is_non_speech(t), "{t:?}");
        }
        assert!(!is_non_speech("Hello there."));
    }
}
