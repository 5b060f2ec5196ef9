//! Transcript exports: WebVTT with voice tags, SRT with speaker prefixes, JSON, plain text.

use std::fmt::Write;

use crate::{Error, Result, Segment, Transcript};

/// An export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Vtt,
    Srt,
    Txt,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "json" => Format::Json,
            "vtt" | "webvtt" => Format::Vtt,
            "srt" => Format::Srt,
            "txt" | "text" => Format::Txt,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown format {:?}; use json, vtt, srt or txt",
                    crate::truncate_for_message(other)
                )));
            }
        })
    }
}

impl Format {
    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Vtt => "text/vtt; charset=utf-8",
            Format::Srt => "application/x-subrip; charset=utf-8",
            Format::Txt => "text/plain; charset=utf-8",
        }
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Vtt => "vtt",
            Format::Srt => "srt",
            Format::Txt => "txt",
        }
    }
}

/// Which text an export carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    /// What was said, in the language it was said in (the record).
    #[default]
    Original,
    /// English: each line's translation where it has one, else the line itself (said in
    /// English, or not translated).
    English,
}

impl std::str::FromStr for Lang {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "original" | "" => Ok(Lang::Original),
            "en" | "english" => Ok(Lang::English),
            other => Err(Error::Invalid(format!(
                "unknown transcript language {:?}; use original or en (Whisper translates into English only)",
                crate::truncate_for_message(other)
            ))),
        }
    }
}

/// `t` with every translated line in English: its text the translation, its word timings
/// gone (they time the original words), its language `en`.
pub fn in_english(t: &Transcript) -> Transcript {
    let mut t = t.clone();
    for s in &mut t.segments {
        if let Some(tr) = s.translation.take() {
            s.text = tr.text;
            s.language = Some(tr.lang);
            s.words.clear();
        }
    }
    t
}

/// Renders `t` in `format`, in `lang`.
pub fn render_in(t: &Transcript, format: Format, lang: Lang) -> String {
    match lang {
        Lang::Original => render(t, format),
        Lang::English => {
            let en = in_english(t);
            match format {
                // WebVTT says the language of its cues in a header (as YouTube and others read
                // it).
                Format::Vtt => cues(&en, String::from("WEBVTT\nLanguage: en\n\n"), '.', vtt_line),
                _ => render(&en, format),
            }
        }
    }
}

/// Renders `t` in `format`.
pub fn render(t: &Transcript, format: Format) -> String {
    match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(t).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Vtt => vtt(t),
        Format::Srt => srt(t),
        Format::Txt => txt(t),
    }
}

/// One line of untrusted text: control characters and line breaks become spaces.
fn one_line(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// WebVTT cue text escaping (W3C WebVTT §4.2.2: `&`, `<` and `>` must be escaped).
fn vtt_escape(s: &str) -> String {
    one_line(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn clock(ms: i64, sep: char) -> String {
    let ms = ms.max(0);
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Numbered cues, as WebVTT and SRT both have them: the number, `start --> end` with `sep`
/// before the milliseconds, then the cue's line.
fn cues(t: &Transcript, mut out: String, sep: char, line: impl Fn(&Segment) -> String) -> String {
    for (i, s) in t.segments.iter().enumerate() {
        let end = s.end_ms.max(s.start_ms + 1);
        let _ = write!(
            out,
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            clock(s.start_ms, sep),
            clock(end, sep),
            line(s)
        );
    }
    out
}

fn vtt_line(s: &Segment) -> String {
    format!("<v {}>{}</v>", vtt_escape(&s.speaker), vtt_escape(&s.text))
}

fn vtt(t: &Transcript) -> String {
    cues(t, String::from("WEBVTT\n\n"), '.', vtt_line)
}

fn srt(t: &Transcript) -> String {
    cues(t, String::new(), ',', |s| {
        format!("{}: {}", one_line(&s.speaker), one_line(&s.text))
    })
}

fn txt(t: &Transcript) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", one_line(&t.title));
    let mut last: Option<&crate::SpeakerId> = None;
    for s in &t.segments {
        if last != Some(&s.speaker_id) {
            if last.is_some() {
                out.push_str("\n\n");
            }
            let _ = write!(
                out,
                "[{}] {}:",
                &clock(s.start_ms, '.')[..8],
                one_line(&s.speaker)
            );
            last = Some(&s.speaker_id);
        }
        out.push(' ');
        out.push_str(&one_line(&s.text));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RecordingId, Segment, SpeakerId, Timestamp, TrackId};

    fn sample() -> Transcript {
        let (a, b) = (SpeakerId::new(), SpeakerId::new());
        let seg = |sp: SpeakerId, name: &str, s: i64, e: i64, text: &str| Segment {
            speaker_id: sp,
            speaker: name.into(),
            track_id: TrackId::new(),
            start_ms: s,
            end_ms: e,
            language: Some("en".into()),
            text: text.into(),
            words: vec![],
            translation: None,
        };
        Transcript {
            recording_id: RecordingId::new(),
            title: "Talk".into(),
            model: "tiny.en".into(),
            created_at: Timestamp(0),
            speakers: vec![],
            segments: vec![
                seg(
                    a,
                    "Ana <b>",
                    1_000,
                    2_500,
                    "Hello & <script>alert(1)</script>",
                ),
                seg(b, "Bo", 2_000, 3_000, "Hi -->\nthere"),
                seg(b, "Bo", 3_100, 3_600_000 + 5, "again"),
            ],
        }
    }

    #[test]
    fn vtt_escapes_and_tags_voices() {
        let v = render(&sample(), Format::Vtt);
        assert!(v.starts_with("WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.500\n<v Ana &lt;b&gt;>Hello &amp; &lt;script&gt;"));
        assert!(v.contains("<v Bo>Hi --&gt; there</v>"));
        assert!(v.contains("01:00:00.005"));
        assert!(!v.contains("<script>"));
    }

    #[test]
    fn srt_and_text_name_speakers() {
        let s = render(&sample(), Format::Srt);
        assert!(s.starts_with("1\n00:00:01,000 --> 00:00:02,500\nAna <b>: Hello"));
        let t = render(&sample(), Format::Txt);
        assert!(t.contains("[00:00:02] Bo: Hi --> there again"), "{t}");
    }
}
