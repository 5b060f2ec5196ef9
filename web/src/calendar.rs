//! Calendar files (RFC 5545 iCalendar) for scheduled rooms: "Add to calendar" downloads one
//! event with the room's link and a reminder, which every calendar app imports; and a link
//! that opens the same event in Google Calendar's form, for people who live in a browser.

use roomtape_core::Timestamp;

/// How long an event is assumed to last: rooms have no planned end.
pub const DEFAULT_LENGTH_MS: i64 = 60 * 60_000;
/// The reminder, before the start.
pub const REMINDER_MINUTES: i64 = 10;

/// One scheduled room as an event.
#[derive(Debug)]
pub struct Event<'a> {
    /// Stable across downloads, so importing twice updates instead of duplicating.
    pub uid: String,
    pub title: &'a str,
    pub description: &'a str,
    /// The room's absolute link.
    pub url: &'a str,
    pub start: Timestamp,
    pub created: Timestamp,
}

/// `20261201T183000Z`
fn stamp(t: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0) * 1_000_000)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// A TEXT value: backslash, semicolon, comma and line breaks escaped (RFC 5545 §3.3.11);
/// other control characters dropped.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.replace("\r\n", "\n").chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' | '\r' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A content line folded at 75 octets, never inside a UTF-8 character (§3.1), ended by CRLF.
fn line(out: &mut String, l: &str) {
    let mut width = 0;
    for c in l.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
}

impl Event<'_> {
    /// The `.ics` file.
    pub fn ics(&self, now: Timestamp) -> String {
        let mut about = String::new();
        if !self.description.trim().is_empty() {
            about.push_str(self.description.trim());
            about.push_str("\n\n");
        }
        about.push_str("Join: ");
        about.push_str(self.url);
        let end = Timestamp(self.start.0 + DEFAULT_LENGTH_MS);
        let mut out = String::new();
        for l in [
            "BEGIN:VCALENDAR".to_string(),
            "VERSION:2.0".into(),
            "PRODID:-//roomtape//rooms//EN".into(),
            "CALSCALE:GREGORIAN".into(),
            "METHOD:PUBLISH".into(),
            "BEGIN:VEVENT".into(),
            format!("UID:{}", text(&self.uid)),
            format!("DTSTAMP:{}", stamp(now)),
            format!("CREATED:{}", stamp(self.created)),
            format!("DTSTART:{}", stamp(self.start)),
            format!("DTEND:{}", stamp(end)),
            format!("SUMMARY:{}", text(self.title)),
            format!("DESCRIPTION:{}", text(&about)),
            format!("URL:{}", self.url),
            format!("LOCATION:{}", text(self.url)),
            "BEGIN:VALARM".into(),
            "ACTION:DISPLAY".into(),
            format!(
                "DESCRIPTION:{}",
                text(&format!("Starting soon: {}", self.title))
            ),
            format!("TRIGGER:-PT{REMINDER_MINUTES}M"),
            "END:VALARM".into(),
            "END:VEVENT".into(),
            "END:VCALENDAR".into(),
        ] {
            line(&mut out, &l);
        }
        out
    }

    /// The same event in Google Calendar's "new event" form.
    pub fn google_link(&self) -> String {
        use crate::account::urlencode;
        let end = Timestamp(self.start.0 + DEFAULT_LENGTH_MS);
        let mut details = String::new();
        if !self.description.trim().is_empty() {
            details.push_str(self.description.trim());
            details.push_str("\n\n");
        }
        details.push_str(self.url);
        format!(
            "https://calendar.google.com/calendar/render?action=TEMPLATE&text={}&dates={}/{}&details={}&location={}",
            urlencode(self.title),
            stamp(self.start),
            stamp(end),
            urlencode(&details),
            urlencode(self.url)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unfold(ics: &str) -> String {
        ics.replace("\r\n ", "")
    }

    #[test]
    fn an_event_has_its_time_link_and_reminder_and_survives_hostile_text() {
        let e = Event {
            uid: "room-1@roomtape".into(),
            title: "Budget; night, part 1\r\nBEGIN:VEVENT",
            description: "Line one\nLine two \\ with a backslash",
            url: "https://talks.example/rooms/1",
            // 1 December 2026, 18:30 UTC.
            start: Timestamp(1_796_149_800_000),
            created: Timestamp(1_796_000_000_000),
        };
        let ics = e.ics(Timestamp(1_796_100_000_000));
        // Every line ends in CRLF and is at most 75 octets.
        assert!(ics.ends_with("END:VCALENDAR\r\n"));
        for l in ics.split("\r\n") {
            assert!(l.len() <= 75, "{l:?}");
            assert!(!l.contains('\n') && !l.contains('\r'));
        }
        let flat = unfold(&ics);
        assert!(flat.contains("DTSTART:20261201T183000Z\r\n"), "{flat}");
        assert!(flat.contains("DTEND:20261201T193000Z\r\n"));
        assert!(flat.contains("SUMMARY:Budget\\; night\\, part 1\\nBEGIN:VEVENT\r\n"));
        assert!(flat.contains("DESCRIPTION:Line one\\nLine two \\\\ with a backslash\\n\\nJoin: https://talks.example/rooms/1\r\n"));
        assert!(flat.contains("TRIGGER:-PT10M\r\n"));
        // The title's line break did not start a second event (it is text, escaped).
        assert_eq!(flat.matches("\r\nBEGIN:VEVENT\r\n").count(), 1);
        let g = e.google_link();
        assert!(g.contains("dates=20261201T183000Z/20261201T193000Z"), "{g}");
        assert!(!g.contains(' ') && !g.contains('\n'));
    }

    #[test]
    fn long_lines_fold_between_characters_not_inside_them() {
        let title = "ü".repeat(100);
        let mut out = String::new();
        line(&mut out, &format!("SUMMARY:{title}"));
        for l in out.split("\r\n") {
            assert!(l.len() <= 75);
        }
        assert_eq!(unfold(&out), format!("SUMMARY:{title}\r\n"));
    }
}
