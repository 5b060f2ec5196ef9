-- Issue 18: live captions are offered in a room unless its host turns them off.
ALTER TABLE rooms ADD COLUMN captions INTEGER NOT NULL DEFAULT 1;
