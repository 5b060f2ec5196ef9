//! Any bytes given to the Ogg/Opus track reader, the page scanner and the decoder: errors are
//! fine, panics and hangs are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomtape_ingest::oggopus::{OpusHead, OpusTags, read_bytes, scan_pages};

fuzz_target!(|data: &[u8]| {
    let _ = OpusHead::parse(data);
    let _ = OpusTags::parse(data);
    let pages = scan_pages(data);
    let mut end = 0;
    for p in &pages {
        assert_eq!(p.offset, end, "pages are contiguous");
        end = p.offset + p.len;
    }
    if let Ok(mut r) = read_bytes(data) {
        let mut last = 0;
        for _ in 0..10_000 {
            match r.next_packet() {
                Ok(Some(p)) => {
                    assert!(p.start >= last || p.start == 0);
                    last = p.start;
                }
                _ => break,
            }
        }
    }
    if let Ok(mut pcm) = roomtape_ingest::PcmReader::new(std::io::Cursor::new(data), 16_000) {
        let mut buf = [0.0f32; 1024];
        for _ in 0..1_000 {
            match pcm.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
});
