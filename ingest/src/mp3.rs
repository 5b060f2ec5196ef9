//! The MP3 copy of the replay mix (`mix.mp3`), for the podcast apps and players that refuse
//! Ogg/Opus (Apple Podcasts among them): LAME through `mp3lame-encoder`, constant 64 kbit/s
//! mono at 44.1 kHz (speech at the rate podcast hosts recommend), with a LAME "Info" frame
//! first so players know the exact length and the encoder's padding (gapless, seekable).

use roomtape_core::{ArchiveStore, RecordingId, layout};

use mp3lame_encoder::{Bitrate, Builder, FlushGap, MonoPcm, Quality};

use crate::decode::PcmReader;
use crate::{Error, Result};

/// The rate the mix is made at and fed to the encoder.
const INPUT_RATE: u32 = 48_000;
/// What the MP3 holds: MPEG-1 Layer III at 44.1 kHz, which every player decodes.
const OUTPUT_RATE: u32 = 44_100;
/// Samples decoded and encoded at once when converting a finished mix.
const CHUNK: usize = 48_000;

fn lame(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Encode(format!("mp3 encoder: {what}: {e}"))
}

/// An MP3 being written in memory from 48 kHz mono samples in −1.0..1.0.
pub struct Mp3Writer {
    enc: mp3lame_encoder::Encoder,
    out: Vec<u8>,
}

impl std::fmt::Debug for Mp3Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp3Writer")
            .field("bytes", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Mp3Writer {
    pub fn new() -> Result<Self> {
        let mut b = Builder::new().ok_or_else(|| lame("set-up", "out of memory"))?;
        b.set_num_channels(1).map_err(|e| lame("channels", e))?;
        b.set_sample_rate(INPUT_RATE)
            .map_err(|e| lame("input rate", e))?;
        b.set_output_sample_rate(std::num::NonZeroU32::new(OUTPUT_RATE))
            .map_err(|e| lame("output rate", e))?;
        b.set_brate(Bitrate::Kbps64)
            .map_err(|e| lame("bitrate", e))?;
        b.set_mode(mp3lame_encoder::Mode::Mono)
            .map_err(|e| lame("mode", e))?;
        // LAME's own default: its good speed/quality balance.
        b.set_quality(Quality::Good)
            .map_err(|e| lame("quality", e))?;
        b.set_to_write_vbr_tag(true)
            .map_err(|e| lame("info frame", e))?;
        let enc = b.build().map_err(|e| lame("set-up", e))?;
        Ok(Mp3Writer {
            enc,
            out: Vec::new(),
        })
    }

    /// Encodes the next samples.
    pub fn push(&mut self, pcm: &[f32]) -> Result<()> {
        for piece in pcm.chunks(CHUNK) {
            self.out
                .reserve(mp3lame_encoder::max_required_buffer_size(piece.len()));
            self.enc
                .encode_to_vec(MonoPcm(piece), &mut self.out)
                .map_err(|e| lame("encode", e))?;
        }
        Ok(())
    }

    /// Flushes the encoder and fills in the Info frame: the whole file.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.out.reserve(7200);
        self.enc
            .flush_to_vec::<FlushGap>(&mut self.out)
            .map_err(|e| lame("flush", e))?;
        let mut tag = Vec::with_capacity(self.enc.lame_tag_size());
        if let Some(n) = self.enc.lame_tag_encode_to_vec(&mut tag) {
            // No ID3 tag is written, so the Info frame is the file's first frame.
            let n = n.get().min(self.out.len());
            self.out[..n].copy_from_slice(&tag[..n]);
        }
        Ok(self.out)
    }
}

/// Makes `mix.mp3` from a recording's finished `mix.opus` (for mixes built before the MP3
/// was made beside them) and returns its size. The Opus mix stays as it is.
pub fn mp3_from_mix(store: &dyn ArchiveStore, id: RecordingId) -> Result<u64> {
    let file = store.open_read(&layout::file_key(id, layout::MIX_FILE))?;
    let mut reader = PcmReader::new(file.reader, INPUT_RATE)
        .map_err(|e| Error::Decode(format!("mix of {id}: {e}")))?;
    let mut mp3 = Mp3Writer::new()?;
    let mut buf = vec![0.0f32; CHUNK];
    loop {
        let got = reader.read(&mut buf)?;
        if got == 0 {
            break;
        }
        mp3.push(&buf[..got])?;
    }
    let bytes = mp3.finish()?;
    store.put_atomic(&layout::file_key(id, layout::MIX_MP3_FILE), &bytes)?;
    Ok(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphonia::core::audio::SampleBuffer;
    use symphonia::core::codecs::DecoderOptions;
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    /// Decodes an MP3 with symphonia: (sample rate, channels, mono samples).
    fn decode(bytes: Vec<u8>) -> (u32, usize, Vec<f32>) {
        let mss = MediaSourceStream::new(Box::new(std::io::Cursor::new(bytes)), Default::default());
        let mut hint = Hint::new();
        hint.with_extension("mp3");
        let probed = symphonia::default::get_probe()
            .format(
                &hint,
                mss,
                &FormatOptions {
                    enable_gapless: true,
                    ..Default::default()
                },
                &MetadataOptions::default(),
            )
            .expect("an MP3 symphonia recognises");
        let mut format = probed.format;
        let track = format.default_track().expect("a track").clone();
        let mut dec = symphonia::default::get_codecs()
            .make(&track.codec_params, &DecoderOptions::default())
            .expect("an MP3 decoder");
        let (mut rate, mut channels, mut out) = (0, 0, Vec::new());
        while let Ok(packet) = format.next_packet() {
            let audio = dec.decode(&packet).expect("every frame decodes");
            let spec = *audio.spec();
            rate = spec.rate;
            channels = spec.channels.count();
            let mut b = SampleBuffer::<f32>::new(audio.capacity() as u64, spec);
            b.copy_interleaved_ref(audio);
            out.extend_from_slice(b.samples());
        }
        (rate, channels, out)
    }

    #[test]
    fn a_tone_comes_back_at_its_length_and_level() {
        // 3 s of a 440 Hz tone at half scale.
        let pcm: Vec<f32> = (0..3 * 48_000)
            .map(|i| 0.5 * (i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin())
            .collect();
        let mut w = Mp3Writer::new().unwrap();
        for frame in pcm.chunks(960) {
            w.push(frame).unwrap();
        }
        let bytes = w.finish().unwrap();
        // 64 kbit/s for 3 s is 24 000 bytes, give or take a frame and the Info frame.
        assert!(
            (22_000..27_000).contains(&bytes.len()),
            "{} bytes",
            bytes.len()
        );
        // The Info frame a player reads the length from.
        assert!(
            bytes.windows(4).take(200).any(|w| w == b"Info"),
            "no Info frame at the start"
        );
        let (rate, channels, samples) = decode(bytes);
        assert_eq!((rate, channels), (44_100, 1));
        let secs = samples.len() as f64 / 44_100.0;
        assert!((secs - 3.0).abs() < 0.03, "decoded {secs} s");
        let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((0.4..0.6).contains(&peak), "peak {peak}");
    }
}
