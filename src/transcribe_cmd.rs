//! The transcription commands: models, transcribe, worker, jobs, export.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use roomtape_core::{ArchiveStore, Catalog, layout};
use roomtape_transcribe::quantize::Quant;
use roomtape_transcribe::worker::{Outcome, WorkerConfig};
use roomtape_transcribe::{Engine, export, models};

use crate::commands::Context;

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Convert a CTranslate2 (faster-whisper) Whisper model to ggml and install it
    Import {
        /// The model directory, or its files (model.bin or model.bin.part1, part2, …,
        /// vocabulary.txt), or several directories holding the parts
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Name to install it under, e.g. tiny.en
        #[arg(long)]
        name: String,
        /// Also install a copy with the weights quantised (q8_0, q5_0, q4_0), named
        /// NAME-TYPE
        #[arg(long, value_name = "TYPE")]
        quantize: Option<String>,
    },
    /// Install a copy of a model with its weights quantised: smaller and faster, at some cost
    /// in accuracy (`roomtape bench quality` measures it)
    Quantize {
        /// Installed model name or path to an f16 ggml file
        model: String,
        /// q8_0, q5_0 or q4_0
        #[arg(long = "type", value_name = "TYPE")]
        quant: String,
        /// Name to install it under [default: MODEL-TYPE]
        #[arg(long)]
        name: Option<String>,
    },
    /// List installed models
    List,
}

pub async fn model(ctx: &Context, cmd: ModelCommand) -> anyhow::Result<()> {
    let dir = layout::models(ctx.data_dir());
    match cmd {
        ModelCommand::Import {
            inputs,
            name,
            quantize,
        } => {
            // A bad type is refused before the conversion, not after it.
            let quant = quantize
                .map(|q| q.parse::<Quant>())
                .transpose()
                .context("model import --quantize")?;
            let what = format!("model import {name}");
            let d = dir.clone();
            let n = name.clone();
            let mut infos = vec![
                tokio::task::spawn_blocking(move || models::import(&inputs, &n, &d))
                    .await?
                    .context(what)?,
            ];
            if let Some(q) = quant {
                infos.push(
                    quantize_model(&dir, name.clone(), q, format!("{name}-{}", q.name())).await?,
                );
            }
            report_installed(ctx, &dir, &infos)?;
        }
        ModelCommand::Quantize { model, quant, name } => {
            let q: Quant = quant.parse().context("model quantize")?;
            // An installed name as it is; a file by its name without `.bin`.
            let stem = if model.contains('/') || model.ends_with(".bin") {
                std::path::Path::new(&model)
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("model")
                    .to_string()
            } else {
                model.clone()
            };
            let name = name.unwrap_or_else(|| format!("{stem}-{}", q.name()));
            let info = quantize_model(&dir, model, q, name).await?;
            report_installed(ctx, &dir, &[info])?;
        }
        ModelCommand::List => {
            let list = models::list(&dir)?;
            if ctx.json {
                return ctx.print_json(&list);
            }
            for m in list {
                println!(
                    "{:<16} {:>6} MB  {}",
                    m.name,
                    m.bytes / 1_000_000,
                    m.description
                );
            }
        }
    }
    Ok(())
}

async fn quantize_model(
    dir: &std::path::Path,
    model: String,
    q: Quant,
    name: String,
) -> anyhow::Result<models::ModelInfo> {
    let what = format!("model quantize {model} --type {}", q.name());
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || models::quantize(&model, q, &name, &d))
        .await?
        .context(what)
}

fn report_installed(
    ctx: &Context,
    dir: &std::path::Path,
    infos: &[models::ModelInfo],
) -> anyhow::Result<()> {
    if ctx.json {
        return ctx.print_json(&infos.last());
    }
    if !ctx.quiet {
        for info in infos {
            println!(
                "installed {} ({}, {} MB) in {}",
                info.name,
                info.description,
                info.bytes / 1_000_000,
                dir.display()
            );
        }
    }
    Ok(())
}

#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// Installed model name or path to a ggml file [default: setting transcribe.model]
    #[arg(long)]
    model: Option<String>,
    /// Whisper threads (0: one per core) [default: setting transcribe.threads]
    #[arg(long)]
    threads: Option<u32>,
}

fn load_engine(ctx: &Context, args: &EngineArgs) -> anyhow::Result<Engine> {
    let spec = args
        .model
        .clone()
        .unwrap_or_else(|| ctx.config.transcribe.model.clone());
    let threads = args.threads.unwrap_or(ctx.config.transcribe.threads);
    let (name, path) = models::resolve(&spec, &layout::models(ctx.data_dir()))?;
    Engine::load(&path, &name, threads as usize).with_context(|| format!("loading model {spec}"))
}

#[derive(Args, Debug)]
pub struct TranscribeArgs {
    /// Recording id (or a unique prefix)
    id: String,
    #[command(flatten)]
    engine: EngineArgs,
}

pub async fn transcribe(ctx: &Context, args: TranscribeArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let store = ctx.store()?;
    let rec = catalog.find_recording(&args.id).await?;
    let engine = Arc::new(load_engine(ctx, &args.engine)?);
    let cfg = worker_config(ctx, ctx.config.transcribe.lease_seconds.max(3));
    let bar = (!ctx.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(1000);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} transcribing [{bar:30}] {percent}% ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    });
    let b2 = bar.clone();
    let progress: Arc<dyn Fn(f64) + Send + Sync> = Arc::new(move |f| {
        if let Some(b) = &b2 {
            b.set_position((f * 1000.0) as u64);
        }
    });
    let started = std::time::Instant::now();
    let (job, outcome) = roomtape_transcribe::worker::transcribe_now(
        &catalog, store, engine, rec.id, &cfg, progress,
    )
    .await
    .with_context(|| format!("transcribe {}", rec.id))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match outcome {
        Outcome::Done { segments } => {
            if ctx.json {
                ctx.print_json(
                    &serde_json::json!({"id": rec.id, "job": job, "segments": segments}),
                )?;
            } else if !ctx.quiet {
                println!(
                    "transcribed {} in {:.1} s: {segments} segment(s); `roomtape export {}` prints it",
                    rec.id,
                    started.elapsed().as_secs_f64(),
                    &rec.id.to_string()[..8]
                );
            }
            Ok(())
        }
        Outcome::Failed { error, .. } => bail!("transcribe {}: {error}", rec.id),
        Outcome::LostLease => bail!("transcribe {}: another worker took the job over", rec.id),
    }
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Lease length in seconds [default: setting transcribe.lease_seconds]
    #[arg(long)]
    lease_seconds: Option<u32>,
}

pub async fn worker(ctx: &Context, args: WorkerArgs) -> anyhow::Result<()> {
    // The model is checked before anything touches the data directory; a worker may start
    // before the first `serve` or `import`, so it starts the catalog it will wait on.
    let engine = Arc::new(load_engine(ctx, &args.engine)?);
    let catalog = ctx.catalog_or_create().await?;
    let store = ctx.store()?;
    let lease = args
        .lease_seconds
        .unwrap_or(ctx.config.transcribe.lease_seconds)
        .max(2);
    let cfg = worker_config(ctx, lease);
    if !ctx.quiet {
        println!("worker {} ready (model {})", cfg.id, engine.name());
    }
    roomtape_transcribe::worker::run_worker(
        catalog.clone(),
        store,
        engine,
        cfg,
        crate::commands::shutdown_signal(),
    )
    .await?;
    catalog.close().await;
    Ok(())
}

/// The worker that `serve` runs inside; none (with a warning) when no model is installed.
pub fn spawn_worker(
    ctx: &Context,
    catalog: Catalog,
    store: Arc<dyn ArchiveStore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let engine = match load_engine(
        ctx,
        &EngineArgs {
            model: None,
            threads: None,
        },
    ) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            tracing::warn!("transcription is off until a model is installed: {e:#}");
            return None;
        }
    };
    let cfg = worker_config(ctx, ctx.config.transcribe.lease_seconds.max(2));
    Some(tokio::spawn(async move {
        let stop = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) =
            roomtape_transcribe::worker::run_worker(catalog, store, engine, cfg, stop).await
        {
            tracing::error!("the transcription worker stopped: {e}");
        }
    }))
}

pub async fn jobs(ctx: &Context) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let jobs = catalog.jobs(200).await?;
    if ctx.json {
        let mut out = Vec::new();
        for j in &jobs {
            let runs: Vec<_> = catalog
                .job_runs(j.id)
                .await?
                .into_iter()
                .map(|(attempt, worker, started, finished, outcome)| {
                    serde_json::json!({
                        "attempt": attempt,
                        "worker": worker,
                        "started_at": roomtape_core::Timestamp(started),
                        "finished_at": finished.map(roomtape_core::Timestamp),
                        "outcome": outcome,
                    })
                })
                .collect();
            let mut v = serde_json::to_value(j)?;
            v["runs"] = serde_json::Value::Array(runs);
            out.push(v);
        }
        return ctx.print_json(&out);
    }
    println!(
        "{:<36}  {:<36}  {:<8}  {:>5}  {:>8}  ERROR",
        "JOB", "RECORDING", "STATE", "TRIES", "PROGRESS"
    );
    for j in jobs {
        println!(
            "{:<36}  {:<36}  {:<8}  {:>5}  {:>7.0}%  {}",
            j.id,
            j.recording_id,
            j.state.as_str(),
            j.attempts,
            j.progress * 100.0,
            j.error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Recording id (or a unique prefix)
    id: String,
    /// json, vtt, srt or txt
    #[arg(long, default_value = "json")]
    format: String,
    /// original (what was said) or en (each line's English translation where it has one)
    #[arg(long, default_value = "original")]
    lang: String,
}

pub async fn export(ctx: &Context, args: ExportArgs) -> anyhow::Result<()> {
    let format: export::Format = args.format.parse()?;
    let lang: export::Lang = args.lang.parse()?;
    let catalog = ctx.catalog().await?;
    let rec = catalog.find_recording(&args.id).await?;
    let t = catalog.transcript(rec.id).await?.with_context(|| {
        format!(
            "recording {} has no transcript yet (state {}); `roomtape transcribe {}` makes one",
            rec.id,
            rec.state,
            &rec.id.to_string()[..8]
        )
    })?;
    print!("{}", export::render_in(&t, format, lang));
    Ok(())
}

/// A worker of this process, with the settings' lease (`lease_seconds`) and translation.
fn worker_config(ctx: &Context, lease_seconds: u32) -> WorkerConfig {
    WorkerConfig {
        translate: ctx.config.transcribe.translate == roomtape_core::Translate::Auto,
        ..WorkerConfig::new(Duration::from_secs(u64::from(lease_seconds)))
    }
}

/// Gives the live rooms a caption engine (`[captions]`): one model and one thread for every
/// room. Off, with a warning, when its model is not installed.
pub fn start_captions(ctx: &Context, live: &Arc<roomtape_web::live::Live>) {
    let c = &ctx.config.captions;
    if !c.enabled {
        return;
    }
    let engine = match models::resolve(&c.model, &layout::models(ctx.data_dir()))
        .and_then(|(name, path)| Engine::load(&path, &name, c.threads.max(1) as usize))
    {
        Ok(e) => Arc::new(e),
        Err(e) => {
            tracing::warn!(
                "live captions are off: model {:?} (captions.model) could not be loaded: {e:#}",
                c.model
            );
            return;
        }
    };
    let settings = roomtape_transcribe::captions::CaptionSettings {
        step_ms: c.step_ms.clamp(200, 3000),
        threads: c.threads.max(1) as usize,
        ..Default::default()
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let captioner = roomtape_transcribe::captions::Captioner::start(
        engine,
        settings,
        Box::new(move |key: &roomtape_core::CaptionKey, caption| {
            let _ = tx.send((key.clone(), caption));
        }),
    );
    live.set_captions(Arc::new(captioner), rx);
    tracing::info!(model = %c.model, "live captions on");
}
