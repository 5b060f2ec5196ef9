-- The transcription issue: the job queue, its run history, and transcript segments.

ALTER TABLE recordings ADD COLUMN language TEXT NOT NULL DEFAULT 'auto';

CREATE TABLE jobs (
    id            TEXT PRIMARY KEY NOT NULL,
    recording_id  TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('transcribe')),
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL DEFAULT 3,
    not_before    INTEGER NOT NULL,
    lease_owner   TEXT,
    lease_expires INTEGER,
    progress      REAL NOT NULL DEFAULT 0,
    error         TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    finished_at   INTEGER
);
CREATE INDEX jobs_ready ON jobs(state, not_before);
-- At most one queued or running job per recording and kind.
CREATE UNIQUE INDEX jobs_one_active ON jobs(recording_id, kind) WHERE state IN ('queued', 'running');

CREATE TABLE job_runs (
    job_id      TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    worker      TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE segments (
    recording_id  TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    track_id      TEXT NOT NULL,
    speaker_id    TEXT NOT NULL,
    speaker_name  TEXT NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    language      TEXT,
    text          TEXT NOT NULL,
    words         TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (recording_id, position)
);

CREATE TABLE transcripts (
    recording_id  TEXT PRIMARY KEY NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    model         TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
