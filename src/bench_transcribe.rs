//! `roomtape bench transcribe`: a generated four-speaker room transcribed three ways with the
//! same model and threads — (a) the roomtape pipeline, (b) each whole track through Whisper as
//! a whisper.cpp user would, (c) the bound: exactly the speech, pre-cut and concatenated.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context as _, bail};

use roomtape_core::{LocalStore, layout};
use roomtape_ingest::ImportOptions;
use roomtape_transcribe::metrics::word_errors;
use roomtape_transcribe::pipeline::{self, RATE};
use roomtape_transcribe::vad::VadSettings;
use roomtape_transcribe::{Engine, WindowRequest};

use crate::bench_peer;

const SENTENCES: [&str; 40] = [
    "Good morning everyone, thank you for joining the call today.",
    "The first item on the agenda is the budget for next year.",
    "We spent less on travel this quarter than we expected.",
    "The new office will open in the spring if the weather holds.",
    "Our team finished the design review on Tuesday afternoon.",
    "Customers asked for a simpler way to export their reports.",
    "The train to the city leaves every twenty minutes.",
    "Please send me the numbers before the end of the week.",
    "I think we should hire two more engineers this summer.",
    "The library will stay open late during the exam period.",
    "Sales in the northern region grew by ten percent.",
    "Let us take a short break and come back in five minutes.",
    "The bridge on the main road is closed for repairs.",
    "We need a clear plan before we talk to the press.",
    "The children planted trees along the river last Saturday.",
    "Our website was slow yesterday because of a network problem.",
    "The museum has a new exhibition about the history of the city.",
    "Everyone agreed that the meeting should start earlier.",
    "The report will be ready for the board on Monday.",
    "I would like to thank the volunteers for their hard work.",
    "The price of coffee went up again this month.",
    "We will publish the results of the survey next week.",
    "The hospital opened a new clinic for young families.",
    "It rained all weekend, so the football match was moved.",
    "The school bus now stops at the corner of the park.",
    "Our partners in the south want to visit in October.",
    "The city council voted to build more bicycle lanes.",
    "Remember to save your work before you close the program.",
    "The farmers expect a good harvest after the warm summer.",
    "We received more than a hundred letters from listeners.",
    "The new phone lines will be installed on Thursday.",
    "Please keep your questions short so everyone can speak.",
    "The festival brings thousands of visitors to the town.",
    "Our goal is to answer every email within one day.",
    "The old factory will become a center for young artists.",
    "I will share the slides with everyone after the call.",
    "The airport added three new routes to the islands.",
    "We should test the new system before we switch over.",
    "The story in the morning paper was not quite right.",
    "Thank you all, that is everything for today.",
];
const VOICES: [&str; 4] = ["en-us", "en-us+f4", "en-us+m3", "en-gb"];

fn speak(text: &str, voice: &str, dir: &Path, n: usize) -> anyhow::Result<Vec<f32>> {
    let raw = dir.join(format!("line{n}.wav"));
    let pcm = dir.join(format!("line{n}.f32"));
    let ok = Command::new("espeak-ng")
        .args(["-s", "140", "-v", voice, "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .context("running espeak-ng (apt-get install espeak-ng)")?
        .success()
        && Command::new("sox")
            .args(["-R"])
            .arg(&raw)
            .args([
                "-r",
                "16000",
                "-t",
                "raw",
                "-e",
                "floating-point",
                "-b",
                "32",
            ])
            .arg(&pcm)
            .status()
            .context("running sox (apt-get install sox)")?
            .success();
    if !ok {
        bail!("espeak-ng or sox failed on {text:?}");
    }
    let bytes = std::fs::read(&pcm)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

struct Line {
    speaker: usize,
    start: usize,
    len: usize,
    text: &'static str,
}

pub fn run(models_dir: &Path, model: &str, minutes: f64, threads: usize) -> anyhow::Result<()> {
    let (name, path) = roomtape_transcribe::models::resolve(model, models_dir)?;
    let engine = Engine::load(&path, &name, threads)?;
    let dir = tempfile::tempdir()?;
    let total = (minutes * 60.0 * RATE as f64) as usize;

    // Speakers take turns, so each talks about a quarter of the time.
    let mut tracks = vec![vec![0.0f32; total]; 4];
    let mut lines = Vec::new();
    let mut t = RATE / 2;
    let mut n = 0usize;
    while t < total {
        let speaker = n % 4;
        let text = SENTENCES[(n * 7) % SENTENCES.len()];
        let pcm = speak(text, VOICES[speaker], dir.path(), n)?;
        if t + pcm.len() >= total {
            break;
        }
        tracks[speaker][t..t + pcm.len()].copy_from_slice(&pcm);
        lines.push(Line {
            speaker,
            start: t,
            len: pcm.len(),
            text,
        });
        t += pcm.len() + RATE * (3 + n % 5) / 10;
        n += 1;
    }
    let speech: Vec<f64> = (0..4)
        .map(|s| {
            lines
                .iter()
                .filter(|l| l.speaker == s)
                .map(|l| l.len)
                .sum::<usize>() as f64
                / total as f64
        })
        .collect();

    // The room goes in through the real import: a four-channel file, one track per channel.
    let wav = dir.path().join("room.wav");
    let spec = hound::WavSpec {
        channels: 4,
        sample_rate: RATE as u32,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec)?;
    for i in 0..total {
        for tr in &tracks {
            w.write_sample((tr[i].clamp(-1.0, 1.0) * 32767.0) as i16)?;
        }
    }
    w.finalize()?;
    let store = LocalStore::new(dir.path().join("archives"))?;
    let mut opts = ImportOptions::from_config(&roomtape_core::ImportConfig::default());
    opts.split_channels = true;
    opts.speakers = (1..=4).map(|i| format!("Speaker {i}")).collect();
    let manifest = roomtape_ingest::import_file(&wav, &store, &opts, &mut |_| {})?.release();
    let room_secs = total as f64 / RATE as f64;
    println!(
        "room: 4 speakers x {}, speech {:.0}%/{:.0}%/{:.0}%/{:.0}% of the time (espeak-ng), {} lines; model {}, {} thread(s)",
        crate::commands::format_ms((room_secs * 1000.0) as i64),
        speech[0] * 100.0,
        speech[1] * 100.0,
        speech[2] * 100.0,
        speech[3] * 100.0,
        lines.len(),
        engine.name(),
        engine.threads()
    );

    let reference: Vec<String> = (0..4)
        .map(|s| {
            lines
                .iter()
                .filter(|l| l.speaker == s)
                .map(|l| l.text)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let abort = Arc::new(AtomicBool::new(false));
    let score = |hyp: &[String]| -> f64 {
        let (mut e, mut n) = (0, 0);
        for (r, h) in reference.iter().zip(hyp) {
            let (a, b) = word_errors(r, h);
            e += a;
            n += b;
        }
        e as f64 / n.max(1) as f64
    };

    // (a) The pipeline, exactly as the worker runs it.
    let t0 = Instant::now();
    let transcript = pipeline::transcribe(
        &engine,
        &store,
        &pipeline::Job {
            manifest: &manifest,
            language: "en",
            vad: VadSettings::default(),
            translate: false,
        },
        &abort,
        &mut |_| {},
    )?;
    let a_secs = t0.elapsed().as_secs_f64();
    let a_hyp: Vec<String> = manifest
        .tracks
        .iter()
        .map(|t| {
            transcript
                .segments
                .iter()
                .filter(|s| s.track_id == t.track_id)
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    // Text where the speaker was silent (one second of slack either side).
    let stray = transcript
        .segments
        .iter()
        .filter(|s| {
            let sp = manifest
                .tracks
                .iter()
                .position(|t| t.track_id == s.track_id)
                .unwrap_or(0);
            !lines.iter().any(|l| {
                l.speaker == sp
                    && (s.start_ms as f64)
                        < (l.start + l.len) as f64 * 1000.0 / RATE as f64 + 1000.0
                    && (s.end_ms as f64) > l.start as f64 * 1000.0 / RATE as f64 - 1000.0
            })
        })
        .count();

    // Decoded tracks, for (b) and (c) and the VAD figures.
    let decoded: Vec<Vec<f32>> = manifest
        .tracks
        .iter()
        .map(|t| {
            let bytes = roomtape_core::ArchiveStore::get(
                &store,
                &layout::file_key(manifest.recording_id, &t.file),
            )?;
            Ok(roomtape_ingest::decode_all(&bytes, RATE as u32)?)
        })
        .collect::<anyhow::Result<_>>()?;
    let run = |audio: &[f32]| -> anyhow::Result<String> {
        let mut state = engine.new_state()?;
        let segs = engine.run(
            &mut state,
            &WindowRequest {
                audio,
                language: "en",
                prompt: "",
                abort: &abort,
                translate: false,
            },
        )?;
        Ok(segs
            .into_iter()
            .map(|s| s.text)
            .collect::<Vec<_>>()
            .join(" "))
    };

    // (b) Whole tracks, silence included.
    let t0 = Instant::now();
    let b_hyp: Vec<String> = decoded
        .iter()
        .map(|pcm| run(pcm))
        .collect::<anyhow::Result<_>>()?;
    let b_secs = t0.elapsed().as_secs_f64();

    // (c) Exactly the speech, cut by the script and concatenated.
    let cut: Vec<Vec<f32>> = (0..4)
        .map(|s| {
            lines
                .iter()
                .filter(|l| l.speaker == s)
                .flat_map(|l| {
                    decoded[s]
                        [l.start.min(decoded[s].len())..(l.start + l.len).min(decoded[s].len())]
                        .iter()
                        .copied()
                })
                .collect()
        })
        .collect();
    let t0 = Instant::now();
    for c in &cut {
        run(c)?;
    }
    let c_secs = t0.elapsed().as_secs_f64();

    // How well the VAD found the speech.
    let (mut kept, mut speech_total, mut sent_silence, mut silence_total) =
        (0usize, 0usize, 0usize, 0usize);
    for (s, pcm) in decoded.iter().enumerate() {
        let regions = roomtape_transcribe::vad::detect(pcm, RATE as u32, &VadSettings::default());
        let mut truth = vec![false; pcm.len()];
        for l in lines.iter().filter(|l| l.speaker == s) {
            truth[l.start..(l.start + l.len).min(pcm.len())].fill(true);
        }
        let mut sent = vec![false; pcm.len()];
        for r in &regions {
            sent[r.start..r.end.min(pcm.len())].fill(true);
        }
        for (t, s) in truth.iter().zip(&sent) {
            match (t, s) {
                (true, true) => {
                    kept += 1;
                    speech_total += 1;
                }
                (true, false) => speech_total += 1,
                (false, true) => {
                    sent_silence += 1;
                    silence_total += 1;
                }
                (false, false) => silence_total += 1,
            }
        }
    }

    // (d) The peer: faster-whisper (CTranslate2, int8) on the same tracks, same weights.
    let peer = match bench_peer::model(models_dir, engine.name()) {
        Some(ct2) => Some(bench_peer::run(
            &ct2,
            &decoded,
            "en",
            engine.threads(),
            dir.path(),
        )?),
        None => None,
    };

    let (wa, wb) = (score(&a_hyp), score(&b_hyp));
    println!(
        "  (a) roomtape pipeline (VAD + packed windows)  RTF {:.4}  ({a_secs:.1} s)  WER {:.1}%  segments where nobody spoke: {stray}",
        a_secs / room_secs,
        wa * 100.0
    );
    println!(
        "  (b) whole tracks through Whisper (naive)      RTF {:.4}  ({b_secs:.1} s)  WER {:.1}%",
        b_secs / room_secs,
        wb * 100.0
    );
    println!(
        "  (c) speech only, pre-cut (bound)              RTF {:.4}  ({c_secs:.1} s)",
        c_secs / room_secs
    );
    println!(
        "  a/b = {:.3} ({:.1}x faster than naive)   a/c = {:.3}   VAD kept {:.1}% of speech, sent {:.1}% of silence",
        a_secs / b_secs,
        b_secs / a_secs,
        a_secs / c_secs,
        100.0 * kept as f64 / speech_total.max(1) as f64,
        100.0 * sent_silence as f64 / silence_total.max(1) as f64
    );
    match peer {
        Some(peer) => {
            let (d_secs, version) = (peer.secs, &peer.version);
            let d_hyp: Vec<String> = peer.tracks.iter().map(|t| t.text()).collect();
            let wd = score(&d_hyp);
            println!(
                "  (d) {version}, int8, greedy, word times, no VAD (peer)  RTF {:.4}  ({d_secs:.1} s)  WER {:.1}%",
                d_secs / room_secs,
                wd * 100.0
            );
            println!(
                "  a/d = {:.2} (wall, roomtape over the peer)   WER a/d = {:.2}",
                a_secs / d_secs,
                wa / wd.max(1e-9)
            );
        }
        None => println!(
            "  (d) peer skipped: no CTranslate2 copy of {} at {}/{}.ct2 (scripts/models.sh keeps one) or no faster-whisper in {} (make pytools)",
            engine.name(),
            models_dir.display(),
            engine.name(),
            bench_peer::PYTHON
        ),
    }
    Ok(())
}
