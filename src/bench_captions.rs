//! `roomtape bench captions`: K speakers of real human speech (the dev set's tracks) encoded
//! to 20 ms Opus packets and fed at real time, as the SFU hands them on, through the live
//! captioner with one shared model. For each K: the lag from the end of a word's audio to its
//! final caption and to the first partial that showed it, the captions' word error against the
//! references beside the offline transcript's (the worker's pipeline on the same audio), the
//! captioner's CPU, and whether it had to slow down or pause.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use roomtape_transcribe::Engine;
use roomtape_transcribe::captions::{CaptionKind, CaptionSettings, Captioner, Word, norm};
use roomtape_transcribe::metrics::{wer, words};
use roomtape_transcribe::pipeline::{self, RATE};
use roomtape_transcribe::vad::VadSettings;

use crate::bench_quality::{import_room, load_sets, read_tracks};

/// One speaker's audio and what was said on it.
struct Track {
    name: String,
    pcm: Vec<i16>,
    reference: String,
}

/// Every English track of the dev set, longest sets first, cut to `seconds`.
fn tracks(set_dir: &Path, seconds: f64) -> anyhow::Result<Vec<Track>> {
    let cut_ms = (seconds * 1000.0) as i64;
    let mut out = Vec::new();
    for (dir, set) in load_sets(set_dir)? {
        if set.language != "en" {
            continue;
        }
        for (i, pcm) in read_tracks(&dir, &set)?.into_iter().enumerate() {
            let reference = set
                .lines
                .iter()
                .filter(|l| l.track == i && l.end_ms <= cut_ms)
                .map(|l| l.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let n = pcm.len().min(cut_ms as usize * RATE / 1000);
            out.push(Track {
                name: format!("{}/{}", set.name, set.tracks[i].speaker),
                pcm: pcm[..n].to_vec(),
                reference,
            });
        }
    }
    if out.is_empty() {
        bail!("no English tracks in {}: make devset", set_dir.display());
    }
    Ok(out)
}

/// A caption as the bench saw it: when, whose, what.
struct Seen {
    at: Instant,
    speaker: usize,
    kind: CaptionKind,
    words: Vec<Word>,
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((q * v.len() as f64) as usize).min(v.len() - 1)]
}

/// The offline transcript of the same tracks (the worker's pipeline), one text per track.
fn offline(engine: &Engine, room: &[&Track]) -> anyhow::Result<Vec<String>> {
    let work = tempfile::tempdir()?;
    let pcm: Vec<Vec<i16>> = room.iter().map(|t| t.pcm.clone()).collect();
    let names: Vec<String> = (0..room.len()).map(|i| format!("Speaker {i}")).collect();
    let (store, manifest) = import_room(&pcm, &names, work.path())?;
    let t = pipeline::transcribe(
        engine,
        &store,
        &pipeline::Job {
            manifest: &manifest,
            language: "en",
            vad: VadSettings::default(),
            translate: false,
        },
        &Arc::new(AtomicBool::new(false)),
        &mut |_| {},
    )?;
    Ok(names
        .iter()
        .map(|n| {
            t.segments
                .iter()
                .filter(|s| &s.speaker == n)
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect())
}

pub fn run(
    models_dir: &Path,
    model: &str,
    set_dir: &Path,
    speakers: &[usize],
    seconds: f64,
    threads: usize,
    step_ms: u32,
) -> anyhow::Result<()> {
    let (name, path) = roomtape_transcribe::models::resolve(model, models_dir)?;
    let engine = Arc::new(Engine::load(&path, &name, threads)?);
    let all = tracks(set_dir, seconds)?;
    println!(
        "model {}, {} thread(s); real human speech from {} (English tracks, at most {seconds} s \
         each), 20 ms Opus packets fed at real time",
        engine.name(),
        engine.threads(),
        set_dir.display()
    );
    println!(
        "{:>2} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>8} {:>6} {:>8} {:>9}",
        "K",
        "final p50",
        "final p95",
        "final p99",
        "partial p50",
        "WER capt",
        "WER offl",
        "capt/offl",
        "CPU",
        "step ms",
        "degraded"
    );
    for &k in speakers {
        let room: Vec<&Track> = (0..k).map(|i| &all[i % all.len()]).collect();
        let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
        let s2 = seen.clone();
        let captioner = Captioner::start(
            engine.clone(),
            CaptionSettings {
                threads: engine.threads(),
                step_ms,
                ..Default::default()
            },
            Box::new(move |speaker: &usize, c| {
                if let Ok(mut v) = s2.lock() {
                    v.push(Seen {
                        at: Instant::now(),
                        speaker: *speaker,
                        kind: c.kind,
                        words: c.words,
                    });
                }
            }),
        );
        // Encode every track to 20 ms packets first, as the speakers' browsers would have.
        let packets: Vec<Vec<Vec<u8>>> = room
            .iter()
            .map(|t| encode(&t.pcm))
            .collect::<anyhow::Result<_>>()?;
        let origin = Instant::now();
        for i in 0..k {
            captioner.open(i, origin);
        }
        let cpu0 = cpu_time::ProcessTime::now();
        let longest = packets.iter().map(Vec::len).max().unwrap_or(0);
        for n in 0..longest {
            let due = origin + Duration::from_millis(20 * n as u64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            for (i, p) in packets.iter().enumerate() {
                if let Some(packet) = p.get(n) {
                    captioner.packet(i, packet.clone(), (n * 960) as u32, Instant::now());
                }
            }
        }
        // The last words' finals come with the pause after them: send silence for it.
        let quiet = encode(&vec![0i16; RATE * 2])?;
        for (j, packet) in quiet.iter().enumerate() {
            std::thread::sleep(Duration::from_millis(20));
            for i in 0..k {
                captioner.packet(
                    i,
                    packet.clone(),
                    ((longest + j) * 960) as u32,
                    Instant::now(),
                );
            }
        }
        std::thread::sleep(Duration::from_secs(3));
        let cpu = cpu0.elapsed().as_secs_f64();
        let wall = origin.elapsed().as_secs_f64();
        let stats = captioner.stats();
        drop(captioner);
        let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;

        let mut final_lag = Vec::new();
        let mut partial_lag = Vec::new();
        let mut captioned = vec![String::new(); k];
        for f in seen.iter().filter(|s| s.kind == CaptionKind::Final) {
            for w in &f.words {
                let end = origin + Duration::from_millis(w.end_ms.max(0) as u64);
                final_lag.push(f.at.saturating_duration_since(end).as_secs_f64());
                // The first partial of the same speaker that showed this word.
                let first = seen
                    .iter()
                    .filter(|p| {
                        p.speaker == f.speaker
                            && p.at <= f.at
                            && (p.kind == CaptionKind::Partial || std::ptr::eq(*p, f))
                    })
                    .find(|p| {
                        p.words.iter().any(|x| {
                            norm(&x.text) == norm(&w.text) && (x.start_ms - w.start_ms).abs() < 600
                        })
                    })
                    .map_or(f.at, |p| p.at);
                partial_lag.push(first.saturating_duration_since(end).as_secs_f64());
                let t = &mut captioned[f.speaker];
                t.push(' ');
                t.push_str(&w.text);
            }
        }
        let offline = offline(&engine, &room)?;
        let reference: String = room
            .iter()
            .map(|t| t.reference.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        if std::env::var_os("ROOMTAPE_BENCH_SHOW").is_some() {
            println!(
                "reference: {reference}\ncaptions:  {}\noffline:   {}",
                captioned.join(" "),
                offline.join(" ")
            );
        }
        let capt = wer(&reference, &captioned.join(" "));
        let offl = wer(&reference, &offline.join(" "));
        let against_offline = wer(&offline.join(" "), &captioned.join(" "));
        println!(
            "{k:>2} {:>8.2}s {:>8.2}s {:>8.2}s {:>10.2}s {:>8.1}% {:>8.1}% {:>8.1}% {:>5.0}% {:>8} {:>9}",
            quantile(&mut final_lag, 0.50),
            quantile(&mut final_lag, 0.95),
            quantile(&mut final_lag, 0.99),
            quantile(&mut partial_lag, 0.50),
            capt * 100.0,
            offl * 100.0,
            against_offline * 100.0,
            100.0 * cpu / wall,
            stats.step_ms,
            if stats.pauses > 0 {
                format!("paused {}x", stats.pauses)
            } else if stats.step_ms > step_ms {
                "slower".to_string()
            } else {
                "no".to_string()
            }
        );
        let n_words: usize = room.iter().map(|t| words(&t.reference).len()).sum();
        println!(
            "   {} final words of {n_words} said; {} decodes, {:.1} s decoding; {} packets dropped; \
             tracks: {}",
            final_lag.len(),
            stats.decodes,
            stats.decode_secs,
            stats.dropped,
            room.iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!(
        "lag: from the end of a word's audio (its time in the caption) to the caption that made \
         it final / first showed it; WER against the dev set's references (capt/offl: the captions \
         against the offline transcript); CPU: this process, share of one core"
    );
    Ok(())
}

/// 16 kHz samples as 20 ms Opus packets (VoIP, 24 kbit/s), as a browser sends them.
fn encode(pcm: &[i16]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut enc = opus::Encoder::new(RATE as u32, opus::Channels::Mono, opus::Application::Voip)
        .context("an Opus encoder")?;
    enc.set_bitrate(opus::Bitrate::Bits(24_000))?;
    let frame = RATE / 50;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1500];
    for chunk in pcm.chunks(frame) {
        let mut f = chunk.to_vec();
        f.resize(frame, 0);
        let n = enc.encode(&f, &mut buf)?;
        out.push(buf[..n].to_vec());
    }
    Ok(out)
}
