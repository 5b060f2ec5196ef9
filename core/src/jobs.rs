//! The job queue, a catalog table: several workers (threads or processes, on one catalog)
//! lease jobs, renew their leases while working, and finish them. A job whose lease expires is
//! taken again; a finished job's results are written in the same transaction that checks the
//! lease, so a worker that lost its lease cannot write anything.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::{Catalog, Error, JobId, RecordingId, Result, Segment, Timestamp, Transcript};

/// A job's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobState {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            other => return Err(Error::Invalid(format!("unknown job state {other:?}"))),
        })
    }

    /// The catalog's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }
}

/// A job as the catalog knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: JobId,
    pub recording_id: RecordingId,
    pub kind: String,
    pub state: JobState,
    pub attempts: i64,
    pub max_attempts: i64,
    pub progress: f64,
    pub error: Option<String>,
    pub lease_owner: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

const JOB_COLUMNS: &str = "id, recording_id, kind, state, attempts, max_attempts, progress, error, lease_owner, created_at, updated_at, finished_at";

fn job_from_row(r: &SqliteRow) -> Result<Job> {
    Ok(Job {
        id: r.try_get::<String, _>("id")?.parse()?,
        recording_id: r.try_get::<String, _>("recording_id")?.parse()?,
        kind: r.try_get("kind")?,
        state: JobState::parse(&r.try_get::<String, _>("state")?)?,
        attempts: r.try_get("attempts")?,
        max_attempts: r.try_get("max_attempts")?,
        progress: r.try_get("progress")?,
        error: r.try_get("error")?,
        lease_owner: r.try_get("lease_owner")?,
        created_at: Timestamp(r.try_get("created_at")?),
        updated_at: Timestamp(r.try_get("updated_at")?),
        finished_at: r.try_get::<Option<i64>, _>("finished_at")?.map(Timestamp),
    })
}

/// What a worker reports when a job fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Worth retrying later (with backoff), up to the job's limit.
    Transient,
    /// Retrying cannot help (a corrupt track): fail now.
    Permanent,
}

/// Base delay before a retry; doubled on each attempt.
pub const RETRY_BACKOFF_MS: i64 = 5_000;

impl Catalog {
    /// Queues a transcription of `recording` unless one is already queued or running; returns
    /// the job.
    pub async fn enqueue_transcription(&self, recording: RecordingId) -> Result<JobId> {
        let now = Timestamp::now().0;
        let id = JobId::new();
        sqlx::query(
            "INSERT INTO jobs (id, recording_id, kind, state, not_before, created_at, updated_at)
             VALUES (?, ?, 'transcribe', 'queued', ?, ?, ?)
             ON CONFLICT DO NOTHING",
        )
        .bind(id.to_string())
        .bind(recording.to_string())
        .bind(now)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let active: String = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE recording_id = ? AND kind = 'transcribe' AND state IN ('queued', 'running')",
        )
        .bind(recording.to_string())
        .fetch_one(&self.pool)
        .await?;
        active.parse()
    }

    /// Leases the oldest ready job (queued and due, or running with an expired lease) for
    /// `worker` for `lease_ms`. Atomic: two workers never get the same job at once.
    /// With `only`, leases that job or nothing (a queued job is taken at once, whatever its
    /// backoff).
    pub async fn lease_job(
        &self,
        worker: &str,
        lease_ms: i64,
        only: Option<JobId>,
    ) -> Result<Option<Job>> {
        let now = Timestamp::now().0;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_expires = ?2 + ?3,
                    attempts = attempts + 1, updated_at = ?2
             WHERE id = (SELECT id FROM jobs
                         WHERE ((state = 'queued' AND (not_before <= ?2 OR ?4 IS NOT NULL))
                             OR (state = 'running' AND lease_expires < ?2))
                           AND (?4 IS NULL OR id = ?4)
                         ORDER BY created_at, id LIMIT 1)
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(worker)
        .bind(now)
        .bind(lease_ms)
        .bind(only.map(|j| j.to_string()))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let job = job_from_row(&row)?;
        // A run whose worker vanished is closed as such.
        sqlx::query(
            "UPDATE job_runs SET finished_at = ?, outcome = 'lease expired' WHERE job_id = ? AND finished_at IS NULL",
        )
        .bind(now)
        .bind(job.id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO job_runs (job_id, attempt, worker, started_at) VALUES (?, ?, ?, ?)",
        )
        .bind(job.id.to_string())
        .bind(job.attempts)
        .bind(worker)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE recordings SET state = 'transcribing' WHERE id = ? AND state IN ('recorded', 'transcribed')")
            .bind(job.recording_id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(job))
    }

    /// Extends `worker`'s lease and records progress. `false` means the lease was lost.
    pub async fn renew_lease(
        &self,
        job: JobId,
        worker: &str,
        lease_ms: i64,
        progress: f64,
    ) -> Result<bool> {
        let now = Timestamp::now().0;
        let done = sqlx::query(
            "UPDATE jobs SET lease_expires = ? + ?, progress = ?, updated_at = ?
             WHERE id = ? AND state = 'running' AND lease_owner = ?",
        )
        .bind(now)
        .bind(lease_ms)
        .bind(progress.clamp(0.0, 1.0))
        .bind(now)
        .bind(job.to_string())
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Finishes a transcription job: replaces the recording's transcript and marks the job
    /// done, in one transaction that first checks that `worker` still holds the lease.
    /// `false` means the lease was lost and nothing was written.
    pub async fn complete_transcription(
        &self,
        job: JobId,
        worker: &str,
        t: &Transcript,
    ) -> Result<bool> {
        let now = Timestamp::now().0;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'done', progress = 1, error = NULL, lease_owner = NULL,
                    lease_expires = NULL, updated_at = ?1, finished_at = ?1
             WHERE id = ?2 AND state = 'running' AND lease_owner = ?3",
        )
        .bind(now)
        .bind(job.to_string())
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        write_transcript(&mut tx, t).await?;
        sqlx::query("UPDATE recordings SET state = 'transcribed' WHERE id = ?")
            .bind(t.recording_id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE job_runs SET finished_at = ?, outcome = 'done' WHERE job_id = ? AND worker = ? AND finished_at IS NULL")
            .bind(now)
            .bind(job.to_string())
            .bind(worker)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records a failed attempt: the job is queued again after a backoff, or fails for good
    /// when the failure is permanent or the attempts are used up.
    pub async fn fail_job(
        &self,
        job: JobId,
        worker: &str,
        error: &str,
        kind: Failure,
    ) -> Result<JobState> {
        let now = Timestamp::now().0;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT attempts, max_attempts, recording_id FROM jobs WHERE id = ? AND lease_owner = ? AND state = 'running'")
            .bind(job.to_string())
            .bind(worker)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Err(Error::Invalid(format!(
                "job {job} is not leased by {worker}"
            )));
        };
        let attempts: i64 = row.try_get("attempts")?;
        let max: i64 = row.try_get("max_attempts")?;
        let rec: String = row.try_get("recording_id")?;
        let state = if kind == Failure::Permanent || attempts >= max {
            JobState::Failed
        } else {
            JobState::Queued
        };
        let backoff = RETRY_BACKOFF_MS << (attempts - 1).clamp(0, 10);
        sqlx::query(
            "UPDATE jobs SET state = ?, error = ?, lease_owner = NULL, lease_expires = NULL,
                    not_before = ?, updated_at = ?, finished_at = CASE WHEN ? = 'failed' THEN ? END
             WHERE id = ?",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(now + backoff)
        .bind(now)
        .bind(state.as_str())
        .bind(now)
        .bind(job.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE job_runs SET finished_at = ?, outcome = ? WHERE job_id = ? AND worker = ? AND finished_at IS NULL")
            .bind(now)
            .bind(format!("failed: {error}"))
            .bind(job.to_string())
            .bind(worker)
            .execute(&mut *tx)
            .await?;
        // The recording goes back to what it was before the attempt.
        let has_transcript: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM transcripts WHERE recording_id = ?")
                .bind(&rec)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query("UPDATE recordings SET state = ? WHERE id = ? AND state = 'transcribing'")
            .bind(if has_transcript.is_some() {
                "transcribed"
            } else {
                "recorded"
            })
            .bind(&rec)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(state)
    }

    /// Jobs, newest first.
    pub async fn jobs(&self, limit: i64) -> Result<Vec<Job>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at DESC, id DESC LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// The newest job of a recording, if it has any.
    pub async fn latest_job(&self, recording: RecordingId) -> Result<Option<Job>> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE recording_id = ? ORDER BY created_at DESC, id DESC LIMIT 1"
        ))
        .bind(recording.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// One job.
    pub async fn job(&self, id: JobId) -> Result<Job> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {id}")))?;
        job_from_row(&row)
    }

    /// The runs of a job: `(attempt, worker, started_ms, finished_ms, outcome)`.
    pub async fn job_runs(
        &self,
        id: JobId,
    ) -> Result<Vec<(i64, String, i64, Option<i64>, Option<String>)>> {
        let rows = sqlx::query("SELECT attempt, worker, started_at, finished_at, outcome FROM job_runs WHERE job_id = ? ORDER BY attempt")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("attempt")?,
                    r.try_get("worker")?,
                    r.try_get("started_at")?,
                    r.try_get("finished_at")?,
                    r.try_get("outcome")?,
                ))
            })
            .collect()
    }

    /// Stores a transcript outside the queue (e.g. a correction), replacing the old one.
    pub async fn store_transcript(&self, t: &Transcript) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        write_transcript(&mut tx, t).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A recording's transcript, if it has one.
    pub async fn transcript(&self, id: RecordingId) -> Result<Option<Transcript>> {
        let head = sqlx::query(
            "SELECT t.model, t.created_at, r.title FROM transcripts t JOIN recordings r ON r.id = t.recording_id
             WHERE t.recording_id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(head) = head else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT track_id, speaker_id, speaker_name, start_ms, end_ms, language, text, words,
                    translation_lang, translation_text
             FROM segments WHERE recording_id = ? ORDER BY position",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut segments = Vec::with_capacity(rows.len());
        for r in &rows {
            let words: String = r.try_get("words")?;
            segments.push(Segment {
                track_id: r.try_get::<String, _>("track_id")?.parse()?,
                speaker_id: r.try_get::<String, _>("speaker_id")?.parse()?,
                speaker: r.try_get("speaker_name")?,
                start_ms: r.try_get("start_ms")?,
                end_ms: r.try_get("end_ms")?,
                language: r.try_get("language")?,
                text: r.try_get("text")?,
                words: serde_json::from_str(&words).map_err(|source| Error::Json {
                    what: "segment words".into(),
                    source,
                })?,
                translation: match (
                    r.try_get::<Option<String>, _>("translation_lang")?,
                    r.try_get::<Option<String>, _>("translation_text")?,
                ) {
                    (Some(lang), Some(text)) => Some(crate::Translation { lang, text }),
                    _ => None,
                },
            });
        }
        let mut speakers = Vec::new();
        for t in self.tracks(id).await? {
            speakers.push(crate::TranscriptSpeaker {
                id: t.speaker.id,
                name: t.speaker.name,
                track_id: t.id,
            });
        }
        Ok(Some(Transcript {
            recording_id: id,
            title: head.try_get("title")?,
            model: head.try_get("model")?,
            created_at: Timestamp(head.try_get("created_at")?),
            speakers,
            segments,
        }))
    }
}

async fn write_transcript(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    t: &Transcript,
) -> Result<()> {
    let rec = t.recording_id.to_string();
    sqlx::query("DELETE FROM segments WHERE recording_id = ?")
        .bind(&rec)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT OR REPLACE INTO transcripts (recording_id, model, created_at) VALUES (?, ?, ?)",
    )
    .bind(&rec)
    .bind(&t.model)
    .bind(t.created_at.0)
    .execute(&mut **tx)
    .await?;
    for (i, s) in t.segments.iter().enumerate() {
        sqlx::query(
            "INSERT INTO segments (recording_id, position, track_id, speaker_id, speaker_name, start_ms, end_ms, language, text, words, translation_lang, translation_text)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&rec)
        .bind(i as i64)
        .bind(s.track_id.to_string())
        .bind(s.speaker_id.to_string())
        .bind(&s.speaker)
        .bind(s.start_ms)
        .bind(s.end_ms)
        .bind(&s.language)
        .bind(&s.text)
        .bind(serde_json::to_string(&s.words).unwrap_or_else(|_| "[]".into()))
        .bind(s.translation.as_ref().map(|t| t.lang.as_str()))
        .bind(s.translation.as_ref().map(|t| t.text.as_str()))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// What the search index needs to know about one recording.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchSource {
    pub recording: crate::Recording,
    /// Speaker ids of its tracks (users who spoke, for live rooms).
    pub speaker_ids: Vec<String>,
    pub segments: Vec<Segment>,
}

impl Catalog {
    /// Recordings waiting in the search outbox: `(recording id, sequence number)`.
    pub async fn search_outbox(&self, limit: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT recording_id, seq FROM search_outbox ORDER BY seq LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("recording_id")?, r.try_get("seq")?)))
            .collect()
    }

    /// Removes an outbox entry, unless it was queued again since it was read as `seq`.
    pub async fn search_outbox_done(&self, seq: i64) -> Result<()> {
        sqlx::query("DELETE FROM search_outbox WHERE seq = ?")
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Queues every recording with a transcript for indexing (a full rebuild).
    pub async fn search_outbox_all(&self) -> Result<u64> {
        let done = sqlx::query(
            "INSERT OR REPLACE INTO search_outbox (recording_id) SELECT recording_id FROM transcripts",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Everything the index needs about `id`, or `None` when it is gone or has no transcript.
    pub async fn search_source(&self, id: RecordingId) -> Result<Option<SearchSource>> {
        let recording = match self.recording(id).await {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(t) = self.transcript(id).await? else {
            return Ok(None);
        };
        Ok(Some(SearchSource {
            recording,
            speaker_ids: t.speakers.iter().map(|s| s.id.to_string()).collect(),
            segments: t.segments,
        }))
    }

    /// Sets who may see a recording.
    pub async fn set_visibility(
        &self,
        id: RecordingId,
        visibility: crate::Visibility,
    ) -> Result<()> {
        self.set_recording_text(
            id,
            "UPDATE recordings SET visibility = ? WHERE id = ?",
            visibility.as_str(),
        )
        .await
    }
}
