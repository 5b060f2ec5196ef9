//! One function per command. Each opens what it needs, calls into the crates, and prints.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use roomtape_core::{
    ArchiveStore, Catalog, Config, LocalStore, Manifest, MemoryStore, Recording, RecordingSource,
    RecordingState, Speaker, SpeakerId, Track, Visibility, layout,
};
use roomtape_ingest::{ImportOptions, RecorderSettings};

/// What every command gets.
pub struct Context {
    pub config: Config,
    pub json: bool,
    pub quiet: bool,
    /// Where `config.data_dir` came from, for messages: `--data-dir`, `ROOMTAPE_DATA_DIR`, …
    pub data_dir_source: &'static str,
}

impl Context {
    pub fn new(config: Config, json: bool, quiet: bool) -> Self {
        Context {
            config,
            json,
            quiet,
            data_dir_source: "the default",
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// The catalog for a command that needs one to exist: a missing catalog is an error that
    /// says where it was looked for and how to point at another, and nothing is created (a
    /// command run in the wrong directory must not leave an empty `data/` behind).
    pub async fn catalog(&self) -> anyhow::Result<Catalog> {
        let path = layout::catalog(self.data_dir());
        match Catalog::open_existing(&path).await {
            Ok(c) => Ok(c),
            Err(roomtape_core::Error::NoCatalog(_)) => {
                let shown = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
                bail!(
                    "catalog not found: looked for {} (data directory {}, from {}), where \
                     nothing has been imported or served yet. Point at your data directory with \
                     --data-dir DIR or ROOMTAPE_DATA_DIR=DIR (or data_dir in the --config file); \
                     `roomtape import` and `roomtape serve` start a new one",
                    shown(&path).display(),
                    shown(self.data_dir()).display(),
                    self.data_dir_source,
                )
            }
            Err(e) => Err(e).with_context(|| format!("opening the catalog {}", path.display())),
        }
    }

    /// The catalog for a command that writes (`serve`, `import`, `worker`, `users add`): created, with
    /// its data directory, when missing.
    pub async fn catalog_or_create(&self) -> anyhow::Result<Catalog> {
        let path = layout::catalog(self.data_dir());
        Catalog::open(&path)
            .await
            .with_context(|| format!("opening the catalog {}", path.display()))
    }

    pub fn store(&self) -> anyhow::Result<Arc<dyn ArchiveStore>> {
        Ok(Arc::new(LocalStore::new(layout::archives(
            self.data_dir(),
        ))?))
    }

    pub fn print_json(&self, v: &impl serde::Serialize) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, v)?;
        writeln!(out)?;
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The audio file
    file: PathBuf,
    /// Title of the recording [default: the file name]
    #[arg(long)]
    title: Option<String>,
    /// Speaker name; repeat for each track in order (with --split-channels, one per channel)
    #[arg(long = "speaker", value_name = "NAME")]
    speakers: Vec<String>,
    /// One track per channel (separate microphones recorded on one file)
    #[arg(long)]
    split_channels: bool,
    /// Spoken language: `auto` (detected per track) or a Whisper language code (en, id, es, …)
    #[arg(long, default_value = "auto")]
    language: String,
    /// The account that owns the recording (manages and publishes it) [default: none; admins]
    #[arg(long, value_name = "USERNAME")]
    owner: Option<String>,
    /// The account that spoke on each track, in track order (their transcript lines carry
    /// their identity, and they may see the recording); repeat per track
    #[arg(long = "speaker-account", value_name = "USERNAME")]
    speaker_accounts: Vec<String>,
}

pub async fn import(ctx: &Context, args: ImportArgs) -> anyhow::Result<()> {
    let what = format!("import {}", args.file.display());
    // Refused before anything is read or written.
    let language = roomtape_core::spoken_language(&args.language).context(what.clone())?;
    let catalog = ctx.catalog_or_create().await.context(what.clone())?;
    let store = ctx.store()?;
    let owner = match &args.owner {
        Some(name) => Some(catalog.user_by_username(name).await.context(what.clone())?),
        None => None,
    };
    let mut accounts = Vec::new();
    for name in &args.speaker_accounts {
        accounts.push(catalog.user_by_username(name).await.context(what.clone())?);
    }
    let mut opts = ImportOptions::from_config(&ctx.config.import);
    opts.title = args.title.clone();
    opts.speakers = args.speakers.clone();
    // Tracks spoken by accounts are named after them unless named here.
    for u in accounts.iter().skip(opts.speakers.len()) {
        opts.speakers.push(u.display_name.clone());
    }
    opts.split_channels = args.split_channels;
    let file = args.file.clone();
    let bar = (!ctx.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} importing [{bar:30}] {pos}/{len} s ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    });
    let bar2 = bar.clone();
    let store2 = store.clone();
    // The archive stays claimed while `imported` lives, so a recovery running meanwhile (a
    // `serve` started now) leaves it alone until its catalog row exists.
    let mut imported = tokio::task::spawn_blocking(move || {
        roomtape_ingest::import_file(&file, store2.as_ref(), &opts, &mut |p| {
            if let Some(bar) = &bar2 {
                if let Some(t) = p.total_seconds {
                    bar.set_length(t as u64);
                }
                bar.set_position(p.done_seconds as u64);
            }
        })
    })
    .await?
    .context(what.clone())?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let manifest = &mut imported.manifest;
    if !accounts.is_empty() {
        if accounts.len() > manifest.tracks.len() {
            let _ = store.delete_dir(&manifest.recording_id.to_string());
            bail!(
                "{what}: {} speaker accounts for {} track(s)",
                accounts.len(),
                manifest.tracks.len()
            );
        }
        for (t, u) in manifest.tracks.iter_mut().zip(&accounts) {
            t.speaker_id = u.id.to_string().parse()?;
        }
        store.put_atomic(
            &roomtape_core::layout::manifest_key(manifest.recording_id),
            &manifest.to_json(),
        )?;
    }
    let rec = Recording {
        id: manifest.recording_id,
        room_id: None,
        title: manifest.title.clone(),
        source: RecordingSource::Import,
        state: RecordingState::Recorded,
        recovered: false,
        error: None,
        started_at: manifest.started_at,
        ended_at: manifest.ended_at,
        duration_ms: Some(manifest.duration_ms()),
        language,
        visibility: Default::default(),
        owner_id: owner.map(|u| u.id),
        description: String::new(),
    };
    if let Err(e) = catalog
        .create_recording(&rec, &manifest.catalog_tracks())
        .await
    {
        let _ = store.delete_dir(&rec.id.to_string());
        return Err(e).context(what);
    }
    let manifest = imported.release();
    let job = catalog.enqueue_transcription(rec.id).await?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "id": rec.id,
            "job": job,
            "title": rec.title,
            "duration_ms": rec.duration_ms,
            "tracks": manifest.tracks,
        }))?;
    } else if !ctx.quiet {
        println!(
            "imported {} \"{}\": {} track(s), {}",
            rec.id,
            rec.title,
            manifest.tracks.len(),
            format_ms(manifest.duration_ms())
        );
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum RecordingsCommand {
    /// List recordings, newest first
    List,
    /// Show one recording (--json prints its manifest)
    Show {
        /// Recording id (or a unique prefix)
        id: String,
    },
    /// Write decoded audio as a WAV file (the mix, or one track)
    Audio {
        /// Recording id (or a unique prefix)
        id: String,
        /// Track id, id prefix, speaker name, or position (1, 2, …); the mix when absent
        #[arg(long)]
        track: Option<String>,
        /// Output WAV file
        #[arg(short = 'o', long = "output", value_name = "FILE.wav")]
        output: PathBuf,
    },
    /// Set who may see a recording: private (default for new ones), unlisted, or public
    /// (listed and searchable by everyone)
    Publish {
        /// Recording id (or a unique prefix)
        id: String,
        /// private, unlisted or public
        #[arg(long, default_value = "public")]
        visibility: String,
    },
    /// Delete a recording and its archive
    Delete {
        /// Recording id (or a unique prefix)
        id: String,
    },
}

#[derive(serde::Serialize)]
struct RecordingOut {
    #[serde(flatten)]
    recording: Recording,
    tracks: Vec<Track>,
}

pub async fn recordings(ctx: &Context, cmd: RecordingsCommand) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let store = ctx.store()?;
    match cmd {
        RecordingsCommand::List => {
            let recs = catalog.recordings().await?;
            if ctx.json {
                let mut out = Vec::new();
                for r in recs {
                    let tracks = catalog.tracks(r.id).await?;
                    out.push(RecordingOut {
                        recording: r,
                        tracks,
                    });
                }
                return ctx.print_json(&out);
            }
            println!(
                "{:<36}  {:<12}  {:<20}  {:>10}  TITLE",
                "ID", "STATE", "STARTED", "LENGTH"
            );
            for r in recs {
                let started = r.started_at.to_rfc3339();
                println!(
                    "{:<36}  {:<12}  {:<20}  {:>10}  {}",
                    r.id,
                    r.state.as_str(),
                    &started[..started.len().min(19)],
                    r.duration_ms.map(format_ms).unwrap_or_else(|| "-".into()),
                    sanitize(&r.title)
                );
            }
        }
        RecordingsCommand::Show { id } => {
            let r = catalog.find_recording(&id).await?;
            if ctx.json {
                let bytes = store
                    .get(&layout::manifest_key(r.id))
                    .with_context(|| format!("recording {}: reading its manifest", r.id))?;
                let m = Manifest::from_json(&bytes)?;
                return ctx.print_json(&m);
            }
            let tracks = catalog.tracks(r.id).await?;
            println!("id:        {}", r.id);
            println!("title:     {}", sanitize(&r.title));
            println!(
                "state:     {}{}",
                r.state,
                if r.recovered {
                    " (recovered after a crash)"
                } else {
                    ""
                }
            );
            println!("source:    {}", r.source.as_str());
            println!("visible:   {}", r.visibility);
            println!("started:   {}", r.started_at);
            if let Some(d) = r.duration_ms {
                println!("length:    {}", format_ms(d));
            }
            if let Some(e) = &r.error {
                println!("error:     {}", sanitize(e));
            }
            println!("tracks:");
            for (i, t) in tracks.iter().enumerate() {
                println!(
                    "  {}. {}  {}  from {}  for {}  {}",
                    i + 1,
                    t.id,
                    sanitize(&t.speaker.name),
                    format_ms(t.offset_ms),
                    format_ms(t.duration_ms),
                    t.file
                );
            }
        }
        RecordingsCommand::Audio { id, track, output } => {
            let r = catalog.find_recording(&id).await?;
            let file = match track {
                None => layout::MIX_FILE.to_string(),
                Some(sel) => {
                    let tracks = catalog.tracks(r.id).await?;
                    pick_track(&tracks, &sel)?.file.clone()
                }
            };
            let bytes = store
                .get(&layout::file_key(r.id, &file))
                .with_context(|| format!("recording {}: reading {file}", r.id))?;
            let out = output.clone();
            let n = tokio::task::spawn_blocking(move || write_wav(&bytes, &out)).await??;
            if !ctx.quiet {
                println!(
                    "wrote {} ({})",
                    output.display(),
                    format_ms((n / 48) as i64)
                );
            }
        }
        RecordingsCommand::Publish { id, visibility } => {
            let v: Visibility = visibility.parse()?;
            let r = catalog.find_recording(&id).await?;
            catalog.set_visibility(r.id, v).await?;
            crate::search_cmd::open_index(ctx, &catalog).await?;
            if !ctx.quiet {
                println!("{} is now {v}", r.id);
            }
        }
        RecordingsCommand::Delete { id } => {
            let r = catalog.find_recording(&id).await?;
            catalog.delete_recording(r.id).await?;
            store.delete_dir(&r.id.to_string())?;
            // Its hits go now (or, while `serve` holds the index, within a moment).
            crate::search_cmd::open_index(ctx, &catalog).await?;
            if !ctx.quiet {
                println!("deleted {}", r.id);
            }
        }
    }
    Ok(())
}

fn pick_track<'a>(tracks: &'a [Track], sel: &str) -> anyhow::Result<&'a Track> {
    let s = sel.trim();
    if let Ok(n) = s.parse::<usize>()
        && (1..=tracks.len()).contains(&n)
    {
        return Ok(&tracks[n - 1]);
    }
    let matches: Vec<&Track> = tracks
        .iter()
        .filter(|t| {
            t.id.to_string().starts_with(&s.to_ascii_lowercase()) && s.len() >= 4
                || t.speaker.name == s
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => bail!(
            "no track {:?} in this recording",
            roomtape_core::truncate_for_message(s)
        ),
        _ => bail!(
            "{:?} matches several tracks; give the track id",
            roomtape_core::truncate_for_message(s)
        ),
    }
}

fn write_wav(opus: &[u8], path: &Path) -> anyhow::Result<u64> {
    let mut reader = roomtape_ingest::PcmReader::new(std::io::Cursor::new(opus), 48_000)?;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut buf = vec![0.0f32; 4800];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for &s in &buf[..n] {
            w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)?;
        }
        total += n as u64;
    }
    w.finalize()?;
    Ok(total)
}

pub async fn recover(ctx: &Context) -> anyhow::Result<()> {
    let catalog = ctx.catalog().await?;
    let store = ctx.store()?;
    let report =
        roomtape_ingest::recover_all(&catalog, store.as_ref(), ctx.config.import.mix_bitrate)
            .await?;
    if ctx.json {
        return ctx.print_json(&serde_json::json!({
            "recovered": report.recovered.iter().map(|m| serde_json::json!({
                "id": m.recording_id,
                "duration_ms": m.duration_ms(),
                "tracks": m.tracks,
            })).collect::<Vec<_>>(),
            "failed": report.failed.iter().map(|(r, why)| serde_json::json!({"id": r.id, "reason": why})).collect::<Vec<_>>(),
            "orphans_removed": report.orphans_removed,
            "in_progress": report.in_progress,
        }));
    }
    if !ctx.quiet {
        for m in &report.recovered {
            println!(
                "recovered {}: {} track(s), {}",
                m.recording_id,
                m.tracks.len(),
                format_ms(m.duration_ms())
            );
        }
        for (r, why) in &report.failed {
            println!("failed {}: {why}", r.id);
        }
        for o in &report.orphans_removed {
            println!("removed unfinished import {o}");
        }
        for id in &report.in_progress {
            println!("left alone import in progress {id}");
        }
        if report.recovered.is_empty()
            && report.failed.is_empty()
            && report.orphans_removed.is_empty()
            && report.in_progress.is_empty()
        {
            println!("nothing to recover");
        }
    }
    Ok(())
}

pub async fn serve(ctx: Context, listen: Option<String>) -> anyhow::Result<()> {
    // Before anything can be asked to stop it.
    let shutdown = shutdown_signal();
    let catalog = ctx.catalog_or_create().await?;
    let store = ctx.store()?;
    let report =
        roomtape_ingest::recover_all(&catalog, store.as_ref(), ctx.config.import.mix_bitrate)
            .await
            .context("recovering unfinished recordings")?;
    for m in &report.recovered {
        tracing::warn!(id = %m.recording_id, "recovered a recording left open by a crash");
    }
    let addr = listen.unwrap_or_else(|| ctx.config.server.listen.clone());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!("listening on http://{local}");
    if !ctx.quiet {
        println!("roomtape listening on http://{local}");
    }
    let search = crate::search_cmd::open_index(&ctx, &catalog).await?;
    // A server loads its embedding model now: a broken one is refused at start, and the first
    // query does not wait for it.
    if let Some(e) = search.embedder() {
        tokio::task::spawn_blocking(move || e.preload())
            .await?
            .context("loading the embedding model (search.embed_model)")?;
    }
    // The running service owns the index; the CLI's commands leave updates to it meanwhile.
    if let Err(e) = search.acquire_writer() {
        tracing::warn!("search index busy ({e}); indexing retries until it is free");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let indexer = tokio::spawn(roomtape_search::indexer::run(
        search.clone(),
        catalog.clone(),
        std::time::Duration::from_millis(250),
        stop_rx.clone(),
    ));
    // Webhook links point at the public URL, or at this listener when none is set.
    let base_url = match ctx.config.server.public_url.trim() {
        "" => format!("http://{local}"),
        url => url.to_string(),
    };
    let webhooks = tokio::spawn(roomtape_webhooks::run(
        catalog.clone(),
        ctx.config.webhooks.clone(),
        base_url,
        std::time::Duration::from_millis(250),
        stop_rx.clone(),
    ));
    let worker = crate::transcribe_cmd::spawn_worker(&ctx, catalog.clone(), store.clone(), stop_rx);
    let config = Arc::new(ctx.config.clone());
    let (media, sfu) =
        roomtape_web::live::sfu::start(&ctx.config.media.listen, &ctx.config.media.advertise)
            .await
            .with_context(|| format!("opening the media socket {}", ctx.config.media.listen))?;
    tracing::info!(
        "media (WebRTC) on udp {} advertised as {}",
        sfu.bound,
        sfu.advertised
    );
    let live = roomtape_web::live::Live::new(catalog.clone(), store.clone(), config, Some(media));
    crate::transcribe_cmd::start_captions(&ctx, &live);
    let app = roomtape_web::app(roomtape_web::AppState::new(
        catalog.clone(),
        store,
        search,
        ctx.config.clone(),
        live,
    ));
    let limits = roomtape_web::Limits::from_config(&ctx.config.server);
    roomtape_web::serve_with(listener, app, shutdown, limits).await?;
    let _ = stop_tx.send(true);
    if let Some(w) = worker {
        let _ = w.await;
    }
    let _ = indexer.await;
    let _ = webhooks.await;
    catalog.close().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled, so a signal that comes during start-up (after the listener is
/// bound, before the server loop runs) is not lost to the default action.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let int = signal(SignalKind::interrupt()).ok();
    let term = signal(SignalKind::terminate()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(int) => {},
            () = wait(term) => {},
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Recorder throughput, Ogg overhead and import speed
    Ingest {
        /// Simultaneous speakers fed through the recorder
        #[arg(long, default_value_t = 50)]
        speakers: u32,
        /// Seconds of audio per speaker (50 packets each)
        #[arg(long, default_value_t = 800)]
        seconds: u32,
        /// Length of the WAV file imported, in minutes
        #[arg(long, default_value_t = 10)]
        import_minutes: u32,
    },
    /// SFU forwarding rate, loss and delay with headless peers in another process
    Fanout {
        /// Speakers on stage (each sends 50 frames a second)
        #[arg(long, default_value_t = 4)]
        speakers: usize,
        /// Listeners
        #[arg(long, default_value_t = 200)]
        listeners: usize,
        /// Rooms measured in turn, as SPEAKERSxLISTENERS (e.g. 1x200,4x200), in place of
        /// --speakers and --listeners
        #[arg(long, value_delimiter = ',', value_parser = parse_step)]
        steps: Vec<(usize, usize)>,
        /// Run the same rooms through another SFU too, measured the same way
        #[arg(long, value_enum)]
        peer: Option<crate::bench_fanout::Peer>,
        /// Janus's shared event loops (its `event_loops`; default: one per core, its best run
        /// here); 0 for its default of a thread per PeerConnection
        #[arg(long)]
        janus_loops: Option<usize>,
        /// Seconds measured
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Also find the most listeners one speaker reaches with under 0.5% loss
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        ramp: bool,
        /// Also run the same room with str0m's own write path in place of the sealed fast
        /// path, and print the ratio
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        compare: bool,
    },
    /// The SFU half of `bench fanout` (run by it)
    #[command(hide = true)]
    FanoutServer {
        #[arg(long)]
        participants: usize,
        #[arg(long)]
        speakers: usize,
        /// Forward through str0m's own write path
        #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
        str0m: bool,
        /// The address to take media on
        #[arg(long, default_value = "127.0.0.1")]
        ip: std::net::IpAddr,
    },
    /// One live room's task under a crowd: cost and delay of each change, drops
    Room {
        /// Members on WebSockets (the first is the host)
        #[arg(long, default_value_t = 5000)]
        members: usize,
        /// Changes made one at a time (hands and mutes), timed to the last member
        #[arg(long, default_value_t = 100)]
        changes: usize,
        /// Hands raised at once in the burst
        #[arg(long, default_value_t = 500)]
        burst: usize,
    },
    /// Search indexing and query latency against SQLite FTS5 on a generated corpus
    Search {
        /// Hours of speech in the corpus (about 9,000 words an hour)
        #[arg(long, default_value_t = 2000.0)]
        hours: f64,
        /// Queries timed (a quarter each of term, phrase, speaker and date queries; at most 400
        /// with --meaning, each run in three modes)
        #[arg(long, default_value_t = 2000)]
        queries: usize,
        /// The word list the corpus is drawn from
        #[arg(long, default_value = "/usr/share/dict/words")]
        words: PathBuf,
        /// Search by meaning instead: the embedding model's throughput, recall on the
        /// paraphrase set, and words, meaning and hybrid latency at each of --sizes
        #[arg(long)]
        meaning: bool,
        /// With --meaning: the corpus sizes, in hours of speech
        #[arg(long, value_delimiter = ',', default_values_t = [200.0, 2000.0])]
        sizes: Vec<f64>,
        /// With --meaning: the labelled paraphrase set
        #[arg(long, default_value = "tests/fixtures/paraphrases.tsv")]
        paraphrases: PathBuf,
        /// With --meaning: the prompts the paraphrase set is labelled with (make devset)
        #[arg(
            long,
            default_value = "target/devset/.src/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
        )]
        prompts: PathBuf,
        /// With --meaning: embedding threads
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Transcripts of real human speech against their references: word error, word times,
    /// line order (the dev set: scripts/devset.sh)
    Quality {
        /// The dev set: a directory of sets, each a directory with set.json and WAV tracks
        #[arg(long, default_value = "target/devset")]
        set: PathBuf,
        /// Installed model name or ggml path (`base` for the Spanish set)
        #[arg(long, default_value = "tiny.en")]
        model: String,
        /// Whisper threads (0: one per core)
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Live captions: K speakers of real speech fed at real time through the captioner; lag
    /// to final and partial captions, word error against the offline transcript, CPU
    Captions {
        /// Installed model name or ggml path
        #[arg(long, default_value = "tiny.en")]
        model: String,
        /// The dev set (make devset)
        #[arg(long, default_value = "target/devset")]
        set: PathBuf,
        /// Speakers at once, one run each
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 4])]
        speakers: Vec<usize>,
        /// Seconds of each track fed
        #[arg(long, default_value_t = 90.0)]
        seconds: f64,
        /// Whisper threads (the captions budget)
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// New audio between decodes of a speaker, ms (captions.step_ms)
        #[arg(long, default_value_t = roomtape_transcribe::captions::CaptionSettings::default().step_ms)]
        step_ms: u32,
    },
    /// Transcription cost and accuracy against the naive way and the speech-only bound
    Transcribe {
        /// Installed model name or ggml path
        #[arg(long, default_value = "tiny.en")]
        model: String,
        /// Length of the generated room
        #[arg(long, default_value_t = 4.0)]
        minutes: f64,
        /// Whisper threads (0: one per core)
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
}

/// `4x200`: speakers and listeners.
fn parse_step(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}`: expected SPEAKERSxLISTENERS, e.g. 4x200"))?;
    let n = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("`{s}`: {e}"));
    Ok((n(a)?, n(b)?))
}

pub async fn bench(ctx: &Context, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Ingest {
            speakers,
            seconds,
            import_minutes,
        } => {
            let json = ctx.json;
            tokio::task::spawn_blocking(move || {
                bench_ingest(speakers, seconds, import_minutes, json)
            })
            .await?
        }
        BenchCommand::Fanout {
            speakers,
            listeners,
            steps,
            peer,
            janus_loops,
            seconds,
            ramp,
            compare,
        } => {
            crate::bench_fanout::run(crate::bench_fanout::Options {
                steps: if steps.is_empty() {
                    vec![(speakers, listeners)]
                } else {
                    steps
                },
                seconds,
                ramp,
                compare,
                peer,
                janus_loops: janus_loops
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            })
            .await
        }
        BenchCommand::FanoutServer {
            participants,
            speakers,
            str0m,
            ip,
        } => crate::bench_fanout::server(participants, speakers, str0m, ip).await,
        BenchCommand::Captions {
            model,
            set,
            speakers,
            seconds,
            threads,
            step_ms,
        } => {
            let models = layout::models(ctx.data_dir());
            tokio::task::spawn_blocking(move || {
                crate::bench_captions::run(
                    &models, &model, &set, &speakers, seconds, threads, step_ms,
                )
            })
            .await?
        }
        BenchCommand::Room {
            members,
            changes,
            burst,
        } => crate::bench_room::run(members, changes, burst).await,
        BenchCommand::Search {
            hours,
            queries,
            words,
            meaning,
            sizes,
            paraphrases,
            prompts,
            threads,
        } => {
            if meaning {
                let o = crate::bench_meaning::Options {
                    model_dir: roomtape_search::embed::Embedder::default_dir(&layout::models(
                        ctx.data_dir(),
                    )),
                    sizes,
                    queries: queries.min(400),
                    words,
                    paraphrases,
                    prompts,
                    licences: "/usr/share/common-licenses".into(),
                    threads,
                };
                tokio::task::spawn_blocking(move || crate::bench_meaning::run(&o)).await?
            } else {
                tokio::task::spawn_blocking(move || {
                    crate::bench_search::run(hours, queries, &words)
                })
                .await?
            }
        }
        BenchCommand::Quality {
            set,
            model,
            threads,
        } => {
            let models = layout::models(ctx.data_dir());
            tokio::task::spawn_blocking(move || {
                crate::bench_quality::run(&models, &model, &set, threads)
            })
            .await?
        }
        BenchCommand::Transcribe {
            model,
            minutes,
            threads,
        } => {
            let models = layout::models(ctx.data_dir());
            tokio::task::spawn_blocking(move || {
                crate::bench_transcribe::run(&models, &model, minutes, threads)
            })
            .await?
        }
    }
}

fn bench_ingest(
    speakers: u32,
    seconds: u32,
    import_minutes: u32,
    json: bool,
) -> anyhow::Result<()> {
    use roomtape_ingest::bench::bench_recorder;
    let per = seconds * 50;
    println!(
        "recorder: {speakers} speakers x {seconds} s (20 ms Opus at 32 kb/s), 2% reordered, 1% lost, 0.5% duplicated, 200 ms jitter window"
    );
    let mem = bench_recorder(Arc::new(MemoryStore::new()), speakers, per, 32_000, 7)?;
    let dir = tempfile::tempdir()?;
    let files = bench_recorder(
        Arc::new(LocalStore::new(dir.path())?),
        speakers,
        per,
        32_000,
        7,
    )?;
    for (name, r) in [
        ("in-memory store", &mem),
        ("real files (page cache, no fsync)", &files),
    ] {
        println!(
            "  {name:<34} {:>12.0} packets/s per core  ({} packets in {:.2} s CPU, {:.2} s wall) = {:.0} live speakers per core at 50 packets/s",
            r.packets_per_cpu_second(),
            r.packets,
            r.cpu.as_secs_f64(),
            r.wall.as_secs_f64(),
            r.packets_per_cpu_second() / 50.0
        );
    }
    println!(
        "  written {} packets, {} duplicates dropped, {} late, {} silent frames filled",
        mem.written, mem.duplicates, mem.late, mem.filled_frames
    );
    println!(
        "  Ogg overhead: {:.2}% of {} payload bytes (page headers and lacing; plus {} header-page bytes per track)",
        mem.ogg_overhead_percent(),
        mem.payload_bytes,
        mem.header_bytes / u64::from(speakers.max(1))
    );

    let minutes = import_minutes.max(1);
    let wav = dir.path().join("bench.wav");
    write_bench_wav(&wav, minutes * 60, 44_100)?;
    let store = LocalStore::new(dir.path().join("import"))?;
    let opts = ImportOptions::from_config(&roomtape_core::ImportConfig::default());
    let cpu0 = cpu_time::ProcessTime::now();
    let t0 = Instant::now();
    let m = roomtape_ingest::import_file(&wav, &store, &opts, &mut |_| {})?.release();
    let wall = t0.elapsed();
    let cpu = cpu0.elapsed();
    let audio = f64::from(minutes * 60);
    println!(
        "import: {minutes}-minute 44.1 kHz WAV -> 48 kHz Opus track + mix + peaks in {:.2} s wall ({:.2} s CPU) = {:.0}x real time",
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        audio / wall.as_secs_f64()
    );
    if json {
        println!(
            "{}",
            serde_json::json!({
                "recorder_memory_pps_per_core": mem.packets_per_cpu_second(),
                "recorder_files_pps_per_core": files.packets_per_cpu_second(),
                "speakers_per_core": mem.packets_per_cpu_second() / 50.0,
                "ogg_overhead_percent": mem.ogg_overhead_percent(),
                "import_realtime_factor": audio / wall.as_secs_f64(),
                "import_duration_ms": m.duration_ms(),
            })
        );
    }
    Ok(())
}

fn write_bench_wav(path: &Path, seconds: u32, rate: u32) -> anyhow::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    let mut voice = roomtape_ingest::synth::Voice::new(rate, 130.0);
    let mut buf = vec![0.0f32; rate as usize];
    for _ in 0..seconds {
        voice.fill(&mut buf);
        for &s in &buf {
            w.write_sample((s * 32767.0) as i16)?;
        }
    }
    w.finalize()?;
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum DebugCommand {
    /// Record synthetic live speakers in real time (for the crash test); prints the id first
    RecordSynthetic {
        /// Number of speakers; the second joins one second in
        #[arg(long, default_value_t = 2)]
        speakers: u32,
        /// Stop after this many seconds (0: run until killed)
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        #[arg(long, default_value = "Synthetic room")]
        title: String,
    },
}

pub async fn debug(ctx: &Context, cmd: DebugCommand) -> anyhow::Result<()> {
    use roomtape_web::live::recording::{RecordingInfo, RecordingSession, TapPacket};
    let DebugCommand::RecordSynthetic {
        speakers,
        seconds,
        title,
    } = cmd;
    let catalog = ctx.catalog_or_create().await?;
    let store = ctx.store()?;
    let mut people = Vec::new();
    for i in 0..speakers {
        let s = Speaker {
            id: SpeakerId::new(),
            name: format!("Speaker {}", i + 1),
        };
        let pool = roomtape_ingest::synth::opus_packets(250, 32_000, 110.0 + 40.0 * i as f32)?;
        people.push((s, pool));
    }
    // The same recording path as a live room's: a session thread fed packets as they arrive.
    let session = RecordingSession::start(
        catalog,
        store,
        RecordingInfo {
            room: None,
            title,
            language: "en".into(),
            owner: None,
            description: String::new(),
        },
        RecorderSettings::from(&ctx.config.recorder),
        ctx.config.import.mix_bitrate,
    )
    .await?;
    let id = session.id();
    let tap = session.tap();
    println!("recording {id}");
    std::io::stdout().flush()?;
    let origin = Instant::now();
    let mut interval = tokio::time::interval(Duration::from_millis(20));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n: u32 = 0;
    loop {
        interval.tick().await;
        if seconds > 0 && origin.elapsed() >= Duration::from_secs(u64::from(seconds)) {
            break;
        }
        for (i, (speaker, pool)) in people.iter().enumerate() {
            // Speaker i joins i seconds in.
            let Some(k) = n.checked_sub(50 * i as u32) else {
                continue;
            };
            tap.send(TapPacket {
                speaker: speaker.clone(),
                ssrc: 0x1000 + i as u32,
                sequence: k as u16,
                timestamp: k.wrapping_mul(960),
                payload: pool[k as usize % pool.len()].clone(),
                at: Instant::now(),
            });
        }
        n += 1;
    }
    let manifest = session
        .finish()
        .await
        .map_err(|e| anyhow::anyhow!("finishing the recording: {e}"))?;
    println!("finished {id}: {}", format_ms(manifest.duration_ms()));
    Ok(())
}

/// `h:mm:ss.mmm`, or `m:ss.mmm` under an hour.
pub fn format_ms(ms: i64) -> String {
    let ms = ms.max(0);
    let (h, m, s, f) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}.{f:03}")
    } else {
        format!("{m}:{s:02}.{f:03}")
    }
}

/// Untrusted text for a terminal: control characters (escape sequences) removed.
fn sanitize(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}
