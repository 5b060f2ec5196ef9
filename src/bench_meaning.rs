//! `roomtape bench search --meaning`: search by meaning measured with the real embedding model.
//!
//! - **Embedding throughput** on real English sentences (the model itself, on the threads given).
//! - **Recall@10 on a labelled paraphrase set** (`tests/fixtures/paraphrases.tsv`: queries over
//!   the real sentences of Asterisk's English prompts, each with the prompts it should find), for
//!   words, meaning and hybrid: on the prompts alone, and again with the prompts hidden in each
//!   big corpus, where every other line competes.
//! - **At each corpus size** (200 h and 2,000 h of generated transcripts by default, the corpus of
//!   `bench search`): index size and memory with vectors, query p50/p99 for words, meaning and
//!   hybrid (the query's embedding included), and the code scan checked against an exact scan of
//!   every visible line's int8 vector (its latency, and the code path's recall@10 of it).
//!
//! Embedding a million generated lines would take the model most of an hour and say nothing (the
//! generated text has no meaning), so each generated line's vector is a blend of two real
//! sentence embeddings (a sentence of Debian's licence texts, which are not about telephones)
//! with Gaussian noise: a continuum of real-looking vectors. The output says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use roomtape_core::Rng;
use roomtape_search::embed::{DIMS, Embedder, normalised};
use roomtape_search::query::parse;
use roomtape_search::vectors::{self, QUANTIZED_BYTES};
use roomtape_search::{Mode, SearchIndex, SegmentDoc, Sort, Viewer};

use crate::bench_search::{Corpus, QueryMix, Zipf, ms, pct, vocabulary};

/// Where the bench reads its inputs.
pub struct Options {
    pub model_dir: PathBuf,
    pub sizes: Vec<f64>,
    pub queries: usize,
    pub words: PathBuf,
    pub paraphrases: PathBuf,
    pub prompts: PathBuf,
    pub licences: PathBuf,
    pub threads: usize,
}

/// Lines of a result page that count for recall.
const TOP: usize = 10;
/// The noise added to each blended vector, as a share of its length.
const NOISE: f32 = 0.35;
/// Queries checked against the exact scan at each size (it reads every visible vector).
const EXACT_QUERIES: usize = 100;
const MODES: [Mode; 3] = [Mode::Words, Mode::Meaning, Mode::Hybrid];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Paraphrase,
    Exact,
}

struct Labelled {
    label: Label,
    query: String,
    expect: Vec<String>,
}

pub fn run(o: &Options) -> anyhow::Result<()> {
    if o.sizes.iter().any(|h| !(*h > 0.0 && *h <= 20_000.0)) {
        bail!("--sizes must each be above 0 and at most 20000 hours");
    }
    if !Embedder::present(&o.model_dir) {
        bail!(
            "no embedding model in {} (scripts/models.sh all-minilm-l6-v2, or make models-test)",
            o.model_dir.display()
        );
    }
    let t = Instant::now();
    let embedder = Arc::new(Embedder::load(&o.model_dir, o.threads)?);
    println!(
        "model: all-MiniLM-L6-v2 ({DIMS} dimensions) from {}, loaded in {:.2} s, {} thread(s)",
        o.model_dir.display(),
        t.elapsed().as_secs_f64(),
        o.threads.max(1)
    );
    let prompts = prompts(&o.prompts)?;
    let set = paraphrases(&o.paraphrases, &prompts)?;
    let pool_text = licence_sentences(&o.licences)?;

    // Embedding throughput, on the prompts and on the licence sentences.
    println!(
        "\n{:<34} {:>7} {:>9} {:>9} {:>9}",
        "embedding", "lines", "words", "lines/s", "words/s"
    );
    let texts: Vec<&str> = prompts.iter().map(|(_, t)| t.as_str()).collect();
    let (prompt_vectors, _) = embed_timed(&embedder, "Asterisk's prompts (short)", &texts)?;
    let texts: Vec<&str> = pool_text.iter().map(String::as_str).collect();
    let (pool, rate) = embed_timed(&embedder, "Debian's licence texts (long)", &texts)?;

    let prompt_docs: Vec<SegmentDoc> = prompts
        .iter()
        .zip(&prompt_vectors)
        .enumerate()
        .map(|(i, ((id, text), v))| prompt_doc(i, id, text, v))
        .collect();
    let prompt_quantized: Vec<Vec<u8>> = prompt_vectors
        .iter()
        .map(|v| vectors::quantize(v))
        .collect();
    let alone = SearchIndex::in_memory()?;
    alone.set_embedder(embedder.clone());
    alone.add_all(prompt_docs.iter().cloned())?;
    let n_para = set.iter().filter(|q| q.label == Label::Paraphrase).count();
    println!(
        "\nparaphrase set: {n_para} paraphrase and {} exact queries over {} prompts; \
         recall@{TOP} = the share of queries with a right prompt among the first {TOP} lines",
        set.len() - n_para,
        prompts.len()
    );
    let mut recall_rows = vec![("the prompts alone".to_string(), recall(&alone, &set)?)];

    let vocab = vocabulary(&o.words)?;
    let zipf = Zipf::new(vocab.len(), 1.0);
    let mut sizes = Vec::new();
    for &hours in &o.sizes {
        let t = Instant::now();
        let corpus = Corpus::generate(&vocab, &zipf, hours, 7);
        // The query mix of `bench search`, drawn from this corpus.
        let mix: Vec<String> = QueryMix::generate(&corpus, &vocab, o.queries, 11)
            .queries
            .into_iter()
            .map(|q| q.text)
            .collect();
        let mut docs = corpus.docs;
        let mut rng = Rng::new(hours.to_bits());
        let quantized: Vec<Vec<u8>> = docs
            .iter_mut()
            .map(|d| {
                let v = blend(&pool, &mut rng);
                let q = vectors::quantize(&v);
                d.vector = Some(v);
                q
            })
            .collect();
        let lines = docs.len();
        let made = t.elapsed();
        let dir = tempfile::tempdir()?;
        let (ix, _) = SearchIndex::open(dir.path())?;
        ix.set_embedder(embedder.clone());
        let t = Instant::now();
        ix.add_all(docs.iter().cloned().chain(prompt_docs.iter().cloned()))?;
        ix.optimize()?;
        let build = t.elapsed();
        // The bench's own float vectors are done with; the int8 copies stay for the exact scan.
        for d in &mut docs {
            d.vector = None;
        }
        let size = SearchIndex::size_bytes(dir.path());
        // The keys and vectors of the lines an anonymous caller sees, for the exact scan.
        let visible: Vec<(&SegmentDoc, &[u8])> = docs
            .iter()
            .zip(&quantized)
            .chain(prompt_docs.iter().zip(&prompt_quantized))
            .filter(|(d, _)| d.public)
            .map(|(d, q)| (d, q.as_slice()))
            .collect();
        println!(
            "\n== {hours} h: {lines} generated lines ({} recordings, {} speakers; vectors blended \
             from {} licence sentences, noise {NOISE}), made in {:.1} s, indexed with the {} \
             prompts in {:.1} s ({:.0} lines/s)",
            corpus.recordings,
            corpus.speakers,
            pool.len(),
            made.as_secs_f64(),
            prompt_docs.len(),
            build.as_secs_f64(),
            lines as f64 / build.as_secs_f64()
        );
        println!(
            "embedding them all with the model would take {:.0} min at {rate:.0} lines/s",
            lines as f64 / rate / 60.0
        );
        sizes.push(measure(
            &ix, hours, lines, size, &mix, &set, &visible, &embedder,
        )?);
        recall_rows.push((format!("inside {hours} h"), recall(&ix, &set)?));
    }

    println!(
        "\n{:<22} {:<11} {:>8} {:>8} {:>8}   found by meaning, not by words",
        "recall@10", "queries", "words", "meaning", "hybrid"
    );
    for (name, r) in &recall_rows {
        for (label, what) in [(Label::Paraphrase, "paraphrase"), (Label::Exact, "exact")] {
            let of: Vec<&[bool; 3]> = set
                .iter()
                .zip(r)
                .filter(|(q, _)| q.label == label)
                .map(|(_, f)| f)
                .collect();
            let share =
                |m: usize| 100.0 * of.iter().filter(|f| f[m]).count() as f64 / of.len() as f64;
            let gained = of.iter().filter(|f| f[1] && !f[0]).count();
            println!(
                "{:<22} {:<11} {:>7.1}% {:>7.1}% {:>7.1}%   {gained}",
                name,
                what,
                share(0),
                share(1),
                share(2)
            );
        }
    }
    println!(
        "\n{:<8} {:>9} {:>10} {:>10} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "size",
        "lines",
        "index MiB",
        "codes MiB",
        "words p50/99",
        "meaning",
        "hybrid",
        "exact scan",
        "code recall"
    );
    for s in &sizes {
        let pair = |v: &[Duration]| format!("{:.1}/{:.1}", ms(pct(v, 0.5)), ms(pct(v, 0.99)));
        println!(
            "{:<8} {:>9} {:>10.0} {:>10.1} {:>12} {:>12} {:>12} {:>12} {:>11.1}%",
            format!("{} h", s.hours),
            s.lines,
            s.size as f64 / MIB,
            (s.lines * vectors::CODE_BITS / 8) as f64 / MIB,
            pair(&s.latency[0]),
            pair(&s.latency[1]),
            pair(&s.latency[2]),
            pair(&s.exact),
            100.0 * s.code_recall
        );
    }
    println!(
        "(ms, anonymous caller, top 20 with total and snippets; meaning and hybrid include the \
         query's embedding, and so does the exact scan = the cosine of every visible line's int8 \
         vector, on one thread; code recall = share of the exact scan's top {TOP} (cosine ≥ 0.3) that search by meaning \
         returns)"
    );
    println!(
        "vectors: {} B of code (fast fields, in memory) + {QUANTIZED_BYTES} B of int8 vector \
         (stored) a line",
        vectors::CODE_BITS / 8
    );
    Ok(())
}

const MIB: f64 = 1024.0 * 1024.0;

struct Size {
    hours: f64,
    lines: usize,
    size: u64,
    latency: [Vec<Duration>; 3],
    exact: Vec<Duration>,
    code_recall: f64,
}

/// Latency of each mode, memory, and the code scan against the exact scan, at one size.
#[allow(clippy::too_many_arguments)]
fn measure(
    ix: &SearchIndex,
    hours: f64,
    lines: usize,
    size: u64,
    mix: &[String],
    set: &[Labelled],
    visible: &[(&SegmentDoc, &[u8])],
    embedder: &Embedder,
) -> anyhow::Result<Size> {
    // The generated mix (terms, phrases, speakers, dates) and the paraphrase set's queries.
    let queries: Vec<&str> = mix
        .iter()
        .map(String::as_str)
        .chain(set.iter().map(|q| q.query.as_str()))
        .collect();
    let parsed = queries
        .iter()
        .map(|q| parse(q).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Warm: every segment's codes read once, the page cache filled.
    let rss_before = memory().0;
    for p in parsed.iter().take(20) {
        for m in MODES {
            ix.search(p, &Viewer::Anonymous, Sort::Relevance, Some(m), 1, 20)?;
        }
    }
    let mut latency: [Vec<Duration>; 3] = Default::default();
    for p in &parsed {
        for (i, m) in MODES.into_iter().enumerate() {
            let t = Instant::now();
            let r = ix.search(p, &Viewer::Anonymous, Sort::Relevance, Some(m), 1, 20)?;
            latency[i].push(t.elapsed());
            std::hint::black_box(r);
        }
    }
    let (rss, peak) = memory();
    println!(
        "memory: the queries brought {:+.0} MiB into residence (the codes, held by the index: \
         {:.0} MiB; the rest, pages of the index files); the process's peak, {:.0} MiB, holds \
         the bench's own corpus too",
        (rss as f64 - rss_before as f64) / MIB,
        (lines * vectors::CODE_BITS / 8) as f64 / MIB,
        peak as f64 / MIB
    );

    // The exact scan, and how much of its top the code path finds.
    let mut exact = Vec::new();
    let mut found = 0usize;
    let mut wanted = 0usize;
    let step = (parsed.len() / EXACT_QUERIES).max(1);
    for p in parsed.iter().step_by(step).take(EXACT_QUERIES) {
        let t = Instant::now();
        let v = embedder.embed_one(&p.meaning_text())?;
        let mut best: Vec<(f32, usize)> = Vec::with_capacity(TOP + 1);
        for (i, (d, q)) in visible.iter().enumerate() {
            if !p.speakers.is_empty()
                && !p
                    .speakers
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(&d.speaker))
            {
                continue;
            }
            if p.after_ms.is_some_and(|a| d.date_ms < a)
                || p.before_ms.is_some_and(|b| d.date_ms >= b)
            {
                continue;
            }
            let s = vectors::similarity(&v, q).unwrap_or(0.0);
            if s >= 0.3 && (best.len() < TOP || s > best[best.len() - 1].0) {
                let at = best.partition_point(|(x, _)| *x >= s);
                best.insert(at, (s, i));
                best.truncate(TOP);
            }
        }
        exact.push(t.elapsed());
        let r = ix.search(
            p,
            &Viewer::Anonymous,
            Sort::Relevance,
            Some(Mode::Meaning),
            1,
            TOP,
        )?;
        let got: std::collections::HashSet<(&str, i64)> = r
            .recordings
            .iter()
            .flat_map(|g| {
                g.hits
                    .iter()
                    .map(move |h| (g.recording_id.as_str(), h.start_ms))
            })
            .collect();
        wanted += best.len();
        found += best
            .iter()
            .filter(|(_, i)| {
                let d = visible[*i].0;
                got.contains(&(d.recording_id.as_str(), d.start_ms))
            })
            .count();
    }
    Ok(Size {
        hours,
        lines,
        size,
        latency,
        exact,
        code_recall: if wanted == 0 {
            1.0
        } else {
            found as f64 / wanted as f64
        },
    })
}

/// For each labelled query, whether words, meaning and hybrid find a right prompt in the top.
fn recall(ix: &SearchIndex, set: &[Labelled]) -> anyhow::Result<Vec<[bool; 3]>> {
    set.iter()
        .map(|q| {
            let parsed = parse(&q.query).map_err(anyhow::Error::msg)?;
            let mut found = [false; 3];
            for (i, m) in MODES.into_iter().enumerate() {
                let r = ix.search(
                    &parsed,
                    &Viewer::Anonymous,
                    Sort::Relevance,
                    Some(m),
                    1,
                    TOP,
                )?;
                found[i] = r
                    .recordings
                    .iter()
                    .any(|g| q.expect.contains(&g.recording_id));
            }
            Ok(found)
        })
        .collect()
}

fn embed_timed(e: &Embedder, what: &str, texts: &[&str]) -> anyhow::Result<(Vec<Vec<f32>>, f64)> {
    let t = Instant::now();
    let v = e.embed(texts)?;
    let s = t.elapsed().as_secs_f64();
    let words: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    println!(
        "{:<34} {:>7} {:>9} {:>9.0} {:>9.0}",
        what,
        texts.len(),
        words,
        texts.len() as f64 / s,
        words as f64 / s
    );
    Ok((v, texts.len() as f64 / s))
}

/// A prompt as an indexed line: its own recording (so a hit names the prompt), public.
fn prompt_doc(i: usize, id: &str, text: &str, v: &[f32]) -> SegmentDoc {
    SegmentDoc {
        recording_id: id.to_string(),
        room_id: None,
        title: "Asterisk's prompts".into(),
        speaker_id: "prompts".into(),
        speaker: "Prompt Voice".into(),
        language: "en".into(),
        start_ms: 0,
        end_ms: 3_000,
        text: text.to_string(),
        translation: None,
        date_ms: 1_704_067_200_000 + i as i64 * 60_000,
        public: true,
        readers: Vec::new(),
        vector: Some(v.to_vec()),
    }
}

/// A unit vector between two of the pool's (the first weighing at least half), with noise.
fn blend(pool: &[Vec<f32>], rng: &mut Rng) -> Vec<f32> {
    let a = &pool[(rng.next_u64() % pool.len() as u64) as usize];
    let b = &pool[(rng.next_u64() % pool.len() as u64) as usize];
    let w = 0.5 + 0.5 * rng.unit() as f32;
    let sigma = NOISE / (DIMS as f32).sqrt();
    normalised(
        a.iter()
            .zip(b)
            .map(|(x, y)| w * x + (1.0 - w) * y + sigma * rng.gaussian() as f32)
            .collect(),
    )
}

/// Resident and peak memory of this process, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The prompts' transcript (`id: text` lines, `;` comments), gzipped as Debian ships it.
fn prompts(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .with_context(|| format!("running gzip -dc {}", path.display()))?;
    if !out.status.success() {
        bail!(
            "reading the prompts {} (make devset): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut seen = std::collections::HashSet::new();
    let list: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with(';'))
        .filter_map(|l| l.split_once(':'))
        .map(|(id, t)| (id.trim().to_string(), t.trim().to_string()))
        .filter(|(id, t)| !id.is_empty() && !t.is_empty() && !id.contains(' '))
        .filter(|(id, _)| seen.insert(id.clone()))
        .collect();
    if list.len() < 100 {
        bail!("{} holds only {} prompts", path.display(), list.len());
    }
    Ok(list)
}

/// The labelled set; every id it names must be a prompt.
fn paraphrases(path: &Path, prompts: &[(String, String)]) -> anyhow::Result<Vec<Labelled>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the paraphrase set {}", path.display()))?;
    let ids: std::collections::HashSet<&str> = prompts.iter().map(|(id, _)| id.as_str()).collect();
    let mut set = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut cols = line.split('\t');
        let (Some(kind), Some(query), Some(expect)) = (cols.next(), cols.next(), cols.next())
        else {
            bail!(
                "{}:{}: three tab-separated columns expected",
                path.display(),
                n + 1
            );
        };
        let label = match kind {
            "paraphrase" => Label::Paraphrase,
            "exact" => Label::Exact,
            k => bail!("{}:{}: unknown kind {k:?}", path.display(), n + 1),
        };
        let expect: Vec<String> = expect.split(',').map(|s| s.trim().to_string()).collect();
        if let Some(bad) = expect.iter().find(|e| !ids.contains(e.as_str())) {
            bail!("{}:{}: no prompt {bad:?}", path.display(), n + 1);
        }
        set.push(Labelled {
            label,
            query: query.to_string(),
            expect,
        });
    }
    Ok(set)
}

/// The sentences of Debian's licence texts (each file once, however many names it has): real
/// English, far from the prompts' subject, to make the corpus's vectors from.
fn licence_sentences(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok()?.path().canonicalize().ok())
        .collect();
    files.sort();
    files.dedup();
    let mut out = std::collections::BTreeSet::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for s in flat.split_inclusive(['.', ';', '?', '!']) {
            let s = s.trim();
            let words = s.split_whitespace().count();
            let letters = s.chars().filter(|c| c.is_alphabetic()).count();
            if (6..=40).contains(&words) && letters * 10 >= s.len() * 7 {
                out.insert(s.to_string());
            }
        }
    }
    if out.len() < 200 {
        bail!("{} gave only {} sentences", dir.display(), out.len());
    }
    // At most 2,000, spread over the whole set.
    let all: Vec<String> = out.into_iter().collect();
    let step = all.len().div_ceil(2000);
    Ok(all.into_iter().step_by(step).collect())
}
