//! The tantivy index: one document per transcript segment.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tantivy::collector::sort_key::{SortBySimilarityScore, SortByStaticFastValue};
use tantivy::collector::{Collector, Count, SegmentCollector, TopDocs};
use tantivy::fieldnorm::FieldNormReader;
use tantivy::index::SegmentId;
use tantivy::query::{
    AllQuery, Bm25StatisticsProvider, BooleanQuery, ConstScoreQuery, EmptyQuery, Occur,
    PhraseQuery, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{
    DocAddress, DocId, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Score, Searcher,
    SegmentOrdinal, SegmentReader, TantivyDocument, Term, doc,
};

use crate::embed::Embedder;
use crate::query::{ParsedQuery, Text};
use crate::vectors::{self, CODE_WORDS, Code};
use crate::{Error, Result};

/// The analyzer of every text field: words split on non-alphanumerics, lower-cased, accents
/// and other non-ASCII variants folded to ASCII (`Péskov` = `peskov`), numbers kept.
pub const ANALYZER: &str = "roomtape";

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// Who is asking: the access filter is part of every query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// The local admin (the CLI) or an admin account: everything.
    Admin,
    /// Not signed in: published public recordings.
    Anonymous,
    /// A signed-in user: public ones, plus their own and those they hosted or spoke in.
    User(String),
}

/// One segment to index, with everything needed to find it and to filter it.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentDoc {
    pub recording_id: String,
    pub room_id: Option<String>,
    pub title: String,
    pub speaker_id: String,
    pub speaker: String,
    pub language: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
    /// The line's English translation, when it has one: found by the same words as the text
    /// (a second value of the text field, so one analyzer, one set of statistics and the same
    /// access rule serve both).
    pub translation: Option<String>,
    /// When the recording started, ms since the epoch.
    pub date_ms: i64,
    /// True when the recording is published and public.
    pub public: bool,
    /// Users who may see it besides the public: owner, hosts, speakers.
    pub readers: Vec<String>,
    /// Its meaning vector when the caller has one (benchmarks); otherwise the index computes
    /// it with its embedding model, if it has one.
    pub vector: Option<Vec<f32>>,
}

impl SegmentDoc {
    /// The English of the line, which its meaning vector is made from: the translation when
    /// there is one, else the text.
    pub fn english(&self) -> &str {
        self.translation.as_deref().unwrap_or(&self.text)
    }
}

/// How words of a query find lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The words themselves (BM25), with phrases, prefixes and operators.
    Words,
    /// Lines whose meaning is nearest the query's (cosine of sentence embeddings).
    Meaning,
    /// Both, merged by reciprocal rank fusion: what is asked for when vectors exist.
    Hybrid,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "words" => Some(Mode::Words),
            "meaning" => Some(Mode::Meaning),
            "hybrid" => Some(Mode::Hybrid),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Words => "words",
            Mode::Meaning => "meaning",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// How to order results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Relevance,
    Newest,
}

/// One hit: a segment, with its snippet (HTML-escaped, matches in `<mark>`). Hits carry no
/// score: their order is the answer.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Hit {
    pub speaker: String,
    pub speaker_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub snippet_html: String,
    /// The line's English translation, when it has one, escaped the same way, with the
    /// matches marked where the query matched it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub translation_html: Option<String>,
    /// `/r/<recording>?t=<seconds>`; the API puts the service's base URL in front.
    pub link: String,
}

/// Hits of one recording.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct RecordingHits {
    pub recording_id: String,
    pub title: String,
    pub date_ms: i64,
    pub hits: Vec<Hit>,
}

/// A page of results.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Results {
    /// Matching segments in all (what the viewer may see).
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    /// How the lines were found (what was asked for, or words where the index has no vectors).
    pub mode: Mode,
    pub recordings: Vec<RecordingHits>,
}

#[derive(Clone, Copy, Debug)]
struct Fields {
    recording: Field,
    room: Field,
    title: Field,
    speaker_id: Field,
    speaker: Field,
    language: Field,
    start: Field,
    end: Field,
    text: Field,
    date: Field,
    access: Field,
    /// `yes` on a line that has a meaning vector.
    embedded: Field,
    /// The vector's code, one `u64` a field ([`vectors::code`]).
    code: [Field; CODE_WORDS],
    /// The vector, quantised ([`vectors::quantize`]).
    vector: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let positions = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let f = Fields {
        recording: b.add_text_field("recording_id", STRING | STORED),
        room: b.add_text_field("room_id", STRING),
        title: b.add_text_field("title", positions.clone() | STORED),
        speaker_id: b.add_text_field("speaker_id", STRING | STORED),
        speaker: b.add_text_field("speaker", positions.clone() | STORED),
        language: b.add_text_field("language", STRING),
        start: b.add_i64_field("start_ms", STORED | FAST),
        end: b.add_i64_field("end_ms", STORED),
        text: b.add_text_field("text", positions | STORED),
        date: b.add_i64_field("date_ms", INDEXED | STORED | FAST),
        // `public`, or `user:<id>` for each reader.
        access: b.add_text_field("access", STRING),
        embedded: b.add_text_field("embedded", STRING),
        code: std::array::from_fn(|i| b.add_u64_field(&format!("code{i}"), FAST)),
        vector: b.add_bytes_field("vector", STORED),
    };
    (b.build(), f)
}

/// Memory the writer buffers before it flushes a segment.
const WRITER_HEAP: usize = 64 * 1024 * 1024;

/// Readers of an index on disk also watch it for commits made by another process (the CLI
/// while `serve` runs, or the other way round); a process's own commits are seen at once.
const ON_DISK_RELOAD: ReloadPolicy = ReloadPolicy::OnCommitWithDelay;

/// The search index.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    /// Made on the first write: only one process may hold an index's writer, and a process that
    /// only searches (the CLI while `serve` runs) never needs it.
    writer: Mutex<Option<IndexWriter>>,
    f: Fields,
    /// BM25 statistics of the public documents, which every search but an admin's needs.
    public: Mutex<PublicStats>,
    /// The sentence-embedding model, when search by meaning is on.
    embedder: std::sync::RwLock<Option<Arc<Embedder>>>,
    /// Each index segment's codes, by document (read from the fast fields once a segment).
    codes: Mutex<HashMap<SegmentId, Arc<Vec<Code>>>>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").finish_non_exhaustive()
    }
}

impl SearchIndex {
    fn from_index(index: Index, f: Fields, policy: ReloadPolicy) -> Result<Self> {
        index.tokenizers().register(ANALYZER, analyzer());
        let reader = index.reader_builder().reload_policy(policy).try_into()?;
        Ok(SearchIndex {
            index,
            reader,
            writer: Mutex::new(None),
            f,
            public: Mutex::new(PublicStats::default()),
            embedder: std::sync::RwLock::new(None),
            codes: Mutex::new(HashMap::new()),
        })
    }

    /// An index in memory (tests, benchmarks).
    pub fn in_memory() -> Result<Self> {
        let (schema, f) = schema();
        Self::from_index(Index::create_in_ram(schema), f, ReloadPolicy::Manual)
    }

    /// Opens the index in `dir`, creating it when missing. Returns `(index, rebuilt)`: a
    /// directory that cannot be opened is moved aside and a fresh index made, and `rebuilt`
    /// says the caller must reindex from the catalog.
    pub fn open(dir: &Path) -> Result<(Self, bool)> {
        let (schema, f) = schema();
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Directory(format!("{}: {e}", dir.display())))?;
        let fresh = !dir.join("meta.json").exists();
        let opened = if fresh {
            Index::create_in_dir(dir, schema.clone())
        } else {
            Index::open_in_dir(dir).and_then(|i| {
                if i.schema() == schema {
                    Ok(i)
                } else {
                    Err(tantivy::TantivyError::SchemaError(
                        "the index was made with another schema".into(),
                    ))
                }
            })
        };
        match opened
            .map_err(Error::from)
            .and_then(|i| Self::from_index(i, f, ON_DISK_RELOAD))
        {
            Ok(ix) => Ok((ix, fresh)),
            Err(e) => {
                tracing::warn!(
                    "search index at {} is unusable ({e}); rebuilding it",
                    dir.display()
                );
                let aside = dir.with_extension(format!("broken-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&aside);
                std::fs::rename(dir, &aside)
                    .map_err(|e| Error::Directory(format!("{}: {e}", dir.display())))?;
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::Directory(format!("{}: {e}", dir.display())))?;
                let index = Index::create_in_dir(dir, schema)?;
                let ix = Self::from_index(index, f, ON_DISK_RELOAD)?;
                let _ = std::fs::remove_dir_all(&aside);
                Ok((ix, true))
            }
        }
    }

    /// Takes the index's writer now, for a process that keeps the index current (`serve`).
    /// Fails while another process holds it; every write tries again.
    pub fn acquire_writer(&self) -> Result<()> {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(self.index.writer(WRITER_HEAP)?);
        }
        Ok(())
    }

    /// Runs `f` with the index writer (made on first use), then commits and reloads. On any
    /// error the writer is dropped, which discards what `f` did: a batch lands whole or not at
    /// all.
    fn write<T>(&self, f: impl FnOnce(&mut IndexWriter) -> Result<T>) -> Result<T> {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let w = match guard.as_mut() {
            Some(w) => w,
            None => guard.insert(self.index.writer(WRITER_HEAP)?),
        };
        let out = f(w).and_then(|out| {
            w.commit()?;
            Ok(out)
        });
        if out.is_err() {
            *guard = None;
        }
        drop(guard);
        let out = out?;
        self.reader.reload()?;
        Ok(out)
    }

    /// Merges every segment into one (after a bulk load), and removes files no longer used.
    pub fn optimize(&self) -> Result<()> {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        // Let the merges the last commits started finish, so they cannot race this one.
        if let Some(w) = guard.take() {
            w.wait_merging_threads()?;
        }
        let w = guard.insert(self.index.writer(WRITER_HEAP)?);
        let ids = self.index.searchable_segment_ids()?;
        if ids.len() > 1 {
            w.merge(&ids).wait()?;
        }
        w.garbage_collect_files().wait()?;
        drop(guard);
        self.reader.reload()?;
        Ok(())
    }

    /// Replaces every document of `recording` with `docs` and makes them searchable.
    pub fn replace_recording(&self, recording: &str, docs: &[SegmentDoc]) -> Result<()> {
        self.replace_recordings(&[(recording.to_string(), docs.to_vec())])
    }

    /// Replaces the documents of several recordings in one commit: a reader sees all of the
    /// changes or none of them, never a recording twice.
    pub fn replace_recordings(&self, batch: &[(String, Vec<SegmentDoc>)]) -> Result<()> {
        // The vectors first, outside the writer's lock: a line whose English is unchanged
        // keeps the vector it has, so only new or corrected lines go through the model.
        let kept = self.kept_vectors(batch.iter().map(|(r, _)| r.as_str()))?;
        let mut vectors = Vec::with_capacity(batch.len());
        for (_, docs) in batch {
            vectors.push(self.vectors_of(docs, &kept)?);
        }
        self.write(|w| {
            for ((recording, docs), vectors) in batch.iter().zip(&vectors) {
                w.delete_term(Term::from_field_text(self.f.recording, recording));
                for (d, v) in docs.iter().zip(vectors) {
                    w.add_document(self.document(d, v.as_deref()))?;
                }
            }
            Ok(())
        })
    }

    /// Adds many recordings at once (benchmarks): one commit at the end.
    pub fn add_all(&self, docs: impl IntoIterator<Item = SegmentDoc>) -> Result<usize> {
        let docs: Vec<SegmentDoc> = docs.into_iter().collect();
        let vectors = self.vectors_of(&docs, &HashMap::new())?;
        self.write(|w| {
            for (d, v) in docs.iter().zip(&vectors) {
                w.add_document(self.document(d, v.as_deref()))?;
            }
            Ok(docs.len())
        })
    }

    /// Turns search by meaning on: lines indexed from now on get vectors from `embedder`, and
    /// queries may use them. Lines indexed before have none until their recording is indexed
    /// again ([`SearchIndex::recordings_without_vectors`] finds them).
    pub fn set_embedder(&self, embedder: Arc<Embedder>) {
        *self.embedder.write().unwrap_or_else(|p| p.into_inner()) = Some(embedder);
    }

    /// The embedding model, if search by meaning is on.
    pub fn embedder(&self) -> Option<Arc<Embedder>> {
        self.embedder
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Up to `limit` recordings that have lines without a meaning vector (indexed before the
    /// model was there); empty when search by meaning is off.
    pub fn recordings_without_vectors(&self, limit: usize) -> Result<Vec<String>> {
        if self.embedder().is_none() {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let q = BooleanQuery::new(vec![
            (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
            (
                Occur::MustNot,
                Box::new(TermQuery::new(
                    Term::from_field_text(self.f.embedded, "yes"),
                    IndexRecordOption::Basic,
                )),
            ),
        ]);
        let mut out = std::collections::BTreeSet::new();
        for addr in searcher.search(&q, &tantivy::collector::DocSetCollector)? {
            let doc: TantivyDocument = searcher.doc(addr)?;
            if let Some(r) = doc.get_first(self.f.recording).and_then(|v| v.as_str()) {
                out.insert(r.to_string());
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// The quantised vectors the lines of `recordings` have now, by their English text.
    fn kept_vectors<'a>(
        &self,
        recordings: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<String, Vec<u8>>> {
        let mut kept = HashMap::new();
        if self.embedder().is_none() {
            return Ok(kept);
        }
        let searcher = self.reader.searcher();
        for r in recordings {
            let q = TermQuery::new(
                Term::from_field_text(self.f.recording, r),
                IndexRecordOption::Basic,
            );
            for addr in searcher.search(&q, &tantivy::collector::DocSetCollector)? {
                let doc: TantivyDocument = searcher.doc(addr)?;
                let texts: Vec<&str> = doc
                    .get_all(self.f.text)
                    .filter_map(|v| v.as_str())
                    .collect();
                let english = texts.get(1).or(texts.first()).copied().unwrap_or("");
                if let Some(v) = doc.get_first(self.f.vector).and_then(|v| v.as_bytes()) {
                    kept.insert(english.to_string(), v.to_vec());
                }
            }
        }
        Ok(kept)
    }

    /// Each document's quantised vector: its own, one kept, or one computed now (`None` for
    /// all when search by meaning is off and the documents bring none).
    fn vectors_of(
        &self,
        docs: &[SegmentDoc],
        kept: &HashMap<String, Vec<u8>>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let embedder = self.embedder();
        let mut out: Vec<Option<Vec<u8>>> = docs
            .iter()
            .map(|d| match &d.vector {
                Some(v) => Some(vectors::quantize(v)),
                None => kept.get(d.english()).cloned(),
            })
            .collect();
        if let Some(e) = embedder {
            let missing: Vec<usize> = (0..docs.len()).filter(|&i| out[i].is_none()).collect();
            if !missing.is_empty() {
                let texts: Vec<&str> = missing.iter().map(|&i| docs[i].english()).collect();
                for (i, v) in missing.iter().zip(e.embed(&texts)?) {
                    out[*i] = Some(vectors::quantize(&v));
                }
            }
        }
        Ok(out)
    }

    /// Removes a recording's documents.
    pub fn delete_recording(&self, recording: &str) -> Result<()> {
        self.replace_recording(recording, &[])
    }

    /// Removes everything.
    pub fn clear(&self) -> Result<()> {
        self.write(|w| {
            w.delete_all_documents()?;
            Ok(())
        })
    }

    fn document(&self, d: &SegmentDoc, vector: Option<&[u8]>) -> TantivyDocument {
        let f = &self.f;
        let mut doc = doc!(
            f.recording => d.recording_id.as_str(),
            f.title => d.title.as_str(),
            f.speaker_id => d.speaker_id.as_str(),
            f.speaker => d.speaker.as_str(),
            f.language => d.language.to_ascii_lowercase(),
            f.start => d.start_ms,
            f.end => d.end_ms,
            f.text => d.text.as_str(),
            f.date => d.date_ms,
        );
        if let Some(t) = &d.translation {
            doc.add_text(f.text, t);
        }
        if let Some(room) = &d.room_id {
            doc.add_text(f.room, room);
        }
        if d.public {
            doc.add_text(f.access, "public");
        }
        for r in &d.readers {
            doc.add_text(f.access, format!("user:{r}"));
        }
        if let Some(v) = vector.and_then(|q| Some((q, vectors::dequantize(q)?))) {
            let (q, v) = v;
            doc.add_text(f.embedded, "yes");
            for (field, word) in f.code.iter().zip(vectors::code(&v)) {
                doc.add_u64(*field, word);
            }
            doc.add_bytes(f.vector, q);
        }
        doc
    }

    /// The analyzer's tokens of `s`.
    fn tokens(&self, s: &str) -> Vec<String> {
        let mut a = analyzer();
        let mut stream = a.token_stream(s);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    /// A phrase (or single term) query on `field`; `None` when `s` has no tokens.
    fn phrase(&self, field: Field, s: &str) -> Option<Box<dyn Query>> {
        let terms: Vec<Term> = self
            .tokens(s)
            .iter()
            .map(|t| Term::from_field_text(field, t))
            .collect();
        match terms.len() {
            0 => None,
            1 => Some(Box::new(TermQuery::new(
                terms[0].clone(),
                IndexRecordOption::WithFreqs,
            ))),
            _ => Some(Box::new(PhraseQuery::new(terms))),
        }
    }

    /// Words beginning so (after any whole words before them, as a phrase): the first
    /// [`PREFIX_EXPANSIONS`] words, in order, that occur in documents the viewer may see.
    /// tantivy's own prefix queries take the first words of each segment's dictionary, private
    /// and deleted documents' words included, so those could push a public line's word out;
    /// and they weigh a phrase prefix with statistics of the whole index.
    fn prefix(
        &self,
        s: &str,
        searcher: &Searcher,
        access: Option<&dyn Query>,
    ) -> Result<Option<Box<dyn Query>>> {
        let field = self.f.text;
        let mut lead: Vec<Term> = self
            .tokens(s)
            .iter()
            .map(|t| Term::from_field_text(field, t))
            .collect();
        let Some(last) = lead.pop() else {
            return Ok(None);
        };
        let begin = last.serialized_value_bytes().to_vec();
        let mut words = std::collections::BTreeSet::new();
        for segment in searcher.segment_readers() {
            let index = segment.inverted_index(field)?;
            let mut range = index.terms().range().ge(&begin);
            if let Some(end) = prefix_end(&begin) {
                range = range.lt(end);
            }
            let mut stream = range.into_stream().map_err(tantivy::TantivyError::from)?;
            while stream.advance() {
                words.insert(stream.key().to_vec());
            }
        }
        let mut alts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for word in words {
            let Ok(word) = String::from_utf8(word) else {
                continue;
            };
            let term = Term::from_field_text(field, &word);
            let mut seen = BooleanQuery::new(vec![(
                Occur::Must,
                Box::new(TermQuery::new(term.clone(), IndexRecordOption::Basic)) as Box<dyn Query>,
            )]);
            if let Some(a) = access {
                seen = BooleanQuery::new(vec![
                    (Occur::Must, Box::new(seen) as Box<dyn Query>),
                    (Occur::Must, a.box_clone()),
                ]);
            }
            if searcher.search(&seen, &Count)? == 0 {
                continue;
            }
            alts.push((
                Occur::Should,
                if lead.is_empty() {
                    Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs))
                } else {
                    Box::new(PhraseQuery::new(
                        lead.iter().cloned().chain([term]).collect(),
                    ))
                },
            ));
            if alts.len() == PREFIX_EXPANSIONS {
                break;
            }
        }
        // No such word: the prefix matches nothing (it is not dropped from its group).
        Ok(Some(if alts.is_empty() {
            Box::new(EmptyQuery)
        } else {
            Box::new(BooleanQuery::new(alts))
        }))
    }

    fn text_query(
        &self,
        t: &Text,
        searcher: &Searcher,
        access: Option<&dyn Query>,
    ) -> Result<Option<Box<dyn Query>>> {
        match t {
            Text::Word(w) | Text::Phrase(w) => Ok(self.phrase(self.f.text, w)),
            Text::Prefix(p) => self.prefix(p, searcher, access),
        }
    }

    /// The query for `viewer`, and the part of it that matches text (for snippets).
    fn build(
        &self,
        q: &ParsedQuery,
        viewer: &Viewer,
        searcher: &Searcher,
    ) -> Result<(Box<dyn Query>, Box<dyn Query>)> {
        let f = &self.f;
        let access = self.access(viewer);
        let access = access.as_deref();
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for group in &q.all {
            let mut alts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for t in group {
                if let Some(q) = self.text_query(t, searcher, access)? {
                    alts.push((Occur::Should, q));
                }
            }
            if !alts.is_empty() {
                must.push((Occur::Must, Box::new(BooleanQuery::new(alts))));
            }
        }
        if q.has_text() && must.is_empty() {
            // Text was asked for but none of it can match (only symbols or emoji): nothing
            // matches, rather than everything.
            return Ok((Box::new(EmptyQuery), Box::new(EmptyQuery)));
        }
        let text = BooleanQuery::new(must.iter().map(|(o, q)| (*o, q.box_clone())).collect());
        // The rest only selects: only the words asked for score (over `text`), so a score
        // needs the viewer's statistics of that one field.
        let filter = |q: Box<dyn Query>| -> (Occur, Box<dyn Query>) {
            (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0)))
        };
        for s in &q.speakers {
            if let Some(p) = self.phrase(f.speaker, s) {
                must.push(filter(p));
            }
        }
        for r in &q.rooms {
            let mut alts: Vec<(Occur, Box<dyn Query>)> = vec![(
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.room, r.trim()),
                    IndexRecordOption::Basic,
                )),
            )];
            if let Some(p) = self.phrase(f.title, r) {
                alts.push((Occur::Should, p));
            }
            must.push(filter(Box::new(BooleanQuery::new(alts))));
        }
        for l in &q.languages {
            must.push(filter(Box::new(TermQuery::new(
                Term::from_field_text(f.language, l),
                IndexRecordOption::Basic,
            ))));
        }
        if q.after_ms.is_some() || q.before_ms.is_some() {
            let lo = q.after_ms.map_or(Bound::Unbounded, |v| {
                Bound::Included(Term::from_field_i64(f.date, v))
            });
            let hi = q.before_ms.map_or(Bound::Unbounded, |v| {
                Bound::Excluded(Term::from_field_i64(f.date, v))
            });
            must.push(filter(Box::new(RangeQuery::new(lo, hi))));
        }
        // Access is part of the query, so counts and pages only ever see what the viewer may.
        if let Some(access) = access {
            must.push(filter(access.box_clone()));
        }
        for t in &q.none {
            if let Some(x) = self.text_query(t, searcher, access)? {
                must.push((Occur::MustNot, x));
            }
        }
        if must.iter().all(|(o, _)| *o == Occur::MustNot) {
            must.push((Occur::Must, Box::new(AllQuery)));
        }
        Ok((Box::new(BooleanQuery::new(must)), Box::new(text)))
    }

    /// The documents `viewer` may see; `None` for everything.
    fn access(&self, viewer: &Viewer) -> Option<Box<dyn Query>> {
        let term = |v: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(self.f.access, v),
                IndexRecordOption::Basic,
            ))
        };
        match viewer {
            Viewer::Admin => None,
            Viewer::Anonymous => Some(term("public")),
            Viewer::User(u) => Some(Box::new(BooleanQuery::new(vec![
                (Occur::Should, term("public")),
                (Occur::Should, term(&format!("user:{u}"))),
            ]))),
        }
    }

    /// BM25 statistics of what `viewer` may see in `searcher`; `None` for an admin, who sees
    /// everything (tantivy's own statistics then).
    fn visible_stats<'a>(
        &'a self,
        searcher: &'a Searcher,
        viewer: &Viewer,
    ) -> Result<Option<VisibleStats<'a>>> {
        let Some(access) = self.access(viewer) else {
            return Ok(None);
        };
        let own: Option<Box<dyn Query>> = match viewer {
            Viewer::Admin | Viewer::Anonymous => None,
            // A user's own documents that are not public, counted apart from the public ones.
            Viewer::User(u) => Some(Box::new(BooleanQuery::new(vec![
                (
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(self.f.access, &format!("user:{u}")),
                        IndexRecordOption::Basic,
                    )) as Box<dyn Query>,
                ),
                (Occur::MustNot, Box::new(self.public_query())),
            ]))),
        };
        let mut totals = self.public_stats(searcher, |p| {
            Ok(match p.totals {
                Some(t) => t,
                None => *p
                    .totals
                    .insert(searcher.search(&self.public_query(), &TotalsOf(self.f.text))?),
            })
        })?;
        if let Some(own) = &own {
            totals = totals.plus(searcher.search(&**own, &TotalsOf(self.f.text))?);
        }
        Ok(Some(VisibleStats {
            index: self,
            searcher,
            access,
            own,
            totals,
        }))
    }

    fn public_query(&self) -> TermQuery {
        TermQuery::new(
            Term::from_field_text(self.f.access, "public"),
            IndexRecordOption::Basic,
        )
    }

    /// Runs `f` on the public statistics kept for `searcher`'s generation (kept only for the
    /// newest generation seen; an older searcher gets a scratch copy).
    fn public_stats<T>(
        &self,
        searcher: &Searcher,
        f: impl FnOnce(&mut PublicStats) -> tantivy::Result<T>,
    ) -> tantivy::Result<T> {
        let generation = searcher.generation().generation_id();
        let mut kept = self.public.lock().unwrap_or_else(|p| p.into_inner());
        if kept.generation < generation {
            *kept = PublicStats {
                generation,
                ..PublicStats::default()
            };
        }
        if kept.generation == generation {
            if kept.doc_freqs.len() > MAX_KEPT_DOC_FREQS {
                kept.doc_freqs.clear();
            }
            f(&mut kept)
        } else {
            drop(kept);
            f(&mut PublicStats::default())
        }
    }

    /// Runs a parsed query for `viewer`; `page` counts from 1. `mode` `None` is hybrid where
    /// the index has an embedding model and the query has words, else words.
    pub fn search(
        &self,
        q: &ParsedQuery,
        viewer: &Viewer,
        sort: Sort,
        mode: Option<Mode>,
        page: usize,
        per_page: usize,
    ) -> Result<Results> {
        let page = page.max(1);
        let per_page = per_page.clamp(1, 100);
        let searcher = self.reader.searcher();
        let embedder = self.embedder();
        let mode = match (mode, &embedder) {
            (Some(Mode::Meaning | Mode::Hybrid), None) => {
                return Err(Error::Query(
                    "search by meaning is not available here: the embedding model is not \
                     installed (scripts/models.sh all-minilm-l6-v2)"
                        .into(),
                ));
            }
            // Only filters: there is nothing to find by meaning.
            _ if !q.has_text() => Mode::Words,
            (Some(m), _) => m,
            (None, Some(_)) => Mode::Hybrid,
            (None, None) => Mode::Words,
        };
        let (query, text_only) = self.build(q, viewer, &searcher)?;
        // Scores (and so the order of hits, and which part of a hit is its snippet) come from
        // what the viewer may see and nothing else.
        let visible = self.visible_stats(&searcher, viewer)?;
        let stats: &dyn Bm25StatisticsProvider = match &visible {
            Some(v) => v,
            None => &searcher,
        };
        let offset = (page - 1) * per_page;
        let words = |offset: usize, limit: usize| -> Result<(Vec<DocAddress>, usize)> {
            self.words(&searcher, &query, stats, sort, offset, limit)
        };
        let near = match (mode, &embedder) {
            (Mode::Meaning | Mode::Hybrid, Some(e)) => {
                let v = e.embed_one(&q.meaning_text())?;
                let mut filters = q.clone();
                filters.all.clear();
                let (filter, _) = self.build(&filters, viewer, &searcher)?;
                self.nearest(&searcher, filter, &v)?
            }
            _ => Vec::new(),
        };
        let (hits, total): (Vec<DocAddress>, usize) = match mode {
            Mode::Words => words(offset, per_page)?,
            Mode::Meaning => {
                let mut near = near;
                if sort == Sort::Newest {
                    near.sort_by(|a, b| a.newest_first(b));
                }
                let total = near.len();
                let page = near.into_iter().skip(offset).take(per_page);
                (page.map(|n| n.addr).collect(), total)
            }
            Mode::Hybrid => {
                // The same depth on every page, so pages never disagree on the fused order.
                let (top, words_total) = words(0, HYBRID_DEPTH)?;
                let in_top: std::collections::HashSet<DocAddress> = top.iter().copied().collect();
                // Lines found by meaning alone; a line past the words' depth may match the
                // words too, and then it is counted once.
                let weight = query.weight(
                    tantivy::query::EnableScoring::disabled_from_searcher(&searcher),
                )?;
                let mut only = Vec::new();
                for n in &near {
                    if in_top.contains(&n.addr) {
                        continue;
                    }
                    if words_total <= top.len() || !matches(&*weight, &searcher, n.addr)? {
                        only.push(n.addr);
                    }
                }
                let total = words_total + only.len();
                let ranked = match sort {
                    Sort::Relevance => fuse(&top, &near),
                    Sort::Newest => {
                        let mut all: Vec<Near> = near.clone();
                        let have: std::collections::HashSet<DocAddress> =
                            near.iter().map(|n| n.addr).collect();
                        for &addr in &top {
                            if !have.contains(&addr) {
                                all.push(self.located(&searcher, addr, 0.0)?);
                            }
                        }
                        all.sort_by(|a, b| a.newest_first(b));
                        all.into_iter().map(|n| n.addr).collect()
                    }
                };
                let mut page: Vec<DocAddress> =
                    ranked.iter().skip(offset).take(per_page).copied().collect();
                // Past the fused lines, the words' own order goes on, without the lines found
                // by meaning that the fused part already showed.
                let end = offset + per_page;
                if page.len() < per_page && words_total > top.len() && end > ranked.len() {
                    let shown: std::collections::HashSet<DocAddress> =
                        near.iter().map(|n| n.addr).collect();
                    let (more, _) = words(top.len(), end - ranked.len() + near.len())?;
                    page.extend(
                        more.into_iter()
                            .filter(|a| !shown.contains(a))
                            .skip(offset.saturating_sub(ranked.len()))
                            .take(per_page - page.len()),
                    );
                }
                (page, total)
            }
        };
        let snippets = if q.has_text() {
            // tantivy's `SnippetGenerator::create` weighs each word by its frequency in the
            // whole index; the same weights from the viewer's documents instead.
            let mut terms = std::collections::BTreeSet::new();
            text_only.query_terms(&mut |t, _| {
                if t.field() == self.f.text {
                    terms.insert(t.clone());
                }
            });
            let mut weights = std::collections::BTreeMap::new();
            for t in terms {
                let n = stats.doc_freq(&t)?;
                if n > 0
                    && let Some(word) = t.value().as_str()
                {
                    weights.insert(word.to_string(), 1.0 / (1.0 + n as Score));
                }
            }
            let tokenizer = searcher.index().tokenizer_for_field(self.f.text)?;
            Some(SnippetGenerator::new(weights, tokenizer, self.f.text, 200))
        } else {
            None
        };
        let mut groups: Vec<RecordingHits> = Vec::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        for addr in hits {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let s = |field: Field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let i = |field: Field| doc.get_first(field).and_then(|v| v.as_i64()).unwrap_or(0);
            let text = s(self.f.text);
            // The original is the first value of the text field, its translation the second.
            let translation = doc
                .get_all(self.f.text)
                .nth(1)
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let snip = |text: &str| match &snippets {
                Some(g) => {
                    let sn = g.snippet(text);
                    if sn.fragment().is_empty() {
                        escape(&truncate(text, 200))
                    } else {
                        marked(sn.fragment(), sn.highlighted())
                    }
                }
                None => escape(&truncate(text, 200)),
            };
            let snippet_html = snip(&text);
            let translation_html = translation.as_deref().map(snip);
            let recording = s(self.f.recording);
            let start_ms = i(self.f.start);
            let hit = Hit {
                speaker: s(self.f.speaker),
                speaker_id: s(self.f.speaker_id),
                start_ms,
                end_ms: i(self.f.end),
                snippet_html,
                translation_html,
                link: format!("/r/{recording}?t={}", start_ms / 1000),
            };
            let idx = *at.entry(recording.clone()).or_insert_with(|| {
                groups.push(RecordingHits {
                    recording_id: recording.clone(),
                    title: s(self.f.title),
                    date_ms: i(self.f.date),
                    hits: Vec::new(),
                });
                groups.len() - 1
            });
            groups[idx].hits.push(hit);
        }
        Ok(Results {
            total,
            page,
            per_page,
            mode,
            recordings: groups,
        })
    }

    /// The documents of a words query, in `sort` order: `limit` of them from `offset`, and how
    /// many match in all.
    fn words(
        &self,
        searcher: &Searcher,
        query: &dyn Query,
        stats: &dyn Bm25StatisticsProvider,
        sort: Sort,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<DocAddress>, usize)> {
        let top = TopDocs::with_limit(limit.max(1)).and_offset(offset);
        // Equal keys are ordered newest recording first, then by time in it, not by where the
        // documents happen to lie in the index (which merges after any write change).
        let date = || {
            (
                SortByStaticFastValue::<i64>::for_field("date_ms"),
                Order::Desc,
            )
        };
        let start = || {
            (
                SortByStaticFastValue::<i64>::for_field("start_ms"),
                Order::Asc,
            )
        };
        Ok(match sort {
            Sort::Relevance => {
                let by = ((SortBySimilarityScore, Order::Desc), date(), start());
                let (docs, total) = searcher.search_with_statistics_provider(
                    query,
                    &(top.order_by(by), Count),
                    stats,
                )?;
                (docs.into_iter().map(|(_, a)| a).collect(), total)
            }
            Sort::Newest => {
                let (docs, total) =
                    searcher.search(query, &(top.order_by((date(), start())), Count))?;
                (docs.into_iter().map(|(_, a)| a).collect(), total)
            }
        })
    }

    /// The lines `filter` lets through whose meaning is nearest `v` (a unit vector): the
    /// [`CANDIDATES`] nearest codes, ranked by the cosine of their quantised vectors, those at
    /// or above [`MIN_SIMILARITY`]. Only lines the filter (and so the viewer's access) lets
    /// through are ever looked at, and a line's score is its own: no other line changes it.
    fn nearest(&self, searcher: &Searcher, filter: Box<dyn Query>, v: &[f32]) -> Result<Vec<Near>> {
        let f = &self.f;
        let filter = BooleanQuery::new(vec![
            (Occur::Must, filter),
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.embedded, "yes"),
                    IndexRecordOption::Basic,
                )),
            ),
        ]);
        {
            // Codes of segments gone since (merged away) are dropped.
            let live: std::collections::HashSet<SegmentId> = searcher
                .segment_readers()
                .iter()
                .map(|r| r.segment_id())
                .collect();
            self.codes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|id, _| live.contains(id));
        }
        let candidates = searcher.search(
            &filter,
            &NearestCodes {
                index: self,
                code: vectors::code(v),
                limit: CANDIDATES,
            },
        )?;
        let mut out = Vec::with_capacity(candidates.len());
        for (_, addr) in candidates {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let Some(score) = doc
                .get_first(f.vector)
                .and_then(|x| x.as_bytes())
                .and_then(|b| vectors::similarity(v, b))
            else {
                continue;
            };
            if score >= MIN_SIMILARITY {
                out.push(Near::of(&doc, f, addr, score));
            }
        }
        out.sort_by(|a, b| a.best_first(b));
        out.truncate(MEANING_LIMIT);
        Ok(out)
    }

    /// A document's place (date and time) for ordering, with `score`.
    fn located(&self, searcher: &Searcher, addr: DocAddress, score: f32) -> Result<Near> {
        let doc: TantivyDocument = searcher.doc(addr)?;
        Ok(Near::of(&doc, &self.f, addr, score))
    }

    /// The codes of a segment's documents, by document id (zero where one has none).
    fn segment_codes(&self, segment: &SegmentReader) -> tantivy::Result<Arc<Vec<Code>>> {
        let id = segment.segment_id();
        if let Some(c) = self
            .codes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(c.clone());
        }
        let ff = segment.fast_fields();
        let columns = (0..CODE_WORDS)
            .map(|i| ff.u64(&format!("code{i}")))
            .collect::<tantivy::Result<Vec<_>>>()?;
        let codes: Vec<Code> = (0..segment.max_doc())
            .map(|doc| std::array::from_fn(|i| columns[i].first(doc).unwrap_or(0)))
            .collect();
        let codes = Arc::new(codes);
        self.codes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, codes.clone());
        Ok(codes)
    }

    /// Documents in the index.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Bytes the index takes on disk (0 in memory).
    pub fn size_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// Lines whose codes are compared with the query's before the nearest are ranked by cosine.
const CANDIDATES: usize = 700;
/// Lines found by meaning, at most.
const MEANING_LIMIT: usize = 200;
/// The cosine below which a line is not taken to be about the query (all-MiniLM-L6-v2: unrelated
/// sentences mostly score under 0.25, paraphrases over 0.4).
const MIN_SIMILARITY: f32 = 0.3;
/// Words results fused with the meaning results in hybrid search; past them the words' order
/// goes on.
const HYBRID_DEPTH: usize = 200;
/// Reciprocal rank fusion's constant (Cormack et al. 2009).
const RRF_K: f64 = 60.0;

/// A line found by meaning: where it is, for ordering, and its cosine.
#[derive(Clone, Debug)]
struct Near {
    addr: DocAddress,
    score: f32,
    date: i64,
    start: i64,
}

impl Near {
    fn of(doc: &TantivyDocument, f: &Fields, addr: DocAddress, score: f32) -> Near {
        let i = |field: Field| doc.get_first(field).and_then(|v| v.as_i64()).unwrap_or(0);
        Near {
            addr,
            score,
            date: i(f.date),
            start: i(f.start),
        }
    }

    fn place(&self, o: &Near) -> std::cmp::Ordering {
        o.date
            .cmp(&self.date)
            .then(self.start.cmp(&o.start))
            .then(self.addr.cmp(&o.addr))
    }

    fn best_first(&self, o: &Near) -> std::cmp::Ordering {
        o.score.total_cmp(&self.score).then_with(|| self.place(o))
    }

    fn newest_first(&self, o: &Near) -> std::cmp::Ordering {
        self.place(o)
    }
}

/// Reciprocal rank fusion of the words' ranking and the meaning's: each line scores
/// `1/(k + rank)` in each list it is in. Ties keep the words' order, then the meaning's.
fn fuse(words: &[DocAddress], near: &[Near]) -> Vec<DocAddress> {
    let mut score: HashMap<DocAddress, (f64, usize)> = HashMap::new();
    for (rank, &addr) in words.iter().enumerate() {
        score.insert(addr, (1.0 / (RRF_K + rank as f64 + 1.0), rank));
    }
    for (rank, n) in near.iter().enumerate() {
        let e = score.entry(n.addr).or_insert((0.0, words.len() + rank));
        e.0 += 1.0 / (RRF_K + rank as f64 + 1.0);
    }
    let mut out: Vec<(DocAddress, (f64, usize))> = score.into_iter().collect();
    out.sort_by(|a, b| b.1.0.total_cmp(&a.1.0).then(a.1.1.cmp(&b.1.1)));
    out.into_iter().map(|(a, _)| a).collect()
}

/// True when the document at `addr` matches `weight`'s query.
fn matches(
    weight: &dyn tantivy::query::Weight,
    searcher: &Searcher,
    addr: DocAddress,
) -> Result<bool> {
    use tantivy::DocSet as _;
    let reader = searcher.segment_reader(addr.segment_ord);
    let mut scorer = weight.scorer(reader, 1.0)?;
    Ok(scorer.seek(addr.doc_id) == addr.doc_id)
}

/// Collects the documents whose codes are nearest a query's.
struct NearestCodes<'a> {
    index: &'a SearchIndex,
    code: Code,
    limit: usize,
}

impl Collector for NearestCodes<'_> {
    type Fruit = Vec<(u32, DocAddress)>;
    type Child = NearestInSegment;

    fn for_segment(
        &self,
        segment_ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<NearestInSegment> {
        Ok(NearestInSegment {
            codes: self.index.segment_codes(segment)?,
            code: self.code,
            limit: self.limit,
            segment_ord,
            heap: std::collections::BinaryHeap::with_capacity(self.limit + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut all: Vec<(u32, DocAddress)> = fruits.into_iter().flatten().collect();
        all.sort();
        all.truncate(self.limit);
        Ok(all)
    }
}

struct NearestInSegment {
    codes: Arc<Vec<Code>>,
    code: Code,
    limit: usize,
    segment_ord: SegmentOrdinal,
    /// The nearest so far, farthest on top.
    heap: std::collections::BinaryHeap<(u32, DocId)>,
}

impl SegmentCollector for NearestInSegment {
    type Fruit = Vec<(u32, DocAddress)>;

    fn collect(&mut self, doc: DocId, _: Score) {
        let Some(c) = self.codes.get(doc as usize) else {
            return;
        };
        let d = vectors::distance(c, &self.code);
        if self.heap.len() < self.limit {
            self.heap.push((d, doc));
        } else if let Some(&(worst, _)) = self.heap.peek()
            && d < worst
        {
            self.heap.pop();
            self.heap.push((d, doc));
        }
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        for &d in docs {
            self.collect(d, 0.0);
        }
    }

    fn harvest(self) -> Self::Fruit {
        let ord = self.segment_ord;
        self.heap
            .into_iter()
            .map(|(d, doc)| (d, DocAddress::new(ord, doc)))
            .collect()
    }
}

/// A document count and the summed lengths of one field: what BM25 needs of a set of documents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Totals {
    docs: u64,
    tokens: u64,
}

impl Totals {
    fn plus(self, o: Totals) -> Totals {
        Totals {
            docs: self.docs + o.docs,
            tokens: self.tokens + o.tokens,
        }
    }
}

/// Collects the [`Totals`] of the documents a query matches in one field (their lengths as the
/// index keeps them, the fieldnorms BM25 reads).
struct TotalsOf(Field);

impl Collector for TotalsOf {
    type Fruit = Totals;
    type Child = SegmentTotals;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentTotals> {
        Ok(SegmentTotals {
            norms: reader.get_fieldnorms_reader(self.0)?,
            totals: Totals::default(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Totals>) -> tantivy::Result<Totals> {
        Ok(fruits.into_iter().fold(Totals::default(), Totals::plus))
    }
}

struct SegmentTotals {
    norms: FieldNormReader,
    totals: Totals,
}

impl SegmentCollector for SegmentTotals {
    type Fruit = Totals;

    fn collect(&mut self, doc: DocId, _: Score) {
        self.totals.docs += 1;
        self.totals.tokens += u64::from(self.norms.fieldnorm(doc));
    }

    fn harvest(self) -> Totals {
        self.totals
    }
}

/// What BM25 needs of the published public documents in one searcher generation: every
/// search but an admin's needs it, and it changes only with a commit.
#[derive(Debug, Default)]
struct PublicStats {
    generation: u64,
    /// Of `text`.
    totals: Option<Totals>,
    doc_freqs: HashMap<Term, u64>,
}

/// Words whose public document frequency is kept per generation, at most (then it starts over).
const MAX_KEPT_DOC_FREQS: usize = 100_000;

/// BM25 statistics of the documents one viewer may see. tantivy's own count every document in
/// the index — private ones, and deleted ones not yet merged away — so a word added to a
/// private recording would move the scores, and so the order, of public hits; with these, what
/// a caller receives is a function of what it may see.
struct VisibleStats<'a> {
    index: &'a SearchIndex,
    searcher: &'a Searcher,
    /// The viewer's access clause.
    access: Box<dyn Query>,
    /// The viewer's documents that are not public (a user's own), if any.
    own: Option<Box<dyn Query>>,
    /// Of `text` (the one scored field; see `build`), over the visible documents.
    totals: Totals,
}

impl Bm25StatisticsProvider for VisibleStats<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        if field == self.index.f.text {
            Ok(self.totals.tokens)
        } else {
            // Not reached while only `text` scores; right (if slower) should that change.
            Ok(self
                .searcher
                .search(&*self.access, &TotalsOf(field))?
                .tokens)
        }
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        // At least one, so an empty view gives finite weights (nothing matches it anyway).
        Ok(self.totals.docs.max(1))
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let count = |clause: Box<dyn Query>| {
            let q = BooleanQuery::new(vec![
                (
                    Occur::Must,
                    Box::new(TermQuery::new(term.clone(), IndexRecordOption::Basic))
                        as Box<dyn Query>,
                ),
                (Occur::Must, clause),
            ]);
            Ok::<_, tantivy::TantivyError>(self.searcher.search(&q, &Count)? as u64)
        };
        let kept = self
            .index
            .public_stats(self.searcher, |p| Ok(p.doc_freqs.get(term).copied()))?;
        let public = match kept {
            Some(n) => n,
            None => {
                // Counted without holding the lock, so searches do not wait on each other.
                let n = count(Box::new(self.index.public_query()))?;
                self.index.public_stats(self.searcher, |p| {
                    p.doc_freqs.insert(term.clone(), n);
                    Ok(())
                })?;
                n
            }
        };
        Ok(match &self.own {
            Some(own) => public + count(own.box_clone())?,
            None => public,
        })
    }
}

/// How many words a `prefix*` stands for at most.
const PREFIX_EXPANSIONS: usize = 50;

/// The first byte string after every string that begins with `prefix`, if there is one.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// HTML-escapes text (`&`, `<`, `>`, `"`, `'`).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `fragment` and wraps the highlighted byte ranges in `<mark>`: marks are added after
/// escaping, so nothing in the text can close or forge them.
fn marked(fragment: &str, ranges: &[std::ops::Range<usize>]) -> String {
    let mut out = String::new();
    let mut pos = 0;
    for r in ranges {
        if r.start < pos
            || r.end > fragment.len()
            || !fragment.is_char_boundary(r.start)
            || !fragment.is_char_boundary(r.end)
        {
            continue;
        }
        out.push_str(&escape(&fragment[pos..r.start]));
        out.push_str("<mark>");
        out.push_str(&escape(&fragment[r.start..r.end]));
        out.push_str("</mark>");
        pos = r.end;
    }
    out.push_str(&escape(&fragment[pos..]));
    out
}
