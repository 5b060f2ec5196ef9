//! Audio files into recordings. symphonia decodes WAV, FLAC, MP3, AAC/M4A and Ogg Vorbis; Ogg
//! Opus goes through libopus. Audio is resampled to 48 kHz (rubato) where needed and encoded
//! with libopus (VoIP, mono, 20 ms frames) into one track, or one track per channel.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use rubato::{FftFixedIn, Resampler};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{
    CODEC_TYPE_MP1, CODEC_TYPE_MP2, CODEC_TYPE_MP3, CODEC_TYPE_NULL, DecoderOptions,
};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use roomtape_core::{
    ArchiveStore, MANIFEST_VERSION, Manifest, ManifestTrack, RecordingId, RecordingSource,
    SpeakerId, StoreLock, Timestamp, TrackId, layout,
};

use crate::encode::OpusTrackEncoder;
use crate::oggopus::TrackReader;
use crate::{Error, Result};

/// How to import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Title of the recording; the file name when absent.
    pub title: Option<String>,
    /// Speaker names, one per track in order; `Speaker N` where missing.
    pub speakers: Vec<String>,
    /// One track per channel instead of one mono track.
    pub split_channels: bool,
    /// Opus bit rate of the tracks.
    pub bitrate: i32,
    /// Opus bit rate of the mix.
    pub mix_bitrate: i32,
    /// Longest input accepted, in seconds.
    pub max_seconds: u32,
}

impl ImportOptions {
    /// Options with the configured bit rates and limit.
    pub fn from_config(c: &roomtape_core::ImportConfig) -> Self {
        ImportOptions {
            title: None,
            speakers: Vec::new(),
            split_channels: false,
            bitrate: c.bitrate,
            mix_bitrate: c.mix_bitrate,
            max_seconds: c.max_seconds,
        }
    }
}

/// Progress of an import: seconds decoded, and the total when the file says.
#[derive(Clone, Copy, Debug)]
pub struct ImportProgress {
    pub done_seconds: f64,
    pub total_seconds: Option<f64>,
}

/// A finished import. Its archive stays claimed ([`layout::claim_key`]) until this is
/// dropped: the caller writes the catalog row first, so recovery never removes the archive of
/// an import that is alive, and an importer killed before its row exists leaves an archive
/// recovery removes.
#[derive(Debug)]
pub struct Imported {
    pub manifest: Manifest,
    _claim: StoreLock,
}

impl Imported {
    /// Lets go of the archive: once its catalog row exists, or where there is no catalog.
    pub fn release(self) -> Manifest {
        self.manifest
    }
}

/// Imports `path` into `store` as a new recording: tracks, manifest, mix and peaks. On error
/// nothing is left in the store.
pub fn import_file(
    path: &Path,
    store: &dyn ArchiveStore,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<Imported> {
    let id = RecordingId::new();
    // Claimed before the first file exists, so no one ever sees this archive unclaimed.
    let claim = store.try_lock(&layout::claim_key(id))?.ok_or_else(|| {
        roomtape_core::Error::Conflict(format!("recording {id} is claimed by another writer"))
    })?;
    match import_into(id, path, store, opts, progress) {
        Ok(manifest) => Ok(Imported {
            manifest,
            _claim: claim,
        }),
        Err(e) => {
            let _ = store.delete_dir(&id.to_string());
            Err(e)
        }
    }
}

fn import_into(
    id: RecordingId,
    path: &Path,
    store: &dyn ArchiveStore,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<Manifest> {
    let started_at = Timestamp::now();
    let mut input = Input::open(path)?;
    let rate = input.rate();
    let channels = input.channels();
    let total = input.expected_frames();
    let max_frames = u64::from(opts.max_seconds) * u64::from(rate);
    if let Some(n) = total
        && n > max_frames
    {
        return Err(Error::Limit(format!(
            "the file holds {} of audio; the limit is {}",
            hms(n, rate),
            hms(max_frames, rate)
        )));
    }
    let outputs = if opts.split_channels { channels } else { 1 };
    // Every name given must name a track: extra ones were a mistake, not something to drop.
    if opts.speakers.len() > outputs {
        return Err(Error::Core(roomtape_core::Error::Invalid(
            if opts.split_channels {
                format!(
                    "{} speaker names for {channels} channel(s); give one per channel",
                    opts.speakers.len()
                )
            } else {
                format!(
                    "{} speaker names for one track; several speakers need --split-channels (one per channel)",
                    opts.speakers.len()
                )
            },
        )));
    }
    let mut sinks = Vec::with_capacity(outputs);
    let mut tracks = Vec::with_capacity(outputs);
    for i in 0..outputs {
        let name = opts
            .speakers
            .get(i)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("Speaker {}", i + 1));
        let track_id = TrackId::new();
        let speaker_id = SpeakerId::new();
        let file = layout::track_file(track_id);
        let enc = OpusTrackEncoder::new(
            store,
            &layout::file_key(id, &file),
            opts.bitrate,
            opus::Application::Voip,
            vec![
                ("TITLE".into(), name.clone()),
                ("ARTIST".into(), name.clone()),
                ("ROOMTAPE_SPEAKER_ID".into(), speaker_id.to_string()),
                ("ROOMTAPE_TRACK_ID".into(), track_id.to_string()),
            ],
        )?;
        sinks.push(Sink::new(rate, enc)?);
        tracks.push(ManifestTrack {
            track_id,
            speaker_id,
            speaker_name: name,
            file,
            offset_ms: 0,
            duration_ms: 0,
        });
    }

    let mut decoded: u64 = 0;
    let mut mono = Vec::new();
    let mut last_report = 0u64;
    while let Some(planes) = input.next_block()? {
        let frames = planes.first().map_or(0, Vec::len);
        decoded += frames as u64;
        if decoded > max_frames {
            return Err(Error::Limit(format!(
                "the audio runs past the limit of {}",
                hms(max_frames, rate)
            )));
        }
        if outputs == 1 {
            mono.clear();
            mono.extend_from_slice(&planes[0]);
            if channels > 1 {
                for plane in &planes[1..] {
                    for (m, s) in mono.iter_mut().zip(plane) {
                        *m += s;
                    }
                }
                let k = 1.0 / channels as f32;
                mono.iter_mut().for_each(|m| *m *= k);
            }
            sinks[0].push(&mono)?;
        } else {
            for (sink, plane) in sinks.iter_mut().zip(planes) {
                sink.push(plane)?;
            }
        }
        if decoded - last_report >= u64::from(rate) {
            last_report = decoded;
            progress(ImportProgress {
                done_seconds: decoded as f64 / f64::from(rate),
                total_seconds: total.map(|t| t as f64 / f64::from(rate)),
            });
        }
    }
    if decoded == 0 {
        return Err(Error::Decode("the file holds no audio".into()));
    }
    if input.is_mpeg_audio() {
        // MP3 rarely states its length; a cut file shows as a last frame running past the end.
        let bytes = std::fs::read(path)?;
        if let Some(at) = mpeg_audio_cut(&bytes) {
            return Err(Error::Decode(format!(
                "truncated: the last MP3 frame (at byte {at}) runs past the end of the file; {} could be decoded",
                hms(decoded, rate)
            )));
        }
    }
    if let Some(n) = total {
        // Decoders may stop a frame or so short of the declared length; more is a cut file.
        if decoded + u64::from(rate) / 10 < n {
            return Err(Error::Decode(format!(
                "truncated or corrupt: the header declares {} of audio but only {} could be decoded",
                hms(n, rate),
                hms(decoded, rate)
            )));
        }
    }
    for (sink, track) in sinks.into_iter().zip(&mut tracks) {
        let samples = sink.finish(decoded)?;
        track.duration_ms = (samples / 48) as i64;
    }
    let title = opts
        .title
        .clone()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "Untitled".into())
        });
    let mut manifest = Manifest {
        version: MANIFEST_VERSION,
        recording_id: id,
        room_id: None,
        title,
        source: RecordingSource::Import,
        started_at,
        ended_at: None,
        open: false,
        recovered: false,
        tracks,
    };
    manifest.ended_at = Some(started_at.add_millis(manifest.duration_ms()));
    crate::mixdown::build_mix_and_peaks(store, &manifest, opts.mix_bitrate)?;
    store.put_atomic(&layout::manifest_key(id), &manifest.to_json())?;
    Ok(manifest)
}

/// `h:mm:ss.mmm` for messages.
fn hms(frames: u64, rate: u32) -> String {
    let ms = frames * 1000 / u64::from(rate.max(1));
    format!(
        "{}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Resampling to 48 kHz (when needed) in front of an encoder.
struct Sink {
    rate: u32,
    resampler: Option<FftFixedIn<f32>>,
    inbuf: Vec<f32>,
    /// Output samples still to drop: the resampler's delay.
    delay: usize,
    out_count: u64,
    enc: OpusTrackEncoder,
}

const CHUNK: usize = 1024;

impl Sink {
    fn new(rate: u32, enc: OpusTrackEncoder) -> Result<Self> {
        let resampler = if rate == 48_000 {
            None
        } else {
            Some(
                FftFixedIn::<f32>::new(rate as usize, 48_000, CHUNK, 2, 1)
                    .map_err(|e| Error::Unsupported(format!("resampling from {rate} Hz: {e}")))?,
            )
        };
        let delay = resampler.as_ref().map_or(0, |r| r.output_delay());
        Ok(Sink {
            rate,
            resampler,
            inbuf: Vec::with_capacity(CHUNK * 2),
            delay,
            out_count: 0,
            enc,
        })
    }

    fn emit(&mut self, mut out: &[f32], limit: Option<u64>) -> Result<()> {
        if self.delay > 0 {
            let d = self.delay.min(out.len());
            out = &out[d..];
            self.delay -= d;
        }
        if let Some(limit) = limit {
            let room = limit.saturating_sub(self.out_count) as usize;
            out = &out[..out.len().min(room)];
        }
        self.out_count += out.len() as u64;
        self.enc.push(out)
    }

    fn push(&mut self, samples: &[f32]) -> Result<()> {
        if self.resampler.is_none() {
            return self.emit(samples, None);
        }
        self.inbuf.extend_from_slice(samples);
        let mut start = 0;
        while self.inbuf.len() - start >= CHUNK {
            let r = self.resampler.as_mut().ok_or(Error::Cancelled)?;
            let out = r
                .process(&[&self.inbuf[start..start + CHUNK]], None)
                .map_err(|e| Error::Decode(format!("resampling: {e}")))?;
            start += CHUNK;
            self.emit(&out[0], None)?;
        }
        self.inbuf.drain(..start);
        Ok(())
    }

    /// Flushes the resampler so that exactly `in_frames` of input become their length at
    /// 48 kHz, then finishes the file. Returns the samples written.
    fn finish(mut self, in_frames: u64) -> Result<u64> {
        let expected = (in_frames * 48_000 + u64::from(self.rate) / 2) / u64::from(self.rate);
        if self.resampler.is_some() {
            let rest = std::mem::take(&mut self.inbuf);
            let mut first = true;
            let mut rounds = 0;
            while self.out_count < expected && rounds < 64 {
                let r = self.resampler.as_mut().ok_or(Error::Cancelled)?;
                // An input that filled its last chunk exactly leaves nothing here, and rubato
                // refuses an empty slice: then there is only the flush.
                let out = if first && !rest.is_empty() {
                    r.process_partial(Some(&[&rest[..]]), None)
                } else {
                    r.process_partial::<&[f32]>(None, None)
                }
                .map_err(|e| Error::Decode(format!("resampling: {e}")))?;
                first = false;
                rounds += 1;
                self.emit(&out[0], Some(expected))?;
            }
        }
        let n = self.out_count;
        self.enc.finish()?;
        Ok(n)
    }
}

/// A decoded input file, block by block, planar `f32`.
enum Input {
    Symphonia {
        format: Box<dyn FormatReader>,
        decoder: Box<dyn symphonia::core::codecs::Decoder>,
        track: u32,
        rate: u32,
        channels: usize,
        frames: Option<u64>,
        mpeg: bool,
        planes: Vec<Vec<f32>>,
        sample_buf: Option<SampleBuffer<f32>>,
        errors: u32,
    },
    Opus {
        reader: TrackReader<BufReader<File>>,
        decoder: opus::Decoder,
        channels: usize,
        skip: usize,
        planes: Vec<Vec<f32>>,
        buf: Vec<f32>,
    },
}

impl Input {
    fn open(path: &Path) -> Result<Input> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        if len == 0 {
            return Err(Error::Decode("the file is empty".into()));
        }
        let mut magic = [0u8; 36];
        let n = read_up_to(&mut file, &mut magic)?;
        drop(file);
        if n >= 36 && &magic[..4] == b"OggS" && &magic[28..36] == b"OpusHead" {
            return Self::open_opus(path);
        }
        Self::open_symphonia(path)
    }

    fn open_opus(path: &Path) -> Result<Input> {
        let reader = TrackReader::new(BufReader::new(File::open(path)?))?;
        let channels = usize::from(reader.head().channels);
        let ch = if channels == 2 {
            opus::Channels::Stereo
        } else {
            opus::Channels::Mono
        };
        let decoder = opus::Decoder::new(48_000, ch)?;
        let skip = usize::from(reader.head().pre_skip);
        Ok(Input::Opus {
            reader,
            decoder,
            channels,
            skip,
            planes: vec![Vec::new(); channels],
            buf: vec![0.0; 5760 * channels],
        })
    }

    fn open_symphonia(path: &Path) -> Result<Input> {
        let file = File::open(path)?;
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let probed = symphonia::default::get_probe()
            .format(
                &hint,
                mss,
                &FormatOptions::default(),
                &MetadataOptions::default(),
            )
            .map_err(|e| match e {
                SymError::Unsupported(m) if m.contains("no suitable") => Error::Decode(
                    "not a recognised audio file (no known container or codec signature)".into(),
                ),
                SymError::Unsupported(m) => match wav_format_tag(path) {
                    Some(tag) => {
                        Error::Unsupported(format!("WAV audio encoding {}", wav_tag_name(tag)))
                    }
                    None => Error::Unsupported(m.to_string()),
                },
                other => sym_error("reading the container", other),
            })?;
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| Error::Decode("the file holds no audio track".into()))?;
        let params = track.codec_params.clone();
        let track_id = track.id;
        let decoder = symphonia::default::get_codecs()
            .make(&params, &DecoderOptions::default())
            .map_err(|e| match e {
                SymError::Unsupported(what) => {
                    Error::Unsupported(format!("codec {} ({what})", codec_name(params.codec)))
                }
                other => sym_error("opening the decoder", other),
            })?;
        let rate = params
            .sample_rate
            .ok_or_else(|| Error::Decode("the file does not say its sample rate".into()))?;
        if !(4_000..=384_000).contains(&rate) {
            return Err(Error::Unsupported(format!("sample rate {rate} Hz")));
        }
        let channels = params.channels.map_or(1, |c| c.count()).max(1);
        if channels > 32 {
            return Err(Error::Unsupported(format!("{channels} channels")));
        }
        Ok(Input::Symphonia {
            format,
            decoder,
            track: track_id,
            rate,
            channels,
            frames: params.n_frames,
            mpeg: [CODEC_TYPE_MP1, CODEC_TYPE_MP2, CODEC_TYPE_MP3].contains(&params.codec),
            planes: vec![Vec::new(); channels],
            sample_buf: None,
            errors: 0,
        })
    }

    fn rate(&self) -> u32 {
        match self {
            Input::Symphonia { rate, .. } => *rate,
            Input::Opus { .. } => 48_000,
        }
    }

    fn channels(&self) -> usize {
        match self {
            Input::Symphonia { channels, .. } | Input::Opus { channels, .. } => *channels,
        }
    }

    fn is_mpeg_audio(&self) -> bool {
        matches!(self, Input::Symphonia { mpeg: true, .. })
    }

    fn expected_frames(&self) -> Option<u64> {
        match self {
            Input::Symphonia { frames, .. } => *frames,
            Input::Opus { .. } => None,
        }
    }

    /// The next block of audio, one `Vec` per channel.
    fn next_block(&mut self) -> Result<Option<&[Vec<f32>]>> {
        match self {
            Input::Symphonia {
                format,
                decoder,
                track,
                planes,
                sample_buf,
                errors,
                ..
            } => loop {
                let packet = match format.next_packet() {
                    Ok(p) => p,
                    Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        return Ok(None);
                    }
                    Err(SymError::ResetRequired) => return Ok(None),
                    Err(e) => return Err(sym_error("reading", e)),
                };
                if packet.track_id() != *track {
                    continue;
                }
                let decoded = match decoder.decode(&packet) {
                    Ok(d) => d,
                    Err(SymError::DecodeError(msg)) => {
                        // A damaged frame or two is survivable; many are a broken file.
                        *errors += 1;
                        if *errors > 16 {
                            return Err(Error::Decode(format!(
                                "too many undecodable frames ({msg})"
                            )));
                        }
                        continue;
                    }
                    Err(e) => return Err(sym_error("decoding", e)),
                };
                let spec = *decoded.spec();
                let frames = decoded.frames();
                if frames == 0 {
                    continue;
                }
                let buf = match sample_buf {
                    Some(b) if b.capacity() >= decoded.capacity() * spec.channels.count() => b,
                    _ => sample_buf.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
                };
                buf.copy_interleaved_ref(decoded);
                let inter = buf.samples();
                let ch = spec.channels.count().max(1);
                for (c, plane) in planes.iter_mut().enumerate() {
                    plane.clear();
                    if c < ch {
                        plane.extend(inter.iter().skip(c).step_by(ch).take(frames));
                    } else {
                        plane.resize(frames, 0.0);
                    }
                }
                return Ok(Some(planes));
            },
            Input::Opus {
                reader,
                decoder,
                channels,
                skip,
                planes,
                buf,
            } => loop {
                let Some(p) = reader.next_packet()? else {
                    return Ok(None);
                };
                let n = decoder.decode_float(&p.data, buf, false).map_err(|e| {
                    Error::Decode(format!(
                        "undecodable Opus packet at {:.3} s: {e}",
                        p.start as f64 / 48_000.0
                    ))
                })?;
                let keep = n.min(p.samples as usize);
                let from = (*skip).min(keep);
                *skip -= from;
                if from == keep {
                    continue;
                }
                let ch = *channels;
                for (c, plane) in planes.iter_mut().enumerate() {
                    plane.clear();
                    plane.extend((from..keep).map(|i| buf[i * ch + c]));
                }
                return Ok(Some(planes));
            },
        }
    }
}

/// Walks the MPEG audio frames of a file (ISO 11172-3 §2.4.2.3 headers, after any ID3v2 tag) and
/// returns the offset of a last frame that runs past the end of the data, if there is one.
fn mpeg_audio_cut(data: &[u8]) -> Option<usize> {
    let mut pos = 0usize;
    if data.len() >= 10 && &data[..3] == b"ID3" {
        let size = data[6..10]
            .iter()
            .fold(0usize, |acc, &b| (acc << 7) | usize::from(b & 0x7f));
        pos = 10 + size + if data[5] & 0x10 != 0 { 10 } else { 0 };
    }
    // Find the first frame.
    while pos + 4 <= data.len() && mpeg_frame_len(&data[pos..]).is_none() {
        pos += 1;
    }
    let mut frames = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.starts_with(b"TAG") || rest.starts_with(b"APETAGEX") || rest.starts_with(b"LYRICS")
        {
            return None;
        }
        let Some(len) = mpeg_frame_len(rest) else {
            // Not a frame header: trailing junk after the audio, or a header cut short.
            return (frames > 0 && rest.len() < 4 && rest[0] == 0xff).then_some(pos);
        };
        if len > rest.len() {
            return Some(pos);
        }
        pos += len;
        frames += 1;
    }
    None
}

/// Length in bytes of the MPEG audio frame whose header starts `b`.
fn mpeg_frame_len(b: &[u8]) -> Option<usize> {
    if b.len() < 4 || b[0] != 0xff || b[1] & 0xe0 != 0xe0 {
        return None;
    }
    let version = (b[1] >> 3) & 3; // 0: MPEG 2.5, 2: MPEG 2, 3: MPEG 1
    let layer = (b[1] >> 1) & 3; // 1: III, 2: II, 3: I
    let bitrate_index = usize::from(b[2] >> 4);
    let rate_index = usize::from((b[2] >> 2) & 3);
    let padding = usize::from((b[2] >> 1) & 1);
    if version == 1 || layer == 0 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    const RATES: [[usize; 3]; 4] = [
        [11_025, 12_000, 8_000],
        [0, 0, 0],
        [22_050, 24_000, 16_000],
        [44_100, 48_000, 32_000],
    ];
    const V1: [[usize; 15]; 3] = [
        [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ],
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ],
        [
            0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ],
    ];
    const V2: [[usize; 15]; 3] = [
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
        ],
    ];
    let rate = RATES[usize::from(version)][rate_index];
    let table = if version == 3 { &V1 } else { &V2 };
    let kbps = table[usize::from(layer) - 1][bitrate_index] * 1000;
    Some(match layer {
        3 => (12 * kbps / rate + padding) * 4,
        1 if version != 3 => 72 * kbps / rate + padding,
        _ => 144 * kbps / rate + padding,
    })
}

/// The `wFormatTag` of a RIFF/WAVE file's `fmt ` chunk.
fn wav_format_tag(path: &Path) -> Option<u16> {
    let mut head = [0u8; 4096];
    let n = read_up_to(&mut File::open(path).ok()?, &mut head).ok()?;
    let head = &head[..n];
    if head.len() < 12 || &head[..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return None;
    }
    let mut pos = 12;
    while pos + 8 <= head.len() {
        let size = u32::from_le_bytes([head[pos + 4], head[pos + 5], head[pos + 6], head[pos + 7]])
            as usize;
        if &head[pos..pos + 4] == b"fmt " {
            return head
                .get(pos + 8..pos + 10)
                .map(|b| u16::from_le_bytes([b[0], b[1]]));
        }
        pos += 8 + size + (size & 1);
    }
    None
}

fn wav_tag_name(tag: u16) -> String {
    let name = match tag {
        0x0031 => "GSM 6.10",
        0x0040 => "G.721 ADPCM",
        0x0050 | 0x0055 => "MPEG audio",
        0x0092 => "Dolby AC-3",
        0x0160..=0x0163 => "Windows Media Audio",
        0x0022 => "DSP Group TrueSpeech",
        _ => "",
    };
    if name.is_empty() {
        format!("0x{tag:04x}")
    } else {
        format!("0x{tag:04x} ({name})")
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn sym_error(doing: &str, e: SymError) -> Error {
    match e {
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Decode(format!("truncated: the file ends in the middle of {doing}"))
        }
        SymError::IoError(io) => Error::Decode(format!("{doing}: {io}")),
        SymError::DecodeError(m) => Error::Decode(format!("corrupt data while {doing}: {m}")),
        SymError::SeekError(_) => Error::Decode(format!("{doing}: seek failed")),
        SymError::Unsupported(m) => Error::Unsupported(m.to_string()),
        SymError::LimitError(m) => Error::Limit(m.to_string()),
        SymError::ResetRequired => Error::Unsupported("a stream that changes format midway".into()),
    }
}

fn codec_name(codec: symphonia::core::codecs::CodecType) -> String {
    symphonia::default::get_codecs()
        .get_codec(codec)
        .map_or_else(|| format!("{codec}"), |d| d.short_name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a 16 kHz input of a whole number of resampler chunks (8 s is 125 of them)
    /// failed with "Insufficient buffer size 0" when the sink flushed.
    #[test]
    fn input_filling_its_last_resampler_chunk_exactly_is_flushed() {
        let store = roomtape_core::MemoryStore::new();
        for frames in [CHUNK * 125, CHUNK * 125 + 1, CHUNK - 1] {
            let enc =
                OpusTrackEncoder::new(&store, "t.opus", 32_000, opus::Application::Voip, vec![])
                    .unwrap();
            let mut sink = Sink::new(16_000, enc).unwrap();
            let tone: Vec<f32> = (0..frames).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
            for block in tone.chunks(700) {
                sink.push(block).unwrap();
            }
            assert_eq!(
                sink.finish(frames as u64).unwrap(),
                frames as u64 * 3,
                "{frames}"
            );
        }
    }
}
