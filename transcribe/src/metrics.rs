//! Measuring transcripts against a script.

/// Words of `s` for scoring: lower-cased, without punctuation (apostrophes kept), accents
/// folded (references are often typed without them) and numbers of up to three digits
/// spelled out in English, so "10" and "ten" are the same word.
pub fn words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .replace(['-', '—', '–', '/'], " ")
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .map(fold_accent)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .flat_map(|w| match w.parse::<u32>() {
            Ok(n) if n < 1000 && !w.starts_with('0') || w == "0" => spell(n),
            _ => vec![w],
        })
        .collect()
}

/// The scoring words of one timed word, each with its share of the time: a written word that
/// scores as several ("ill-disposed", "21") has its span divided by their lengths.
pub fn timed_words(text: &str, start_ms: i64, end_ms: i64) -> Vec<(String, i64, i64)> {
    let ws = words(text);
    let total: usize = ws.iter().map(|w| w.chars().count()).sum();
    let span = (end_ms - start_ms).max(0);
    let mut done = 0;
    ws.into_iter()
        .map(|w| {
            let a = start_ms + span * done as i64 / total.max(1) as i64;
            done += w.chars().count();
            let b = start_ms + span * done as i64 / total.max(1) as i64;
            (w, a, b)
        })
        .collect()
}

fn fold_accent(c: char) -> char {
    match c {
        'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => 'a',
        'é' | 'è' | 'ê' | 'ë' => 'e',
        'í' | 'ì' | 'î' | 'ï' => 'i',
        'ó' | 'ò' | 'ô' | 'ö' | 'õ' => 'o',
        'ú' | 'ù' | 'û' | 'ü' => 'u',
        'ñ' => 'n',
        'ç' => 'c',
        'ý' | 'ÿ' => 'y',
        c => c,
    }
}

/// `n` (< 1000) in English words.
fn spell(n: u32) -> Vec<String> {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let mut out = Vec::new();
    let (hundreds, rest) = (n / 100, n % 100);
    if hundreds > 0 {
        out.push(ONES[hundreds as usize].to_string());
        out.push("hundred".to_string());
    }
    if rest >= 20 {
        out.push(TENS[(rest / 10) as usize].to_string());
        if rest % 10 > 0 {
            out.push(ONES[(rest % 10) as usize].to_string());
        }
    } else if rest > 0 || hundreds == 0 {
        out.push(ONES[rest as usize].to_string());
    }
    out
}

/// Word-level edit distance of `hypothesis` from `reference`, and the reference's length.
pub fn word_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let (r, h) = (words(reference), words(hypothesis));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for i in 1..=r.len() {
        let mut cur = vec![i; h.len() + 1];
        for j in 1..=h.len() {
            let sub = prev[j - 1] + usize::from(r[i - 1] != h[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        prev = cur;
    }
    (prev[h.len()], r.len())
}

/// Pairs `(reference index, hypothesis index)` of the words a minimum-edit alignment of the two
/// word lists matches exactly, in order.
pub fn matched_words(reference: &[String], hypothesis: &[String]) -> Vec<(usize, usize)> {
    let (n, m) = (reference.len(), hypothesis.len());
    // cost[i][j]: edits to turn reference[i..] into hypothesis[j..].
    let mut cost = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..=n).rev() {
        for j in (0..=m).rev() {
            cost[i][j] = if i == n {
                m - j
            } else if j == m {
                n - i
            } else {
                let sub = cost[i + 1][j + 1] + usize::from(reference[i] != hypothesis[j]);
                sub.min(cost[i + 1][j] + 1).min(cost[i][j + 1] + 1)
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n && j < m {
        let same = reference[i] == hypothesis[j];
        if cost[i][j] == cost[i + 1][j + 1] + usize::from(!same) {
            if same {
                out.push((i, j));
            }
            i += 1;
            j += 1;
        } else if cost[i][j] == cost[i + 1][j] + 1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Word error rate: edits over reference words.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (e, n) = word_errors(reference, hypothesis);
    e as f64 / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_substitutions_insertions_and_deletions() {
        assert_eq!(wer("The cat sat.", "the cat sat"), 0.0);
        assert_eq!(word_errors("a b c d", "a x c"), (2, 4));
        assert_eq!(word_errors("a b", "a b c d"), (2, 2));
        assert_eq!(wer("", "anything"), 1.0);
    }

    #[test]
    fn numbers_accents_and_case_are_normalised() {
        assert_eq!(
            words("Ten, 10 and 21!"),
            ["ten", "ten", "and", "twenty", "one"]
        );
        assert_eq!(words("305 0"), ["three", "hundred", "five", "zero"]);
        assert_eq!(words("Contraseña más"), ["contrasena", "mas"]);
        assert_eq!(words("1999 007"), ["1999", "007"]);
        assert_eq!(wer("ill-disposed", "ill disposed"), 0.0);
    }

    #[test]
    fn a_word_that_scores_as_several_shares_its_time() {
        assert_eq!(
            timed_words("ill-disposed,", 1000, 2000),
            [
                ("ill".to_string(), 1000, 1272),
                ("disposed".to_string(), 1272, 2000)
            ]
        );
        assert_eq!(timed_words("Hello.", 5, 9), [("hello".to_string(), 5, 9)]);
    }

    #[test]
    fn alignment_matches_the_words_both_have_in_order() {
        let w = |s: &str| words(s);
        assert_eq!(
            matched_words(&w("the cat sat on the mat"), &w("a cat sat the mat today")),
            [(1, 1), (2, 2), (4, 3), (5, 4)]
        );
        assert!(matched_words(&w("one two"), &w("")).is_empty());
    }
}
