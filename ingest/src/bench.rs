//! Measurements behind `roomtape bench ingest`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roomtape_core::{ArchiveStore, RecordingId, Speaker, SpeakerId, Timestamp, layout};

use crate::Result;
use crate::oggopus::scan_pages;
use crate::recorder::{RecorderSettings, RtpPacket};
use crate::room::LiveRecording;
use crate::synth::{Impairment, opus_packets, schedule};

/// What one recorder run measured.
#[derive(Clone, Debug)]
pub struct RecorderBench {
    pub streams: u32,
    pub packets: u64,
    /// CPU time of the thread that drove the recorder.
    pub cpu: Duration,
    pub wall: Duration,
    /// Audio payload written (received packets and fill frames).
    pub payload_bytes: u64,
    /// Bytes of the two header pages of every track.
    pub header_bytes: u64,
    /// Bytes of all track files.
    pub file_bytes: u64,
    pub written: u64,
    pub duplicates: u64,
    pub late: u64,
    pub filled_frames: u64,
}

impl RecorderBench {
    /// Packets per second of CPU time.
    pub fn packets_per_cpu_second(&self) -> f64 {
        self.packets as f64 / self.cpu.as_secs_f64().max(1e-9)
    }

    /// Ogg framing (page headers and lacing) in percent of the audio payload.
    pub fn ogg_overhead_percent(&self) -> f64 {
        let framing = self
            .file_bytes
            .saturating_sub(self.header_bytes + self.payload_bytes);
        100.0 * framing as f64 / self.payload_bytes.max(1) as f64
    }
}

/// Feeds `streams` speakers of `per_stream` packets each, impaired as [`Impairment::BENCH`],
/// through a [`LiveRecording`] into `store`, on a simulated clock.
pub fn bench_recorder(
    store: Arc<dyn ArchiveStore>,
    streams: u32,
    per_stream: u32,
    bitrate: i32,
    seed: u64,
) -> Result<RecorderBench> {
    let pool = opus_packets(500, bitrate, 140.0)?;
    let plan = schedule(
        streams,
        per_stream,
        pool.len() as u32,
        Impairment::BENCH,
        seed,
    );
    let id = RecordingId::new();
    let mut live = LiveRecording::start(
        store.clone(),
        id,
        None,
        "bench",
        RecorderSettings::default(),
        Duration::ZERO,
        Timestamp::now(),
    )?
    .with_fsync(false);
    let speakers: Vec<SpeakerId> = (0..streams)
        .map(|i| {
            let s = Speaker {
                id: SpeakerId::new(),
                name: format!("Speaker {i}"),
            };
            live.add_speaker(s.clone());
            s.id
        })
        .collect();

    let cpu0 = cpu_time::ThreadTime::now();
    let wall0 = Instant::now();
    let mut next_tick = 20_000u64;
    for p in &plan {
        while p.arrival_us >= next_tick {
            live.tick(Duration::from_micros(next_tick))?;
            next_tick += 20_000;
        }
        live.push(
            speakers[p.stream as usize],
            RtpPacket {
                ssrc: 0x5eed_0000 + p.stream,
                sequence: p.sequence,
                timestamp: p.timestamp,
                payload: &pool[p.payload as usize],
            },
            Duration::from_micros(p.arrival_us),
        )?;
    }
    let end = plan.last().map_or(0, |p| p.arrival_us) + 20_000;
    let stats = live.stats();
    let manifest = live.finish(Duration::from_micros(end), Timestamp::now())?;
    let cpu = cpu0.elapsed();
    let wall = wall0.elapsed();

    let mut r = RecorderBench {
        streams,
        packets: plan.len() as u64,
        cpu,
        wall,
        payload_bytes: 0,
        header_bytes: 0,
        file_bytes: 0,
        written: 0,
        duplicates: 0,
        late: 0,
        filled_frames: 0,
    };
    for (_, s) in &stats {
        r.written += s.written;
        r.duplicates += s.duplicates;
        r.late += s.late;
        r.filled_frames += s.filled_frames;
    }
    for t in &manifest.tracks {
        let bytes = store.get(&layout::file_key(id, &t.file))?;
        let pages = scan_pages(&bytes);
        r.file_bytes += bytes.len() as u64;
        r.header_bytes += pages.iter().take(2).map(|p| p.len).sum::<u64>();
        // Payload: everything in audio pages that is not page header or lacing.
        for p in pages.iter().skip(2) {
            let nseg = u64::from(bytes[p.offset as usize + 26]);
            r.payload_bytes += p.len - 27 - nseg;
        }
    }
    store.delete_dir(&id.to_string())?;
    Ok(r)
}
