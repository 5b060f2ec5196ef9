//! Many speakers in one recording: a sans-IO [`RoomRecorder`] over one [`TrackRecorder`] per
//! speaker, and [`LiveRecording`], which drives it into an archive store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use roomtape_core::{
    AppendFile, ArchiveStore, Manifest, ManifestTrack, RecordingId, RecordingSource, RoomId,
    Speaker, SpeakerId, Timestamp, TrackId, layout,
};

use crate::Result;
use crate::recorder::{RecorderEvent, RecorderOutput, RecorderSettings, RtpPacket, TrackRecorder};

/// Output of a [`RoomRecorder`].
#[derive(Debug, PartialEq, Eq)]
pub enum RoomOutput {
    /// A speaker's first packet arrived: their track exists from now on.
    TrackStarted {
        track: TrackId,
        speaker: SpeakerId,
        /// Where the track starts, from the recording's start.
        offset: Duration,
    },
    /// Bytes to append to a track's file.
    Append { track: TrackId, bytes: Vec<u8> },
    /// Something a track's recorder noticed.
    Event {
        track: TrackId,
        event: RecorderEvent,
    },
}

#[derive(Debug)]
struct RoomTrack {
    id: TrackId,
    speaker: Speaker,
    recorder: TrackRecorder,
    offset: Option<Duration>,
}

/// The tracks of one recording, sans-IO. Time is the caller's clock, as in [`TrackRecorder`].
#[derive(Debug)]
pub struct RoomRecorder {
    settings: RecorderSettings,
    started: Duration,
    tracks: Vec<RoomTrack>,
    by_speaker: HashMap<SpeakerId, usize>,
    out: std::collections::VecDeque<RoomOutput>,
    finished: bool,
}

impl RoomRecorder {
    /// A recording that starts at `now`.
    pub fn new(settings: RecorderSettings, now: Duration) -> Self {
        RoomRecorder {
            settings,
            started: now,
            tracks: Vec::new(),
            by_speaker: HashMap::new(),
            out: Default::default(),
            finished: false,
        }
    }

    /// Registers a speaker. A speaker who left and comes back keeps the same track; the gap is
    /// filled when their audio resumes.
    pub fn add_speaker(&mut self, speaker: Speaker) -> TrackId {
        if let Some(&i) = self.by_speaker.get(&speaker.id) {
            return self.tracks[i].id;
        }
        let id = TrackId::new();
        let tags = vec![
            ("TITLE".to_string(), speaker.name.clone()),
            ("ARTIST".to_string(), speaker.name.clone()),
            ("ROOMTAPE_SPEAKER_ID".to_string(), speaker.id.to_string()),
            ("ROOMTAPE_TRACK_ID".to_string(), id.to_string()),
        ];
        let serial = id.as_uuid().as_u128() as u32;
        self.by_speaker.insert(speaker.id, self.tracks.len());
        self.tracks.push(RoomTrack {
            id,
            speaker,
            recorder: TrackRecorder::new(self.settings, tags, serial),
            offset: None,
        });
        id
    }

    /// Feeds one RTP packet of `speaker`. Unknown speakers are ignored (and counted by the
    /// caller); the SFU decides who may publish.
    pub fn push(&mut self, speaker: SpeakerId, pkt: RtpPacket<'_>, now: Duration) -> Result<bool> {
        let Some(&i) = self.by_speaker.get(&speaker) else {
            return Ok(false);
        };
        if self.finished {
            return Ok(false);
        }
        self.tracks[i].recorder.push(pkt, now)?;
        self.collect(i);
        Ok(true)
    }

    /// Lets time pass for every track.
    pub fn tick(&mut self, now: Duration) -> Result<()> {
        for i in 0..self.tracks.len() {
            self.tracks[i].recorder.tick(now)?;
            self.collect(i);
        }
        Ok(())
    }

    /// Ends every track at `now`.
    pub fn finish(&mut self, now: Duration) -> Result<()> {
        for i in 0..self.tracks.len() {
            if self.tracks[i].recorder.started_at().is_some() {
                self.tracks[i].recorder.finish(now)?;
                self.collect(i);
            }
        }
        self.finished = true;
        Ok(())
    }

    fn collect(&mut self, i: usize) {
        let t = &mut self.tracks[i];
        if t.offset.is_none() {
            let Some(at) = t.recorder.started_at() else {
                return;
            };
            let offset = at.saturating_sub(self.started);
            t.offset = Some(offset);
            self.out.push_back(RoomOutput::TrackStarted {
                track: t.id,
                speaker: t.speaker.id,
                offset,
            });
        }
        while let Some(o) = t.recorder.poll_output() {
            self.out.push_back(match o {
                RecorderOutput::Write(bytes) => RoomOutput::Append { track: t.id, bytes },
                RecorderOutput::Event(event) => RoomOutput::Event { track: t.id, event },
            });
        }
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<RoomOutput> {
        self.out.pop_front()
    }

    /// Manifest entries of the tracks that have started, with their lengths so far.
    pub fn manifest_tracks(&self) -> Vec<ManifestTrack> {
        self.tracks
            .iter()
            .filter_map(|t| {
                let offset = t.offset?;
                Some(ManifestTrack {
                    track_id: t.id,
                    speaker_id: t.speaker.id,
                    speaker_name: t.speaker.name.clone(),
                    file: layout::track_file(t.id),
                    offset_ms: offset.as_millis() as i64,
                    duration_ms: (t.recorder.written_samples() / 48) as i64,
                })
            })
            .collect()
    }

    /// Per-track counters.
    pub fn stats(&self) -> Vec<(TrackId, crate::RecorderStats)> {
        self.tracks
            .iter()
            .map(|t| (t.id, t.recorder.stats()))
            .collect()
    }
}

/// A live recording written to an archive store as it happens: the track files grow page by
/// page (each page made durable within about a second) and the manifest is rewritten
/// atomically whenever a track appears.
#[derive(Debug)]
pub struct LiveRecording {
    room: RoomRecorder,
    manifest: Manifest,
    store: Arc<dyn ArchiveStore>,
    files: HashMap<TrackId, Box<dyn AppendFile>>,
    manifest_changed: bool,
    fsync: bool,
}

impl LiveRecording {
    /// Starts recording: writes the manifest of an open recording. `now` is the caller's clock
    /// and `wall` the same instant as a calendar time.
    pub fn start(
        store: Arc<dyn ArchiveStore>,
        id: RecordingId,
        room: Option<RoomId>,
        title: &str,
        settings: RecorderSettings,
        now: Duration,
        wall: Timestamp,
    ) -> Result<Self> {
        let manifest = Manifest {
            version: roomtape_core::MANIFEST_VERSION,
            recording_id: id,
            room_id: room,
            title: title.to_string(),
            source: RecordingSource::Live,
            started_at: wall,
            ended_at: None,
            open: true,
            recovered: false,
            tracks: Vec::new(),
        };
        store.put_atomic(&layout::manifest_key(id), &manifest.to_json())?;
        Ok(LiveRecording {
            room: RoomRecorder::new(settings, now),
            manifest,
            store,
            files: HashMap::new(),
            manifest_changed: false,
            fsync: true,
        })
    }

    /// Whether each page is made durable with `fsync` as it is written (the default). Without
    /// it a killed process still loses nothing the kernel has; a power cut may lose more.
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    /// The recording's id.
    pub fn id(&self) -> RecordingId {
        self.manifest.recording_id
    }

    /// See [`RoomRecorder::add_speaker`].
    pub fn add_speaker(&mut self, speaker: Speaker) -> TrackId {
        self.room.add_speaker(speaker)
    }

    /// Feeds a packet and writes what comes out.
    pub fn push(&mut self, speaker: SpeakerId, pkt: RtpPacket<'_>, now: Duration) -> Result<bool> {
        let known = self.room.push(speaker, pkt, now)?;
        self.drive()?;
        Ok(known)
    }

    /// Lets time pass; call every few tens of milliseconds.
    pub fn tick(&mut self, now: Duration) -> Result<()> {
        self.room.tick(now)?;
        self.drive()
    }

    /// True (once) after the set of tracks changed, so the caller can update the catalog.
    pub fn take_manifest_changed(&mut self) -> Option<&Manifest> {
        if std::mem::take(&mut self.manifest_changed) {
            Some(&self.manifest)
        } else {
            None
        }
    }

    /// Ends the recording at `now` (`wall` in calendar time): every track gets its last page
    /// and end-of-stream, files are synced, and the closed manifest is written.
    pub fn finish(mut self, now: Duration, wall: Timestamp) -> Result<Manifest> {
        self.room.finish(now)?;
        self.drive()?;
        for f in self.files.values_mut() {
            f.sync()?;
        }
        self.manifest.tracks = self.room.manifest_tracks();
        self.manifest.open = false;
        self.manifest.ended_at = Some(wall);
        self.store.put_atomic(
            &layout::manifest_key(self.manifest.recording_id),
            &self.manifest.to_json(),
        )?;
        Ok(self.manifest)
    }

    /// Per-track counters.
    pub fn stats(&self) -> Vec<(TrackId, crate::RecorderStats)> {
        self.room.stats()
    }

    fn drive(&mut self) -> Result<()> {
        let id = self.manifest.recording_id;
        while let Some(o) = self.room.poll_output() {
            match o {
                RoomOutput::TrackStarted { .. } => {
                    self.manifest.tracks = self.room.manifest_tracks();
                    self.store
                        .put_atomic(&layout::manifest_key(id), &self.manifest.to_json())?;
                    self.manifest_changed = true;
                }
                RoomOutput::Append { track, bytes } => {
                    let file = match self.files.entry(track) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => e.insert(
                            self.store
                                .open_append(&layout::file_key(id, &layout::track_file(track)))?,
                        ),
                    };
                    file.append(&bytes)?;
                    // Pages come about once a second per track: make each durable.
                    if self.fsync {
                        file.sync()?;
                    }
                }
                RoomOutput::Event { track, event } => {
                    tracing::debug!(%track, ?event, "recorder event");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oggopus::read_bytes;
    use roomtape_core::MemoryStore;

    fn speaker(name: &str) -> Speaker {
        Speaker {
            id: SpeakerId::new(),
            name: name.into(),
        }
    }

    fn played_ms(bytes: &[u8]) -> i64 {
        let mut r = read_bytes(bytes).unwrap();
        let mut n = 0u64;
        while let Some(p) = r.next_packet().unwrap() {
            n += u64::from(p.samples);
        }
        assert!(!r.truncated());
        ((n - u64::from(crate::PRE_SKIP)) / 48) as i64
    }

    #[test]
    fn late_joiners_get_offsets_and_rejoiners_keep_their_track() {
        let store = Arc::new(MemoryStore::new());
        let id = RecordingId::new();
        let mut live = LiveRecording::start(
            store.clone(),
            id,
            None,
            "Room",
            RecorderSettings::default(),
            Duration::from_secs(100),
            Timestamp::now(),
        )
        .unwrap();
        let (ana, bo) = (speaker("Ana"), speaker("Bo"));
        let ta = live.add_speaker(ana.clone());
        let tb = live.add_speaker(bo.clone());
        let payload = [0xfcu8, 9, 9, 9, 9];
        // Ana talks from 0 s to 10 s; Bo from 2 s to 4 s, leaves, and comes back at 7 s with a
        // new connection (new SSRC, new sequence and timestamp bases) until 10 s.
        for ms in (0..10_000u64).step_by(20) {
            let now = Duration::from_secs(100) + Duration::from_millis(ms);
            let k = (ms / 20) as u32;
            live.push(
                ana.id,
                RtpPacket {
                    ssrc: 1,
                    sequence: k as u16,
                    timestamp: k * 960,
                    payload: &payload,
                },
                now,
            )
            .unwrap();
            if (2_000..4_000).contains(&ms) {
                live.push(
                    bo.id,
                    RtpPacket {
                        ssrc: 2,
                        sequence: k as u16,
                        timestamp: k * 960,
                        payload: &payload,
                    },
                    now,
                )
                .unwrap();
            }
            if ms >= 7_000 {
                let j = k + 5000;
                live.push(
                    bo.id,
                    RtpPacket {
                        ssrc: 3,
                        sequence: j as u16,
                        timestamp: j * 960 + 17,
                        payload: &payload,
                    },
                    now,
                )
                .unwrap();
            }
            live.tick(now).unwrap();
        }
        let m = live
            .finish(Duration::from_secs(110), Timestamp::now())
            .unwrap();
        assert_eq!(m.tracks.len(), 2, "a rejoin continues the same track");
        let a = m.tracks.iter().find(|t| t.track_id == ta).unwrap();
        let b = m.tracks.iter().find(|t| t.track_id == tb).unwrap();
        assert_eq!((a.offset_ms, b.offset_ms), (0, 2_000));
        assert!((a.duration_ms - 10_000).abs() <= 3, "{}", a.duration_ms);
        assert!((b.duration_ms - 8_000).abs() <= 3, "{}", b.duration_ms);
        for t in [a, b] {
            let bytes = store.get(&layout::file_key(id, &t.file)).unwrap();
            assert!((played_ms(&bytes) - t.duration_ms).abs() <= 3);
        }
        let stored = Manifest::from_json(&store.get(&layout::manifest_key(id)).unwrap()).unwrap();
        assert_eq!(stored, m);
        assert!(!stored.open);
    }
}
