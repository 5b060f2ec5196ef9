//! The peer the transcription benchmarks measure against, in the same run: faster-whisper
//! (CTranslate2, int8) from the test tools' Python, on the same audio and the same weights (the
//! CTranslate2 model the ggml one was converted from, kept by `scripts/models.sh`), greedy, with
//! word times (as roomtape always computes them), no VAD, the same thread count.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use roomtape_transcribe::pipeline::RATE;

/// The test tools' Python, where `make pytools` installs faster-whisper.
pub const PYTHON: &str = "target/pyenv/bin/python";

/// A word and its start and end in milliseconds.
pub type TimedWord = (String, i64, i64);
/// A segment's text and its timed words.
pub type Segment = (String, Vec<TimedWord>);

/// One track as the peer transcribed it: segments of text and timed words.
pub struct PeerTrack {
    pub segments: Vec<Segment>,
}

impl PeerTrack {
    pub fn text(&self) -> String {
        self.segments
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

pub struct PeerRun {
    /// Seconds spent transcribing (loading excluded, as for roomtape's rows).
    pub secs: f64,
    pub tracks: Vec<PeerTrack>,
    pub version: String,
}

/// The CTranslate2 model behind installed model `name` (a quantised copy, `tiny.en-q8_0`, has
/// its f16 original's), when it and faster-whisper are there.
pub fn model(models_dir: &Path, name: &str) -> Option<PathBuf> {
    let base = name
        .rsplit_once('-')
        .filter(|(_, q)| q.parse::<roomtape_transcribe::quantize::Quant>().is_ok())
        .map_or(name, |(b, _)| b);
    let dir = models_dir.join(format!("{base}.ct2"));
    let ok = dir.join("model.bin").is_file()
        && Command::new(PYTHON)
            .args(["-c", "import faster_whisper"])
            .status()
            .is_ok_and(|s| s.success());
    ok.then_some(dir)
}

const SCRIPT: &str = r#"
import json, sys, time
import ctranslate2, faster_whisper
from faster_whisper import WhisperModel
model_dir, threads, language, files = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
m = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1)
tracks, t0 = [], time.perf_counter()
for f in files:
    segs, _ = m.transcribe(f, language=language, beam_size=1, vad_filter=False, word_timestamps=True)
    tracks.append([[s.text.strip(), [[w.word.strip(), round(w.start * 1000), round(w.end * 1000)]
                                     for w in (s.words or [])]] for s in segs])
secs = time.perf_counter() - t0
print(json.dumps({"secs": secs, "tracks": tracks,
                  "version": f"faster-whisper {faster_whisper.__version__}, CTranslate2 {ctranslate2.__version__}"}))
"#;

/// Runs the peer on each track (16 kHz WAVs written from the same decoded audio).
pub fn run(
    model: &Path,
    tracks: &[Vec<f32>],
    language: &str,
    threads: usize,
    dir: &Path,
) -> anyhow::Result<PeerRun> {
    let mut files = Vec::new();
    for (i, pcm) in tracks.iter().enumerate() {
        let path = dir.join(format!("peer{i}.wav"));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: RATE as u32,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec)?;
        for x in pcm {
            w.write_sample((x.clamp(-1.0, 1.0) * 32767.0) as i16)?;
        }
        w.finalize()?;
        files.push(path);
    }
    let out = Command::new(PYTHON)
        .args(["-c", SCRIPT])
        .arg(model)
        .arg(threads.max(1).to_string())
        .arg(language)
        .args(&files)
        .output()
        .context("running faster-whisper")?;
    if !out.status.success() {
        bail!(
            "faster-whisper failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    #[derive(serde::Deserialize)]
    struct Out {
        secs: f64,
        tracks: Vec<Vec<Segment>>,
        version: String,
    }
    let o: Out = serde_json::from_slice(&out.stdout).context("reading faster-whisper's answer")?;
    Ok(PeerRun {
        secs: o.secs,
        tracks: o
            .tracks
            .into_iter()
            .map(|segments| PeerTrack { segments })
            .collect(),
        version: o.version,
    })
}
