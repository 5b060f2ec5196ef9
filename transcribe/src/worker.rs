//! The worker: leases transcription jobs from the catalog, runs them, renews its lease while it
//! works, and stores the results. Several workers (in one process or many) can share a catalog:
//! leases make sure no job runs twice at once, and a job whose worker vanished is taken again
//! once its lease expires.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use roomtape_core::{
    ArchiveStore, Catalog, Failure, Job, JobId, JobState, Manifest, Transcript, layout,
};

use crate::engine::Engine;
use crate::pipeline;
use crate::vad::VadSettings;
use crate::{Error, Result};

/// How a worker behaves.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Unique name in the job history, e.g. `host:pid:n`.
    pub id: String,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// How often to look for work when the queue is empty.
    pub poll: Duration,
    /// Lines in other languages also get an English translation (`transcribe.translate`).
    pub translate: bool,
}

impl WorkerConfig {
    /// A worker named after this host and process.
    pub fn new(lease: Duration) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        WorkerConfig {
            id: format!(
                "{host}:{}:{}",
                std::process::id(),
                roomtape_core::JobId::new()
            ),
            lease,
            poll: Duration::from_millis(500),
            translate: true,
        }
    }
}

/// What became of one job.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Done {
        segments: usize,
    },
    /// Failed; `state` says whether it will be retried.
    Failed {
        error: String,
        state: JobState,
    },
    /// Another worker took the job over (this one's lease lapsed); nothing was written.
    LostLease,
}

/// Runs one leased job to its end. `progress` sees the fraction done.
pub async fn run_job(
    catalog: &Catalog,
    store: Arc<dyn ArchiveStore>,
    engine: Arc<Engine>,
    job: &Job,
    cfg: &WorkerConfig,
    progress: Arc<dyn Fn(f64) + Send + Sync>,
) -> Result<Outcome> {
    let abort = Arc::new(AtomicBool::new(false));
    let fraction = Arc::new(AtomicU64::new(0f64.to_bits()));
    let rec = catalog.recording(job.recording_id).await?;
    let manifest = match store.get(&layout::manifest_key(rec.id)) {
        Ok(b) => Manifest::from_json(&b).map_err(Error::from),
        Err(e) => Err(Error::from(e)),
    };

    let work = {
        let (store, engine, abort, fraction, progress) = (
            store.clone(),
            engine.clone(),
            abort.clone(),
            fraction.clone(),
            progress.clone(),
        );
        let language = rec.language.clone();
        let translate = cfg.translate;
        tokio::task::spawn_blocking(move || -> Result<Transcript> {
            let manifest = manifest?;
            pipeline::transcribe(
                &engine,
                store.as_ref(),
                &pipeline::Job {
                    manifest: &manifest,
                    language: &language,
                    vad: VadSettings::default(),
                    translate,
                },
                &abort,
                &mut |f| {
                    fraction.store(f.to_bits(), Ordering::Relaxed);
                    progress(f);
                },
            )
        })
    };
    tokio::pin!(work);

    // Renew the lease while the work runs; stop the work if the lease is lost.
    let renew_every = cfg.lease / 3;
    let result = loop {
        tokio::select! {
            r = &mut work => break r.map_err(|e| Error::Whisper(format!("worker task failed: {e}")))?,
            () = tokio::time::sleep(renew_every) => {
                let f = f64::from_bits(fraction.load(Ordering::Relaxed));
                match catalog.renew_lease(job.id, &cfg.id, cfg.lease.as_millis() as i64, f).await {
                    Ok(true) => {}
                    Ok(false) => {
                        abort.store(true, Ordering::Relaxed);
                        let _ = (&mut work).await;
                        return Ok(Outcome::LostLease);
                    }
                    Err(e) => tracing::warn!(job = %job.id, "renewing the lease failed: {e}"),
                }
            }
        }
    };

    match result {
        Ok(transcript) => {
            if !catalog
                .complete_transcription(job.id, &cfg.id, &transcript)
                .await?
            {
                return Ok(Outcome::LostLease);
            }
            // The catalog holds the transcript; the archive keeps a copy beside the audio.
            let key = layout::file_key(rec.id, layout::TRANSCRIPT_FILE);
            let json = crate::export::render(&transcript, crate::export::Format::Json);
            if let Err(e) = store.put_atomic(&key, json.as_bytes()) {
                tracing::error!(recording = %rec.id, "writing transcript.json: {e}");
            }
            Ok(Outcome::Done {
                segments: transcript.segments.len(),
            })
        }
        Err(Error::Cancelled) => Ok(Outcome::LostLease),
        Err(e) => {
            let kind = if e.is_permanent() {
                Failure::Permanent
            } else {
                Failure::Transient
            };
            let error = e.to_string();
            let state = catalog.fail_job(job.id, &cfg.id, &error, kind).await?;
            Ok(Outcome::Failed { error, state })
        }
    }
}

/// Takes jobs until `stop` resolves. With `only`, runs just that job and returns.
pub async fn run_worker(
    catalog: Catalog,
    store: Arc<dyn ArchiveStore>,
    engine: Arc<Engine>,
    cfg: WorkerConfig,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(stop);
    let lease_ms = cfg.lease.as_millis() as i64;
    loop {
        let job = tokio::select! {
            () = &mut stop => return Ok(()),
            j = catalog.lease_job(&cfg.id, lease_ms, None) => j?,
        };
        let Some(job) = job else {
            tokio::select! {
                () = &mut stop => return Ok(()),
                () = tokio::time::sleep(cfg.poll) => continue,
            }
        };
        tracing::info!(job = %job.id, recording = %job.recording_id, attempt = job.attempts, "transcribing");
        let outcome = run_job(
            &catalog,
            store.clone(),
            engine.clone(),
            &job,
            &cfg,
            Arc::new(|_| {}),
        )
        .await;
        match outcome {
            Ok(Outcome::Done { segments }) => {
                tracing::info!(job = %job.id, segments, "transcript stored");
            }
            Ok(Outcome::Failed { error, state }) => {
                tracing::warn!(job = %job.id, ?state, "transcription failed: {error}");
            }
            Ok(Outcome::LostLease) => {
                tracing::warn!(job = %job.id, "lease lost; another worker has the job")
            }
            Err(e) => {
                // The catalog itself failed; back off and try again rather than die.
                tracing::error!(job = %job.id, "worker error: {e}");
                tokio::time::sleep(cfg.poll * 4).await;
            }
        }
    }
}

/// Queues (or finds) the transcription of one recording and runs it here, now.
pub async fn transcribe_now(
    catalog: &Catalog,
    store: Arc<dyn ArchiveStore>,
    engine: Arc<Engine>,
    recording: roomtape_core::RecordingId,
    cfg: &WorkerConfig,
    progress: Arc<dyn Fn(f64) + Send + Sync>,
) -> Result<(JobId, Outcome)> {
    let id = catalog.enqueue_transcription(recording).await?;
    let job = catalog
        .lease_job(&cfg.id, cfg.lease.as_millis() as i64, Some(id))
        .await?
        .ok_or_else(|| Error::Invalid(format!("job {id} is running in another worker")))?;
    let outcome = run_job(catalog, store, engine, &job, cfg, progress).await?;
    Ok((id, outcome))
}
