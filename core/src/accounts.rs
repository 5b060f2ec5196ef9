//! Accounts, sessions, API tokens, and rooms in the catalog. Secrets are never stored: sessions
//! and tokens are kept as SHA-256 digests made by the caller, passwords as argon2 hashes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::{Catalog, Error, Result, RoomId, Timestamp, UserId, Visibility};

/// An argon2id hash of `password` (PHC string), with a random salt.
pub fn hash_password(password: &str) -> Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use rand::RngCore as _;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| Error::Invalid(format!("cannot make a password salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Invalid(format!("cannot hash that password: {e}")))
}

/// True when `password` matches the stored hash (false for anything that is not one).
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A person with an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub is_admin: bool,
    pub created_at: Timestamp,
}

/// An API token as its owner sees it (never the secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    /// The first characters of the secret, to tell tokens apart.
    pub prefix: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// Whether people can be in a room now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoomState {
    /// Created (maybe scheduled) and not ended: people may join.
    Open,
    /// Ended by its host; kept for its recordings.
    Ended,
}

impl RoomState {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomState::Open => "open",
            RoomState::Ended => "ended",
        }
    }
}

impl FromStr for RoomState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "open" => Ok(RoomState::Open),
            "ended" => Ok(RoomState::Ended),
            other => Err(Error::Invalid(format!("unknown room state {other:?}"))),
        }
    }
}

/// A live audio room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Room {
    pub id: RoomId,
    pub title: String,
    pub description: String,
    /// `auto` or a Whisper language code.
    pub language: String,
    pub scheduled_at: Option<Timestamp>,
    /// Public: in the lobby; unlisted: by link; private: by invite link only.
    pub visibility: Visibility,
    pub host_id: Option<UserId>,
    pub state: RoomState,
    /// The token of the private invite link, when there is one (shown to hosts only).
    #[serde(skip_serializing)]
    pub invite_token: Option<String>,
    pub created_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// Live captions are offered in the room (its host may turn them off).
    pub captions: bool,
}

/// A role that outlives a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredRole {
    Cohost,
    Speaker,
    /// Removed by a host: may not come back.
    Removed,
}

impl StoredRole {
    pub fn as_str(self) -> &'static str {
        match self {
            StoredRole::Cohost => "cohost",
            StoredRole::Speaker => "speaker",
            StoredRole::Removed => "removed",
        }
    }
}

impl fmt::Display for StoredRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StoredRole {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cohost" => Ok(StoredRole::Cohost),
            "speaker" => Ok(StoredRole::Speaker),
            "removed" => Ok(StoredRole::Removed),
            other => Err(Error::Invalid(format!("unknown role {other:?}"))),
        }
    }
}

/// Checks a user-chosen text: trimmed, 1..=`max` characters, no control characters.
pub fn clean_text(what: &str, s: &str, max: usize, allow_empty: bool) -> Result<String> {
    let t = s.trim();
    if t.is_empty() && !allow_empty {
        return Err(Error::Invalid(format!("{what} must not be empty")));
    }
    if t.chars().count() > max {
        return Err(Error::Invalid(format!(
            "{what} must be at most {max} characters"
        )));
    }
    if t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::Invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(t.to_string())
}

const USER_COLUMNS: &str = "id, username, display_name, is_admin, created_at";
const ROOM_COLUMNS: &str = "id, title, description, language, scheduled_at, visibility, host_id, state, invite_token, created_at, ended_at, captions";

fn user_from_row(row: &SqliteRow) -> Result<User> {
    Ok(User {
        id: row.try_get::<String, _>("id")?.parse()?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        is_admin: row.try_get("is_admin")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

fn room_from_row(row: &SqliteRow) -> Result<Room> {
    Ok(Room {
        id: row.try_get::<String, _>("id")?.parse()?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        language: row.try_get("language")?,
        scheduled_at: row
            .try_get::<Option<i64>, _>("scheduled_at")?
            .map(Timestamp),
        visibility: row.try_get::<String, _>("visibility")?.parse()?,
        host_id: row
            .try_get::<Option<String>, _>("host_id")?
            .map(|u| u.parse())
            .transpose()?,
        state: row.try_get::<String, _>("state")?.parse()?,
        invite_token: row.try_get("invite_token")?,
        created_at: Timestamp(row.try_get("created_at")?),
        ended_at: row.try_get::<Option<i64>, _>("ended_at")?.map(Timestamp),
        captions: row.try_get("captions")?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Catalog {
    /// Creates an account. The first account of a catalog is an admin.
    pub async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        password_hash: &str,
    ) -> Result<User> {
        let username = username.trim();
        if username.is_empty()
            || username.len() > 32
            || !username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(Error::Invalid(
                "user name must be 1 to 32 letters, digits, '.', '_' or '-'".into(),
            ));
        }
        let display_name = clean_text("display name", display_name, 64, false)?;
        let id = UserId::new();
        let now = Timestamp::now();
        let done = sqlx::query(
            "INSERT INTO users (id, username, display_name, password_hash, is_admin, created_at)
             VALUES (?, ?, ?, ?, (SELECT COUNT(*) = 0 FROM users), ?)",
        )
        .bind(id.to_string())
        .bind(username)
        .bind(&display_name)
        .bind(password_hash)
        .bind(now.0)
        .execute(&self.pool)
        .await;
        match done {
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::Conflict(format!(
                    "the user name {username:?} is taken"
                )));
            }
            other => {
                other?;
            }
        }
        self.user(id).await
    }

    pub async fn user(&self, id: UserId) -> Result<User> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("user {id}")))?;
        user_from_row(&row)
    }

    /// The user and their password hash, by user name (any case).
    pub async fn user_login(&self, username: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = ?"
        ))
        .bind(username.trim())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from_row(&r)?, r.try_get("password_hash")?)))
            .transpose()
    }

    /// Every account, oldest first.
    pub async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Sets a new password (its hash) and ends every session of the account, in one
    /// transaction: whoever was signed in with the old password must sign in again. API tokens
    /// are left alone. Returns how many sessions were ended.
    pub async fn reset_password(&self, id: UserId, password_hash: &str) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("user {id}")));
        }
        let ended = sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(ended)
    }

    /// Grants or takes away admin rights.
    pub async fn set_admin(&self, id: UserId, admin: bool) -> Result<()> {
        let done = sqlx::query("UPDATE users SET is_admin = ? WHERE id = ?")
            .bind(admin)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("user {id}")));
        }
        Ok(())
    }

    pub async fn user_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Stores a session (by the digest of its cookie token).
    pub async fn create_session(
        &self,
        token_hash: &str,
        user: UserId,
        csrf: &str,
        expires_at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(user.to_string())
        .bind(csrf)
        .bind(Timestamp::now().0)
        .bind(expires_at.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user and CSRF token of an unexpired session.
    pub async fn session(&self, token_hash: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query(&format!(
            "SELECT {}, s.csrf FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ? AND s.expires_at > ?",
            USER_COLUMNS
                .split(", ")
                .map(|c| format!("u.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(token_hash)
        .bind(Timestamp::now().0)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from_row(&r)?, r.try_get("csrf")?)))
            .transpose()
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ? OR expires_at <= ?")
            .bind(token_hash)
            .bind(Timestamp::now().0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a new API token (by digest); `prefix` is shown in lists.
    pub async fn create_api_token(
        &self,
        user: UserId,
        name: &str,
        token_hash: &str,
        prefix: &str,
    ) -> Result<ApiToken> {
        let name = clean_text("token name", name, 64, false)?;
        let id = crate::JobId::new().to_string();
        let now = Timestamp::now();
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(user.to_string())
        .bind(&name)
        .bind(token_hash)
        .bind(prefix)
        .bind(now.0)
        .execute(&self.pool)
        .await?;
        Ok(ApiToken {
            id,
            name,
            prefix: prefix.into(),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        })
    }

    /// A user's tokens, newest first (revoked ones included, marked).
    pub async fn api_tokens(&self, user: UserId) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_tokens
             WHERE user_id = ? ORDER BY created_at DESC, id DESC",
        )
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiToken {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    prefix: r.try_get("prefix")?,
                    created_at: Timestamp(r.try_get("created_at")?),
                    last_used_at: r.try_get::<Option<i64>, _>("last_used_at")?.map(Timestamp),
                    revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(Timestamp),
                })
            })
            .collect()
    }

    /// Revokes one of `user`'s tokens.
    pub async fn revoke_api_token(&self, user: UserId, id: &str) -> Result<()> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? AND user_id = ?",
        )
        .bind(Timestamp::now().0)
        .bind(id)
        .bind(user.to_string())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!(
                "token {}",
                crate::truncate_for_message(id)
            )));
        }
        Ok(())
    }

    /// The owner of a live (unrevoked) token, noting its use.
    pub async fn user_by_api_token(&self, token_hash: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "UPDATE api_tokens SET last_used_at = ? WHERE token_hash = ? AND revoked_at IS NULL
             RETURNING user_id",
        )
        .bind(Timestamp::now().0)
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some(
                self.user(r.try_get::<String, _>("user_id")?.parse()?)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    /// Creates a room.
    pub async fn create_room(&self, room: &Room) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO rooms ({ROOM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(room.id.to_string())
        .bind(&room.title)
        .bind(&room.description)
        .bind(&room.language)
        .bind(room.scheduled_at.map(|t| t.0))
        .bind(room.visibility.as_str())
        .bind(room.host_id.map(|u| u.to_string()))
        .bind(room.state.as_str())
        .bind(&room.invite_token)
        .bind(room.created_at.0)
        .bind(room.ended_at.map(|t| t.0))
        .bind(room.captions)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn room(&self, id: RoomId) -> Result<Room> {
        let row = sqlx::query(&format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("room {id}")))?;
        room_from_row(&row)
    }

    /// Open public rooms for the lobby: those without a time first (live now), then the
    /// scheduled ones by time.
    pub async fn lobby_rooms(&self) -> Result<Vec<Room>> {
        let rows = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS} FROM rooms WHERE state = 'open' AND visibility = 'public'
             ORDER BY scheduled_at IS NOT NULL, scheduled_at, created_at DESC LIMIT 200"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(room_from_row).collect()
    }

    /// Ends a room.
    pub async fn end_room(&self, id: RoomId) -> Result<()> {
        sqlx::query(
            "UPDATE rooms SET state = 'ended', ended_at = COALESCE(ended_at, ?) WHERE id = ?",
        )
        .bind(Timestamp::now().0)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Turns live captions on or off for a room.
    pub async fn set_room_captions(&self, id: RoomId, on: bool) -> Result<()> {
        sqlx::query("UPDATE rooms SET captions = ? WHERE id = ?")
            .bind(on)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets (or clears) the private invite token.
    pub async fn set_room_invite(&self, id: RoomId, token: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE rooms SET invite_token = ? WHERE id = ?")
            .bind(token)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A user's lasting role in a room, if any.
    pub async fn room_role(&self, room: RoomId, user: UserId) -> Result<Option<StoredRole>> {
        let r: Option<String> =
            sqlx::query_scalar("SELECT role FROM room_roles WHERE room_id = ? AND user_id = ?")
                .bind(room.to_string())
                .bind(user.to_string())
                .fetch_optional(&self.pool)
                .await?;
        r.map(|s| s.parse()).transpose()
    }

    /// Sets (or, with `None`, clears) a user's lasting role in a room.
    pub async fn set_room_role(
        &self,
        room: RoomId,
        user: UserId,
        role: Option<StoredRole>,
    ) -> Result<()> {
        match role {
            Some(r) => {
                sqlx::query(
                    "INSERT INTO room_roles (room_id, user_id, role) VALUES (?, ?, ?)
                     ON CONFLICT (room_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(room.to_string())
                .bind(user.to_string())
                .bind(r.as_str())
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM room_roles WHERE room_id = ? AND user_id = ?")
                    .bind(room.to_string())
                    .bind(user.to_string())
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Stores a speaker invite link's token.
    pub async fn create_speaker_invite(&self, room: RoomId, by: UserId, token: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO speaker_invites (token, room_id, created_by, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(token)
        .bind(room.to_string())
        .bind(by.to_string())
        .bind(Timestamp::now().0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Uses a speaker invite for `user`: true when it was valid for `room` and unused (or
    /// already used by this same user).
    pub async fn use_speaker_invite(
        &self,
        room: RoomId,
        token: &str,
        user: UserId,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE speaker_invites SET used_by = ?1
             WHERE token = ?2 AND room_id = ?3 AND revoked_at IS NULL
               AND (used_by IS NULL OR used_by = ?1)",
        )
        .bind(user.to_string())
        .bind(token)
        .bind(room.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod password_tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct hors", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
