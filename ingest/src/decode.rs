//! Ogg/Opus tracks back to PCM, at 48 kHz for mixing and export or straight at 16 kHz for
//! speech recognition (libopus decodes at either rate, no resampler needed).

use std::io::{Read, Seek};

use crate::oggopus::{ReadPacket, TrackReader};
use crate::{Error, Result};

/// Rates libopus can decode to.
pub const OPUS_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];

/// Decodes a track to mono `f32` at `rate`, honouring pre-skip and end trimming.
pub struct PcmReader<R: Read + Seek> {
    reader: TrackReader<R>,
    decoder: opus::Decoder,
    rate: u32,
    /// Output samples still to drop for pre-skip.
    skip: u64,
    block: Vec<f32>,
    /// Start of the unread part of `block`.
    at: usize,
    /// Valid samples in `block`.
    len: usize,
    produced: u64,
    ended: bool,
}

impl<R: Read + Seek> std::fmt::Debug for PcmReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcmReader")
            .field("rate", &self.rate)
            .field("produced", &self.produced)
            .finish()
    }
}

impl<R: Read + Seek> PcmReader<R> {
    /// Opens a track for decoding at `rate` (one of [`OPUS_RATES`]).
    pub fn new(inner: R, rate: u32) -> Result<Self> {
        if !OPUS_RATES.contains(&rate) {
            return Err(Error::Unsupported(format!("Opus decoding at {rate} Hz")));
        }
        let reader = TrackReader::new(inner)?;
        let decoder = opus::Decoder::new(rate, opus::Channels::Mono)?;
        let skip = u64::from(reader.head().pre_skip) * u64::from(rate) / 48_000;
        Ok(PcmReader {
            reader,
            decoder,
            rate,
            skip,
            block: vec![0.0; (5760 * rate / 48_000) as usize],
            at: 0,
            len: 0,
            produced: 0,
            ended: false,
        })
    }

    /// The underlying Ogg reader (headers, truncation).
    pub fn track(&self) -> &TrackReader<R> {
        &self.reader
    }

    /// Samples handed out so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    fn decode_next(&mut self) -> Result<bool> {
        let Some(ReadPacket {
            data,
            start,
            samples,
        }) = self.reader.next_packet()?
        else {
            return Ok(false);
        };
        let n = self
            .decoder
            .decode_float(&data, &mut self.block, false)
            .map_err(|e| {
                Error::Decode(format!(
                    "undecodable Opus packet at {:.3} s: {e}",
                    start as f64 / 48_000.0
                ))
            })?;
        let keep = (u64::from(samples) * u64::from(self.rate) / 48_000) as usize;
        let mut from = 0usize;
        let mut to = n.min(keep);
        if self.skip > 0 {
            let s = (self.skip as usize).min(to);
            from = s;
            self.skip -= s as u64;
        }
        if from > to {
            to = from;
        }
        self.at = from;
        self.len = to;
        Ok(true)
    }

    /// Fills `out` with the next samples; returns how many (0 at the end).
    pub fn read(&mut self, out: &mut [f32]) -> Result<usize> {
        let mut filled = 0;
        while filled < out.len() {
            if self.at >= self.len {
                if self.ended || !self.decode_next()? {
                    self.ended = true;
                    break;
                }
                continue;
            }
            let n = (self.len - self.at).min(out.len() - filled);
            out[filled..filled + n].copy_from_slice(&self.block[self.at..self.at + n]);
            self.at += n;
            filled += n;
        }
        self.produced += filled as u64;
        Ok(filled)
    }

    /// Everything that is left.
    pub fn read_to_end(&mut self) -> Result<Vec<f32>> {
        let mut all = Vec::new();
        let mut buf = vec![0.0f32; 4096];
        loop {
            let n = self.read(&mut buf)?;
            if n == 0 {
                return Ok(all);
            }
            all.extend_from_slice(&buf[..n]);
        }
    }
}

/// Decodes a whole Ogg/Opus file held in memory.
pub fn decode_all(bytes: &[u8], rate: u32) -> Result<Vec<f32>> {
    PcmReader::new(std::io::Cursor::new(bytes), rate)?.read_to_end()
}
