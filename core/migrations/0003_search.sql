-- The search issue: who may see a recording, and an outbox of recordings whose search documents
-- must be rebuilt. Triggers fill the outbox in the same transaction as the change, so the index
-- can never miss one; the indexer drains it. `seq` never repeats (AUTOINCREMENT), so an entry
-- queued again while the indexer works on it is not lost when the older entry is cleared.

ALTER TABLE recordings ADD COLUMN visibility TEXT NOT NULL DEFAULT 'private'
    CHECK (visibility IN ('private', 'unlisted', 'public'));
ALTER TABLE recordings ADD COLUMN owner_id TEXT;

CREATE TABLE search_outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    recording_id TEXT NOT NULL UNIQUE
);

CREATE TRIGGER search_on_transcript_insert AFTER INSERT ON transcripts BEGIN
    INSERT OR REPLACE INTO search_outbox (recording_id) VALUES (NEW.recording_id);
END;

CREATE TRIGGER search_on_transcript_update AFTER UPDATE ON transcripts BEGIN
    INSERT OR REPLACE INTO search_outbox (recording_id) VALUES (NEW.recording_id);
END;

CREATE TRIGGER search_on_segment_update AFTER UPDATE OF text, speaker_name, start_ms, end_ms ON segments BEGIN
    INSERT OR REPLACE INTO search_outbox (recording_id) VALUES (NEW.recording_id);
END;

CREATE TRIGGER search_on_recording_update AFTER UPDATE OF title, visibility, owner_id, started_at, room_id, language ON recordings BEGIN
    INSERT OR REPLACE INTO search_outbox (recording_id) VALUES (NEW.id);
END;

CREATE TRIGGER search_on_recording_delete AFTER DELETE ON recordings BEGIN
    INSERT OR REPLACE INTO search_outbox (recording_id) VALUES (OLD.id);
END;

CREATE TRIGGER search_on_speaker_rename AFTER UPDATE OF speaker_name ON tracks BEGIN
    INSERT OR REPLACE INTO search_outbox (recording_id) VALUES (NEW.recording_id);
END;
