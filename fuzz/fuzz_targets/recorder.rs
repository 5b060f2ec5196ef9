//! Any sequence of packets and clock ticks through the recorder: it never panics, and what it
//! writes always reads back as a complete Ogg/Opus stream with monotonic granules.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use roomtape_ingest::oggopus::read_bytes;
use roomtape_ingest::{RecorderOutput, RecorderSettings, RtpPacket, TrackRecorder};

fuzz_target!(|data: &[u8]| {
    let mut rec = TrackRecorder::new(RecorderSettings::default(), vec![], 1);
    let mut out = Vec::new();
    let mut now = Duration::ZERO;
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        if op % 4 == 0 {
            now += Duration::from_millis(u64::from(op) * 2);
            rec.tick(now).unwrap();
        } else {
            if rest.len() < 8 {
                break;
            }
            let (h, tail) = rest.split_at(8);
            let len = usize::from(h[7]).min(tail.len());
            let (payload, tail) = tail.split_at(len);
            rest = tail;
            let pkt = RtpPacket {
                ssrc: u32::from(h[0] % 3),
                sequence: u16::from_le_bytes([h[1], h[2]]),
                timestamp: u32::from_le_bytes([h[3], h[4], h[5], h[6]]),
                payload,
            };
            now += Duration::from_millis(u64::from(op % 32));
            rec.push(pkt, now).unwrap();
        }
        while let Some(o) = rec.poll_output() {
            if let RecorderOutput::Write(b) = o {
                out.extend(b);
            }
        }
    }
    rec.finish(now + Duration::from_millis(20)).unwrap();
    while let Some(o) = rec.poll_output() {
        if let RecorderOutput::Write(b) = o {
            out.extend(b);
        }
    }
    let mut r = read_bytes(&out).expect("headers read back");
    let mut last = 0;
    while let Some(p) = r.next_packet().expect("packets read back") {
        assert!(p.start >= last, "granules are monotonic");
        last = p.start;
    }
    assert!(!r.truncated(), "the stream ends with end-of-stream");
});
