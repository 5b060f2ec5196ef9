//! `roomtape bench search`: a deterministic corpus of transcripts with a natural word
//! distribution (Zipf over a real English word list, the most common English words first),
//! indexed by roomtape's tantivy index and by SQLite FTS5 (the usual embedded alternative), and
//! the same fixed mix of term, phrase, speaker-filtered and date-filtered queries run on both,
//! each the whole way a caller sees it: access filter, top 20 by relevance, total count,
//! snippets.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use roomtape_core::Rng;
use roomtape_search::query::{ParsedQuery, Text, parse};
use roomtape_search::{SearchIndex, SegmentDoc, Sort, Viewer};

/// The most frequent English words, in order: the head of the Zipf distribution.
const COMMON: &[&str] = &[
    "the", "of", "and", "to", "a", "in", "is", "that", "it", "was", "for", "on", "are", "as",
    "with", "he", "they", "at", "be", "this", "have", "from", "or", "one", "had", "by", "but",
    "not", "what", "all", "were", "we", "when", "your", "can", "said", "there", "use", "an",
    "each", "which", "she", "do", "how", "their", "if", "will", "up", "other", "about", "out",
    "many", "then", "them", "these", "so", "some", "her", "would", "make", "like", "him", "into",
    "time", "has", "look", "two", "more", "write", "go", "see", "number", "no", "way", "could",
    "people", "my", "than", "first", "water", "been", "call", "who", "oil", "its", "now", "find",
    "long", "down", "day", "did", "get", "come", "made", "may", "part", "you", "i", "me", "our",
];

/// Words per second of speech (150 a minute).
pub(crate) const WORDS_PER_SECOND: f64 = 2.5;
/// Results per page, as the web service returns them.
pub(crate) const PAGE: usize = 20;
const DAY_MS: i64 = 86_400_000;
/// 2024-01-01T00:00:00Z
const FIRST_DAY_MS: i64 = 1_704_067_200_000;

pub fn run(hours: f64, queries: usize, words_file: &Path) -> anyhow::Result<()> {
    if !(hours > 0.0 && hours <= 20_000.0) {
        bail!("--hours must be above 0 and at most 20000");
    }
    let vocab = vocabulary(words_file)?;
    let zipf = Zipf::new(vocab.len(), 1.0);
    let t = Instant::now();
    let corpus = Corpus::generate(&vocab, &zipf, hours, 7);
    println!(
        "corpus: {hours} h of speech, {} recordings, {} speakers, {} segments, {} words \
         (vocabulary {}, Zipf s=1), made in {:.1} s",
        corpus.recordings,
        corpus.speakers,
        corpus.docs.len(),
        corpus.words,
        vocab.len(),
        t.elapsed().as_secs_f64()
    );
    let mix = QueryMix::generate(&corpus, &vocab, queries, 11);
    let dir = tempfile::tempdir()?;

    // tantivy, through roomtape's index.
    let tdir = dir.path().join("tantivy");
    let (ix, _) = SearchIndex::open(&tdir)?;
    let t = Instant::now();
    ix.add_all(corpus.docs.iter().cloned())?;
    let t_build = t.elapsed();
    let t = Instant::now();
    ix.optimize()?;
    let t_opt = t.elapsed();
    let t_size = SearchIndex::size_bytes(&tdir);
    let tantivy = Engine {
        name: "tantivy",
        build: t_build,
        optimize: t_opt,
        size: t_size,
    };

    // SQLite FTS5, the same documents and the same questions.
    let fts_path = dir.path().join("fts5.sqlite");
    let fts = Fts5::create(&fts_path)?;
    let t = Instant::now();
    fts.load(&corpus.docs)?;
    let f_build = t.elapsed();
    let t = Instant::now();
    fts.optimize()?;
    let f_opt = t.elapsed();
    let f_size = std::fs::metadata(&fts_path)?.len();
    let sqlite = Engine {
        name: "SQLite FTS5",
        build: f_build,
        optimize: f_opt,
        size: f_size,
    };

    println!(
        "\n{:<12} {:>14} {:>10} {:>10} {:>11} {:>12}",
        "index", "words/s", "build s", "merge s", "size MiB", "bytes/word"
    );
    for e in [&tantivy, &sqlite] {
        println!(
            "{:<12} {:>14.0} {:>10.1} {:>10.1} {:>11.1} {:>12.2}",
            e.name,
            corpus.words as f64 / e.build.as_secs_f64(),
            e.build.as_secs_f64(),
            e.optimize.as_secs_f64(),
            e.size as f64 / (1024.0 * 1024.0),
            e.size as f64 / corpus.words as f64
        );
    }

    // Warm both once (page cache, lazy structures), then time every query on its own.
    let mut disagree = 0usize;
    for q in &mix.queries {
        let a = tantivy_query(&ix, q)?;
        let b = fts.query(q)?;
        if a != b {
            disagree += 1;
            if disagree <= 3 {
                eprintln!("totals differ for {}: tantivy {a}, FTS5 {b}", q.text);
            }
        }
    }
    let mut t_lat: Vec<Vec<Duration>> = vec![Vec::new(); Kind::ALL.len()];
    let mut f_lat: Vec<Vec<Duration>> = vec![Vec::new(); Kind::ALL.len()];
    let mut hits = 0usize;
    for q in &mix.queries {
        let t = Instant::now();
        hits += tantivy_query(&ix, q)?;
        t_lat[q.kind as usize].push(t.elapsed());
        let t = Instant::now();
        fts.query(q)?;
        f_lat[q.kind as usize].push(t.elapsed());
    }
    println!(
        "\n{} queries ({} of each kind), top {PAGE} by relevance with total count and snippets, \
         anonymous caller; {} hits in all; totals agree on {} of {}",
        mix.queries.len(),
        mix.queries.len() / Kind::ALL.len(),
        hits,
        mix.queries.len() - disagree,
        mix.queries.len()
    );
    println!(
        "{:<10} {:>11} {:>11} {:>11} {:>11} {:>9} {:>9}",
        "kind", "tantivy p50", "tantivy p99", "FTS5 p50", "FTS5 p99", "p50 ×", "p99 ×"
    );
    let mut all_t = Vec::new();
    let mut all_f = Vec::new();
    for k in Kind::ALL {
        let (tv, fv) = (&t_lat[k as usize], &f_lat[k as usize]);
        all_t.extend_from_slice(tv);
        all_f.extend_from_slice(fv);
        row(k.name(), tv, fv);
    }
    row("all", &all_t, &all_f);
    println!("(× = FTS5 latency / tantivy latency: how many times faster roomtape's index is)");
    Ok(())
}

fn row(name: &str, t: &[Duration], f: &[Duration]) {
    let (t50, t99) = (pct(t, 0.50), pct(t, 0.99));
    let (f50, f99) = (pct(f, 0.50), pct(f, 0.99));
    println!(
        "{:<10} {:>9.3}ms {:>9.3}ms {:>9.3}ms {:>9.3}ms {:>9.1} {:>9.1}",
        name,
        ms(t50),
        ms(t99),
        ms(f50),
        ms(f99),
        ms(f50) / ms(t50).max(1e-6),
        ms(f99) / ms(t99).max(1e-6)
    );
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p` quantile (nearest rank) of `v`.
pub(crate) fn pct(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut s = v.to_vec();
    s.sort();
    let i = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    s[i]
}

struct Engine {
    name: &'static str,
    build: Duration,
    optimize: Duration,
    size: u64,
}

/// The word list: the common words first, then every plain lower-case word of `path` in a fixed
/// shuffled order (so rank does not follow the alphabet).
pub(crate) fn vocabulary(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the word list {} (Debian package wamerican; `make setup` installs it)",
            path.display()
        )
    })?;
    let mut rest: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|w| (2..=14).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase()))
        .filter(|w| !COMMON.contains(w))
        .map(str::to_string)
        .collect();
    rest.dedup();
    if rest.len() < 10_000 {
        bail!(
            "the word list {} has only {} usable words",
            path.display(),
            rest.len()
        );
    }
    let mut rng = Rng::new(3);
    for i in (1..rest.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        rest.swap(i, j);
    }
    let mut v: Vec<String> = COMMON.iter().map(|w| w.to_string()).collect();
    v.extend(rest);
    Ok(v)
}

/// Ranks drawn with probability proportional to 1 / (rank + 1)^s.
pub(crate) struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub(crate) fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for r in 1..=n {
            acc += 1.0 / (r as f64).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

pub(crate) struct Corpus {
    pub(crate) docs: Vec<SegmentDoc>,
    /// Word ranks of each document, for drawing queries from real text.
    ranks: Vec<Vec<u32>>,
    pub(crate) words: u64,
    pub(crate) recordings: usize,
    pub(crate) speakers: usize,
    first_day: i64,
    days: i64,
}

impl Corpus {
    pub(crate) fn generate(vocab: &[String], zipf: &Zipf, hours: f64, seed: u64) -> Corpus {
        let mut rng = Rng::new(seed);
        let cap = |w: &str| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        };
        // Names and titles from the less common words, so they are distinctive as real ones are.
        let pick = |rng: &mut Rng| cap(&vocab[1000 + (rng.next_u64() % 20_000) as usize]);
        let n_speakers = ((hours * 3.0) as usize).clamp(40, 20_000);
        let speakers: Vec<(String, String)> = (0..n_speakers)
            .map(|i| {
                (
                    format!("s{i}"),
                    format!("{} {}", pick(&mut rng), pick(&mut rng)),
                )
            })
            .collect();
        let days = 3 * 365;
        let target_ms = (hours * 3_600_000.0) as i64;
        let mut docs = Vec::new();
        let mut ranks = Vec::new();
        let mut words = 0u64;
        let mut total_ms = 0i64;
        let mut recordings = 0;
        while total_ms < target_ms {
            recordings += 1;
            let id = format!("rec-{recordings:06}");
            let title = format!(
                "{} {} {}",
                pick(&mut rng),
                vocab[(rng.next_u64() % 50) as usize],
                pick(&mut rng)
            );
            let date_ms = FIRST_DAY_MS + (rng.next_u64() % days as u64) as i64 * DAY_MS;
            let public = rng.unit() < 0.7;
            let length_ms = (45 + rng.next_u64() % 31) as i64 * 60_000;
            let on_stage: Vec<&(String, String)> = (0..2 + rng.next_u64() % 5)
                .map(|_| &speakers[(rng.next_u64() % n_speakers as u64) as usize])
                .collect();
            let readers: Vec<String> = on_stage.iter().map(|s| s.0.clone()).collect();
            let mut at = 0i64;
            while at < length_ms {
                let who = on_stage[(rng.next_u64() % on_stage.len() as u64) as usize];
                let n = 4 + (rng.next_u64() % 27) as usize;
                let r: Vec<u32> = (0..n).map(|_| zipf.sample(&mut rng) as u32).collect();
                let mut text = String::with_capacity(n * 7);
                for (i, &w) in r.iter().enumerate() {
                    if i > 0 {
                        text.push(' ');
                    }
                    text.push_str(&vocab[w as usize]);
                }
                text.push('.');
                let dur = (n as f64 / WORDS_PER_SECOND * 1000.0) as i64;
                docs.push(SegmentDoc {
                    recording_id: id.clone(),
                    room_id: None,
                    title: title.clone(),
                    speaker_id: who.0.clone(),
                    speaker: who.1.clone(),
                    language: "en".into(),
                    start_ms: at,
                    end_ms: at + dur,
                    text,
                    translation: None,
                    date_ms,
                    public,
                    readers: readers.clone(),
                    vector: None,
                });
                ranks.push(r);
                words += n as u64;
                at += dur + 300;
            }
            total_ms += at;
        }
        Corpus {
            docs,
            ranks,
            words,
            recordings,
            speakers: n_speakers,
            first_day: FIRST_DAY_MS,
            days,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Term,
    Phrase,
    Speaker,
    Date,
}

impl Kind {
    pub(crate) const ALL: [Kind; 4] = [Kind::Term, Kind::Phrase, Kind::Speaker, Kind::Date];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Term => "term",
            Kind::Phrase => "phrase",
            Kind::Speaker => "speaker",
            Kind::Date => "date",
        }
    }
}

pub(crate) struct BenchQuery {
    pub(crate) kind: Kind,
    pub(crate) text: String,
    pub(crate) parsed: ParsedQuery,
}

pub(crate) struct QueryMix {
    pub(crate) queries: Vec<BenchQuery>,
}

impl QueryMix {
    /// `n` queries, a quarter of each kind, interleaved. Words are drawn from ranks 20–20,000
    /// (what people search for; not "the"); phrases are cut from the corpus's own text and
    /// hold at least one word outside the 100 most common, as quotes do.
    pub(crate) fn generate(c: &Corpus, vocab: &[String], n: usize, seed: u64) -> QueryMix {
        let mut rng = Rng::new(seed);
        let word = |rng: &mut Rng| vocab[20 + (rng.next_u64() % 20_000) as usize].clone();
        let mut queries = Vec::with_capacity(n);
        for i in 0..n {
            let kind = Kind::ALL[i % Kind::ALL.len()];
            let text = match kind {
                Kind::Term => {
                    if rng.unit() < 0.5 {
                        word(&mut rng)
                    } else {
                        format!("{} {}", word(&mut rng), word(&mut rng))
                    }
                }
                Kind::Phrase => loop {
                    let d = (rng.next_u64() % c.docs.len() as u64) as usize;
                    let r = &c.ranks[d];
                    let len = 2 + (rng.next_u64() % 2) as usize;
                    if r.len() < len {
                        continue;
                    }
                    let at = (rng.next_u64() % (r.len() - len + 1) as u64) as usize;
                    let w = &r[at..at + len];
                    if w.iter().all(|&x| x < 100) {
                        continue;
                    }
                    let ws: Vec<&str> = w.iter().map(|&x| vocab[x as usize].as_str()).collect();
                    break format!("\"{}\"", ws.join(" "));
                },
                Kind::Speaker => {
                    let d = &c.docs[(rng.next_u64() % c.docs.len() as u64) as usize];
                    format!("speaker:\"{}\" {}", d.speaker, word(&mut rng))
                }
                Kind::Date => {
                    let from = c.first_day + (rng.next_u64() % c.days as u64) as i64 * DAY_MS;
                    let to = from + 90 * DAY_MS;
                    let d = |ms: i64| roomtape_core::Timestamp(ms).to_rfc3339()[..10].to_string();
                    format!("{} after:{} before:{}", word(&mut rng), d(from), d(to))
                }
            };
            let parsed = parse(&text).expect("generated queries parse");
            queries.push(BenchQuery { kind, text, parsed });
        }
        QueryMix { queries }
    }
}

/// Runs `q` as the web service does; returns the total.
fn tantivy_query(ix: &SearchIndex, q: &BenchQuery) -> anyhow::Result<usize> {
    let r = ix.search(
        &q.parsed,
        &Viewer::Anonymous,
        Sort::Relevance,
        None,
        1,
        PAGE,
    )?;
    Ok(r.total)
}

/// The same index in SQLite FTS5: the text and speaker columns indexed with FTS5's own
/// diacritic-folding tokenizer, the rest (with the public flag) stored alongside and filtered in
/// SQL — faster for FTS5 than an access column inside MATCH, whose `public` term is in most rows.
struct Fts5 {
    conn: rusqlite::Connection,
}

impl Fts5 {
    fn create(path: &Path) -> anyhow::Result<Fts5> {
        let conn = rusqlite::Connection::open(path)?;
        // Generous to SQLite: no journal for the bulk load, 256 MiB page cache, mmap.
        conn.execute_batch(
            "PRAGMA journal_mode = OFF;
             PRAGMA synchronous = OFF;
             PRAGMA cache_size = -262144;
             PRAGMA mmap_size = 4294967296;
             CREATE VIRTUAL TABLE seg USING fts5(
                 text, speaker, public UNINDEXED,
                 recording_id UNINDEXED, title UNINDEXED, start_ms UNINDEXED, date_ms UNINDEXED,
                 tokenize = 'unicode61 remove_diacritics 2'
             );",
        )?;
        Ok(Fts5 { conn })
    }

    fn load(&self, docs: &[SegmentDoc]) -> anyhow::Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut ins = tx.prepare(
                "INSERT INTO seg (text, speaker, public, recording_id, title, start_ms, date_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )?;
            for d in docs {
                ins.execute(rusqlite::params![
                    d.text,
                    d.speaker,
                    d.public,
                    d.recording_id,
                    d.title,
                    d.start_ms,
                    d.date_ms
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn optimize(&self) -> anyhow::Result<()> {
        self.conn
            .execute_batch("INSERT INTO seg (seg) VALUES ('optimize');")?;
        Ok(())
    }

    /// The FTS5 spelling of a parsed query: every text group ANDed, phrases quoted, the
    /// speaker filter as a column query.
    fn match_expr(q: &ParsedQuery) -> String {
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let text = |t: &Text| match t {
            Text::Word(w) | Text::Phrase(w) => format!("text : {}", quote(w)),
            Text::Prefix(p) => format!("text : {} *", quote(p)),
        };
        let mut parts: Vec<String> = q
            .all
            .iter()
            .map(|g| {
                let alts: Vec<String> = g.iter().map(text).collect();
                format!("({})", alts.join(" OR "))
            })
            .collect();
        parts.extend(q.speakers.iter().map(|s| format!("speaker : {}", quote(s))));
        let mut expr = parts.join(" AND ");
        for t in &q.none {
            expr = format!("({expr}) NOT ({})", text(t));
        }
        expr
    }

    /// Runs `q` the way an FTS5 user would: the top page by bm25 with snippets, and the total.
    fn query(&self, q: &BenchQuery) -> anyhow::Result<usize> {
        let m = Self::match_expr(&q.parsed);
        let lo = q.parsed.after_ms.unwrap_or(i64::MIN);
        let hi = q.parsed.before_ms.unwrap_or(i64::MAX);
        let mut top = self.conn.prepare_cached(
            "SELECT recording_id, title, speaker, start_ms,
                    snippet(seg, 0, '<mark>', '</mark>', '…', 24)
             FROM seg WHERE seg MATCH ?1 AND public = 1 AND date_ms >= ?2 AND date_ms < ?3
             ORDER BY rank LIMIT ?4",
        )?;
        let rows = top.query_map(rusqlite::params![m, lo, hi, PAGE as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let page: Vec<_> = rows.collect::<Result<_, _>>()?;
        std::hint::black_box(&page);
        let mut count = self.conn.prepare_cached(
            "SELECT count(*) FROM seg WHERE seg MATCH ?1 AND public = 1 AND date_ms >= ?2 AND date_ms < ?3",
        )?;
        let total: i64 = count.query_row(rusqlite::params![m, lo, hi], |r| r.get(0))?;
        Ok(total as usize)
    }
}
