-- Webhooks: URLs users register, an outbox of events filled by triggers, and one delivery row
-- per (event, webhook) that the service POSTs, retries and keeps with its outcome.
--
-- Triggers fill `webhook_events` in the same transaction as the change, so no code path (the
-- CLI's import, the web service's live recordings, a worker in another process, recovery) has to
-- remember to fire an event, and a crash cannot lose one. Each event keeps a snapshot of the
-- recording as it was at that moment; the service turns events into deliveries ("fan-out") and
-- deletes them in one transaction.

CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    url         TEXT NOT NULL,
    -- The signing secret, kept as is: signing needs it (unlike tokens, it opens nothing here).
    secret      TEXT NOT NULL,
    -- The event types it receives, separated by single spaces.
    events      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX webhooks_by_user ON webhooks(user_id);

CREATE TABLE webhook_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    type         TEXT NOT NULL CHECK (type IN ('recording.finished', 'transcript.ready')),
    recording_id TEXT NOT NULL,
    owner_id     TEXT,
    -- JSON: {id, title, state, visibility, duration_ms, language, source, owner_id}
    recording    TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);

-- A recording is finished when it reaches `recorded` from being recorded (or from `failed`, when
-- recovery finishes it), or is created already finished (an import). A transcription attempt
-- that fails puts it back from `transcribing` to `recorded`: that is not a new event.
CREATE TRIGGER webhook_on_recording_insert AFTER INSERT ON recordings
WHEN NEW.state = 'recorded' BEGIN
    INSERT INTO webhook_events (type, recording_id, owner_id, recording, created_at)
    VALUES ('recording.finished', NEW.id, NEW.owner_id,
        json_object('id', NEW.id, 'title', NEW.title, 'state', NEW.state,
            'visibility', NEW.visibility, 'duration_ms', NEW.duration_ms,
            'language', NEW.language, 'source', NEW.source, 'owner_id', NEW.owner_id),
        CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;

CREATE TRIGGER webhook_on_recording_finished AFTER UPDATE OF state ON recordings
WHEN NEW.state = 'recorded' AND OLD.state IN ('recording', 'failed') BEGIN
    INSERT INTO webhook_events (type, recording_id, owner_id, recording, created_at)
    VALUES ('recording.finished', NEW.id, NEW.owner_id,
        json_object('id', NEW.id, 'title', NEW.title, 'state', NEW.state,
            'visibility', NEW.visibility, 'duration_ms', NEW.duration_ms,
            'language', NEW.language, 'source', NEW.source, 'owner_id', NEW.owner_id),
        CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;

-- A transcript is ready when the recording reaches `transcribed` from `transcribing` and its
-- transcription job is done. A failed attempt at transcribing again also returns it from
-- `transcribing` to `transcribed` (the old transcript stays), but its job is not done then.
CREATE TRIGGER webhook_on_transcript_ready AFTER UPDATE OF state ON recordings
WHEN NEW.state = 'transcribed' AND OLD.state = 'transcribing'
    AND (SELECT state FROM jobs WHERE recording_id = NEW.id AND kind = 'transcribe'
         ORDER BY updated_at DESC, id DESC LIMIT 1) = 'done'
BEGIN
    INSERT INTO webhook_events (type, recording_id, owner_id, recording, created_at)
    VALUES ('transcript.ready', NEW.id, NEW.owner_id,
        json_object('id', NEW.id, 'title', NEW.title, 'state', NEW.state,
            'visibility', NEW.visibility, 'duration_ms', NEW.duration_ms,
            'language', NEW.language, 'source', NEW.source, 'owner_id', NEW.owner_id),
        CAST(unixepoch('subsec') * 1000 AS INTEGER));
END;

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    webhook_id      TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    event           TEXT NOT NULL,
    recording_id    TEXT NOT NULL,
    -- The exact body sent on every attempt.
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    -- Attempts started (an attempt counts from the moment it is claimed).
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- Pending: when the next attempt is due; while an attempt runs, when its claim lapses.
    next_attempt_at INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_attempt_at);
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries(webhook_id, state, next_attempt_at);
CREATE INDEX webhook_deliveries_by_hook_time ON webhook_deliveries(webhook_id, created_at);
