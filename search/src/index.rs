//! The tantivy index: one document per transcript segment.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;
use tantivy::collector::sort_key::{SortBySimilarityScore, SortByStaticFastValue};
use tantivy::collector::{Collector, Count, SegmentCollector, TopDocs};
use tantivy::fieldnorm::FieldNormReader;
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

use crate::query::{ParsedQuery, Text};
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
        self.write(|w| {
            for (recording, docs) in batch {
                w.delete_term(Term::from_field_text(self.f.recording, recording));
                for d in docs {
                    w.add_document(self.document(d))?;
                }
            }
            Ok(())
        })
    }

    /// Adds many recordings at once (reindexing, benchmarks): one commit at the end.
    pub fn add_all(&self, docs: impl IntoIterator<Item = SegmentDoc>) -> Result<usize> {
        self.write(|w| {
            let mut n = 0;
            for d in docs {
                w.add_document(self.document(&d))?;
                n += 1;
            }
            Ok(n)
        })
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

    fn document(&self, d: &SegmentDoc) -> TantivyDocument {
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

    /// Runs a parsed query for `viewer`; `page` counts from 1.
    pub fn search(
        &self,
        q: &ParsedQuery,
        viewer: &Viewer,
        sort: Sort,
        page: usize,
        per_page: usize,
    ) -> Result<Results> {
        let page = page.max(1);
        let per_page = per_page.clamp(1, 100);
        let searcher = self.reader.searcher();
        let (query, text_only) = self.build(q, viewer, &searcher)?;
        // Scores (and so the order of hits, and which part of a hit is its snippet) come from
        // what the viewer may see and nothing else.
        let visible = self.visible_stats(&searcher, viewer)?;
        let stats: &dyn Bm25StatisticsProvider = match &visible {
            Some(v) => v,
            None => &searcher,
        };
        let offset = (page - 1) * per_page;
        let top = TopDocs::with_limit(per_page).and_offset(offset);
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
        let (hits, total): (Vec<DocAddress>, usize) = match sort {
            Sort::Relevance => {
                let by = ((SortBySimilarityScore, Order::Desc), date(), start());
                let (docs, total) = searcher.search_with_statistics_provider(
                    &query,
                    &(top.order_by(by), Count),
                    stats,
                )?;
                (docs.into_iter().map(|(_, a)| a).collect(), total)
            }
            Sort::Newest => {
                let (docs, total) =
                    searcher.search(&query, &(top.order_by((date(), start())), Count))?;
                (docs.into_iter().map(|(_, a)| a).collect(), total)
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
            recordings: groups,
        })
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
