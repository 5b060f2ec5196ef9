//! 48 kHz mono PCM to an Ogg/Opus file in the archive store, 20 ms frames.

use roomtape_core::{AppendFile, ArchiveStore};

use crate::Result;
use crate::oggopus::{OpusHead, OpusTags, TrackWriter};

const FRAME: usize = 960;
/// Packets per page: one second.
const PACKETS_PER_PAGE: u64 = 50;

/// Encodes PCM pushed in any block sizes; [`OpusTrackEncoder::finish`] pads the last frame and
/// trims it again through the end granule, so the file plays exactly what was pushed.
pub struct OpusTrackEncoder {
    enc: opus::Encoder,
    writer: TrackWriter,
    file: Box<dyn AppendFile>,
    pending: Vec<f32>,
    packet: Vec<u8>,
    pre_skip: u64,
    pushed: u64,
    encoded: u64,
    packets: u64,
    /// Set by `finish`: the last frames stay on one page with the end of stream, so the end
    /// granule that trims the padded last frame is never below a page already written.
    finishing: bool,
}

impl std::fmt::Debug for OpusTrackEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusTrackEncoder")
            .field("pushed", &self.pushed)
            .field("packets", &self.packets)
            .finish()
    }
}

impl OpusTrackEncoder {
    /// Starts a new file at `key` (replacing any old one).
    pub fn new(
        store: &dyn ArchiveStore,
        key: &str,
        bitrate: i32,
        application: opus::Application,
        tags: Vec<(String, String)>,
    ) -> Result<Self> {
        let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, application)?;
        enc.set_bitrate(opus::Bitrate::Bits(bitrate))?;
        let pre_skip = enc.get_lookahead()?.max(0) as u64;
        let serial = {
            let mut h = 0x9e37_79b9u32;
            for b in key.bytes() {
                h = h.rotate_left(5) ^ u32::from(b);
            }
            h
        };
        let writer = TrackWriter::new(
            &OpusHead::mono(pre_skip as u16, 48_000),
            &OpusTags::new(tags),
            serial,
        );
        store.delete(key)?;
        let file = store.open_append(key)?;
        Ok(OpusTrackEncoder {
            enc,
            writer,
            file,
            pending: Vec::with_capacity(FRAME * 2),
            packet: vec![0u8; 4000],
            pre_skip,
            pushed: 0,
            encoded: 0,
            packets: 0,
            finishing: false,
        })
    }

    /// Adds samples.
    pub fn push(&mut self, samples: &[f32]) -> Result<()> {
        self.pushed += samples.len() as u64;
        let mut rest = samples;
        if !self.pending.is_empty() {
            let take = (FRAME - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == FRAME {
                let frame = std::mem::take(&mut self.pending);
                self.encode(&frame)?;
                self.pending = frame;
                self.pending.clear();
            }
        }
        let mut chunks = rest.chunks_exact(FRAME);
        for frame in &mut chunks {
            self.encode(frame)?;
        }
        self.pending.extend_from_slice(chunks.remainder());
        Ok(())
    }

    fn encode(&mut self, frame: &[f32]) -> Result<()> {
        let n = self.enc.encode_float(frame, &mut self.packet)?;
        self.encoded += FRAME as u64;
        self.packets += 1;
        self.writer.push(self.packet[..n].to_vec(), self.encoded)?;
        if self.packets.is_multiple_of(PACKETS_PER_PAGE) && !self.finishing {
            self.writer.flush()?;
            self.file.append(&self.writer.take_output())?;
        }
        Ok(())
    }

    /// Samples pushed so far.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Encodes what is left (including the encoder's look-ahead), ends the stream at exactly
    /// the pushed length, and syncs the file.
    pub fn finish(mut self) -> Result<u64> {
        // Push the look-ahead out of the encoder with silence, then pad the last frame.
        let tail = vec![0.0f32; self.pre_skip as usize];
        let pushed = self.pushed;
        self.finishing = true;
        self.push(&tail)?;
        if !self.pending.is_empty() {
            let mut frame = std::mem::take(&mut self.pending);
            frame.resize(FRAME, 0.0);
            self.encode(&frame)?;
        }
        self.writer.finish(Some(self.pre_skip + pushed))?;
        self.file.append(&self.writer.take_output())?;
        self.file.sync()?;
        Ok(pushed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oggopus::{read_bytes, scan_pages};
    use roomtape_core::MemoryStore;

    /// Regression: when the padded last frame was the 50th of a page, that page went out with
    /// the frame's whole length and the end-of-stream page trimmed back below it (granule
    /// decreasing; opusinfo: "interior holes or more than one page of end trimming").
    #[test]
    fn the_end_is_trimmed_on_the_last_page_wherever_the_last_frame_falls() {
        let store = MemoryStore::new();
        let pre_skip = OpusTrackEncoder::new(&store, "t", 32_000, opus::Application::Voip, vec![])
            .unwrap()
            .pre_skip;
        // The padded last frame is the 400th, ends page 8, or lands anywhere else.
        let ends = [399 * 960 + 120, 400 * 960, 400 * 960 + 1, 37 * 960 + 500];
        for end in ends {
            let pushed = end - pre_skip;
            let mut enc =
                OpusTrackEncoder::new(&store, "t", 32_000, opus::Application::Voip, vec![])
                    .unwrap();
            enc.push(&vec![0.1f32; pushed as usize]).unwrap();
            assert_eq!(enc.finish().unwrap(), pushed);
            let bytes = store.get("t").unwrap();
            let pages = scan_pages(&bytes);
            let granules: Vec<u64> = pages.iter().map(|p| p.granule).collect();
            assert!(granules.is_sorted(), "{end}: {granules:?}");
            assert_eq!(*granules.last().unwrap(), end, "{end}");
            let mut r = read_bytes(&bytes).unwrap();
            let mut total = 0u64;
            while let Some(p) = r.next_packet().unwrap() {
                total += u64::from(p.samples);
            }
            assert_eq!(total, end, "{end}");
        }
    }
}
