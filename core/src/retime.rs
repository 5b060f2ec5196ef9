//! Word timings for a corrected transcript line: the words a person kept keep the times
//! Whisper aligned them to, so a quote of a corrected line still seeks to the second.

use crate::Word;

/// A word as compared: case and punctuation aside ("Hello," is "hello").
fn key(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The pairs `(old index, new index)` of a longest common subsequence of the two word lists.
fn matches(old: &[String], new: &[String]) -> Vec<(usize, usize)> {
    let (n, m) = (old.len(), new.len());
    // lcs[i][j]: the longest common subsequence of old[i..] and new[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if !old[i].is_empty() && old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n && j < m {
        if !old[i].is_empty() && old[i] == new[j] {
            out.push((i, j));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// The words of `text`, a correction of a line whose words were `old` and which spans
/// `start_ms..end_ms`. A word that is still there (in order, case and punctuation aside)
/// keeps its timing and probability. The words written in between share, in proportion to
/// their length, the time of the words they replaced, or the pause they were put into, and
/// get probability 1: a person wrote them. A line that had no word timings gets none.
pub fn retime_words(old: &[Word], start_ms: i64, end_ms: i64, text: &str) -> Vec<Word> {
    let new: Vec<&str> = text.split_whitespace().collect();
    if old.is_empty() || new.is_empty() {
        return Vec::new();
    }
    // Lines longer than this are not worth a quadratic table; they keep no timings.
    if old.len().saturating_mul(new.len()) > 1 << 22 {
        return Vec::new();
    }
    let old_keys: Vec<String> = old.iter().map(|w| key(&w.text)).collect();
    let new_keys: Vec<String> = new.iter().map(|w| key(w)).collect();
    let pairs = matches(&old_keys, &new_keys);
    let mut out: Vec<Word> = Vec::with_capacity(new.len());
    // Walk the anchors (and a final one past both ends), filling each gap of new words.
    let mut prev_new = 0usize;
    let mut gap_start = start_ms.min(old[0].start_ms);
    let ends = pairs
        .iter()
        .map(|&(i, j)| (Some(i), j))
        .chain(std::iter::once((None, new.len())));
    for (anchor, j) in ends {
        let gap_end = match anchor {
            Some(i) => old[i].start_ms,
            None => end_ms.max(old[old.len() - 1].end_ms),
        };
        fill(
            &mut out,
            &new[prev_new..j],
            gap_start,
            gap_end.max(gap_start),
        );
        if let Some(i) = anchor {
            out.push(Word {
                text: new[j].to_string(),
                ..old[i].clone()
            });
            gap_start = old[i].end_ms;
            prev_new = j + 1;
        }
    }
    out
}

/// Spreads `words` over `from..to` by their length in characters.
fn fill(out: &mut Vec<Word>, words: &[&str], from: i64, to: i64) {
    let total: usize = words.iter().map(|w| w.chars().count().max(1)).sum();
    let span = (to - from).max(0);
    let mut at = 0usize;
    for w in words {
        let len = w.chars().count().max(1);
        let a = from + span * at as i64 / total as i64;
        at += len;
        let b = from + span * at as i64 / total as i64;
        out.push(Word {
            text: (*w).to_string(),
            start_ms: a,
            end_ms: b.max(a + 1),
            p: 1.0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str, a: i64, b: i64) -> Word {
        Word {
            text: text.into(),
            start_ms: a,
            end_ms: b,
            p: 0.5,
        }
    }

    fn line() -> Vec<Word> {
        vec![
            w("The", 1000, 1200),
            w("quick", 1200, 1500),
            w("brown", 1500, 1900),
            w("fax", 1900, 2300),
            w("jumped.", 2400, 2900),
        ]
    }

    fn texts(ws: &[Word]) -> String {
        ws.iter()
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn kept_words_keep_their_times_and_a_replaced_word_takes_its_place() {
        let ws = retime_words(&line(), 1000, 2900, "The quick brown fox jumped!");
        assert_eq!(texts(&ws), "The quick brown fox jumped!");
        assert_eq!((ws[0].start_ms, ws[0].end_ms, ws[0].p), (1000, 1200, 0.5));
        assert_eq!((ws[2].start_ms, ws[2].end_ms), (1500, 1900));
        // "fox" replaced "fax": between "brown" and "jumped" (1900..2400), written by a person.
        assert_eq!((ws[3].start_ms, ws[3].end_ms, ws[3].p), (1900, 2400, 1.0));
        // Punctuation and case do not break a match.
        assert_eq!((ws[4].start_ms, ws[4].end_ms, ws[4].p), (2400, 2900, 0.5));
    }

    #[test]
    fn inserted_and_deleted_words_stay_in_order_inside_the_line() {
        let ws = retime_words(&line(), 1000, 2900, "So the very quick fox jumped");
        assert_eq!(texts(&ws), "So the very quick fox jumped");
        for pair in ws.windows(2) {
            assert!(pair[0].start_ms <= pair[1].start_ms, "{ws:?}");
            assert!(pair[0].end_ms <= pair[1].start_ms + 1, "{ws:?}");
        }
        assert!(
            ws.iter()
                .all(|w| w.start_ms >= 1000 && w.end_ms <= 2900 + 1)
        );
        assert_eq!((ws[1].start_ms, ws[3].start_ms), (1000, 1200));
        // "So" has no time of its own before the first word: it starts the line.
        assert_eq!(ws[0].start_ms, 1000);
    }

    #[test]
    fn a_rewritten_line_spreads_over_the_line_and_an_untimed_line_stays_untimed() {
        let ws = retime_words(&line(), 1000, 2900, "Completely different words");
        assert_eq!(ws.len(), 3);
        assert_eq!(ws[0].start_ms, 1000);
        assert_eq!(ws[2].end_ms, 2900);
        assert!(ws.iter().all(|w| w.p == 1.0));
        assert!(retime_words(&[], 0, 1000, "no timings before").is_empty());
        assert!(retime_words(&line(), 1000, 2900, "   ").is_empty());
    }
}
