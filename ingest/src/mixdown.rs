//! The replay mix (`mix.opus`: every track decoded, aligned by its offset, summed through a
//! limiter, encoded once; `mix.mp3`, the same samples for players without Opus) and the
//! waveform peaks (`peaks.json`), made in one streaming pass.

use serde::{Deserialize, Serialize};

use roomtape_core::{ArchiveStore, Manifest, TrackId, layout};

use crate::decode::PcmReader;
use crate::encode::OpusTrackEncoder;
use crate::mp3::Mp3Writer;
use crate::{Error, Result};

/// Peak values per second in `peaks.json`.
pub const PEAKS_PER_SECOND: u32 = 10;
const FRAME: usize = 960;
const PEAK_WINDOW: usize = 48_000 / PEAKS_PER_SECOND as usize;

/// `peaks.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Peaks {
    /// Values per second.
    pub rate: u32,
    /// Peaks of the mix, from the recording's start.
    pub mix: Vec<u8>,
    pub tracks: Vec<TrackPeaks>,
}

/// One track's peaks: each value is the largest absolute sample in its window, 0–255 for
/// 0.0–1.0 on a square-root scale (quiet speech stays visible).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrackPeaks {
    pub track_id: TrackId,
    pub offset_ms: i64,
    pub peaks: Vec<u8>,
}

fn peak_byte(p: f32) -> u8 {
    (p.clamp(0.0, 1.0).sqrt() * 255.0).round() as u8
}

/// A peak limiter: instant attack, ~150 ms release, ceiling at −0.5 dBFS.
#[derive(Debug)]
struct Limiter {
    gain: f32,
    release: f32,
}

impl Limiter {
    const CEILING: f32 = 0.944;

    fn new() -> Self {
        Limiter {
            gain: 1.0,
            release: 1.0 / (0.150 * 48_000.0),
        }
    }

    fn process(&mut self, x: f32) -> f32 {
        let a = x.abs();
        if a * self.gain > Self::CEILING {
            self.gain = Self::CEILING / a;
        } else {
            self.gain = (self.gain + self.release).min(1.0);
        }
        x * self.gain
    }
}

/// Builds `mix.opus`, `mix.mp3` and `peaks.json` for a finished manifest and stores them.
pub fn build_mix_and_peaks(
    store: &dyn ArchiveStore,
    manifest: &Manifest,
    bitrate: i32,
) -> Result<Peaks> {
    let id = manifest.recording_id;
    let total = (manifest.duration_ms().max(0) as u64 * 48) as usize;
    struct Input {
        reader: PcmReader<std::io::Cursor<Vec<u8>>>,
        offset: usize,
        peaks: Vec<u8>,
        window_max: f32,
        window_len: usize,
        id: TrackId,
        offset_ms: i64,
    }
    let mut inputs = Vec::new();
    for t in &manifest.tracks {
        let bytes = store.get(&layout::file_key(id, &t.file))?;
        let reader = PcmReader::new(std::io::Cursor::new(bytes), 48_000).map_err(|e| {
            Error::Decode(format!("track {} ({}): {e}", t.track_id, t.speaker_name))
        })?;
        inputs.push(Input {
            reader,
            offset: (t.offset_ms.max(0) as usize) * 48,
            peaks: Vec::new(),
            window_max: 0.0,
            window_len: 0,
            id: t.track_id,
            offset_ms: t.offset_ms,
        });
    }
    let mix_key = layout::file_key(id, layout::MIX_FILE);
    // Write to a temporary key, then swap in, so a crash never leaves half a mix.
    let tmp_key = format!("{mix_key}.partial");
    store.delete(&tmp_key)?;
    let mut enc = OpusTrackEncoder::new(
        store,
        &tmp_key,
        bitrate,
        opus::Application::Audio,
        vec![("TITLE".into(), manifest.title.clone())],
    )?;
    let mut mp3 = Mp3Writer::new()?;
    let mut limiter = Limiter::new();
    let mut mix = vec![0.0f32; FRAME];
    let mut buf = vec![0.0f32; FRAME];
    let mut mix_peaks = Vec::with_capacity(total / PEAK_WINDOW + 1);
    let (mut mix_max, mut mix_len) = (0.0f32, 0usize);
    let mut t = 0usize;
    while t < total {
        let n = FRAME.min(total - t);
        mix[..n].fill(0.0);
        for input in &mut inputs {
            if input.offset >= t + n {
                continue;
            }
            let skip = input.offset.saturating_sub(t);
            let want = n - skip;
            let got = input.reader.read(&mut buf[..want])?;
            for i in 0..got {
                let s = buf[i];
                mix[skip + i] += s;
                input.window_max = input.window_max.max(s.abs());
                input.window_len += 1;
                if input.window_len == PEAK_WINDOW {
                    input.peaks.push(peak_byte(input.window_max));
                    input.window_max = 0.0;
                    input.window_len = 0;
                }
            }
        }
        for s in &mut mix[..n] {
            *s = limiter.process(*s);
            mix_max = mix_max.max(s.abs());
            mix_len += 1;
            if mix_len == PEAK_WINDOW {
                mix_peaks.push(peak_byte(mix_max));
                mix_max = 0.0;
                mix_len = 0;
            }
        }
        enc.push(&mix[..n])?;
        mp3.push(&mix[..n])?;
        t += n;
    }
    if mix_len > 0 {
        mix_peaks.push(peak_byte(mix_max));
    }
    enc.finish()?;
    let bytes = store.get(&tmp_key)?;
    store.put_atomic(&mix_key, &bytes)?;
    store.delete(&tmp_key)?;
    store.put_atomic(&layout::file_key(id, layout::MIX_MP3_FILE), &mp3.finish()?)?;

    let peaks = Peaks {
        rate: PEAKS_PER_SECOND,
        mix: mix_peaks,
        tracks: inputs
            .into_iter()
            .map(|mut i| {
                if i.window_len > 0 {
                    i.peaks.push(peak_byte(i.window_max));
                }
                TrackPeaks {
                    track_id: i.id,
                    offset_ms: i.offset_ms,
                    peaks: i.peaks,
                }
            })
            .collect(),
    };
    let json = serde_json::to_vec(&peaks).map_err(|e| Error::Format(format!("peaks: {e}")))?;
    store.put_atomic(&layout::file_key(id, layout::PEAKS_FILE), &json)?;
    Ok(peaks)
}
