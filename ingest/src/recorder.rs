//! The sans-IO recorder of one live speaker: RTP Opus packets and clock ticks go in, Ogg
//! pages and events come out. It never reads a clock nor touches a file; the SFU task drives it
//! with real time, tests and benchmarks with a fake clock.
//!
//! How a packet finds its place: the first packet of a track (or of a new SSRC) is anchored at
//! the wall-clock position where it arrived; every later packet of that SSRC sits where its RTP
//! timestamp puts it relative to the anchor (Opus' RTP clock is 48 kHz, RFC 7587 §4.1).
//! Packets wait in a jitter buffer for up to `jitter` for earlier ones; gaps that remain (lost
//! packets, DTX silence, mutes) are filled with silent frames so the track always lasts as long
//! as the wall clock says. A timestamp that contradicts the wall clock by more than
//! [`RESYNC_SAMPLES`] (a sender restart, a stalled clock) re-anchors the stream.

use std::time::Duration;

use crate::Result;
use crate::oggopus::{OpusHead, OpusTags, TrackWriter};
use crate::toc::{PacketError, packet_samples, silence_frame};

/// Opus' RTP clock rate and the Ogg granule rate.
pub const RATE: u64 = 48_000;
/// How far a packet's timestamp may disagree with its arrival time before the stream is
/// re-anchored: one second.
pub const RESYNC_SAMPLES: i64 = RATE as i64;
/// Pre-skip written in OpusHead: libopus' encoder look-ahead at 48 kHz (6.5 ms), which is what
/// a WebRTC sender's encoder puts in front of the audio.
pub const PRE_SKIP: u16 = 312;
/// Packets waiting in the jitter buffer at most; more means the window is full of junk.
const MAX_BUFFERED: usize = 1024;

/// One received RTP packet (only the fields the recorder needs).
#[derive(Clone, Copy, Debug)]
pub struct RtpPacket<'a> {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    pub payload: &'a [u8],
}

/// Settings of a [`TrackRecorder`].
#[derive(Clone, Copy, Debug)]
pub struct RecorderSettings {
    /// How long a packet may wait for earlier ones.
    pub jitter: Duration,
    /// Longest stretch of audio kept in one unfinished page.
    pub flush: Duration,
}

impl Default for RecorderSettings {
    fn default() -> Self {
        RecorderSettings {
            jitter: Duration::from_millis(200),
            flush: Duration::from_millis(1000),
        }
    }
}

impl From<&roomtape_core::RecorderConfig> for RecorderSettings {
    fn from(c: &roomtape_core::RecorderConfig) -> Self {
        RecorderSettings {
            jitter: Duration::from_millis(u64::from(c.jitter_ms)),
            flush: Duration::from_millis(u64::from(c.flush_ms.max(20))),
        }
    }
}

/// What the recorder counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Packets written to the track.
    pub written: u64,
    /// Packets dropped because the same packet was already seen.
    pub duplicates: u64,
    /// Packets that came after their place had been filled.
    pub late: u64,
    /// Packets refused for an empty payload.
    pub empty: u64,
    /// Packets refused for being too large.
    pub oversized: u64,
    /// Packets refused for a malformed TOC or framing.
    pub malformed: u64,
    /// Packets whose timestamp lies far ahead of the wall clock without being new.
    pub implausible: u64,
    /// Silent frames written to fill gaps.
    pub filled_frames: u64,
    /// Samples (48 kHz) of filled gaps.
    pub filled_samples: u64,
    /// Times the stream was re-anchored (SSRC change or timestamp jump).
    pub resyncs: u64,
    /// Ogg pages closed.
    pub pages: u64,
    /// Audio payload bytes written (packets and fill).
    pub payload_bytes: u64,
}

/// Something the driver may want to know or show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecorderEvent {
    /// The first packet arrived: the track starts at this wall-clock time.
    Started { at: Duration },
    /// The sender changed SSRC (e.g. a renegotiation or a reconnect).
    SsrcChanged { from: u32, to: u32 },
    /// Timestamps jumped against the wall clock; the stream was re-anchored.
    Resynced { ssrc: u32, by_samples: i64 },
}

/// What [`TrackRecorder::poll_output`] hands out.
#[derive(Debug, PartialEq, Eq)]
pub enum RecorderOutput {
    /// Bytes to append to the track file, in order.
    Write(Vec<u8>),
    /// See [`RecorderEvent`].
    Event(RecorderEvent),
}

#[derive(Debug)]
struct Buffered {
    pos: u64,
    samples: u32,
    ext_seq: i64,
    arrival: Duration,
    payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    ssrc: u32,
    base_ts: i64,
    base_pos: i64,
    last_ts: u32,
    ext_ts: i64,
    last_seq: u16,
    ext_seq: i64,
    max_seq: i64,
}

impl Anchor {
    fn unwrap_ts(&mut self, ts: u32) -> i64 {
        let ext = self.ext_ts + i64::from(ts.wrapping_sub(self.last_ts) as i32);
        if ext > self.ext_ts {
            self.ext_ts = ext;
            self.last_ts = ts;
        }
        ext
    }

    fn unwrap_seq(&mut self, seq: u16) -> i64 {
        let ext = self.ext_seq + i64::from(seq.wrapping_sub(self.last_seq) as i16);
        if ext > self.ext_seq {
            self.ext_seq = ext;
            self.last_seq = seq;
        }
        ext
    }
}

/// Records one speaker's RTP Opus stream into an Ogg/Opus track. See the module docs.
#[derive(Debug)]
pub struct TrackRecorder {
    settings: RecorderSettings,
    jitter_samples: u64,
    flush_samples: u64,
    writer: TrackWriter,
    start: Option<Duration>,
    anchor: Option<Anchor>,
    /// Granule (48 kHz samples) at the end of what has been written.
    written: u64,
    buffer: Vec<Buffered>,
    /// Ring of recently written extended sequence numbers, for duplicate detection.
    recent: [i64; 256],
    last_flush_pos: u64,
    last_flush_at: Duration,
    /// The latest time seen in `push` or `tick`.
    now: Duration,
    events: Vec<RecorderEvent>,
    stats: RecorderStats,
    finished: bool,
}

impl TrackRecorder {
    /// A recorder whose track will carry `tags` (e.g. `SPEAKER=…`). `serial` is the Ogg
    /// stream serial number.
    pub fn new(settings: RecorderSettings, tags: Vec<(String, String)>, serial: u32) -> Self {
        let writer = TrackWriter::new(
            &OpusHead::mono(PRE_SKIP, RATE as u32),
            &OpusTags::new(tags),
            serial,
        );
        TrackRecorder {
            settings,
            jitter_samples: samples_of(settings.jitter),
            flush_samples: samples_of(settings.flush).max(960),
            writer,
            start: None,
            anchor: None,
            written: 0,
            buffer: Vec::with_capacity(32),
            recent: [-1; 256],
            last_flush_pos: 0,
            last_flush_at: Duration::ZERO,
            now: Duration::ZERO,
            events: Vec::new(),
            stats: RecorderStats::default(),
            finished: false,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> RecorderStats {
        let mut s = self.stats;
        s.payload_bytes = self.writer.payload_bytes();
        s
    }

    /// Wall-clock time of the first packet: where this track starts.
    pub fn started_at(&self) -> Option<Duration> {
        self.start
    }

    /// Samples (48 kHz) written so far, as they will play (pre-skip removed): the track's length.
    pub fn written_samples(&self) -> u64 {
        self.written.saturating_sub(u64::from(PRE_SKIP))
    }

    fn wall_pos(&self, now: Duration) -> u64 {
        self.start.map_or(0, |s| samples_of(now.saturating_sub(s)))
    }

    /// Feeds one packet that arrived at `now`.
    pub fn push(&mut self, pkt: RtpPacket<'_>, now: Duration) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        let samples = match packet_samples(pkt.payload) {
            Ok(s) => s,
            Err(PacketError::Empty) => {
                self.stats.empty += 1;
                return Ok(());
            }
            Err(PacketError::Oversized) => {
                self.stats.oversized += 1;
                return Ok(());
            }
            Err(PacketError::Malformed) => {
                self.stats.malformed += 1;
                return Ok(());
            }
        };
        self.now = self.now.max(now);
        if self.start.is_none() {
            self.start = Some(now);
            self.last_flush_at = now;
            self.events.push(RecorderEvent::Started { at: now });
        }
        let wall = self.wall_pos(now) as i64;
        let anchor = match self.anchor {
            Some(a) if a.ssrc == pkt.ssrc => a,
            previous => {
                if let Some(p) = previous {
                    // A new sender stream: write out what the old one left first.
                    self.drain_all()?;
                    self.events.push(RecorderEvent::SsrcChanged {
                        from: p.ssrc,
                        to: pkt.ssrc,
                    });
                    self.stats.resyncs += 1;
                }
                self.new_anchor(pkt, wall)
            }
        };
        let mut anchor = anchor;
        let ext_ts = anchor.unwrap_ts(pkt.timestamp);
        let ext_seq = anchor.unwrap_seq(pkt.sequence);
        let is_new = ext_seq > anchor.max_seq;
        let mut pos = anchor.base_pos + (ext_ts - anchor.base_ts);
        // A new packet whose timestamp disagrees with the wall clock: re-anchor.
        let behind =
            pos + (samples as i64) <= self.written as i64 && pos < wall - RESYNC_SAMPLES / 4;
        let ahead = pos > wall + RESYNC_SAMPLES;
        if is_new && (behind || ahead) {
            let target = wall.max(self.written as i64);
            self.events.push(RecorderEvent::Resynced {
                ssrc: pkt.ssrc,
                by_samples: target - pos,
            });
            self.stats.resyncs += 1;
            anchor.base_pos = target;
            anchor.base_ts = ext_ts;
            pos = target;
        }
        if is_new {
            anchor.max_seq = ext_seq;
        }
        self.anchor = Some(anchor);
        if pos > wall + RESYNC_SAMPLES {
            // An old sequence number with a timestamp far in the future: a forged or corrupt
            // packet. Accepting it would fill the track with silence up to its timestamp.
            self.stats.implausible += 1;
            return Ok(());
        }

        if pos < 0 || self.recent[(ext_seq & 255) as usize] == ext_seq {
            if self.recent[(ext_seq & 255) as usize] == ext_seq {
                self.stats.duplicates += 1;
            } else {
                self.stats.late += 1;
            }
            return Ok(());
        }
        let pos = pos as u64;
        if pos + u64::from(samples) <= self.written + 60 {
            self.stats.late += 1;
            return Ok(());
        }
        // Insert in position order; reordering is local, so search from the back.
        let idx = self.buffer.partition_point(|b| b.pos < pos);
        if self.buffer.get(idx).is_some_and(|b| b.pos == pos) {
            self.stats.duplicates += 1;
            return Ok(());
        }
        self.buffer.insert(
            idx,
            Buffered {
                pos,
                samples,
                ext_seq,
                arrival: now,
                payload: pkt.payload.to_vec(),
            },
        );
        self.release(now)
    }

    fn new_anchor(&mut self, pkt: RtpPacket<'_>, wall: i64) -> Anchor {
        Anchor {
            ssrc: pkt.ssrc,
            base_ts: i64::from(pkt.timestamp),
            base_pos: wall.max(self.written as i64),
            last_ts: pkt.timestamp,
            ext_ts: i64::from(pkt.timestamp),
            last_seq: pkt.sequence,
            ext_seq: i64::from(pkt.sequence),
            max_seq: i64::from(pkt.sequence) - 1,
        }
    }

    /// Lets time pass: releases packets that waited long enough, fills silence up to
    /// `now − jitter` when nothing arrives (mutes, DTX), and closes a page at least every
    /// `flush` interval.
    pub fn tick(&mut self, now: Duration) -> Result<()> {
        if self.finished || self.start.is_none() {
            return Ok(());
        }
        self.now = self.now.max(now);
        self.release(now)?;
        let horizon = self.wall_pos(now).saturating_sub(self.jitter_samples);
        let limit = self.buffer.first().map_or(horizon, |b| b.pos.min(horizon));
        if limit > self.written {
            self.fill_to(limit)?;
        }
        // Pages close every `flush` of audio as it is written (see `emit`); audio follows the
        // wall clock within the jitter window, so this only catches a stalled stream.
        if self.written > self.last_flush_pos
            && now.saturating_sub(self.last_flush_at) >= self.settings.flush + self.settings.jitter
        {
            self.flush_page();
        }
        Ok(())
    }

    /// Ends the track at `now`: writes every waiting packet, fills up to the wall clock, and
    /// closes the stream with end-of-stream.
    pub fn finish(&mut self, now: Duration) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.drain_all()?;
        if self.start.is_some() {
            // Decoders drop the pre-skip, so the track holds that much more than it plays.
            let end = self.wall_pos(now) + u64::from(PRE_SKIP);
            if end > self.written {
                self.fill_to(end)?;
            }
        }
        self.writer.finish(None)?;
        self.written = self.writer.granule();
        self.stats.pages += 1;
        self.finished = true;
        Ok(())
    }

    /// The next output, if any. Call until `None` after every input.
    pub fn poll_output(&mut self) -> Option<RecorderOutput> {
        if self.writer.has_output() {
            return Some(RecorderOutput::Write(self.writer.take_output()));
        }
        if self.events.is_empty() {
            None
        } else {
            Some(RecorderOutput::Event(self.events.remove(0)))
        }
    }

    fn release(&mut self, now: Duration) -> Result<()> {
        let mut n = 0;
        while n < self.buffer.len() {
            let b = &self.buffer[n];
            let contiguous = b.pos < self.written + 120;
            let waited = now.saturating_sub(b.arrival) >= self.settings.jitter;
            let overfull = self.buffer.len() - n > MAX_BUFFERED
                || self.buffer[self.buffer.len() - 1].pos.saturating_sub(b.pos)
                    > self.jitter_samples;
            if !(contiguous || waited || overfull) {
                break;
            }
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        let ready: Vec<Buffered> = self.buffer.drain(..n).collect();
        for b in ready {
            self.emit(b)?;
        }
        Ok(())
    }

    fn drain_all(&mut self) -> Result<()> {
        let all: Vec<Buffered> = std::mem::take(&mut self.buffer);
        for b in all {
            self.emit(b)?;
        }
        Ok(())
    }

    fn emit(&mut self, b: Buffered) -> Result<()> {
        if b.pos + u64::from(b.samples) <= self.written + 60 {
            self.stats.late += 1;
            return Ok(());
        }
        if b.pos >= self.written + 120 {
            self.fill_to(b.pos)?;
        }
        self.written += u64::from(b.samples);
        self.recent[(b.ext_seq & 255) as usize] = b.ext_seq;
        self.stats.written += 1;
        self.writer.push(b.payload, self.written)?;
        if self.written - self.last_flush_pos >= self.flush_samples {
            self.flush_page();
        }
        Ok(())
    }

    /// Writes silent frames from the current end up to `target` (to within 2.5 ms).
    fn fill_to(&mut self, target: u64) -> Result<()> {
        while target >= self.written + 120 {
            let gap = target - self.written;
            let n = [960u64, 480, 240, 120]
                .into_iter()
                .find(|&n| n <= gap)
                .unwrap_or(120);
            let frame = silence_frame(n as u32)
                .map(|f| f.to_vec())
                .unwrap_or_default();
            self.written += n;
            self.stats.filled_frames += 1;
            self.stats.filled_samples += n;
            self.writer.push(frame, self.written)?;
            if self.written - self.last_flush_pos >= self.flush_samples {
                self.flush_page();
            }
        }
        Ok(())
    }

    fn flush_page(&mut self) {
        // Flushing into a Vec cannot fail.
        let _ = self.writer.flush();
        self.last_flush_pos = self.written;
        self.last_flush_at = self.now;
        self.stats.pages += 1;
    }
}

fn samples_of(d: Duration) -> u64 {
    (d.as_micros() as u64).saturating_mul(RATE) / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oggopus::read_bytes;

    fn voice(len: usize) -> Vec<u8> {
        // A 20 ms CELT FB frame with arbitrary bytes: valid framing is all the recorder checks.
        let mut p = vec![0xfc];
        p.extend((0..len).map(|i| (i * 7) as u8));
        p
    }

    fn run(packets: &[(u32, u16, u32, u64)], end_ms: u64) -> (Vec<u8>, RecorderStats) {
        let mut rec = TrackRecorder::new(RecorderSettings::default(), vec![], 1);
        let mut out = Vec::new();
        let payload = voice(60);
        for &(ssrc, seq, ts, at_ms) in packets {
            let now = Duration::from_millis(at_ms);
            rec.tick(now).unwrap();
            rec.push(
                RtpPacket {
                    ssrc,
                    sequence: seq,
                    timestamp: ts,
                    payload: &payload,
                },
                now,
            )
            .unwrap();
            while let Some(o) = rec.poll_output() {
                if let RecorderOutput::Write(b) = o {
                    out.extend(b);
                }
            }
        }
        rec.finish(Duration::from_millis(end_ms)).unwrap();
        while let Some(o) = rec.poll_output() {
            if let RecorderOutput::Write(b) = o {
                out.extend(b);
            }
        }
        (out, rec.stats())
    }

    fn duration_samples(bytes: &[u8]) -> u64 {
        let mut r = read_bytes(bytes).unwrap();
        let mut total = 0;
        let mut last = 0;
        while let Some(p) = r.next_packet().unwrap() {
            assert!(p.start >= last, "granules are monotonic");
            last = p.start;
            total += u64::from(p.samples);
        }
        total - u64::from(PRE_SKIP)
    }

    /// Gaps are filled in steps of 2.5 ms, so lengths are exact to within 120 samples.
    fn assert_close(got: u64, want: u64) {
        assert!(
            got.abs_diff(want) < 120,
            "length {got} samples, want {want}"
        );
    }

    #[test]
    fn a_clean_stream_is_written_as_is() {
        let pkts: Vec<_> = (0..100u32)
            .map(|i| (5, i as u16, i * 960, u64::from(i) * 20))
            .collect();
        let (bytes, stats) = run(&pkts, 2000);
        assert_eq!(stats.written, 100);
        assert!(stats.filled_frames <= 1, "only the pre-skip pad at the end");
        assert_close(duration_samples(&bytes), 100 * 960);
    }

    #[test]
    fn a_long_mute_is_filled_to_wall_time() {
        let mut pkts: Vec<_> = (0..50u32)
            .map(|i| (5, i as u16, i * 960, u64::from(i) * 20))
            .collect();
        // 30 s of nothing, then the same stream resumes with a timestamp that kept counting.
        pkts.extend((0..50u32).map(|i| {
            (
                5,
                (50 + i) as u16,
                (1550 + i) * 960,
                31_000 + u64::from(i) * 20,
            )
        }));
        let (bytes, stats) = run(&pkts, 32_000);
        assert_eq!(stats.written, 100);
        assert_close(duration_samples(&bytes), 32 * 48_000);
    }

    #[test]
    fn an_ssrc_change_continues_the_track() {
        let mut pkts: Vec<_> = (0..50u32)
            .map(|i| (5, i as u16, i * 960, u64::from(i) * 20))
            .collect();
        pkts.extend((0..50u32).map(|i| {
            (
                9,
                (7000 + i) as u16,
                123_456 + i * 960,
                5_000 + u64::from(i) * 20,
            )
        }));
        let (bytes, stats) = run(&pkts, 6_000);
        assert_eq!(stats.written, 100);
        assert_eq!(stats.resyncs, 1);
        assert_close(duration_samples(&bytes), 6 * 48_000);
    }

    #[test]
    fn bad_payloads_are_counted_and_dropped() {
        let mut rec = TrackRecorder::new(RecorderSettings::default(), vec![], 1);
        let now = Duration::ZERO;
        for payload in [&[][..], &[0x03, 0][..], &vec![0xf8; 4000][..]] {
            rec.push(
                RtpPacket {
                    ssrc: 1,
                    sequence: 0,
                    timestamp: 0,
                    payload,
                },
                now,
            )
            .unwrap();
        }
        let s = rec.stats();
        assert_eq!((s.empty, s.malformed, s.oversized, s.written), (1, 1, 1, 0));
    }
}
