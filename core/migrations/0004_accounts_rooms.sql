-- The live-rooms issue: accounts, sessions, API tokens, and rooms people meet in.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_at    INTEGER NOT NULL
);

-- Only a SHA-256 of each cookie token is kept: a stolen catalog opens no session.
CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX api_tokens_by_user ON api_tokens(user_id);

-- Rooms existed as the parent of live recordings; now they are places with a host.
ALTER TABLE rooms ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE rooms ADD COLUMN language TEXT NOT NULL DEFAULT 'auto';
ALTER TABLE rooms ADD COLUMN scheduled_at INTEGER;
ALTER TABLE rooms ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public'
    CHECK (visibility IN ('public', 'unlisted', 'private'));
ALTER TABLE rooms ADD COLUMN host_id TEXT REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE rooms ADD COLUMN state TEXT NOT NULL DEFAULT 'ended'
    CHECK (state IN ('open', 'ended'));
-- The private room's invite link carries this token; the host can replace or clear it.
ALTER TABLE rooms ADD COLUMN invite_token TEXT;
ALTER TABLE rooms ADD COLUMN ended_at INTEGER;
CREATE INDEX rooms_lobby ON rooms(state, visibility, scheduled_at);

-- Stage roles that outlive a connection: a co-host or speaker who reloads the page is still one.
CREATE TABLE room_roles (
    room_id  TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role     TEXT NOT NULL CHECK (role IN ('cohost', 'speaker', 'removed')),
    PRIMARY KEY (room_id, user_id)
);

-- "Come up and speak" links for one person each: the first signed-in user to open one joins
-- the stage as a speaker (also in a private room).
CREATE TABLE speaker_invites (
    token       TEXT PRIMARY KEY NOT NULL,
    room_id     TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    created_by  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    used_by     TEXT REFERENCES users(id) ON DELETE SET NULL,
    revoked_at  INTEGER
);
