//! Property tests of the recorder: whatever the network does to a stream (reordering within the
//! jitter window, loss, duplicates, sequence and timestamp wrap-around), the track plays for the
//! span of the packets that arrived, and its granule positions never go backwards.

use std::time::Duration;

use proptest::prelude::*;
use roomtape_ingest::oggopus::{read_bytes, scan_pages};
use roomtape_ingest::{PRE_SKIP, RecorderOutput, RecorderSettings, RtpPacket, TrackRecorder};

#[derive(Debug, Clone)]
struct Fate {
    delay_ms: u64,
    lost: bool,
    duplicated: bool,
}

fn fates(n: usize) -> impl Strategy<Value = Vec<Fate>> {
    prop::collection::vec(
        (0u64..150, 0u8..100, 0u8..100).prop_map(|(delay_ms, l, d)| Fate {
            delay_ms,
            lost: l < 5,
            duplicated: d < 5,
        }),
        n,
    )
}

fn stream() -> impl Strategy<Value = (u16, u32, Vec<Fate>)> {
    (2usize..300).prop_flat_map(|n| (any::<u16>(), any::<u32>(), fates(n)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_impairment_keeps_the_track_as_long_as_the_packets_span((seq0, ts0, fates) in stream()) {
        let payload = [0xfcu8, 1, 2, 3, 4, 5, 6, 7];
        // (arrival, index) of every copy that reaches us.
        let mut arrivals: Vec<(u64, usize)> = Vec::new();
        for (i, f) in fates.iter().enumerate() {
            if f.lost {
                continue;
            }
            let at = i as u64 * 20 + f.delay_ms;
            arrivals.push((at, i));
            if f.duplicated {
                arrivals.push((at + 7, i));
            }
        }
        prop_assume!(!arrivals.is_empty());
        arrivals.sort();
        let (first_at, anchor) = arrivals[0];
        let last = arrivals.iter().map(|&(_, i)| i).max().unwrap();

        let mut rec = TrackRecorder::new(RecorderSettings::default(), vec![], 3);
        let mut bytes = Vec::new();
        let drain = |rec: &mut TrackRecorder, bytes: &mut Vec<u8>| {
            while let Some(o) = rec.poll_output() {
                if let RecorderOutput::Write(b) = o {
                    bytes.extend(b);
                }
            }
        };
        let mut clock = 0;
        for &(at, i) in &arrivals {
            while clock + 20 <= at {
                clock += 20;
                rec.tick(Duration::from_millis(clock)).unwrap();
            }
            let pkt = RtpPacket {
                ssrc: 42,
                sequence: seq0.wrapping_add(i as u16),
                timestamp: ts0.wrapping_add(960 * i as u32),
                payload: &payload,
            };
            rec.push(pkt, Duration::from_millis(at)).unwrap();
            drain(&mut rec, &mut bytes);
        }
        // Packets earlier than the first one to arrive have no place: the track starts there.
        let span_ms = (last + 1 - anchor) as u64 * 20;
        rec.finish(Duration::from_millis(first_at + span_ms)).unwrap();
        drain(&mut rec, &mut bytes);

        let mut reader = read_bytes(&bytes).unwrap();
        let mut total = 0u64;
        let mut prev = 0u64;
        while let Some(p) = reader.next_packet().unwrap() {
            prop_assert!(p.start >= prev, "granules go backwards");
            prev = p.start;
            total += u64::from(p.samples);
        }
        prop_assert!(!reader.truncated());
        let played = total - u64::from(PRE_SKIP);
        let want = span_ms * 48;
        prop_assert!(played.abs_diff(want) <= 960, "played {} samples, span {}", played, want);

        let pages = scan_pages(&bytes);
        prop_assert!(pages.windows(2).all(|w| w[0].granule <= w[1].granule || w[0].granule == u64::MAX));
        prop_assert_eq!(pages.last().unwrap().flags & 4, 4);
    }

    #[test]
    fn garbage_never_panics(packets in prop::collection::vec((any::<u32>(), any::<u16>(), any::<u32>(), prop::collection::vec(any::<u8>(), 0..64), 0u64..500), 0..200)) {
        let mut rec = TrackRecorder::new(RecorderSettings::default(), vec![], 1);
        let mut bytes = Vec::new();
        let mut t = 0;
        for (ssrc, seq, ts, payload, dt) in packets {
            t += dt;
            rec.push(RtpPacket { ssrc: ssrc % 3, sequence: seq, timestamp: ts, payload: &payload }, Duration::from_millis(t)).unwrap();
            rec.tick(Duration::from_millis(t)).unwrap();
            while let Some(o) = rec.poll_output() {
                if let RecorderOutput::Write(b) = o {
                    bytes.extend(b);
                }
            }
        }
        rec.finish(Duration::from_millis(t + 100)).unwrap();
        while let Some(o) = rec.poll_output() {
            if let RecorderOutput::Write(b) = o {
                bytes.extend(b);
            }
        }
        prop_assert!(scan_pages(&bytes).len() >= 3);
    }
}
