//! Live captions: each speaker's own audio, as it arrives, becomes words on screen within a
//! second or two.
//!
//! Two parts. [`Stream`] is one speaker's rolling transcript and holds every rule, with no
//! I/O and no model (decoding is a function it is handed, so the rules are tested in tables):
//! audio goes into a rolling buffer; each step re-decodes the whole buffer, and the words that
//! two successive hypotheses agree on (after what is already committed) are committed — the
//! LocalAgreement policy of Macháček et al., "Turning Whisper into Real-Time Transcription
//! System" (2023). Committed words are *final* and never retracted; the rest of the latest
//! hypothesis is *partial*. The buffer is cut at the end of a committed sentence (or of the
//! last committed word once it grows long), and the committed text cut out of it becomes the
//! prompt, so Whisper keeps the context without re-reading it. When the speaker pauses, one
//! last decode commits everything (nobody is adding words that could change it), so the end of
//! an utterance does not wait for a next step that would never disagree.
//!
//! [`Captioner`] is the scheduler: one thread owning one model for every live room of the
//! process, taking each speaker's Opus packets (decoded here, at 16 kHz), and stepping the
//! speaker whose un-decoded speech is oldest. Its queue is bounded and never blocks the sender
//! (the SFU's forwarding never waits for captions): a full queue drops packets and says so. When
//! decoding cannot keep up, steps get longer, and past that captions pause with a notice until
//! the load falls.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use crate::engine::{Engine, RawWord, WindowRequest};
use crate::pipeline::RATE;

/// Tuning of live captions.
#[derive(Clone, Debug)]
pub struct CaptionSettings {
    /// New audio between two decodes of a speaker's buffer, ms (grows under load).
    pub step_ms: u32,
    /// The longest step before captions pause, ms.
    pub max_step_ms: u32,
    /// A buffer longer than this is cut at its last committed word, ms.
    pub max_buffer_ms: u32,
    /// A pause this long after speech ends the utterance: everything heard is committed, ms.
    pub pause_ms: u32,
    /// Undecoded speech of one speaker beyond which captions pause, ms.
    pub max_backlog_ms: u32,
    /// Whisper threads per decode.
    pub threads: usize,
    /// Speech starts this many dB above the speaker's noise floor.
    pub on_db: f32,
    /// Nothing quieter than this is speech (dBFS).
    pub min_speech_dbfs: f32,
}

impl Default for CaptionSettings {
    fn default() -> Self {
        CaptionSettings {
            step_ms: 1000,
            max_step_ms: 3000,
            max_buffer_ms: 8_000,
            pause_ms: 700,
            max_backlog_ms: 8000,
            threads: 1,
            on_db: 15.0,
            min_speech_dbfs: -50.0,
        }
    }
}

pub use roomtape_core::{Caption, CaptionKind, CaptionWord as Word};

/// A word compared the way agreement needs: lower case, letters and digits only.
pub fn norm(w: &str) -> String {
    w.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn ends_sentence(w: &str) -> bool {
    w.trim_end_matches(['"', '\'', ')'])
        .ends_with(['.', '?', '!'])
}

fn join(words: &[Word]) -> String {
    let mut s = String::new();
    for w in words {
        if !s.is_empty() && !w.text.starts_with(['.', ',', '?', '!', '\'']) {
            s.push(' ');
        }
        s.push_str(w.text.trim());
    }
    s
}

fn caption(kind: CaptionKind, words: &[Word]) -> Caption {
    Caption {
        kind,
        text: join(words),
        start_ms: words.first().map_or(0, |w| w.start_ms),
        end_ms: words.last().map_or(0, |w| w.end_ms),
        words: words.to_vec(),
    }
}

/// A caption with no words (a notice, or a partial that clears the line).
fn notice(kind: CaptionKind, text: &str) -> Caption {
    Caption {
        kind,
        text: text.to_string(),
        ..caption(kind, &[])
    }
}

/// Decodes a buffer of 16 kHz audio with a prompt; words in ms from the buffer's start.
pub type Decode<'a> = dyn FnMut(&[f32], &str) -> Vec<Word> + 'a;

/// One speaker's rolling transcript (see the module's documentation).
#[derive(Debug)]
pub struct Stream {
    settings: CaptionSettings,
    /// 16 kHz audio from `buffer_ms` on.
    audio: Vec<f32>,
    buffer_ms: i64,
    /// Samples of `audio` not yet decoded.
    fresh: usize,
    /// Committed words still inside the buffer (the next hypothesis repeats them).
    committed: Vec<Word>,
    /// Where committed speech ends.
    committed_ms: i64,
    /// Committed text cut out of the buffer: the prompt.
    context: Vec<String>,
    /// The previous hypothesis after the committed words.
    previous: Vec<Word>,
    /// Whether a partial is on screen (so an empty one clears it).
    partial_shown: bool,
    /// Voice detection: the noise floor, and where the last voiced frame ended.
    floor_db: f32,
    voiced_until_ms: Option<i64>,
    /// Speech is in the buffer that the last decode did not commit.
    open: bool,
}

/// 20 ms frames for voice detection.
const FRAME: usize = RATE / 50;
/// At a pause, the words two hypotheses did not agree on are committed but for a tail of words
/// Whisper is less sure of than this.
const MIN_P_UNAGREED: f32 = 0.5;
/// Audio kept before a cut, ms: word ends from the alignment can be late by this much.
const CUT_MARGIN_MS: i64 = 60;

impl Stream {
    pub fn new(settings: CaptionSettings) -> Stream {
        Stream {
            settings,
            audio: Vec::new(),
            buffer_ms: 0,
            fresh: 0,
            committed: Vec::new(),
            committed_ms: 0,
            context: Vec::new(),
            previous: Vec::new(),
            partial_shown: false,
            floor_db: -70.0,
            voiced_until_ms: None,
            open: false,
        }
    }

    fn end_ms(&self) -> i64 {
        self.buffer_ms + (self.audio.len() * 1000 / RATE) as i64
    }

    /// Adds audio that starts at room time `at_ms`. A gap before it is silence; a long one (a
    /// speaker who stopped sending) starts a new buffer. Returns captions the pause produced
    /// (none: the caller steps the stream).
    pub fn push(&mut self, at_ms: i64, pcm: &[f32]) {
        if self.audio.is_empty() && !self.open {
            self.buffer_ms = at_ms;
        }
        let end = self.end_ms();
        if at_ms > end {
            let gap = ((at_ms - end) as usize * RATE / 1000).min(5 * RATE);
            self.audio.extend(std::iter::repeat_n(0.0, gap));
            self.fresh += gap;
        }
        // Voice detection, frame by frame over what is new.
        let start = self.audio.len();
        self.audio.extend_from_slice(pcm);
        self.fresh += pcm.len();
        let mut i = start - start % FRAME;
        while i + FRAME <= self.audio.len() {
            let f = &self.audio[i..i + FRAME];
            let rms = (f.iter().map(|x| x * x).sum::<f32>() / FRAME as f32).sqrt();
            let db = 20.0 * rms.max(1e-7).log10();
            // The floor follows quiet frames at once and loud ones slowly.
            self.floor_db = if db < self.floor_db {
                db
            } else {
                self.floor_db + 0.02
            };
            if db > self.settings.min_speech_dbfs && db > self.floor_db + self.settings.on_db {
                self.voiced_until_ms = Some(self.buffer_ms + ((i + FRAME) * 1000 / RATE) as i64);
                self.open = true;
            }
            i += FRAME;
        }
        // Silence with nothing open is not kept (nothing is said on silence).
        if !self.open && self.audio.len() > RATE {
            let drop = self.audio.len() - RATE / 2;
            self.audio.drain(..drop);
            self.buffer_ms += (drop * 1000 / RATE) as i64;
            self.fresh = self.fresh.min(self.audio.len());
        }
    }

    /// Undecoded speech, ms (0 when nothing is open).
    pub fn backlog_ms(&self) -> i64 {
        if self.open {
            (self.fresh * 1000 / RATE) as i64
        } else {
            0
        }
    }

    /// Whether the utterance has ended: a pause of `pause_ms` after speech.
    fn paused(&self) -> bool {
        self.open
            && self
                .voiced_until_ms
                .is_some_and(|v| self.end_ms() - v >= i64::from(self.settings.pause_ms))
    }

    /// Whether a decode is due with steps of `step_ms`.
    pub fn due(&self, step_ms: u32) -> bool {
        self.open && (self.backlog_ms() >= i64::from(step_ms) || self.paused())
    }

    /// Decodes the buffer and returns the captions it gives: a final for newly committed
    /// words, then the partial that follows them.
    pub fn step(&mut self, decode: &mut Decode<'_>) -> Vec<Caption> {
        if !self.open {
            return Vec::new();
        }
        let prompt = self.context.join(" ");
        let hyp: Vec<Word> = decode(&self.audio, &prompt)
            .into_iter()
            .map(|w| Word {
                start_ms: w.start_ms + self.buffer_ms,
                end_ms: w.end_ms + self.buffer_ms,
                ..w
            })
            .filter(|w| !norm(&w.text).is_empty())
            .collect();
        self.fresh = 0;
        let fresh = self.after_committed(hyp);
        let ended = self.paused();
        let mut agreed = fresh
            .iter()
            .zip(&self.previous)
            .take_while(|(a, b)| norm(&a.text) == norm(&b.text))
            .count();
        if ended {
            // Nobody is adding words: the rest is committed too, but for a tail Whisper doubts
            // (a guess at the silence after the speech).
            let doubtful = fresh[agreed..]
                .iter()
                .rev()
                .take_while(|w| w.p < MIN_P_UNAGREED)
                .count();
            agreed = fresh.len() - doubtful;
        }
        let mut out = Vec::new();
        if agreed > 0 {
            let words = fresh[..agreed].to_vec();
            self.committed_ms = words.last().map_or(self.committed_ms, |w| w.end_ms);
            out.push(caption(CaptionKind::Final, &words));
            self.committed.extend(words);
        }
        self.previous = fresh[agreed..].to_vec();
        if !self.previous.is_empty() || self.partial_shown {
            out.push(Caption {
                start_ms: self
                    .previous
                    .first()
                    .map_or(self.committed_ms, |w| w.start_ms),
                end_ms: self.previous.last().map_or(self.committed_ms, |w| w.end_ms),
                ..caption(CaptionKind::Partial, &self.previous)
            });
            self.partial_shown = !self.previous.is_empty();
        }
        if ended {
            self.close_utterance();
        } else {
            self.trim();
        }
        out
    }

    /// Where the buffer may be cut after committed word `i`: its end, or the start of the
    /// word after it when the alignment put that earlier (so no word loses its beginning).
    fn cut_after(&self, i: usize) -> i64 {
        let end = self.committed[i].end_ms;
        let next = self
            .committed
            .get(i + 1)
            .or(self.previous.first())
            .map_or(end, |w| w.start_ms);
        end.min(next) - CUT_MARGIN_MS
    }

    /// The words of a hypothesis after those already committed: Whisper reads the committed
    /// words again while they are in the buffer, so they are skipped by time and by text.
    fn after_committed(&self, hyp: Vec<Word>) -> Vec<Word> {
        // By time: words centred before the committed end.
        let mut words: Vec<Word> = hyp
            .into_iter()
            .filter(|w| (w.start_ms + w.end_ms) / 2 > self.committed_ms)
            .collect();
        // Committed words the new timing puts just after the line (or cut out of the buffer a
        // moment ago): drop the repeat.
        let recent: Vec<String> = self
            .context
            .iter()
            .map(String::as_str)
            .chain(self.committed.iter().map(|w| w.text.as_str()))
            .map(norm)
            .collect();
        for n in (1..=words.len().min(recent.len()).min(6)).rev() {
            if recent[recent.len() - n..]
                .iter()
                .zip(&words[..n])
                .all(|(a, b)| *a == norm(&b.text))
            {
                words.drain(..n);
                break;
            }
        }
        words
    }

    /// Cuts the buffer at the end of the last committed sentence, or of the last committed
    /// word when the buffer is long.
    fn trim(&mut self) {
        let long = self.end_ms() - self.buffer_ms > i64::from(self.settings.max_buffer_ms);
        let cut = self
            .committed
            .iter()
            .rposition(|w| ends_sentence(&w.text))
            .or_else(|| long.then(|| self.committed.len().checked_sub(1)).flatten());
        if let Some(i) = cut {
            let at = self.cut_after(i);
            let done: Vec<Word> = self.committed.drain(..=i).collect();
            self.cut_at(at);
            self.remember(&done);
        }
    }

    fn remember(&mut self, words: &[Word]) {
        self.context
            .extend(words.iter().map(|w| w.text.trim().to_string()));
        let keep = 40;
        if self.context.len() > keep {
            self.context.drain(..self.context.len() - keep);
        }
    }

    fn cut_at(&mut self, at_ms: i64) {
        let n = (((at_ms - self.buffer_ms).max(0) as usize) * RATE / 1000).min(self.audio.len());
        self.audio.drain(..n);
        self.buffer_ms += (n * 1000 / RATE) as i64;
    }

    /// The utterance is over and committed: the buffer starts afresh.
    fn close_utterance(&mut self) {
        let done = std::mem::take(&mut self.committed);
        self.remember(&done);
        let end = self.end_ms();
        self.audio.clear();
        self.buffer_ms = end;
        self.previous.clear();
        self.open = false;
        self.voiced_until_ms = None;
    }

    /// Drops what is buffered (captions paused): nothing open, nothing on screen.
    pub fn reset(&mut self) {
        self.close_utterance();
        self.partial_shown = false;
    }
}

/// Words of one decode by Whisper, in ms from the buffer's start. Segments Whisper thinks hold
/// no speech, and bracketed non-speech (`[BLANK_AUDIO]`, `(music)`), give none.
pub fn whisper_words(
    engine: &Engine,
    state: &mut whisper_rs::WhisperState,
    audio: &[f32],
    prompt: &str,
    abort: &Arc<AtomicBool>,
) -> Vec<Word> {
    let req = WindowRequest {
        audio,
        language: "en",
        prompt,
        abort,
        translate: false,
    };
    let Ok(segments) = engine.run(state, &req) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in segments {
        if s.no_speech > 0.6 || crate::pipeline::is_non_speech(&s.text) {
            continue;
        }
        for RawWord {
            text,
            t0_ms,
            t1_ms,
            p,
        } in s.words
        {
            out.push(Word {
                text,
                start_ms: t0_ms,
                end_ms: t1_ms,
                p,
            });
        }
    }
    out
}

/// What the captioner is told.
enum Msg<K> {
    Open {
        key: K,
        origin: Instant,
    },
    Packet {
        key: K,
        payload: Vec<u8>,
        timestamp: u32,
        at: Instant,
    },
    Close {
        key: K,
    },
}

/// Where a speaker's captions go: the speaker's key and the caption.
pub type Sink<K> = Box<dyn FnMut(&K, Caption) + Send>;

/// The captioner's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct CaptionStats {
    pub decodes: u64,
    pub decode_secs: f64,
    /// Packets dropped because the queue was full.
    pub dropped: u64,
    /// Times captions paused for load.
    pub pauses: u64,
    /// The step in force now, ms.
    pub step_ms: u32,
}

/// The shared captioning thread (see the module's documentation). `K` names a speaker's
/// stream (room and speaker).
pub struct Captioner<K> {
    tx: SyncSender<Msg<K>>,
    stats: Arc<std::sync::Mutex<CaptionStats>>,
    dropped: std::sync::atomic::AtomicU64,
}

impl<K> std::fmt::Debug for Captioner<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Captioner").finish_non_exhaustive()
    }
}

/// Seconds over which the share of time spent decoding is measured.
const LOAD_WINDOW_S: f64 = 3.0;

/// Packets waiting for the captioning thread, at most (about 20 s of one speaker's audio).
const QUEUE: usize = 1000;

/// One speaker's state in the thread.
struct Speaker {
    stream: Stream,
    decoder: opus::Decoder,
    origin: Instant,
    /// The first packet's RTP timestamp and room time.
    first: Option<(u32, i64)>,
    /// The last packet's extended timestamp (for wrap-around).
    last_ts: i64,
}

impl<K: Clone + Eq + Hash + Send + 'static> Captioner<K> {
    /// Starts the thread with `engine` (shared by every room) and sends each caption to `sink`.
    pub fn start(engine: Arc<Engine>, settings: CaptionSettings, sink: Sink<K>) -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        let stats = Arc::new(std::sync::Mutex::new(CaptionStats {
            step_ms: settings.step_ms,
            ..Default::default()
        }));
        let s = stats.clone();
        std::thread::Builder::new()
            .name("captions".into())
            .spawn(move || run(engine, settings, rx, sink, s))
            .expect("spawning the captions thread");
        Captioner {
            tx,
            stats,
            dropped: Default::default(),
        }
    }

    /// A speaker starts being captioned; `origin` is the room's time zero.
    pub fn open(&self, key: K, origin: Instant) {
        let _ = self.tx.send(Msg::Open { key, origin });
    }

    /// One received Opus packet of an open speaker. Never blocks: when the thread is behind
    /// and its queue is full, the packet is dropped (and counted).
    pub fn packet(&self, key: K, payload: Vec<u8>, timestamp: u32, at: Instant) {
        match self.tx.try_send(Msg::Packet {
            key,
            payload,
            timestamp,
            at,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// The speaker is no longer captioned (left, off stage, captions off).
    pub fn close(&self, key: K) {
        let _ = self.tx.send(Msg::Close { key });
    }

    pub fn stats(&self) -> CaptionStats {
        let mut s = *self.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.dropped = self.dropped.load(std::sync::atomic::Ordering::Relaxed);
        s
    }
}

impl roomtape_core::LiveCaptions for Captioner<roomtape_core::CaptionKey> {
    fn open(&self, key: roomtape_core::CaptionKey, origin: Instant) {
        Captioner::open(self, key, origin);
    }

    fn packet(
        &self,
        key: &roomtape_core::CaptionKey,
        payload: Vec<u8>,
        timestamp: u32,
        at: Instant,
    ) {
        Captioner::packet(self, key.clone(), payload, timestamp, at);
    }

    fn close(&self, key: &roomtape_core::CaptionKey) {
        Captioner::close(self, key.clone());
    }
}

fn run<K: Clone + Eq + Hash>(
    engine: Arc<Engine>,
    settings: CaptionSettings,
    rx: Receiver<Msg<K>>,
    mut sink: Sink<K>,
    stats: Arc<std::sync::Mutex<CaptionStats>>,
) {
    let Ok(mut state) = engine.new_state() else {
        tracing::error!("captions: no Whisper state; captions are off");
        return;
    };
    let abort = Arc::new(AtomicBool::new(false));
    let mut speakers: HashMap<K, Speaker> = HashMap::new();
    let mut pcm = vec![0f32; RATE / 10];
    let mut step_ms = settings.step_ms;
    let mut paused_until: Option<Instant> = None;
    // The share of wall time spent decoding, over windows of a few seconds: the load.
    let mut window = Instant::now();
    let mut busy = 0.0f64;
    let mut take =
        |m: Msg<K>, speakers: &mut HashMap<K, Speaker>, sink: &mut Sink<K>, paused: bool| match m {
            Msg::Open { key, origin } => {
                if let Ok(decoder) = opus::Decoder::new(RATE as u32, opus::Channels::Mono) {
                    speakers.insert(
                        key,
                        Speaker {
                            stream: Stream::new(settings.clone()),
                            decoder,
                            origin,
                            first: None,
                            last_ts: 0,
                        },
                    );
                }
            }
            Msg::Close { key } => {
                if let Some(mut s) = speakers.remove(&key)
                    && s.stream.partial_shown
                {
                    s.stream.reset();
                    sink(&key, caption(CaptionKind::Partial, &[]));
                }
            }
            Msg::Packet {
                key,
                payload,
                timestamp,
                at,
            } => {
                let Some(s) = speakers.get_mut(&key) else {
                    return;
                };
                let Ok(n) = s.decoder.decode_float(&payload, &mut pcm, false) else {
                    return;
                };
                // Room time from the RTP clock (48 kHz), anchored at the first packet's arrival.
                let at_ms = match s.first {
                    None => {
                        let ms = at.saturating_duration_since(s.origin).as_millis() as i64;
                        s.first = Some((timestamp, ms));
                        s.last_ts = i64::from(timestamp);
                        ms
                    }
                    Some((ts0, ms0)) => {
                        let mut ts = i64::from(timestamp) + (s.last_ts & !0xFFFF_FFFF);
                        if ts < s.last_ts - (1 << 31) {
                            ts += 1 << 32;
                        }
                        s.last_ts = s.last_ts.max(ts);
                        ms0 + (ts - i64::from(ts0)) / 48
                    }
                };
                if !paused {
                    s.stream.push(at_ms, &pcm[..n]);
                }
            }
        };
    loop {
        // Everything waiting, then one decode.
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(m) => take(m, &mut speakers, &mut sink, paused_until.is_some()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(m) = rx.try_recv() {
            take(m, &mut speakers, &mut sink, paused_until.is_some());
        }
        if let Some(t) = paused_until {
            if Instant::now() < t {
                continue;
            }
            paused_until = None;
            step_ms = settings.step_ms;
            busy = 0.0;
            window = Instant::now();
            for k in speakers.keys() {
                sink(k, notice(CaptionKind::Resumed, ""));
            }
        }
        // Too far behind: pause rather than caption minutes late.
        if speakers
            .values()
            .any(|s| s.stream.backlog_ms() > i64::from(settings.max_backlog_ms))
        {
            paused_until = Some(Instant::now() + Duration::from_secs(10));
            if let Ok(mut st) = stats.lock() {
                st.pauses += 1;
            }
            for (k, s) in &mut speakers {
                s.stream.reset();
                sink(
                    k,
                    notice(
                        CaptionKind::Paused,
                        "Captions paused: this server cannot keep up",
                    ),
                );
            }
            continue;
        }
        // The speaker whose undecoded speech is oldest.
        let Some(key) = speakers
            .iter()
            .filter(|(_, s)| s.stream.due(step_ms))
            .max_by_key(|(_, s)| s.stream.backlog_ms())
            .map(|(k, _)| k.clone())
        else {
            continue;
        };
        let Some(s) = speakers.get_mut(&key) else {
            continue;
        };
        let t0 = Instant::now();
        let out = s
            .stream
            .step(&mut |audio, prompt| whisper_words(&engine, &mut state, audio, prompt, &abort));
        let secs = t0.elapsed().as_secs_f64();
        for c in out {
            sink(&key, c);
        }
        // Longer steps when decoding takes nearly all the time, shorter again when it does not.
        busy += secs;
        let span = window.elapsed().as_secs_f64();
        if span >= LOAD_WINDOW_S {
            let load = busy / span;
            step_ms = if load > 0.9 {
                (step_ms + step_ms / 2).min(settings.max_step_ms)
            } else if load < 0.6 {
                (step_ms * 4 / 5).max(settings.step_ms)
            } else {
                step_ms
            };
            busy = 0.0;
            window = Instant::now();
        }
        if let Ok(mut st) = stats.lock() {
            st.decodes += 1;
            st.decode_secs += secs;
            st.step_ms = step_ms;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str, start_ms: i64, end_ms: i64) -> Word {
        Word {
            text: text.into(),
            start_ms,
            end_ms,
            p: 0.9,
        }
    }

    /// A stream with `ms` of loud audio pushed at 0.
    fn speaking(ms: usize) -> Stream {
        let mut s = Stream::new(CaptionSettings::default());
        let tone: Vec<f32> = (0..ms * RATE / 1000)
            .map(|i| 0.3 * (i as f32 * 0.05).sin())
            .collect();
        s.push(0, &tone);
        s
    }

    #[test]
    fn words_two_hypotheses_agree_on_are_final_and_the_rest_partial() {
        let mut s = speaking(1200);
        let mut hyps = vec![
            vec![w("hello", 0, 400), w("world", 400, 800), w("of", 800, 1000)],
            vec![
                w("hello", 0, 400),
                w("world", 400, 800),
                w("offers", 800, 1100),
            ],
        ]
        .into_iter();
        let first = s.step(&mut |_, _| hyps.next().unwrap());
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].kind, CaptionKind::Partial);
        assert_eq!(first[0].text, "hello world of");
        s.push(1200, &vec![0.3; RATE / 2]);
        let second = s.step(&mut |_, _| hyps.next().unwrap());
        assert_eq!(second[0].kind, CaptionKind::Final);
        assert_eq!(second[0].text, "hello world");
        assert_eq!((second[0].start_ms, second[0].end_ms), (0, 800));
        assert_eq!(second[1].kind, CaptionKind::Partial);
        assert_eq!(second[1].text, "offers");
    }

    #[test]
    fn committed_words_are_never_given_again_whatever_whisper_says_next() {
        let mut s = speaking(2000);
        let h = vec![w("one", 0, 300), w("two", 300, 600)];
        s.step(&mut |_, _| h.clone());
        let fin = s.step(&mut |_, _| h.clone());
        assert_eq!(fin[0].text, "one two");
        // Whisper now hears the committed words differently, and shifted: they are not
        // final again, and the change is not a retraction.
        let out =
            s.step(&mut |_, _| vec![w("won", 0, 280), w("too", 290, 620), w("three", 650, 900)]);
        assert!(
            out.iter()
                .all(|c| c.kind != CaptionKind::Final || !c.text.contains("won"))
        );
        let out =
            s.step(&mut |_, _| vec![w("one", 0, 300), w("two", 300, 600), w("three", 650, 900)]);
        let finals: Vec<&str> = out
            .iter()
            .filter(|c| c.kind == CaptionKind::Final)
            .map(|c| c.text.as_str())
            .collect();
        assert_eq!(finals, ["three"]);
    }

    #[test]
    fn silence_is_never_decoded() {
        let mut s = Stream::new(CaptionSettings::default());
        s.push(0, &vec![0.0; RATE * 5]);
        assert!(!s.due(1000));
        let out = s.step(&mut |_, _| panic!("decoded silence"));
        assert!(out.is_empty());
    }

    #[test]
    fn a_pause_commits_everything_and_clears_the_partial() {
        let mut s = speaking(1500);
        s.step(&mut |_, _| vec![w("good", 0, 400), w("morning", 400, 1000)]);
        s.push(1500, &vec![0.0; RATE]);
        assert!(s.due(10_000), "a pause is due at once");
        let out = s.step(&mut |_, _| vec![w("good", 0, 400), w("morning.", 400, 1000)]);
        assert_eq!(out[0].kind, CaptionKind::Final);
        assert_eq!(out[0].text, "good morning.");
        assert_eq!(out[1].kind, CaptionKind::Partial);
        assert_eq!(out[1].text, "");
        assert!(!s.due(0), "nothing open after the pause");
    }

    #[test]
    fn the_buffer_is_cut_after_a_committed_sentence_and_its_text_becomes_the_prompt() {
        let mut s = speaking(3000);
        let h = vec![w("Hi.", 0, 500), w("Next", 1000, 1400)];
        s.step(&mut |_, _| h.clone());
        s.step(&mut |_, _| h.clone());
        assert_eq!(s.buffer_ms, 500 - CUT_MARGIN_MS);
        let mut prompt = String::new();
        s.push(3000, &vec![0.3; RATE / 2]);
        s.step(&mut |_, p| {
            prompt = p.to_string();
            vec![w("Next", 560, 960), w("one", 960, 1260)]
        });
        assert_eq!(prompt, "Hi.");
    }
}
