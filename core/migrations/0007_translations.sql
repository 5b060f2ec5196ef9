-- Issue 19: each line's English translation, beside the original (which stays the record).
-- NULL when the line was said in English or was not translated.
ALTER TABLE segments ADD COLUMN translation_lang TEXT;
ALTER TABLE segments ADD COLUMN translation_text TEXT;

-- A corrected translation reaches search like a corrected line.
CREATE TRIGGER search_on_segment_translation_update AFTER UPDATE OF translation_text ON segments BEGIN
    INSERT OR REPLACE INTO search_outbox (recording_id) VALUES (NEW.recording_id);
END;
