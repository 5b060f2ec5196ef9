//! Synthetic live audio for tests, the crash test and benchmarks: a voice-like signal encoded
//! with libopus into RTP-like packets, and a seeded network that reorders, loses and
//! duplicates them.

use crate::Result;

pub use roomtape_core::Rng;

/// A buzzy vowel-like tone with a syllable rhythm and pauses: speech-shaped enough to give
/// Opus realistic packet sizes.
#[derive(Clone, Debug)]
pub struct Voice {
    rate: f32,
    t: u64,
    pitch: f32,
    phase: f32,
}

impl Voice {
    pub fn new(rate: u32, pitch: f32) -> Self {
        Voice {
            rate: rate as f32,
            t: 0,
            pitch,
            phase: 0.0,
        }
    }

    pub fn fill(&mut self, out: &mut [f32]) {
        for s in out {
            let secs = self.t as f32 / self.rate;
            // 4 syllables a second; one second of pause in every five.
            let syllable = (std::f32::consts::PI * 4.0 * secs).sin().abs();
            let talking = if (secs as u32) % 5 == 4 { 0.0 } else { 1.0 };
            let f0 = self.pitch * (1.0 + 0.08 * (std::f32::consts::TAU * 0.7 * secs).sin());
            self.phase = (self.phase + f0 / self.rate).fract();
            let mut v = 0.0;
            for h in 1..=8 {
                v += (std::f32::consts::TAU * self.phase * h as f32).sin() / h as f32;
            }
            *s = 0.25 * v * syllable * talking;
            self.t += 1;
        }
    }
}

/// `count` Opus packets of 20 ms (48 kHz mono, VoIP, `bitrate`) of [`Voice`].
pub fn opus_packets(count: usize, bitrate: i32, pitch: f32) -> Result<Vec<Vec<u8>>> {
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)?;
    enc.set_bitrate(opus::Bitrate::Bits(bitrate))?;
    let mut voice = Voice::new(48_000, pitch);
    let mut pcm = vec![0.0f32; 960];
    let mut out = vec![0u8; 1500];
    let mut packets = Vec::with_capacity(count);
    for _ in 0..count {
        voice.fill(&mut pcm);
        let n = enc.encode_float(&pcm, &mut out)?;
        packets.push(out[..n].to_vec());
    }
    Ok(packets)
}

/// One packet on the simulated wire.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    /// Index of the stream (speaker).
    pub stream: u32,
    pub sequence: u16,
    pub timestamp: u32,
    /// Microseconds since the start.
    pub arrival_us: u64,
    /// Index into the packet pool.
    pub payload: u32,
}

/// Network impairments, as fractions of packets.
#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    pub reorder: f64,
    pub loss: f64,
    pub duplicate: f64,
    /// Largest extra delay, in microseconds.
    pub jitter_us: u64,
}

impl Impairment {
    /// 2% reordering, 1% loss, 0.5% duplicates, up to 10 ms of jitter.
    pub const BENCH: Impairment = Impairment {
        reorder: 0.02,
        loss: 0.01,
        duplicate: 0.005,
        jitter_us: 10_000,
    };
}

/// The arrival schedule of `streams` senders of `per_stream` 20 ms packets each, with
/// sequence numbers and timestamps starting near their wrap points, sorted by arrival.
pub fn schedule(streams: u32, per_stream: u32, pool: u32, imp: Impairment, seed: u64) -> Vec<Sent> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity((streams as usize) * (per_stream as usize) * 102 / 100);
    for s in 0..streams {
        let seq0 = 65_000u16.wrapping_add((s * 97) as u16);
        let ts0 = u32::MAX - 960 * (200 + s * 13);
        let offset = u64::from(s) * 1_000;
        for i in 0..per_stream {
            if rng.unit() < imp.loss {
                continue;
            }
            let mut arrival = offset + u64::from(i) * 20_000 + rng.next_u64() % (imp.jitter_us + 1);
            if rng.unit() < imp.reorder {
                // Late enough to swap with the next packet or two.
                arrival += 25_000 + rng.next_u64() % 20_000;
            }
            let p = Sent {
                stream: s,
                sequence: seq0.wrapping_add(i as u16),
                timestamp: ts0.wrapping_add(i.wrapping_mul(960)),
                arrival_us: arrival,
                payload: (u64::from(i) % u64::from(pool.max(1))) as u32,
            };
            out.push(p);
            if rng.unit() < imp.duplicate {
                out.push(Sent {
                    arrival_us: arrival + 1_000 + rng.next_u64() % 30_000,
                    ..p
                });
            }
        }
    }
    out.sort_by_key(|p| (p.arrival_us, p.stream));
    out
}
