//! `roomtape search` and `roomtape reindex`.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use roomtape_core::{Catalog, layout};
use roomtape_search::embed::Embedder;
use roomtape_search::{Mode, SearchIndex, Sort, Viewer, indexer};

use crate::commands::Context;

/// Opens the index, rebuilding it from the catalog when it is missing or unusable, and brings
/// it up to date when this process may write (another process, `serve`, may hold the writer).
pub async fn open_index(ctx: &Context, catalog: &Catalog) -> anyhow::Result<Arc<SearchIndex>> {
    let dir = layout::index(ctx.data_dir());
    let (index, rebuilt) = SearchIndex::open(&dir)
        .with_context(|| format!("opening the search index {}", dir.display()))?;
    let index = Arc::new(index);
    attach_embedder(ctx, &index)?;
    let result = if rebuilt {
        tracing::warn!(
            "search index at {} was missing or unusable; rebuilding it from the catalog",
            dir.display()
        );
        indexer::reindex(&index, catalog).await
    } else {
        indexer::drain(&index, catalog).await
    };
    if let Err(e) = result {
        // The writer is held by another process (serve), which keeps the index current.
        tracing::debug!("not updating the search index here: {e}");
    }
    Ok(index)
}

/// Turns search by meaning on when the settings allow it and the model is installed. The
/// model is loaded when it is first used (a command that never embeds never reads it).
pub fn attach_embedder(ctx: &Context, index: &SearchIndex) -> anyhow::Result<()> {
    let s = &ctx.config.search;
    if s.meaning == roomtape_core::Meaning::Off {
        return Ok(());
    }
    let named = !s.embed_model.contains(std::path::MAIN_SEPARATOR);
    let dir = if named {
        layout::models(ctx.data_dir()).join(&s.embed_model)
    } else {
        std::path::PathBuf::from(&s.embed_model)
    };
    if !Embedder::present(&dir) {
        if named && s.embed_model == roomtape_search::embed::MODEL {
            tracing::info!(
                "search by meaning is off: no embedding model in {} (scripts/models.sh {})",
                dir.display(),
                roomtape_search::embed::MODEL
            );
            return Ok(());
        }
        // Asked for by name or path: its absence is a mistake to report, not a default.
        anyhow::bail!(
            "search.embed_model {:?}: no sentence-transformers model in {} (config.json, \
             model.safetensors, tokenizer.json); set search.meaning = \"off\" for words only",
            s.embed_model,
            dir.display()
        );
    }
    let threads = match s.embed_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    let e = Embedder::open(&dir, threads)
        .with_context(|| format!("the embedding model in {}", dir.display()))?;
    index.set_embedder(Arc::new(e));
    Ok(())
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Words, "phrases", OR, -excluded, prefix*, speaker:"Name", room:"Title", lang:xx,
    /// after:YYYY-MM-DD, before:YYYY-MM-DD
    query: String,
    /// Hits per page
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Page, from 1
    #[arg(long, default_value_t = 1)]
    page: usize,
    /// relevance or newest
    #[arg(long, default_value = "relevance")]
    sort: String,
    /// words, meaning or hybrid (default: hybrid where the embedding model is installed)
    #[arg(long)]
    mode: Option<String>,
}

pub async fn search(ctx: &Context, args: SearchArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let index = open_index(ctx, &catalog).await?;
    let sort = match args.sort.as_str() {
        "relevance" => Sort::Relevance,
        "newest" | "date" => Sort::Newest,
        other => anyhow::bail!("unknown sort {other:?}; use relevance or newest"),
    };
    let mode = match args.mode.as_deref() {
        None => None,
        Some(m) => Some(
            Mode::parse(m)
                .with_context(|| format!("unknown mode {m:?}; use words, meaning or hybrid"))?,
        ),
    };
    let q = roomtape_search::query::parse(&args.query)?;
    // The local admin sees everything.
    let results = index.search(&q, &Viewer::Admin, sort, mode, args.page, args.limit)?;
    if ctx.json {
        return ctx.print_json(&results);
    }
    println!("{} hit(s)", results.total);
    for r in &results.recordings {
        println!(
            "\n{}  {}  {}",
            r.recording_id,
            roomtape_core::Timestamp(r.date_ms),
            strip(&r.title)
        );
        for h in &r.hits {
            println!(
                "  {:>8}  {}: {}",
                crate::commands::format_ms(h.start_ms),
                strip(&h.speaker),
                strip(&unmark(&h.snippet_html))
            );
        }
    }
    Ok(())
}

pub async fn reindex(ctx: &Context) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let dir = layout::index(ctx.data_dir());
    let (index, _) = SearchIndex::open(&dir)?;
    let index = Arc::new(index);
    attach_embedder(ctx, &index)?;
    let n = indexer::reindex(&index, &catalog)
        .await
        .context("reindexing (is `roomtape serve` running? it holds the index while it runs)")?;
    if !ctx.quiet {
        println!(
            "reindexed {n} recording(s); {} segment(s) searchable",
            index.num_docs()
        );
    }
    Ok(())
}

fn strip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// The snippet for a terminal: marks as brackets, entities decoded.
fn unmark(html: &str) -> String {
    html.replace("<mark>", "[")
        .replace("</mark>", "]")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
