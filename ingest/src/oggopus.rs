//! Ogg/Opus tracks per RFC 7845: the identification header (OpusHead), the comment header
//! (OpusTags), audio pages with 48 kHz granule positions, and end-of-stream.
//!
//! [`TrackWriter`] is sans-IO: packets go in, page bytes come out. [`TrackReader`] reads
//! packets back with their granule positions and stops cleanly at a torn final page.
//! [`scan_pages`] walks the raw pages for crash recovery.

use std::collections::VecDeque;
use std::io::{Read, Seek};

use ogg::{PacketReader, PacketWriteEndInfo, PacketWriter};

use crate::toc::{packet_samples, silence_frame};
use crate::{Error, Result};

/// Our vendor string in OpusTags.
pub const VENDOR: &str = concat!("roomtape ", env!("CARGO_PKG_VERSION"));

/// The identification header fields we use (RFC 7845 §5.1; channel mapping family 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpusHead {
    /// 1 or 2.
    pub channels: u8,
    /// Samples at 48 kHz to drop from the start of the decoded stream.
    pub pre_skip: u16,
    /// Sample rate of the original input, informational.
    pub input_rate: u32,
    /// Q7.8 dB gain to apply on output.
    pub output_gain: i16,
}

impl OpusHead {
    /// A mono header.
    pub fn mono(pre_skip: u16, input_rate: u32) -> Self {
        OpusHead {
            channels: 1,
            pre_skip,
            input_rate,
            output_gain: 0,
        }
    }

    /// The 19-byte packet.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(19);
        b.extend_from_slice(b"OpusHead");
        b.push(1);
        b.push(self.channels);
        b.extend_from_slice(&self.pre_skip.to_le_bytes());
        b.extend_from_slice(&self.input_rate.to_le_bytes());
        b.extend_from_slice(&self.output_gain.to_le_bytes());
        b.push(0);
        b
    }

    /// Parses the packet (RFC 7845 §5.1), accepting any version 0–15 as the RFC asks.
    pub fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < 19 || &b[..8] != b"OpusHead" {
            return Err(Error::Format("first packet is not an OpusHead".into()));
        }
        if b[8] >> 4 != 0 {
            return Err(Error::Unsupported(format!("Ogg Opus version {}", b[8])));
        }
        let channels = b[9];
        let family = b[18];
        if channels == 0 || (family == 0 && channels > 2) {
            return Err(Error::Format(format!(
                "{channels} channels with mapping family {family}"
            )));
        }
        if family != 0 {
            return Err(Error::Unsupported(format!(
                "Opus channel mapping family {family} ({channels} channels)"
            )));
        }
        Ok(OpusHead {
            channels,
            pre_skip: u16::from_le_bytes([b[10], b[11]]),
            input_rate: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
            output_gain: i16::from_le_bytes([b[16], b[17]]),
        })
    }
}

/// The comment header (RFC 7845 §5.2).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OpusTags {
    pub vendor: String,
    /// `(FIELD, value)` pairs; field names are case-insensitive ASCII.
    pub comments: Vec<(String, String)>,
}

impl OpusTags {
    /// Tags with our vendor string.
    pub fn new(comments: Vec<(String, String)>) -> Self {
        OpusTags {
            vendor: VENDOR.to_string(),
            comments,
        }
    }

    /// The first value of `field`.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.comments
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(field))
            .map(|(_, v)| v.as_str())
    }

    /// The packet.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"OpusTags");
        b.extend_from_slice(&(self.vendor.len() as u32).to_le_bytes());
        b.extend_from_slice(self.vendor.as_bytes());
        b.extend_from_slice(&(self.comments.len() as u32).to_le_bytes());
        for (k, v) in &self.comments {
            // Field names may not hold '=' or control characters (RFC 7845 §5.2).
            let key: String = k
                .chars()
                .filter(|c| c.is_ascii_graphic() && *c != '=')
                .collect();
            let entry = format!("{}={v}", key.to_ascii_uppercase());
            b.extend_from_slice(&(entry.len() as u32).to_le_bytes());
            b.extend_from_slice(entry.as_bytes());
        }
        b
    }

    /// Parses the packet, tolerating odd text but not lengths past the end.
    pub fn parse(b: &[u8]) -> Result<Self> {
        let bad = || Error::Format("OpusTags header is malformed".into());
        if b.len() < 16 || &b[..8] != b"OpusTags" {
            return Err(Error::Format("second packet is not OpusTags".into()));
        }
        let mut pos: usize = 8;
        let mut take = |n: usize| -> Result<&[u8]> {
            let s = b
                .get(pos..pos.checked_add(n).ok_or_else(bad)?)
                .ok_or_else(bad)?;
            pos += n;
            Ok(s)
        };
        let read_u32 = |s: &[u8]| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
        let vlen = read_u32(take(4)?);
        let vendor = String::from_utf8_lossy(take(vlen)?).into_owned();
        let n = read_u32(take(4)?);
        let mut comments = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let len = read_u32(take(4)?);
            let entry = String::from_utf8_lossy(take(len)?).into_owned();
            if let Some((k, v)) = entry.split_once('=') {
                comments.push((k.to_string(), v.to_string()));
            }
        }
        Ok(OpusTags { vendor, comments })
    }
}

/// Writes one logical Ogg/Opus stream. Packets go in with the granule position at their end;
/// the bytes of finished pages come out of [`TrackWriter::take_output`].
///
/// A page is closed when [`TrackWriter::flush`] is called (the caller decides how often: the
/// recorder does it at least once a second) or when it is full.
pub struct TrackWriter {
    ogg: PacketWriter<'static, Vec<u8>>,
    serial: u32,
    /// The last packet is held back so that a flush or the end of stream can close its page.
    pending: Option<(Vec<u8>, u64)>,
    pre_skip: u64,
    finished: bool,
    payload_bytes: u64,
    packets: u64,
    last_granule: u64,
}

impl std::fmt::Debug for TrackWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackWriter")
            .field("serial", &self.serial)
            .field("packets", &self.packets)
            .field("last_granule", &self.last_granule)
            .field("finished", &self.finished)
            .finish()
    }
}

fn io_err(e: std::io::Error) -> Error {
    Error::Format(format!("writing a page: {e}"))
}

impl TrackWriter {
    /// Starts a stream: the OpusHead page and the OpusTags page are ready at once.
    pub fn new(head: &OpusHead, tags: &OpusTags, serial: u32) -> Self {
        let mut ogg = PacketWriter::new(Vec::with_capacity(4096));
        // Writing into a Vec cannot fail.
        let _ = ogg.write_packet(head.to_bytes(), serial, PacketWriteEndInfo::EndPage, 0);
        let _ = ogg.write_packet(tags.to_bytes(), serial, PacketWriteEndInfo::EndPage, 0);
        TrackWriter {
            ogg,
            serial,
            pending: None,
            pre_skip: u64::from(head.pre_skip),
            finished: false,
            payload_bytes: 0,
            packets: 0,
            last_granule: u64::from(head.pre_skip),
        }
    }

    /// Adds an audio packet ending at `granule` (48 kHz samples since the stream's start,
    /// pre-skip included).
    pub fn push(&mut self, packet: Vec<u8>, granule: u64) -> Result<()> {
        if self.finished {
            return Err(Error::Format("packet after end of stream".into()));
        }
        self.payload_bytes += packet.len() as u64;
        self.packets += 1;
        self.last_granule = granule;
        if let Some((p, g)) = self.pending.replace((packet, granule)) {
            self.ogg
                .write_packet(p, self.serial, PacketWriteEndInfo::NormalPacket, g)
                .map_err(io_err)?;
        }
        Ok(())
    }

    /// Closes the current page so that its bytes can be written out.
    pub fn flush(&mut self) -> Result<()> {
        if let Some((p, g)) = self.pending.take() {
            self.ogg
                .write_packet(p, self.serial, PacketWriteEndInfo::EndPage, g)
                .map_err(io_err)?;
        }
        Ok(())
    }

    /// Ends the stream. `end_granule`, if given, trims the last packet (RFC 7845 §4.4) so the
    /// stream plays exactly to that granule.
    pub fn finish(&mut self, end_granule: Option<u64>) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        let (p, mut g) = match self.pending.take() {
            Some(x) => x,
            None => {
                // A stream needs at least one audio packet to carry the end-of-stream flag.
                let s = silence_frame(120).map(|f| f.to_vec()).unwrap_or_default();
                self.packets += 1;
                self.payload_bytes += s.len() as u64;
                (s, self.last_granule + 120)
            }
        };
        if let Some(end) = end_granule {
            g = end.clamp(self.pre_skip, g);
        }
        self.last_granule = g;
        self.ogg
            .write_packet(p, self.serial, PacketWriteEndInfo::EndStream, g)
            .map_err(io_err)?;
        self.finished = true;
        Ok(())
    }

    /// Bytes of the pages finished since the last call.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(self.ogg.inner_mut())
    }

    /// True when pages are waiting in [`TrackWriter::take_output`].
    pub fn has_output(&self) -> bool {
        !self.ogg.inner().is_empty()
    }

    /// Audio payload bytes pushed so far (for overhead figures).
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// Granule position of the last packet pushed.
    pub fn granule(&self) -> u64 {
        self.last_granule
    }
}

/// One audio packet as read back, with where it sits in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadPacket {
    pub data: Vec<u8>,
    /// Granule position (48 kHz, pre-skip included) at the packet's start.
    pub start: u64,
    /// Samples of this packet that are to be played (fewer than it holds when end-trimmed).
    pub samples: u32,
}

/// Reads an Ogg/Opus stream packet by packet.
pub struct TrackReader<R: Read + Seek> {
    ogg: PacketReader<R>,
    head: OpusHead,
    tags: OpusTags,
    queue: VecDeque<ReadPacket>,
    /// Granule at the end of the last packet handed to the queue.
    position: u64,
    seen_audio: bool,
    done: bool,
    truncated: bool,
}

impl<R: Read + Seek> std::fmt::Debug for TrackReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackReader")
            .field("head", &self.head)
            .field("position", &self.position)
            .field("truncated", &self.truncated)
            .finish()
    }
}

impl<R: Read + Seek> TrackReader<R> {
    /// Reads the two header packets.
    pub fn new(inner: R) -> Result<Self> {
        let mut ogg = PacketReader::new(inner);
        let first = ogg
            .read_packet()
            .map_err(|e| Error::Format(format!("no Ogg stream: {e}")))?
            .ok_or_else(|| Error::Format("the file holds no Ogg page".into()))?;
        let head = OpusHead::parse(&first.data)?;
        let second = ogg
            .read_packet()
            .map_err(|e| Error::Format(format!("OpusTags page: {e}")))?
            .ok_or_else(|| Error::Format("the stream ends before its OpusTags header".into()))?;
        if second.stream_serial() != first.stream_serial() {
            return Err(Error::Unsupported("multiplexed Ogg streams".into()));
        }
        let tags = OpusTags::parse(&second.data)?;
        Ok(TrackReader {
            ogg,
            head,
            tags,
            queue: VecDeque::new(),
            position: 0,
            seen_audio: false,
            done: false,
            truncated: false,
        })
    }

    /// The identification header.
    pub fn head(&self) -> &OpusHead {
        &self.head
    }

    /// The comment header.
    pub fn tags(&self) -> &OpusTags {
        &self.tags
    }

    /// True when the stream stopped at a torn or corrupt page instead of its end.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Reads one whole page's packets into the queue. Returns false at the end.
    fn fill(&mut self) -> Result<bool> {
        let mut page: Vec<(Vec<u8>, u32)> = Vec::new();
        loop {
            let pkt = match self.ogg.read_packet() {
                Ok(Some(p)) => p,
                Ok(None) => {
                    // The end of the data without an end-of-stream page: an unfinished or
                    // torn write.
                    self.truncated = true;
                    self.done = true;
                    return Ok(false);
                }
                Err(_) => {
                    self.truncated = true;
                    self.done = true;
                    return Ok(false);
                }
            };
            let samples = packet_samples(&pkt.data).map_err(|e| {
                Error::Format(format!(
                    "invalid Opus packet in page ending at granule {}: {e:?}",
                    pkt.absgp_page()
                ))
            })?;
            let last_in_page = pkt.last_in_page();
            let eos = pkt.last_in_stream();
            let granule = pkt.absgp_page();
            page.push((pkt.data, samples));
            if !last_in_page {
                continue;
            }
            let total: u64 = page.iter().map(|(_, s)| u64::from(*s)).sum();
            if !self.seen_audio {
                // The first audio page fixes where the stream starts (RFC 7845 §4.3).
                self.seen_audio = true;
                self.position = if eos {
                    0
                } else {
                    granule.saturating_sub(total)
                };
            }
            let mut start = self.position;
            let page_end = start + total;
            let trim = if eos && granule < page_end {
                page_end - granule
            } else {
                0
            };
            let n = page.len();
            for (i, (data, samples)) in page.into_iter().enumerate() {
                let play = if i + 1 == n {
                    (u64::from(samples).saturating_sub(trim)) as u32
                } else {
                    samples
                };
                self.queue.push_back(ReadPacket {
                    data,
                    start,
                    samples: play,
                });
                start += u64::from(samples);
            }
            self.position = page_end - trim;
            if eos {
                self.done = true;
            }
            return Ok(true);
        }
    }

    /// The next audio packet, or `None` at the end (or at a torn final page).
    pub fn next_packet(&mut self) -> Result<Option<ReadPacket>> {
        while self.queue.is_empty() {
            if self.done || !self.fill()? {
                return Ok(None);
            }
        }
        Ok(self.queue.pop_front())
    }

    /// Granule position reached so far.
    pub fn position(&self) -> u64 {
        self.position
    }
}

/// Opens an Ogg/Opus byte slice.
pub fn read_bytes(bytes: &[u8]) -> Result<TrackReader<std::io::Cursor<&[u8]>>> {
    TrackReader::new(std::io::Cursor::new(bytes))
}

/// What [`scan_pages`] learned about one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageInfo {
    /// Byte offset of the page in the file.
    pub offset: u64,
    /// Bytes in the page, header included.
    pub len: u64,
    pub granule: u64,
    /// Header type flags (RFC 3533: 1 continued, 2 BOS, 4 EOS).
    pub flags: u8,
    /// True when the page's last packet ends on this page.
    pub ends_packet: bool,
}

/// Walks the pages of `data` and stops at the first one that is torn or fails its CRC.
pub fn scan_pages(data: &[u8]) -> Vec<PageInfo> {
    let mut pages = Vec::new();
    let mut pos = 0usize;
    while let Some(p) = page_at(data, pos) {
        pos += p.len as usize;
        pages.push(p);
    }
    pages
}

fn page_at(data: &[u8], pos: usize) -> Option<PageInfo> {
    let h = data.get(pos..pos + 27)?;
    if &h[..4] != b"OggS" || h[4] != 0 {
        return None;
    }
    let nseg = usize::from(h[26]);
    let lacing = data.get(pos + 27..pos + 27 + nseg)?;
    let body: usize = lacing.iter().map(|&l| usize::from(l)).sum();
    let len = 27 + nseg + body;
    let page = data.get(pos..pos + len)?;
    let stored = u32::from_le_bytes([h[22], h[23], h[24], h[25]]);
    if ogg_crc(page) != stored {
        return None;
    }
    Some(PageInfo {
        offset: pos as u64,
        len: len as u64,
        granule: u64::from_le_bytes([h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13]]),
        flags: h[5],
        ends_packet: lacing.last().is_none_or(|&l| l < 255),
    })
}

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut j = 0;
        while j < 8 {
            r = if r & 0x8000_0000 != 0 {
                (r << 1) ^ 0x04c1_1db7
            } else {
                r << 1
            };
            j += 1;
        }
        t[i] = r;
        i += 1;
    }
    t
};

/// The Ogg page checksum (RFC 3533 §6: CRC-32, polynomial 0x04c11db7, no reflection), computed
/// with the checksum field taken as zero.
pub fn ogg_crc(page: &[u8]) -> u32 {
    let mut crc = 0u32;
    for (i, &b) in page.iter().enumerate() {
        let b = if (22..26).contains(&i) { 0 } else { b };
        crc = (crc << 8) ^ CRC_TABLE[((crc >> 24) as u8 ^ b) as usize];
    }
    crc
}

/// Returns the 21 header bytes from offset 5 (flags through checksum) of the page at `page`,
/// with the end-of-stream flag set and the checksum recomputed.
pub fn eos_patch(page: &[u8]) -> Vec<u8> {
    let mut p = page.to_vec();
    p[5] |= 0x04;
    p[22..26].fill(0);
    let crc = ogg_crc(&p);
    p[22..26].copy_from_slice(&crc.to_le_bytes());
    p[5..26].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_stream(n: u64, flush_every: u64) -> Vec<u8> {
        let mut w = TrackWriter::new(
            &OpusHead::mono(0, 48_000),
            &OpusTags::new(vec![("SPEAKER".into(), "Ana".into())]),
            7,
        );
        let mut out = w.take_output();
        for i in 0..n {
            w.push(silence_frame(960).unwrap().to_vec(), (i + 1) * 960)
                .unwrap();
            if (i + 1) % flush_every == 0 {
                w.flush().unwrap();
                out.extend(w.take_output());
            }
        }
        w.finish(None).unwrap();
        out.extend(w.take_output());
        out
    }

    #[test]
    fn written_streams_read_back_with_granules() {
        let bytes = write_stream(120, 50);
        let mut r = read_bytes(&bytes).unwrap();
        assert_eq!(r.tags().get("speaker"), Some("Ana"));
        let mut n = 0;
        while let Some(p) = r.next_packet().unwrap() {
            assert_eq!(p.start, n * 960);
            assert_eq!(p.samples, 960);
            n += 1;
        }
        assert_eq!(n, 120);
        assert!(!r.truncated());
        let pages = scan_pages(&bytes);
        assert_eq!(pages.len(), 2 + 3);
        assert_eq!(pages.last().unwrap().flags & 4, 4);
        assert_eq!(pages.last().unwrap().granule, 120 * 960);
    }

    #[test]
    fn a_torn_final_page_is_tolerated() {
        let bytes = write_stream(120, 50);
        let pages = scan_pages(&bytes);
        let cut = (pages[4].offset + 10) as usize;
        let mut r = read_bytes(&bytes[..cut]).unwrap();
        let mut n = 0;
        while r.next_packet().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 100);
        assert!(r.truncated());
        assert_eq!(scan_pages(&bytes[..cut]).len(), 4);
    }

    #[test]
    fn end_trimming_is_honoured() {
        let mut w = TrackWriter::new(&OpusHead::mono(312, 48_000), &OpusTags::new(vec![]), 1);
        for i in 0..10u64 {
            w.push(silence_frame(960).unwrap().to_vec(), 312 + (i + 1) * 960)
                .unwrap();
        }
        w.finish(Some(312 + 9 * 960 + 100)).unwrap();
        let bytes = w.take_output();
        let mut r = read_bytes(&bytes).unwrap();
        let mut total = 0u64;
        while let Some(p) = r.next_packet().unwrap() {
            total += u64::from(p.samples);
        }
        assert_eq!(total, 9 * 960 + 100 + 312);
    }

    #[test]
    fn eos_patch_yields_a_valid_page() {
        let bytes = write_stream(60, 50);
        let pages = scan_pages(&bytes);
        let p = pages[2];
        let mut fixed = bytes[..(p.offset + p.len) as usize].to_vec();
        let patch = eos_patch(&fixed[p.offset as usize..]);
        fixed[p.offset as usize + 5..p.offset as usize + 26].copy_from_slice(&patch);
        let again = scan_pages(&fixed);
        assert_eq!(again.len(), 3);
        assert_eq!(again[2].flags & 4, 4);
    }

    #[test]
    fn silence_frames_decode_to_zeros() {
        let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
        let mut out = vec![1.0f32; 960];
        for n in [960u32, 480, 240, 120] {
            let f = silence_frame(n).unwrap();
            let got = dec.decode_float(&f, &mut out, false).unwrap();
            assert_eq!(got, n as usize);
            assert!(
                out[..got].iter().all(|s| s.abs() < 1e-6),
                "frame of {n} is silent"
            );
        }
    }
}
