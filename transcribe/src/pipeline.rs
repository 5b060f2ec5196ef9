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

    /// The piece that `[t0, t1)` (window samples) overlaps most, or the nearest to its middle.
    pub fn piece_overlapping(&self, t0: usize, t1: usize) -> usize {
        let overlap = |p: &Piece| (t1.min(p.win + p.len)).saturating_sub(t0.max(p.win));
        match self
            .pieces
            .iter()
            .enumerate()
            .map(|(i, p)| (overlap(p), i))
            .max_by_key(|&(o, i)| (o, std::cmp::Reverse(i)))
        {
            Some((o, i)) if o > 0 => i,
            _ => self.piece_at((t0 + t1) / 2),
        }
    }

    /// Piece `i` as a window of its own.
    pub fn alone(&self, i: usize) -> Window {
        let p = self.pieces[i];
        Window {
            audio: self.audio[p.win..p.win + p.len].to_vec(),
            pieces: vec![Piece { win: 0, ..p }],
        }
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
pub(crate) fn is_non_speech(text: &str) -> bool {
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
    /// Also translate lines said in another language into English (multilingual models).
    pub translate: bool,
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
        let detected;
        let language = if job.language == "auto" && !engine.hparams().english_only() {
            detected = detect_language(engine, &mut state, &p.windows)?;
            detected.as_deref().unwrap_or("auto")
        } else {
            job.language
        };
        for w in &p.windows {
            let raw = engine.run(
                &mut state,
                &WindowRequest {
                    audio: &w.audio,
                    language,
                    prompt: &prompt,
                    abort,
                    translate: false,
                },
            )?;
            tracing::trace!(
                pieces = ?w.pieces.iter().map(|p| (samples_to_ms(p.track), samples_to_ms(p.track + p.len))).collect::<Vec<_>>(),
                raw = ?raw.iter().map(|r| (r.t0_ms, r.t1_ms, r.text.as_str())).collect::<Vec<_>>(),
                "decoded a window"
            );
            let mut lines = place(&raw, w, t.offset_ms);
            // Whisper sometimes ends a window early and leaves its last sentence or two out: a
            // stretch of speech no word landed on is decoded again on its own.
            for i in unheard_pieces(&raw, w) {
                let alone = w.alone(i);
                let again = engine.run(
                    &mut state,
                    &WindowRequest {
                        audio: &alone.audio,
                        language,
                        prompt: &prompt,
                        abort,
                        translate: false,
                    },
                )?;
                tracing::trace!(
                    piece = i,
                    raw = ?again.iter().map(|r| (r.t0_ms, r.t1_ms, r.text.as_str())).collect::<Vec<_>>(),
                    "decoded an unheard piece again"
                );
                lines.extend(place(&again, &alone, t.offset_ms));
            }
            lines.sort_by_key(|l| (l.start_ms, l.end_ms));
            // Said in another language: the same window again with the translate task, its
            // English lines laid over the original ones by time. No prompt: the title and
            // names would pull the decoder back into the original language.
            let spoken = raw
                .iter()
                .find_map(|r| r.language.as_deref())
                .unwrap_or(language);
            if job.translate
                && !engine.hparams().english_only()
                && spoken != "en"
                && !lines.is_empty()
            {
                let english = engine.run(
                    &mut state,
                    &WindowRequest {
                        audio: &w.audio,
                        language,
                        prompt: "",
                        abort,
                        translate: true,
                    },
                )?;
                let english = place(&english, w, t.offset_ms);
                tracing::debug!(
                    spoken,
                    english = ?english.iter().map(|e| (e.text.as_str(), e.words.iter().map(|w| w.p).sum::<f32>() / e.words.len().max(1) as f32)).collect::<Vec<_>>(),
                    "translated a window"
                );
                attach_translations(&mut lines, &english);
            }
            for s in lines {
                segments.push(Segment {
                    speaker_id: t.speaker_id,
                    speaker: t.speaker_name.clone(),
                    track_id: t.track_id,
                    ..s
                });
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

/// Speech shorter than this that got no word is left alone (a cough, a breath the VAD kept).
const UNHEARD_MIN_MS: i64 = 1_000;

/// The pieces of `w` at least [`UNHEARD_MIN_MS`] long on which no word of `raw` landed.
fn unheard_pieces(raw: &[RawSegment], w: &Window) -> Vec<usize> {
    let mut heard = vec![false; w.pieces.len()];
    for r in raw.iter().filter(|r| !is_non_speech(&r.text)) {
        for x in r.words.iter().filter(|x| !is_non_speech(&x.text)) {
            let (t0, t1) = (ms_to_samples(x.t0_ms), ms_to_samples(x.t1_ms));
            heard[w.piece_overlapping(t0.min(t1), t1)] = true;
        }
    }
    (0..w.pieces.len())
        .filter(|&i| !heard[i] && samples_to_ms(w.pieces[i].len) >= UNHEARD_MIN_MS)
        .collect()
}

/// Lays English lines (`english`, from the translate task on the same window) over the original
/// lines: each English line goes to the original line it overlaps most in time (the nearest,
/// if it overlaps none), in order, so a sentence the translation split or joined differently
/// still lands beside the words it renders. An original line no English line lands on keeps
/// no translation.
pub fn attach_translations(lines: &mut [Segment], english: &[Segment]) {
    if lines.is_empty() {
        return;
    }
    // The best line for a span: most overlap, then nearest middle.
    let best = |start: i64, end: i64| {
        let overlap = |l: &Segment| (end.min(l.end_ms) - start.max(l.start_ms)).max(0);
        let distance = |l: &Segment| ((start + end) - (l.start_ms + l.end_ms)).abs();
        (0..lines.len())
            .max_by_key(|&i| (overlap(&lines[i]), std::cmp::Reverse(distance(&lines[i]))))
            .unwrap_or(0)
    };
    // The translate task sometimes writes the original language out again (base on espeak-ng's
    // Indonesian, at a confidence of 0.7): that is no translation.
    let words = |t: &str| -> Vec<String> {
        t.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    let original: std::collections::HashSet<String> =
        lines.iter().flat_map(|l| words(&l.text)).collect();
    let rendered_words: Vec<String> = english.iter().flat_map(|e| words(&e.text)).collect();
    let shared = rendered_words
        .iter()
        .filter(|w| original.contains(*w))
        .count();
    if shared as f64 >= MAX_SHARED_WORDS * rendered_words.len() as f64 && shared > 0 {
        return;
    }
    let kept: Vec<&Segment> = english
        .iter()
        .filter(|e| {
            !e.text.trim().is_empty() && !is_stock_phrase(&e.text) && is_plausible_english(e)
        })
        .collect();
    // Lines are cut at sentence ends, and the translate task renders sentence by sentence:
    // when the English has as many sentences as there are lines, they pair in order (Whisper's
    // segment times in translation often cut a sentence in two).
    let joined = kept
        .iter()
        .map(|e| e.text.trim())
        .collect::<Vec<_>>()
        .join(" ");
    let sentences = sentences(&joined);
    if sentences.len() == lines.len() {
        for (l, t) in lines.iter_mut().zip(sentences) {
            l.translation = Some(roomtape_core::Translation {
                lang: "en".into(),
                text: t,
            });
        }
        return;
    }
    let mut texts: Vec<Vec<String>> = vec![Vec::new(); lines.len()];
    // The whole window rendered: English and original tell the same thing in the same order at
    // about the same length, so each English sentence goes, whole, to the line at the same
    // share of the window's text (where the translate task's own word times often sit a
    // phrase or two off).
    let rendered = kept.len() == english.iter().filter(|e| !e.text.trim().is_empty()).count();
    if rendered {
        let weight = |t: &str| t.chars().filter(|c| !c.is_whitespace()).count().max(1) as f64;
        let total_lines: f64 = lines.iter().map(|l| weight(&l.text)).sum();
        let total_english: f64 = sentences.iter().map(|t| weight(t)).sum();
        let mut ends = Vec::with_capacity(lines.len());
        let mut at = 0.0;
        for l in lines.iter() {
            at += weight(&l.text) / total_lines;
            ends.push(at);
        }
        let mut at = 0.0;
        for t in sentences {
            let w = weight(&t) / total_english;
            let middle = at + w / 2.0;
            at += w;
            let i = ends
                .iter()
                .position(|&e| middle <= e)
                .unwrap_or(lines.len() - 1);
            texts[i].push(t);
        }
    } else {
        attach_by_time(&mut texts, &kept, best);
    }
    for (l, t) in lines.iter_mut().zip(texts) {
        l.translation = (!t.is_empty()).then(|| roomtape_core::Translation {
            lang: "en".into(),
            text: t.join(" "),
        });
    }
}

/// English lines laid over the original ones by the times the translate task gave them (`best`:
/// the original line for a span), word by word where it aligned words.
fn attach_by_time(texts: &mut [Vec<String>], kept: &[&Segment], best: impl Fn(i64, i64) -> usize) {
    for e in kept {
        let text = e.text.trim();
        if e.words.is_empty() {
            texts[best(e.start_ms, e.end_ms)].push(text.to_string());
            continue;
        }
        // Word by word, by where each was aligned: an English line that runs across two
        // original lines is split between them. Words never go back to an earlier line, so
        // the English keeps its order.
        let mut at = 0;
        for w in &e.words {
            at = at.max(best(w.start_ms, w.end_ms));
            texts[at].push(w.text.clone());
        }
    }
}

/// `text` cut after each `.`, `?`, `!` (or `…`) that ends a word, the marks kept.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
        let end = word.trim_end_matches(['"', '\'', ')', '»', '”']);
        // Not after an initial ("J.") or an English abbreviation (the text is English).
        const ABBREVIATIONS: &[&str] = &[
            "mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "e.g.", "i.e.", "etc.",
        ];
        let abbreviation = ABBREVIATIONS.contains(&end.to_lowercase().as_str())
            || end.chars().filter(|c| c.is_alphabetic()).count() == 1;
        if end.ends_with(['.', '?', '!', '…']) && !abbreviation {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The share of a window's English words also found in its original text at which the
/// "translation" is taken as the original written out again (Spanish rendered into English
/// shares names and numbers, well under this).
const MAX_SHARED_WORDS: f64 = 0.4;

/// The mean word confidence below which a translated line is taken as a guess. Measured with
/// base: Spanish lines it renders well score 0.35–0.99; espeak-ng Indonesian, which it cannot
/// render, 0.00–0.12 ("All activities are nationally approved").
const MIN_TRANSLATION_P: f32 = 0.2;

/// A translated line fit to stand beside what was said: confident enough (see
/// [`MIN_TRANSLATION_P`]) and written in the Latin script English is written in (a guess often
/// mixes in Cyrillic or Greek: "посмотреть Hello to yousocial").
fn is_plausible_english(e: &Segment) -> bool {
    let confident = e.words.is_empty()
        || e.words.iter().map(|w| w.p).sum::<f32>() / e.words.len() as f32 >= MIN_TRANSLATION_P;
    let latin = e
        .text
        .chars()
        .filter(|c| c.is_alphabetic())
        .all(|c| c.is_ascii_alphabetic() || ('\u{c0}'..='\u{24f}').contains(&c));
    confident && latin
}

/// The sign-offs Whisper's translate task is known to produce, with high confidence, for speech
/// it cannot render (learned from subtitled videos): never a translation of what was said.
fn is_stock_phrase(text: &str) -> bool {
    let t: String = text
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect();
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    const STOCK: &[&str] = &[
        "thank you for watching",
        "thanks for watching",
        "please subscribe",
        "subscribe to my channel",
        "subscribe to our channel",
        "like and subscribe",
        "see you in the next video",
        "subtitles by",
        "amaraorg",
    ];
    STOCK.iter().any(|p| t.contains(p))
}

/// Speech seconds after which a clear language is taken as settled.
const LANGUAGE_SETTLED_S: f64 = 20.0;
/// Windows looked at, at most, when the language stays unclear.
const LANGUAGE_MAX_WINDOWS: usize = 4;

/// The language of one speaker's track, decided on their speech: Whisper's probabilities for
/// each window, weighted by the speech in it, summed until one language clearly leads over
/// enough speech (or a few windows were heard). A few seconds of noise or a word in another
/// language cannot outvote the rest, as they can when each window decides for itself.
fn detect_language(
    engine: &Engine,
    state: &mut whisper_rs::WhisperState,
    windows: &[Window],
) -> Result<Option<String>> {
    let mut sum: Vec<f64> = Vec::new();
    let mut heard = 0.0;
    for w in windows.iter().take(LANGUAGE_MAX_WINDOWS) {
        let speech = w.pieces.iter().map(|p| p.len).sum::<usize>() as f64 / RATE as f64;
        let probs = engine.language_probabilities(state, &w.audio)?;
        sum.resize(probs.len(), 0.0);
        for (s, p) in sum.iter_mut().zip(&probs) {
            *s += f64::from(*p) * speech;
        }
        heard += speech;
        let (_, best) = leader(&sum);
        if heard >= LANGUAGE_SETTLED_S && best / heard >= 0.8 {
            break;
        }
    }
    if heard == 0.0 {
        return Ok(None);
    }
    let (id, best) = leader(&sum);
    let code = whisper_rs::get_lang_str(id as i32).map(str::to_string);
    tracing::info!(
        language = code.as_deref().unwrap_or("?"),
        p = format!("{:.2}", best / heard),
        speech_s = format!("{heard:.1}"),
        "language detected"
    );
    Ok(code)
}

fn leader(sum: &[f64]) -> (usize, f64) {
    sum.iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0))
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

/// A pause at least this long between two words starts a new line.
const LINE_PAUSE_MS: i64 = 700;
/// Silence at a word's edge this long or longer is not part of the word.
const EDGE_SILENCE_MS: usize = 150;
/// The shortest a word is stamped.
const MIN_WORD_MS: i64 = 40;
/// Frame of the silence measure at word edges.
const FRAME: usize = RATE / 100;

/// Words that end in a full stop but do not end a sentence.
fn is_abbreviation(word: &str) -> bool {
    const ABBREVIATIONS: &[&str] = &[
        "mr.", "mrs.", "ms.", "dr.", "st.", "prof.", "sr.", "jr.", "vs.", "etc.", "e.g.", "i.e.",
        "sra.", "sr.", "dra.", "no.", "p.", "pp.", "u.s.", "a.m.", "p.m.",
    ];
    let w = word.to_lowercase();
    // An initial ("J.") is not a sentence either.
    ABBREVIATIONS.contains(&w.as_str())
        || (w.chars().count() == 2
            && w.ends_with('.')
            && w.chars().next().is_some_and(char::is_alphabetic))
}

fn ends_sentence(word: &str) -> bool {
    let w = word.trim_end_matches(['"', '\'', '”', '’', ')', '»']);
    w.ends_with(['.', '?', '!', '…', '。', '？', '！']) && !is_abbreviation(w)
}

/// Loudness of each 10 ms frame of a window, in dB (digital silence is -120).
fn frame_db(audio: &[f32]) -> Vec<f32> {
    audio
        .chunks(FRAME)
        .map(|c| {
            let e = c.iter().map(|x| x * x).sum::<f32>() / c.len() as f32;
            if e == 0.0 { -120.0 } else { 10.0 * e.log10() }
        })
        .collect()
}

/// The level below which a frame of this window is a pause: a little above the quietest tenth
/// of its speech pieces, and never above a level 30 dB under their loudest frame.
fn pause_level(db: &[f32], w: &Window) -> f32 {
    let mut live: Vec<f32> = w
        .pieces
        .iter()
        .flat_map(|p| db[p.win / FRAME..((p.win + p.len) / FRAME).min(db.len())].iter())
        .copied()
        .filter(|d| *d > -100.0)
        .collect();
    if live.is_empty() {
        return -120.0;
    }
    live.sort_by(f32::total_cmp);
    let floor = live[live.len() / 10];
    let peak = live[live.len() - 1];
    (floor + 8.0).min(peak - 30.0)
}

/// One word in window samples, with the piece of speech it was said in.
#[derive(Clone, Debug)]
struct Placed {
    text: String,
    piece: usize,
    a: usize,
    b: usize,
    p: f32,
}

/// A line longer than this is cut where its words pause most (or at a comma).
const LONG_LINE_MS: i64 = 8_000;
/// Neither part of a cut long line is shorter than this.
const MIN_PART_MS: i64 = 1_500;

/// `ws` (one line's words) cut, while a part is longer than [`LONG_LINE_MS`], between the two
/// words with the longest pause of the part, a comma, semicolon or colon counting as 200 ms more:
/// a sentence the model ran on without its full stop, or a list read out, becomes lines a
/// reader can follow, each starting near where it was said. A part with no place to cut that
/// leaves both sides [`MIN_PART_MS`] long stays whole.
fn split_long(ws: Vec<Placed>) -> Vec<Vec<Placed>> {
    let span = |ws: &[Placed]| samples_to_ms(ws[ws.len() - 1].b.saturating_sub(ws[0].a));
    if ws.len() < 2 || span(&ws) <= LONG_LINE_MS {
        return vec![ws];
    }
    let cut = (1..ws.len())
        .filter(|&k| span(&ws[..k]) >= MIN_PART_MS && span(&ws[k..]) >= MIN_PART_MS)
        .max_by_key(|&k| {
            let pause = samples_to_ms(ws[k].a.saturating_sub(ws[k - 1].b));
            let mark = ws[k - 1]
                .text
                .trim_end()
                .ends_with([',', ';', ':', '、', '，']);
            (pause + if mark { 200 } else { 0 }, std::cmp::Reverse(k))
        });
    match cut {
        Some(k) => {
            let mut ws = ws;
            let rest = ws.split_off(k);
            let mut out = split_long(ws);
            out.extend(split_long(rest));
            out
        }
        None => vec![ws],
    }
}

/// Maps a window's words to the track: each word to the piece of speech it was said in,
/// clamped into it, with silence at its edges left out; then splits them into lines at
/// sentence ends, at pauses and between pieces, so that a line never spans a silence of its
/// speaker and a merged transcript reads in the order people spoke. Non-speech is dropped.
fn place(raw: &[RawSegment], w: &Window, offset_ms: i64) -> Vec<Segment> {
    let db = frame_db(&w.audio);
    let quiet = pause_level(&db, w);
    let silent = |t: usize| db.get(t / FRAME).is_none_or(|d| *d < quiet);
    let min_word = ms_to_samples(MIN_WORD_MS);
    let edge = EDGE_SILENCE_MS * RATE / 1000;
    let mut lines: Vec<(Option<String>, Vec<Placed>)> = Vec::new();
    let mut last_a = 0;
    for r in raw {
        if is_non_speech(&r.text) {
            continue;
        }
        for x in &r.words {
            if is_non_speech(&x.text) {
                continue;
            }
            let (t0, t1) = (ms_to_samples(x.t0_ms), ms_to_samples(x.t1_ms));
            // A word's start is where the word before it ended and its end where the next one
            // begins, either perhaps across a pause: it belongs to the piece it overlaps most.
            let piece = w.piece_overlapping(t0.min(t1), t1);
            let p = w.pieces[piece];
            let (lo, hi) = (p.win, p.win + p.len);
            let mut a = t0.clamp(lo, hi);
            let mut b = t1.clamp(lo, hi);
            // Leave out silence at the edges, when it is a pause and not a closure.
            let span = b - a;
            let run = |from: usize, step: isize| {
                let mut t = from;
                let mut n = 0;
                while n * FRAME < span && silent(t) {
                    n += 1;
                    t = t.saturating_add_signed(step * FRAME as isize);
                }
                n * FRAME
            };
            let lead = run(a, 1);
            if lead >= edge {
                a = (a + lead).min(b);
            }
            let trail = run(b.saturating_sub(1), -1);
            if trail >= edge {
                b = b.saturating_sub(trail).max(a);
            }
            // Words stay in the order they were said, and every word takes some time: widen
            // it within its piece.
            a = a.max(last_a).min(hi);
            b = b.max(a);
            if b < a + min_word {
                b = (a + min_word).min(hi);
                a = b.saturating_sub(min_word).max(lo).max(last_a);
            }
            last_a = a;
            let word = Placed {
                text: x.text.clone(),
                piece,
                a,
                b,
                p: x.p,
            };
            let new_line = match lines.last().and_then(|(_, l)| l.last()) {
                None => true,
                Some(prev) => {
                    prev.piece != piece
                        || ends_sentence(&prev.text)
                        || samples_to_ms(a.saturating_sub(prev.b)) >= LINE_PAUSE_MS
                }
            };
            // Whisper's own segment ends do not break lines: it cuts its segments by length,
            // often mid-sentence; long lines are cut at their pauses below.
            if new_line {
                lines.push((r.language.clone(), vec![word]));
            } else if let Some((_, l)) = lines.last_mut() {
                l.push(word);
            }
        }
    }
    let lines: Vec<_> = lines
        .into_iter()
        .flat_map(|(language, ws)| {
            split_long(ws)
                .into_iter()
                .map(move |ws| (language.clone(), ws))
        })
        .collect();
    let map = |piece: usize, t: usize| {
        let p = w.pieces[piece];
        offset_ms + samples_to_ms(p.track + (t - p.win))
    };
    lines
        .into_iter()
        .filter_map(|(language, ws)| {
            let text = ws
                .iter()
                .map(|x| x.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            if is_non_speech(&text) {
                return None;
            }
            let words: Vec<Word> = ws
                .iter()
                .map(|x| Word {
                    text: x.text.clone(),
                    start_ms: map(x.piece, x.a),
                    end_ms: map(x.piece, x.b).max(map(x.piece, x.a) + 1),
                    p: x.p,
                })
                .collect();
            Some(Segment {
                speaker_id: Default::default(),
                speaker: String::new(),
                track_id: Default::default(),
                start_ms: words[0].start_ms,
                end_ms: words
                    .iter()
                    .map(|x| x.end_ms)
                    .max()
                    .unwrap_or(words[0].end_ms),
                language,
                text,
                words,
                translation: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(start_ms: i64, end_ms: i64, text: &str) -> Segment {
        Segment {
            speaker_id: Default::default(),
            speaker: String::new(),
            track_id: Default::default(),
            start_ms,
            end_ms,
            language: Some("es".into()),
            text: text.into(),
            words: Vec::new(),
            translation: None,
        }
    }

    #[test]
    fn translations_land_beside_the_lines_they_render() {
        let mut lines = vec![
            line(0, 1_400, "Buenos días a todos."),
            line(1_700, 4_200, "Hoy hablamos del puente."),
            line(4_500, 7_900, "La obra empieza en marzo."),
        ];
        let english = [
            // Split differently: two English lines over the second original one.
            line(0, 1_300, "Good morning, everyone."),
            line(1_600, 2_900, "Today we talk"),
            line(2_900, 4_300, "about the bridge."),
            // Stock hallucination: dropped.
            line(4_400, 5_000, "Thank you for watching!"),
            line(5_000, 8_000, "The work starts in March."),
            // Overlapping nothing: the nearest line.
            line(9_000, 9_500, "Really."),
        ];
        attach_translations(&mut lines, &english);
        let got: Vec<Option<&str>> = lines
            .iter()
            .map(|l| l.translation.as_ref().map(|t| t.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                Some("Good morning, everyone."),
                Some("Today we talk about the bridge."),
                Some("The work starts in March. Really."),
            ]
        );
        assert!(
            lines
                .iter()
                .all(|l| l.translation.as_ref().unwrap().lang == "en")
        );
        // As many English sentences as lines: they pair in order, whatever Whisper's segment
        // times say (here they cut the first sentence in two).
        let mut lines = vec![
            line(0, 3_000, "Marque uno para llamar a este número."),
            line(3_500, 5_000, "Por favor presione las primeras."),
        ];
        let english = [
            line(0, 1_000, "Press one"),
            line(
                3_400,
                5_000,
                "to call this number. Please press the first ones.",
            ),
        ];
        attach_translations(&mut lines, &english);
        assert_eq!(
            lines[0].translation.as_ref().unwrap().text,
            "Press one to call this number."
        );
        assert_eq!(
            lines[1].translation.as_ref().unwrap().text,
            "Please press the first ones."
        );
        assert_eq!(
            sentences("Mr. Lee said 3.5 percent. Really?! “Yes.” And"),
            ["Mr. Lee said 3.5 percent.", "Really?!", "“Yes.”", "And"]
        );
        // Nothing to lay over: no translation, never an empty one.
        let mut alone = vec![line(0, 1_000, "Hola.")];
        attach_translations(
            &mut alone,
            &[line(0, 900, "Please subscribe to my channel.")],
        );
        assert_eq!(alone[0].translation, None);
    }

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

    fn word(text: &str, t0_ms: i64, t1_ms: i64) -> crate::RawWord {
        crate::RawWord {
            text: text.into(),
            t0_ms,
            t1_ms,
            p: 0.9,
        }
    }

    fn raw(words: Vec<crate::RawWord>) -> RawSegment {
        RawSegment {
            t0_ms: words[0].t0_ms,
            t1_ms: words[words.len() - 1].t1_ms,
            text: words
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            words,
            no_speech: 0.0,
            language: Some("en".into()),
        }
    }

    /// Two stretches of "speech" (a loud tone) from the track, 2 s and 3 s long, with a
    /// one-second pause inside the second one.
    fn two_pieces() -> Window {
        let loud = |n: usize| (0..n).map(|i| if i % 2 == 0 { 0.3 } else { -0.3 });
        let mut audio: Vec<f32> = loud(2 * RATE).collect();
        audio.resize(audio.len() + GAP, 0.0);
        audio.extend(loud(RATE));
        audio.extend(std::iter::repeat_n(0.0001, RATE));
        audio.extend(loud(RATE));
        Window {
            pieces: vec![
                Piece {
                    win: 0,
                    track: 10 * RATE,
                    len: 2 * RATE,
                },
                Piece {
                    win: 2 * RATE + GAP,
                    track: 20 * RATE,
                    len: 3 * RATE,
                },
            ],
            audio,
        }
    }

    /// One piece of loud "speech", `secs` long, at 5 s of the track.
    fn one_piece(secs: usize) -> Window {
        Window {
            audio: (0..secs * RATE)
                .map(|i| if i % 2 == 0 { 0.3 } else { -0.3 })
                .collect(),
            pieces: vec![Piece {
                win: 0,
                track: 5 * RATE,
                len: secs * RATE,
            }],
        }
    }

    #[test]
    fn a_long_run_on_line_is_cut_where_it_pauses_and_segment_ends_alone_do_not_cut() {
        let w = one_piece(20);
        // A list read out with no full stop, cut by Whisper mid-phrase at 6 s.
        let a = raw(vec![
            word("press", 0, 500),
            word("one", 500, 1000),
            word("to", 1000, 1500),
            word("mute,", 1500, 2500),
            word("four", 2600, 3500),
            word("or", 3500, 4000),
            word("six", 4000, 6000),
        ]);
        let b = raw(vec![
            word("for", 6000, 7000),
            word("the", 7000, 7500),
            // The longest pause of the line (600 ms) comes before "five".
            word("volume", 7500, 7900),
            word("five", 8500, 10_000),
            word("to", 10_000, 10_500),
            word("extend", 10_500, 12_000),
            word("it.", 12_000, 13_000),
        ]);
        let lines = place(&[a, b], &w, 0);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "press one to mute, four or six for the volume",
                "five to extend it."
            ]
        );
        assert!(lines.iter().all(|l| l.end_ms - l.start_ms <= LONG_LINE_MS));
        // Short of LONG_LINE_MS, a segment end is no line end.
        let lines = place(
            &[
                raw(vec![word("we", 0, 500), word("went", 500, 1000)]),
                raw(vec![word("home.", 1000, 1500)]),
            ],
            &w,
            0,
        );
        assert_eq!(lines.len(), 1, "{lines:?}");
    }

    #[test]
    fn a_piece_no_word_landed_on_is_unheard() {
        let w = two_pieces();
        // Every word in the first piece: the second (3 s) was left out.
        let seg = raw(vec![word("Hello", 100, 600), word("there.", 600, 1900)]);
        assert_eq!(unheard_pieces(std::slice::from_ref(&seg), &w), [1]);
        let alone = w.alone(1);
        assert_eq!(alone.audio.len(), 3 * RATE);
        assert_eq!(alone.pieces[0].track, 20 * RATE);
        // A word in each: nothing to do again; nor for a piece shorter than a second.
        let both = raw(vec![word("Hello", 100, 600), word("again.", 2600, 3000)]);
        assert!(unheard_pieces(&[both], &w).is_empty());
        let mut short = two_pieces();
        short.pieces[1].len = RATE / 2;
        assert!(unheard_pieces(&[seg], &short).is_empty());
    }

    #[test]
    fn a_rendered_window_goes_sentence_by_sentence_to_the_line_at_the_same_share_of_its_text() {
        // Four English sentences over three lines, the model's word times a phrase off.
        let mut lines = vec![
            line(0, 1_500, "Buenos días a todos."),
            line(
                1_800,
                5_000,
                "Hoy vamos a hablar del nuevo puente sobre el río,",
            ),
            line(
                5_200,
                12_000,
                "el ayuntamiento aprobó el presupuesto la semana pasada, las obras empiezan en marzo y terminan en otoño.",
            ),
        ];
        let mut english = line(0, 12_000, "");
        let text = "Good morning to all. Today we are going to talk about the new bridge over the river. The council approved the budget last week. The works begin in March and end in autumn.";
        english.text = text.into();
        english.words = text
            .split_whitespace()
            .enumerate()
            .map(|(i, t)| Word {
                text: t.into(),
                start_ms: i as i64 * 250,
                end_ms: i as i64 * 250 + 200,
                p: 0.8,
            })
            .collect();
        attach_translations(&mut lines, &[english]);
        let got: Vec<&str> = lines
            .iter()
            .map(|l| l.translation.as_ref().map_or("", |t| t.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                "Good morning to all.",
                "Today we are going to talk about the new bridge over the river.",
                "The council approved the budget last week. The works begin in March and end in autumn."
            ]
        );
    }

    #[test]
    fn guessed_translations_are_not_kept() {
        let mut lines = vec![
            line(0, 3_000, "Hari ini kita bicara."),
            line(3_000, 6_000, "Kota kami."),
        ];
        let with_p = |start: i64, end: i64, text: &str, p: f32| {
            let mut l = line(start, end, text);
            l.words = text
                .split_whitespace()
                .map(|t| Word {
                    text: t.into(),
                    start_ms: start,
                    end_ms: end,
                    p,
                })
                .collect();
            l
        };
        let english = [
            with_p(0, 3_000, "All activities are nationally approved", 0.03),
            with_p(3_000, 6_000, "посмотреть Hello to you", 0.6),
        ];
        attach_translations(&mut lines, &english);
        assert!(lines.iter().all(|l| l.translation.is_none()), "{lines:?}");
        // The original written out again, confidently: no translation either.
        let english = [with_p(0, 6_000, "Hari ini kita bicara kota kami.", 0.8)];
        attach_translations(&mut lines, &english);
        assert!(lines.iter().all(|l| l.translation.is_none()), "{lines:?}");
        let english = [with_p(0, 3_000, "Today we talk about Señor Núñez.", 0.5)];
        attach_translations(&mut lines, &english);
        assert_eq!(
            lines[0].translation.as_ref().map(|t| t.text.as_str()),
            Some("Today we talk about Señor Núñez.")
        );
    }

    #[test]
    fn lines_split_at_sentence_ends_pauses_and_pieces() {
        let w = two_pieces();
        // One segment for the whole window, as Whisper gives with a prompt.
        let seg = raw(vec![
            word("Mr.", 100, 400),
            word("Smith", 400, 900),
            word("came.", 900, 1500),
            word("He", 1500, 1800),
            // Stamped from the end of the word before, across the gap between pieces.
            word("left", 1800, 2900),
            word("early", 2900, 3500),
            // After a pause inside the second piece.
            word("and", 3500, 4800),
            word("slept.", 4800, 5300),
        ]);
        let lines = place(&[seg], &w, 1000);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["Mr. Smith came.", "He", "left early", "and slept."]);
        for l in &lines {
            for x in &l.words {
                assert!(x.end_ms > x.start_ms, "{x:?} has no length");
                assert!(
                    x.start_ms >= l.start_ms && x.end_ms <= l.end_ms,
                    "{x:?} outside {l:?}"
                );
            }
        }
        // "left" lies in the second piece, which starts at 20 s of the track (+1 s offset):
        // the gap before it is not part of it.
        assert_eq!(lines[2].words[0].start_ms, 21_000);
        // The pause inside the piece is left out of the word after it.
        let and = &lines[3].words[0];
        assert_eq!(and.start_ms, 23_000, "{and:?}");
    }

    #[test]
    fn every_word_takes_time_and_words_keep_their_order() {
        let w = two_pieces();
        let seg = raw(vec![
            word("one", 500, 500),
            word("two", 400, 400),
            word("three", 1990, 1990),
        ]);
        let lines = place(&[seg], &w, 0);
        let words: Vec<&Word> = lines.iter().flat_map(|l| &l.words).collect();
        assert_eq!(words.len(), 3);
        for pair in words.windows(2) {
            assert!(pair[1].start_ms >= pair[0].start_ms, "{pair:?}");
        }
        for x in words {
            assert!(x.end_ms - x.start_ms >= MIN_WORD_MS - 1, "{x:?}");
            assert!(x.end_ms <= 12_000, "{x:?} runs past its piece");
        }
    }

    #[test]
    fn abbreviations_and_initials_do_not_end_sentences() {
        for w in ["Mr.", "Dr.", "J.", "e.g.", "Sra."] {
            assert!(!ends_sentence(w), "{w}");
        }
        for w in ["came.", "why?", "¡ya!", "end.\"", "了。"] {
            assert!(ends_sentence(w), "{w}");
        }
    }

    #[test]
    fn a_word_whose_end_runs_across_a_gap_stays_where_it_was_said() {
        let w = two_pieces();
        // The last word of the first piece, its end stamped just inside the next piece (the
        // alignment moved on only when the next speech began).
        let seg = raw(vec![word("over", 1500, 1900), word("there.", 1900, 2560)]);
        let lines = place(&[seg], &w, 0);
        let there = &lines[0].words[1];
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            there.end_ms <= 12_000,
            "{there:?} was put in the next piece"
        );
    }
}
