//! The `roomtape` command: wires the crates together and nothing else.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{ArgAction, Parser, Subcommand};

mod bench_captions;
mod bench_fanout;
mod bench_janus;
mod bench_meaning;
mod bench_peer;
mod bench_quality;
mod bench_room;
mod bench_search;
mod bench_service;
mod bench_transcribe;
mod commands;
mod search_cmd;
mod transcribe_cmd;
mod users_cmd;

/// Live audio rooms with a track per speaker, Whisper transcripts and search.
#[derive(Parser, Debug)]
#[command(name = "roomtape", version, about, propagate_version = true)]
struct Cli {
    /// Data directory: catalog, archives, models, index [env: ROOMTAPE_DATA_DIR] [default: ./data]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML settings file; every setting can also be given as ROOMTAPE_* variables
    #[arg(long, global = true, value_name = "FILE", env = "ROOMTAPE_CONFIG")]
    config: Option<PathBuf>,
    /// More log output (repeat for more)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    verbose: u8,
    /// Less output (repeat for less)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    quiet: u8,
    /// Print data as JSON
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Import an audio file (WAV, FLAC, MP3, AAC/M4A, Ogg Vorbis, Ogg Opus) as a recording
    Import(commands::ImportArgs),
    /// List, show, export and delete recordings
    #[command(subcommand)]
    Recordings(commands::RecordingsCommand),
    /// Finish recordings that a crash left open
    Recover,
    /// Install and list Whisper models
    #[command(subcommand)]
    Model(transcribe_cmd::ModelCommand),
    /// Transcribe one recording now, in the foreground
    Transcribe(transcribe_cmd::TranscribeArgs),
    /// Run only the transcription worker (several may share one catalog)
    Worker(transcribe_cmd::WorkerArgs),
    /// List transcription jobs with their progress
    Jobs,
    /// Write a recording's transcript to stdout
    Export(transcribe_cmd::ExportArgs),
    /// Search every transcript
    Search(search_cmd::SearchArgs),
    /// Rebuild the search index from the catalog
    Reindex,
    /// Run the web service
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Create and list accounts, make API tokens
    #[command(subcommand)]
    Users(users_cmd::UsersCommand),
    /// Measure performance
    #[command(subcommand)]
    Bench(commands::BenchCommand),
    /// Tools for tests and debugging
    #[command(subcommand, hide = true)]
    Debug(commands::DebugCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("roomtape: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what was being done, then each cause.
            eprintln!("roomtape: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cli: &Cli) {
    let serving = matches!(cli.command, Command::Serve { .. });
    let base: i32 = if serving { 2 } else { 1 };
    let level = match base + i32::from(cli.verbose) - i32::from(cli.quiet) {
        i32::MIN..=0 => "error",
        1 => "warn",
        2 => "info",
        3 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROOMTAPE_LOG")
        // symphonia reports probe misses as errors of its own, and whisper.cpp narrates every
        // load; ours are the messages that count.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("{level},symphonia=off,whisper_rs=warn"))
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config =
        roomtape_core::Config::load(cli.config.as_deref()).context("loading settings")?;
    let data_dir_source = if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
        "--data-dir"
    } else if std::env::var_os("ROOMTAPE_DATA_DIR").is_some() {
        "ROOMTAPE_DATA_DIR"
    } else if config.data_dir != roomtape_core::Config::default().data_dir {
        "data_dir in the settings file"
    } else {
        "the default ./data"
    };
    let mut ctx = commands::Context::new(config, cli.json, cli.quiet > 0);
    ctx.data_dir_source = data_dir_source;
    match cli.command {
        Command::Import(args) => commands::import(&ctx, args).await,
        Command::Recordings(cmd) => commands::recordings(&ctx, cmd).await,
        Command::Recover => commands::recover(&ctx).await,
        Command::Model(cmd) => transcribe_cmd::model(&ctx, cmd).await,
        Command::Transcribe(args) => transcribe_cmd::transcribe(&ctx, args).await,
        Command::Worker(args) => transcribe_cmd::worker(&ctx, args).await,
        Command::Jobs => transcribe_cmd::jobs(&ctx).await,
        Command::Export(args) => transcribe_cmd::export(&ctx, args).await,
        Command::Search(args) => search_cmd::search(&ctx, args).await,
        Command::Reindex => search_cmd::reindex(&ctx).await,
        Command::Serve { listen } => commands::serve(ctx, listen).await,
        Command::Users(cmd) => users_cmd::users(&ctx, cmd).await,
        Command::Bench(cmd) => commands::bench(&ctx, cmd).await,
        Command::Debug(cmd) => commands::debug(&ctx, cmd).await,
    }
}
