//! The query language journalists type: words (all must match), `"exact phrases"`, `OR`,
//! `-excluded`, `prefix*`, and the filters `speaker:"Name"`, `room:"Title"` (or a room id),
//! `lang:xx`, `after:YYYY-MM-DD`, `before:YYYY-MM-DD`.
//!
//! Parsing is lenient: an unbalanced quote runs to the end, an unknown `field:` is searched as
//! words, control characters are ignored. Only an over-long query is refused.

use crate::{Error, Result};

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 1000;

/// One thing to match in the transcript text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Text {
    /// A word (may still split into several tokens, then it is matched as a phrase).
    Word(String),
    /// Words in this order.
    Phrase(String),
    /// Words beginning so.
    Prefix(String),
}

/// A parsed query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedQuery {
    /// Groups that must all match; each group matches when any of its alternatives does
    /// (`a OR b` makes one group of two).
    pub all: Vec<Vec<Text>>,
    /// Text that must not match.
    pub none: Vec<Text>,
    pub speakers: Vec<String>,
    pub rooms: Vec<String>,
    pub languages: Vec<String>,
    /// Inclusive lower bound on the recording's date, ms since the epoch.
    pub after_ms: Option<i64>,
    /// Exclusive upper bound on the recording's date, ms since the epoch.
    pub before_ms: Option<i64>,
}

impl ParsedQuery {
    /// True when nothing constrains the text (filters only, or empty).
    pub fn has_text(&self) -> bool {
        !self.all.is_empty()
    }

    /// The words asked for, as one sentence: what search by meaning embeds.
    pub fn meaning_text(&self) -> String {
        let mut out = String::new();
        for t in self.all.iter().flatten() {
            let (Text::Word(w) | Text::Phrase(w) | Text::Prefix(w)) = t;
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(w);
        }
        out
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Term {
        negated: bool,
        field: Option<String>,
        value: String,
        quoted: bool,
    },
    Or,
}

fn lex(q: &str) -> Vec<Tok> {
    let chars: Vec<char> = q
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let mut negated = false;
        if chars[i] == '-' && i + 1 < chars.len() && !chars[i + 1].is_whitespace() {
            negated = true;
            i += 1;
        }
        // field:
        let mut field = None;
        let start = i;
        while i < chars.len() && chars[i].is_ascii_alphabetic() {
            i += 1;
        }
        if i < chars.len()
            && chars[i] == ':'
            && i > start
            && i + 1 < chars.len()
            && !chars[i + 1].is_whitespace()
        {
            field = Some(
                chars[start..i]
                    .iter()
                    .collect::<String>()
                    .to_ascii_lowercase(),
            );
            i += 1;
        } else {
            i = start;
        }
        let (value, quoted) = if i < chars.len() && chars[i] == '"' {
            i += 1;
            let s = i;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            let v: String = chars[s..i].iter().collect();
            i += 1; // the closing quote, or past the end
            (v, true)
        } else {
            let s = i;
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            (chars[s..i].iter().collect::<String>(), false)
        };
        if !quoted && !negated && field.is_none() && value == "OR" {
            out.push(Tok::Or);
        } else if !value.trim().is_empty() {
            out.push(Tok::Term {
                negated,
                field,
                value,
                quoted,
            });
        }
    }
    out
}

fn day_ms(s: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s.trim(), &fmt).ok()?;
    Some(d.midnight().assume_utc().unix_timestamp() * 1000)
}

fn text_of(value: &str, quoted: bool) -> Text {
    if quoted {
        Text::Phrase(value.to_string())
    } else if let Some(p) = value
        .strip_suffix('*')
        .filter(|p| !p.is_empty() && !p.contains('*'))
    {
        Text::Prefix(p.to_string())
    } else {
        Text::Word(value.trim_matches('*').to_string())
    }
}

/// Parses a query string.
pub fn parse(q: &str) -> Result<ParsedQuery> {
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::Query(format!(
            "the query is {} characters long; the limit is {MAX_QUERY_CHARS}",
            q.chars().count()
        )));
    }
    let mut out = ParsedQuery::default();
    let mut pending_or = false;
    for tok in lex(q) {
        let (negated, field, value, quoted) = match tok {
            Tok::Or => {
                pending_or = !out.all.is_empty();
                continue;
            }
            Tok::Term {
                negated,
                field,
                value,
                quoted,
            } => (negated, field, value, quoted),
        };
        let as_text = |out: &mut ParsedQuery, text: Text| {
            if negated {
                out.none.push(text);
            } else if pending_or {
                if let Some(last) = out.all.last_mut() {
                    last.push(text);
                }
            } else {
                out.all.push(vec![text]);
            }
        };
        match field.as_deref() {
            Some("speaker") if !negated => out.speakers.push(value),
            Some("room") if !negated => out.rooms.push(value),
            Some("lang") | Some("language") if !negated => {
                out.languages.push(value.to_ascii_lowercase())
            }
            Some("after") if !negated && day_ms(&value).is_some() => out.after_ms = day_ms(&value),
            Some("before") if !negated && day_ms(&value).is_some() => {
                out.before_ms = day_ms(&value)
            }
            Some(f) => {
                // Unknown field, or a filter that makes no sense here: search the words.
                as_text(&mut out, text_of(&format!("{f} {value}"), true));
            }
            None => as_text(&mut out, text_of(&value, quoted)),
        }
        pending_or = false;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_syntax() {
        let q = parse(r#"budget "new library" -tax speaker:"Ana Lima" room:Morning lang:en after:2026-01-31 libr* cat OR dog"#).unwrap();
        assert_eq!(
            q.all,
            vec![
                vec![Text::Word("budget".into())],
                vec![Text::Phrase("new library".into())],
                vec![Text::Prefix("libr".into())],
                vec![Text::Word("cat".into()), Text::Word("dog".into())],
            ]
        );
        assert_eq!(q.none, vec![Text::Word("tax".into())]);
        assert_eq!(q.speakers, vec!["Ana Lima".to_string()]);
        assert_eq!(q.rooms, vec!["Morning".to_string()]);
        assert_eq!(q.languages, vec!["en".to_string()]);
        assert_eq!(q.after_ms, Some(1_769_817_600_000));
    }

    #[test]
    fn hostile_queries_parse_leniently_or_fail_clearly() {
        for q in [
            "\"unbalanced quote",
            "OR OR OR",
            "-",
            "\u{0}\u{7}bell",
            "speaker:",
            "zzz:abc",
            "😀 ünïcödé",
            "*",
            "after:yesterday",
        ] {
            parse(q).unwrap();
        }
        assert_eq!(
            parse("\"unbalanced quote").unwrap().all,
            vec![vec![Text::Phrase("unbalanced quote".into())]]
        );
        let long = "a".repeat(10_000);
        assert!(
            parse(&long)
                .unwrap_err()
                .to_string()
                .contains("limit is 1000")
        );
    }
}
