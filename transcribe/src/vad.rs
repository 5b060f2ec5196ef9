//! Voice activity detection for one speaker's track: an energy detector with an adaptive
//! noise floor, hysteresis and hang-over.
//!
//! Why this and not a learned detector: every track holds one speaker's own microphone, and
//! gaps the recorder filled are digital silence, so the decision is "is this person talking"
//! against their own noise floor, which energy answers well. The floor is estimated from the
//! whole track (transcription runs after the recording), so no warm-up is lost. The benchmark
//! (`roomtape bench transcribe`) measures the result end to end: no text where nobody spoke,
//! and word error no worse than Whisper on the full track.

/// A stretch of speech, in samples of the track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: usize,
    pub end: usize,
}

impl Region {
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// Tuning of the detector.
#[derive(Clone, Copy, Debug)]
pub struct VadSettings {
    /// Speech starts this many dB above the noise floor…
    pub on_db: f32,
    /// …and continues while above floor + `off_db`.
    pub off_db: f32,
    /// Never call anything quieter than this speech (dBFS).
    pub min_speech_dbfs: f32,
    /// Silence kept after speech before a region ends, ms.
    pub hangover_ms: u32,
    /// Padding added before and after each region, ms.
    pub pad_before_ms: u32,
    pub pad_after_ms: u32,
    /// Regions closer than this are merged, ms.
    pub merge_gap_ms: u32,
    /// Regions shorter than this (before padding) are dropped, ms.
    pub min_region_ms: u32,
}

impl Default for VadSettings {
    fn default() -> Self {
        VadSettings {
            on_db: 15.0,
            off_db: 9.0,
            min_speech_dbfs: -50.0,
            hangover_ms: 300,
            pad_before_ms: 200,
            pad_after_ms: 300,
            merge_gap_ms: 500,
            min_region_ms: 120,
        }
    }
}

const FRAME_MS: usize = 10;

/// Finds speech in `pcm` (mono, `rate` Hz).
pub fn detect(pcm: &[f32], rate: u32, s: &VadSettings) -> Vec<Region> {
    let frame = rate as usize * FRAME_MS / 1000;
    if pcm.len() < frame || frame == 0 {
        return Vec::new();
    }
    let db: Vec<f32> = pcm
        .chunks(frame)
        .map(|c| {
            let e = c.iter().map(|x| x * x).sum::<f32>() / c.len() as f32;
            10.0 * (e + 1e-12).log10()
        })
        .collect();
    // The noise floor: a low percentile of the frames that are not digital silence.
    let mut live: Vec<f32> = db.iter().copied().filter(|d| *d > -100.0).collect();
    let floor = if live.len() < 10 {
        -90.0
    } else {
        let k = live.len() / 10;
        let (_, v, _) = live.select_nth_unstable_by(k, f32::total_cmp);
        *v
    };
    let on = (floor + s.on_db).max(s.min_speech_dbfs);
    let off = (floor + s.off_db).max(s.min_speech_dbfs - (s.on_db - s.off_db));
    let hang = (s.hangover_ms as usize / FRAME_MS).max(1);

    let mut raw = Vec::new();
    let mut i = 0;
    while i < db.len() {
        // Two loud frames in a row start speech.
        if db[i] >= on && db.get(i + 1).is_some_and(|d| *d >= on) {
            let start = i;
            let mut last_loud = i;
            let mut j = i;
            while j < db.len() && j - last_loud <= hang {
                if db[j] >= off {
                    last_loud = j;
                }
                j += 1;
            }
            raw.push((start, last_loud + 1));
            i = j;
        } else {
            i += 1;
        }
    }
    let min = s.min_region_ms as usize / FRAME_MS;
    let (pre, post) = (
        s.pad_before_ms as usize / FRAME_MS,
        s.pad_after_ms as usize / FRAME_MS,
    );
    let merge = s.merge_gap_ms as usize / FRAME_MS;
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (a, b) in raw.into_iter().filter(|(a, b)| b - a >= min) {
        let (a, b) = (a.saturating_sub(pre), (b + post).min(db.len()));
        match out.last_mut() {
            Some(last) if a <= last.1 + merge => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out.into_iter()
        .map(|(a, b)| Region {
            start: a * frame,
            end: (b * frame).min(pcm.len()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| amp * (i as f32 * 0.07).sin() * (1.0 + 0.3 * (i as f32 * 0.003).sin()))
            .collect()
    }

    #[test]
    fn finds_speech_between_silences_and_ignores_noise() {
        let rate = 16_000;
        let mut pcm = vec![0.0f32; rate];
        // Low background noise everywhere, speech-loud tone from 1.0 s to 2.5 s and 4 s to 4.5 s.
        let mut seed = 1u32;
        let mut noise = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((seed >> 9) as f32 / (1 << 23) as f32 - 0.5) * 0.002
        };
        pcm.extend(tone(rate * 3 / 2, 0.3));
        pcm.extend((0..rate * 3 / 2).map(|_| noise()));
        pcm.extend(tone(rate / 2, 0.3));
        pcm.extend((0..rate).map(|_| noise()));
        for x in pcm[..rate].iter_mut() {
            *x = noise();
        }
        let r = detect(&pcm, rate as u32, &VadSettings::default());
        assert_eq!(r.len(), 2, "{r:?}");
        let secs = |s: usize| s as f32 / rate as f32;
        assert!((secs(r[0].start) - 0.8).abs() < 0.05, "{r:?}");
        assert!((secs(r[0].end) - 2.8).abs() < 0.1, "{r:?}");
        assert!((secs(r[1].start) - 3.8).abs() < 0.05, "{r:?}");
    }

    #[test]
    fn digital_silence_has_no_speech() {
        assert!(detect(&vec![0.0; 160_000], 16_000, &VadSettings::default()).is_empty());
        assert!(detect(&[], 16_000, &VadSettings::default()).is_empty());
    }
}
