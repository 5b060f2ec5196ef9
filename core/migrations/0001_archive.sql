-- The archive issue: rooms (minimal), recordings and their per-speaker tracks.
-- Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE rooms (
    id          TEXT PRIMARY KEY NOT NULL,
    title       TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE recordings (
    id          TEXT PRIMARY KEY NOT NULL,
    room_id     TEXT REFERENCES rooms(id) ON DELETE SET NULL,
    title       TEXT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('live', 'import')),
    state       TEXT NOT NULL CHECK (state IN ('recording', 'recorded', 'failed', 'transcribing', 'transcribed')),
    recovered   INTEGER NOT NULL DEFAULT 0 CHECK (recovered IN (0, 1)),
    error       TEXT,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    duration_ms INTEGER
);
CREATE INDEX recordings_by_state ON recordings(state);
CREATE INDEX recordings_by_start ON recordings(started_at);

CREATE TABLE tracks (
    id            TEXT PRIMARY KEY NOT NULL,
    recording_id  TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    speaker_id    TEXT NOT NULL,
    speaker_name  TEXT NOT NULL,
    file          TEXT NOT NULL,
    offset_ms     INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    UNIQUE (recording_id, position)
);
