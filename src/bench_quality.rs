//! `roomtape bench quality --set DIR`: transcripts of real human speech (the dev set that
//! `scripts/devset.sh` builds) judged against their references, two ways with the same model and
//! threads — the roomtape pipeline as the worker runs it, and the plain model (each whole track
//! through Whisper, no VAD, no prompt, as a whisper.cpp user would).
//!
//! Figures per set and way: word error (normalised: case, punctuation, accents, numbers), the
//! share of recognised words whose start and end both lie within 0.5 s of the reference's
//! (where the set has word times) and of those inside their reference line ±0.5 s, the worst
//! word error in time, zero-length words, the longest line and lines that span more than a
//! second where their speaker was silent, and for conversations the word error of the merged
//! transcript read in start order, and the reference lines it puts out of spoken order.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use roomtape_core::{LocalStore, layout};
use roomtape_ingest::ImportOptions;
use roomtape_transcribe::metrics::{matched_words, timed_words, word_errors, words};
use roomtape_transcribe::pipeline::{self, RATE};
use roomtape_transcribe::vad::VadSettings;
use roomtape_transcribe::{Engine, WindowRequest};

use crate::bench_peer;

#[derive(Debug, Deserialize)]
pub(crate) struct Set {
    pub(crate) name: String,
    pub(crate) language: String,
    #[serde(default)]
    source: String,
    pub(crate) tracks: Vec<SetTrack>,
    pub(crate) lines: Vec<RefLine>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SetTrack {
    pub(crate) speaker: String,
    file: PathBuf,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RefLine {
    pub(crate) track: usize,
    start_ms: i64,
    pub(crate) end_ms: i64,
    pub(crate) text: String,
    #[serde(default)]
    words: Option<Vec<RefWord>>,
}

#[derive(Debug, Deserialize)]
struct RefWord {
    text: String,
    start_ms: i64,
    end_ms: i64,
}

/// A line as one way transcribed it: which track, when, the text and its timed words.
struct HypLine {
    track: usize,
    start_ms: i64,
    end_ms: i64,
    text: String,
    words: Vec<(String, i64, i64)>,
}

/// One scoring word: its normal form, its time, and the reference line it belongs to.
struct Scored {
    word: String,
    start_ms: i64,
    end_ms: i64,
    line: usize,
    timed: bool,
}

#[derive(Default)]
struct Figures {
    words: usize,
    wer: f64,
    matched: usize,
    timed: usize,
    timed_close: usize,
    in_line: usize,
    max_err_ms: i64,
    zero: usize,
    lines: usize,
    longest_ms: i64,
    silent_lines: usize,
    merged_wer: Option<f64>,
    swapped: Option<usize>,
    secs: f64,
}

/// The dev set's sets (directories with a `set.json`), checked, by name.
pub(crate) fn load_sets(set_dir: &Path) -> anyhow::Result<Vec<(PathBuf, Set)>> {
    let mut sets = Vec::new();
    for e in std::fs::read_dir(set_dir).with_context(|| {
        format!(
            "reading the dev set at {} (scripts/devset.sh builds it)",
            set_dir.display()
        )
    })? {
        let dir = e?.path();
        let file = dir.join("set.json");
        if file.is_file() {
            let set: Set = serde_json::from_slice(&std::fs::read(&file)?)
                .with_context(|| format!("{}: not a dev set description", file.display()))?;
            check(&set, &dir)?;
            sets.push((dir, set));
        }
    }
    if sets.is_empty() {
        bail!(
            "{}: no sets (directories with a set.json); scripts/devset.sh DIR builds them",
            set_dir.display()
        );
    }
    sets.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    Ok(sets)
}

/// A set's tracks: 16 kHz mono samples.
pub(crate) fn read_tracks(dir: &Path, set: &Set) -> anyhow::Result<Vec<Vec<i16>>> {
    set.tracks
        .iter()
        .map(|t| {
            let mut r = hound::WavReader::open(dir.join(&t.file))?;
            if r.spec().channels != 1 || r.spec().sample_rate != RATE as u32 {
                bail!("{}: expected 16 kHz mono", t.file.display());
            }
            Ok(r.samples::<i16>().collect::<Result<Vec<_>, _>>()?)
        })
        .collect()
}

pub fn run(models_dir: &Path, model: &str, set_dir: &Path, threads: usize) -> anyhow::Result<()> {
    let sets = load_sets(set_dir)?;
    let (name, path) = roomtape_transcribe::models::resolve(model, models_dir)?;
    let engine = Engine::load(&path, &name, threads)?;
    let peer_model = bench_peer::model(models_dir, engine.name());
    println!(
        "model {}, {} thread(s); {} set(s) from {}",
        engine.name(),
        engine.threads(),
        sets.len(),
        set_dir.display()
    );
    println!(
        "{:<12} {:<8} {:>5} {:>6} {:>8} {:>8} {:>7} {:>4} {:>5} {:>7} {:>6} {:>7} {:>7} {:>6} {:>6}",
        "set",
        "way",
        "words",
        "WER",
        "in 0.5s",
        "in line",
        "max err",
        "zero",
        "lines",
        "longest",
        "silent",
        "merged",
        "swapped",
        "wall",
        "RTF"
    );
    for (dir, set) in &sets {
        if engine.hparams().english_only() && set.language != "en" {
            println!(
                "{:<12} skipped: {} speech needs a multilingual model (--model base)",
                set.name, set.language
            );
            continue;
        }
        let (ours, plain, peer, seconds, translated) =
            measure(&engine, dir, set, peer_model.as_deref())?;
        for (way, f) in [("roomtape", &ours), ("plain", &plain)] {
            print_row(&set.name, way, f, seconds);
        }
        if let Some(p) = &peer {
            print_row(&set.name, "peer", p, seconds);
        }
        let pct = |n: usize, d: usize| 100.0 * n as f64 / d.max(1) as f64;
        println!(
            "  {}: WER roomtape/plain = {:.2}; words within 0.5 s {:.1}% vs {:.1}%; in their line {:.1}% vs {:.1}%; {}",
            set.name,
            ours.wer / plain.wer.max(1e-9),
            pct(ours.timed_close, ours.timed),
            pct(plain.timed_close, plain.timed),
            pct(ours.in_line, ours.matched),
            pct(plain.in_line, plain.matched),
            set.source
        );
        if let Some(t) = &translated {
            println!(
                "  {}: with English translations: {:.2} s (RTF {:.3}) against {:.2} s transcribing alone: the translate pass costs {:.2}x the transcription; {} of {} lines translated",
                set.name,
                t.secs,
                t.secs / seconds.max(1e-9),
                ours.secs,
                (t.secs - ours.secs).max(0.0) / ours.secs.max(1e-9),
                t.translated,
                t.lines
            );
        }
        if let Some(p) = &peer {
            println!(
                "  {}: against the peer: wall roomtape/peer = {:.2}, WER roomtape/peer = {:.2}",
                set.name,
                ours.secs / p.secs.max(1e-9),
                ours.wer / p.wer.max(1e-9)
            );
        }
    }
    match &peer_model {
        Some(_) => println!(
            "peer: faster-whisper (CTranslate2 int8) on the same tracks and weights, greedy, with word times, no VAD, {} thread(s)",
            engine.threads()
        ),
        None => println!(
            "peer: skipped (needs {}.ct2 beside the model, kept by scripts/models.sh, and faster-whisper in {})",
            engine.name(),
            bench_peer::PYTHON
        ),
    }
    Ok(())
}

fn check(set: &Set, dir: &Path) -> anyhow::Result<()> {
    if set.tracks.is_empty() {
        bail!("{}: a set without tracks", dir.display());
    }
    for t in &set.tracks {
        if !dir.join(&t.file).is_file() {
            bail!("{}: track {} is missing", dir.display(), t.file.display());
        }
    }
    if let Some(l) = set.lines.iter().find(|l| l.track >= set.tracks.len()) {
        bail!(
            "{}: line {:?} names track {} of {}",
            dir.display(),
            l.text,
            l.track,
            set.tracks.len()
        );
    }
    Ok(())
}

fn print_row(set: &str, way: &str, f: &Figures, seconds: f64) {
    let pct = |n: usize, d: usize| {
        if d == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", 100.0 * n as f64 / d as f64)
        }
    };
    println!(
        "{:<12} {:<8} {:>5} {:>5.1}% {:>8} {:>8} {:>6.2}s {:>4} {:>5} {:>6.1}s {:>6} {:>7} {:>7} {:>5.1}s {:>6.3}",
        set,
        way,
        f.words,
        f.wer * 100.0,
        pct(f.timed_close, f.timed),
        pct(f.in_line, f.matched),
        f.max_err_ms as f64 / 1000.0,
        f.zero,
        f.lines,
        f.longest_ms as f64 / 1000.0,
        f.silent_lines,
        f.merged_wer
            .map_or("-".into(), |w| format!("{:.1}%", w * 100.0)),
        f.swapped.map_or("-".into(), |n| n.to_string()),
        f.secs,
        f.secs / seconds.max(1e-9)
    );
}

/// The pipeline again with translations on (speech in another language than English).
struct Translated {
    secs: f64,
    translated: usize,
    lines: usize,
}

/// Transcribes one set both ways; returns the figures and the room's length in seconds.
#[allow(clippy::type_complexity)]
/// A room of 16 kHz tracks, one per speaker, through the real import (one track per channel of
/// one WAV) into an archive under `work`.
pub(crate) fn import_room(
    pcm: &[Vec<i16>],
    speakers: &[String],
    work: &Path,
) -> anyhow::Result<(LocalStore, roomtape_core::Manifest)> {
    let len = pcm.iter().map(Vec::len).max().unwrap_or(0);
    let wav = work.join("room.wav");
    let spec = hound::WavSpec {
        channels: pcm.len() as u16,
        sample_rate: RATE as u32,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec)?;
    for i in 0..len {
        for t in pcm {
            w.write_sample(t.get(i).copied().unwrap_or(0))?;
        }
    }
    w.finalize()?;
    let store = LocalStore::new(work.join("archives"))?;
    let mut opts = ImportOptions::from_config(&roomtape_core::ImportConfig::default());
    opts.split_channels = pcm.len() > 1;
    opts.speakers = speakers.to_vec();
    let manifest = roomtape_ingest::import_file(&wav, &store, &opts, &mut |_| {})?.release();
    Ok((store, manifest))
}

/// Ours, the plain model, the peer, the seconds of audio, the translations.
type Measured = (Figures, Figures, Option<Figures>, f64, Option<Translated>);

fn measure(
    engine: &Engine,
    dir: &Path,
    set: &Set,
    peer_model: Option<&Path>,
) -> anyhow::Result<Measured> {
    let work = tempfile::tempdir()?;
    // The room goes in through the real import: one track per channel.
    let pcm = read_tracks(dir, set)?;
    let len = pcm.iter().map(Vec::len).max().unwrap_or(0);
    let speakers: Vec<String> = set.tracks.iter().map(|t| t.speaker.clone()).collect();
    let (store, manifest) = import_room(&pcm, &speakers, work.path())?;
    let seconds = len as f64 / RATE as f64;
    let abort = Arc::new(AtomicBool::new(false));

    // The pipeline, exactly as the worker runs it (translations off, or on).
    let pipeline = |translate: bool| -> anyhow::Result<(roomtape_core::Transcript, f64)> {
        let t0 = Instant::now();
        let t = pipeline::transcribe(
            engine,
            &store,
            &pipeline::Job {
                manifest: &manifest,
                language: &set.language,
                vad: VadSettings::default(),
                translate,
            },
            &abort,
            &mut |_| {},
        )?;
        Ok((t, t0.elapsed().as_secs_f64()))
    };
    let (transcript, ours_secs) = pipeline(false)?;
    let translated = if set.language != "en" && !engine.hparams().english_only() {
        let (t, secs) = pipeline(true)?;
        Some(Translated {
            secs,
            translated: t
                .segments
                .iter()
                .filter(|s| s.translation.is_some())
                .count(),
            lines: t.segments.len(),
        })
    } else {
        None
    };
    let ours: Vec<HypLine> = transcript
        .segments
        .iter()
        .map(|s| HypLine {
            track: manifest
                .tracks
                .iter()
                .position(|t| t.track_id == s.track_id)
                .unwrap_or(0),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            text: s.text.clone(),
            words: s
                .words
                .iter()
                .map(|w| (w.text.clone(), w.start_ms, w.end_ms))
                .collect(),
        })
        .collect();

    // The plain model on each whole track, as decoded from the same archive.
    let mut decoded = Vec::new();
    for t in &manifest.tracks {
        let bytes = roomtape_core::ArchiveStore::get(
            &store,
            &layout::file_key(manifest.recording_id, &t.file),
        )?;
        decoded.push(roomtape_ingest::decode_all(&bytes, RATE as u32)?);
    }
    let t0 = Instant::now();
    let mut plain = Vec::new();
    for (i, (t, audio)) in manifest.tracks.iter().zip(&decoded).enumerate() {
        let mut state = engine.new_state()?;
        for s in engine.run(
            &mut state,
            &WindowRequest {
                audio,
                language: &set.language,
                prompt: "",
                abort: &abort,
                translate: false,
            },
        )? {
            if s.words.is_empty() {
                continue;
            }
            plain.push(HypLine {
                track: i,
                start_ms: t.offset_ms + s.t0_ms,
                end_ms: t.offset_ms + s.t1_ms,
                text: s.text,
                words: s
                    .words
                    .iter()
                    .map(|w| (w.text.clone(), t.offset_ms + w.t0_ms, t.offset_ms + w.t1_ms))
                    .collect(),
            });
        }
    }
    plain.sort_by_key(|l| (l.start_ms, l.end_ms));
    let plain_secs = t0.elapsed().as_secs_f64();

    let peer = match peer_model {
        Some(model) => {
            let run = bench_peer::run(
                model,
                &decoded,
                &set.language,
                engine.threads(),
                work.path(),
            )?;
            let mut lines: Vec<HypLine> = Vec::new();
            for (i, (t, track)) in manifest.tracks.iter().zip(&run.tracks).enumerate() {
                for (text, words) in &track.segments {
                    let (Some(first), Some(last)) = (words.first(), words.last()) else {
                        continue;
                    };
                    lines.push(HypLine {
                        track: i,
                        start_ms: t.offset_ms + first.1,
                        end_ms: t.offset_ms + last.2,
                        text: text.clone(),
                        words: words
                            .iter()
                            .map(|(w, a, b)| (w.clone(), t.offset_ms + a, t.offset_ms + b))
                            .collect(),
                    });
                }
            }
            lines.sort_by_key(|l| (l.start_ms, l.end_ms));
            let mut f = score(set, &lines);
            f.secs = run.secs;
            Some(f)
        }
        None => None,
    };
    for (way, lines) in [("roomtape", &ours), ("plain", &plain)] {
        for l in lines.iter() {
            tracing::debug!(way, start_ms = l.start_ms, end_ms = l.end_ms, text = %l.text, "line");
        }
    }
    let mut a = score(set, &ours);
    a.secs = ours_secs;
    let mut b = score(set, &plain);
    b.secs = plain_secs;
    Ok((a, b, peer, seconds, translated))
}

/// Scoring words of a reference line: its aligned words where it has them, else its text at
/// the line's time.
fn reference_words(set: &Set, track: usize) -> Vec<Scored> {
    let mut out = Vec::new();
    for (i, l) in set
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.track == track)
    {
        match &l.words {
            Some(ws) => {
                for w in ws {
                    out.extend(words(&w.text).into_iter().map(|word| Scored {
                        word,
                        start_ms: w.start_ms,
                        end_ms: w.end_ms,
                        line: i,
                        timed: true,
                    }));
                }
            }
            None => out.extend(words(&l.text).into_iter().map(|word| Scored {
                word,
                start_ms: l.start_ms,
                end_ms: l.end_ms,
                line: i,
                timed: false,
            })),
        }
    }
    out
}

fn hypothesis_words(hyp: &[HypLine], track: usize) -> Vec<Scored> {
    let mut out = Vec::new();
    for (i, l) in hyp.iter().enumerate().filter(|(_, l)| l.track == track) {
        for (text, a, b) in &l.words {
            out.extend(
                timed_words(text, *a, *b)
                    .into_iter()
                    .map(|(word, start_ms, end_ms)| Scored {
                        word,
                        start_ms,
                        end_ms,
                        line: i,
                        timed: true,
                    }),
            );
        }
    }
    out
}

fn score(set: &Set, hyp: &[HypLine]) -> Figures {
    let mut f = Figures {
        lines: hyp.len(),
        ..Default::default()
    };
    let (mut errors, mut total) = (0, 0);
    // Where each reference line's words went: the hypothesis lines holding them.
    let mut placed: Vec<Option<usize>> = vec![None; set.lines.len()];
    for track in 0..set.tracks.len() {
        let r = reference_words(set, track);
        let h = hypothesis_words(hyp, track);
        let rw: Vec<String> = r.iter().map(|s| s.word.clone()).collect();
        let hw: Vec<String> = h.iter().map(|s| s.word.clone()).collect();
        let (e, n) = word_errors(&rw.join(" "), &hw.join(" "));
        errors += e;
        total += n;
        for (i, j) in matched_words(&rw, &hw) {
            let (r, h) = (&r[i], &h[j]);
            f.matched += 1;
            let line = &set.lines[r.line];
            if h.start_ms >= line.start_ms - 500 && h.end_ms <= line.end_ms + 500 {
                f.in_line += 1;
            }
            if r.timed {
                f.timed += 1;
                let err = (h.start_ms - r.start_ms)
                    .abs()
                    .max((h.end_ms - r.end_ms).abs());
                f.max_err_ms = f.max_err_ms.max(err);
                if err <= 500 {
                    f.timed_close += 1;
                }
            }
            placed[r.line].get_or_insert(h.line);
        }
    }
    f.words = total;
    f.wer = errors as f64 / total.max(1) as f64;
    for l in hyp {
        f.zero += l.words.iter().filter(|(_, a, b)| b <= a).count();
        f.longest_ms = f.longest_ms.max(l.end_ms - l.start_ms);
        // The part of the line where its speaker said nothing, by the reference.
        let mut spoken = 0;
        for r in set.lines.iter().filter(|r| r.track == l.track) {
            spoken += (l.end_ms.min(r.end_ms) - l.start_ms.max(r.start_ms)).max(0);
        }
        if l.end_ms - l.start_ms - spoken > 1000 {
            f.silent_lines += 1;
        }
    }
    if set.tracks.len() > 1 {
        let spoken: Vec<&str> = set.lines.iter().map(|l| l.text.as_str()).collect();
        let merged: Vec<&str> = hyp.iter().map(|l| l.text.as_str()).collect();
        let (e, n) = word_errors(&spoken.join(" "), &merged.join(" "));
        f.merged_wer = Some(e as f64 / n.max(1) as f64);
        // Pairs of reference lines by different speakers that the transcript lists the other
        // way round (each by the first of its lines that holds its words).
        let mut swapped = 0;
        for i in 0..set.lines.len() {
            for j in i + 1..set.lines.len() {
                if set.lines[i].track == set.lines[j].track {
                    continue;
                }
                if let (Some(a), Some(b)) = (placed[i], placed[j])
                    && hyp[a].start_ms > hyp[b].start_ms
                    && set.lines[i].start_ms < set.lines[j].start_ms
                {
                    swapped += 1;
                }
            }
        }
        f.swapped = Some(swapped);
    }
    f
}
