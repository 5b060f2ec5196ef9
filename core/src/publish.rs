//! Who may see and change a recording, and the catalog operations behind publishing: lists with
//! cursors, speaker names and transcript corrections (the search outbox triggers re-index both).

use sqlx::Row;

use crate::catalog::{RECORDING_COLUMNS, recording_from_row};
use crate::{Catalog, Error, Recording, RecordingId, Result, SpeakerId, User, UserId, Visibility};

/// The longest recording description, in characters.
pub const MAX_DESCRIPTION: usize = 4000;

/// What one caller may do with one recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Access {
    /// See the replay, transcript, mix and search hits.
    pub view: bool,
    /// Change visibility, names and lines; download every track; see its jobs.
    pub manage: bool,
    /// The caller spoke in it (their own track is theirs to download).
    pub speaker: bool,
}

impl Access {
    /// The rules, in one place: admins and the owner manage; speakers and anyone with the link
    /// of an unlisted or public recording view; a private recording is invisible to the rest.
    pub fn of(rec: &Recording, speakers: &[SpeakerId], user: Option<&User>) -> Access {
        let admin = user.is_some_and(|u| u.is_admin);
        let owner = user.is_some_and(|u| rec.owner_id == Some(u.id));
        let speaker = user.is_some_and(|u| {
            let id = u.id.to_string();
            speakers.iter().any(|s| s.to_string() == id)
        });
        let manage = admin || owner;
        Access {
            view: manage || speaker || rec.visibility != Visibility::Private,
            manage,
            speaker,
        }
    }

    /// Whether the caller may download the track of `track_speaker`.
    pub fn track(&self, track_speaker: &SpeakerId, user: Option<&User>) -> bool {
        self.manage || user.is_some_and(|u| u.id.to_string() == track_speaker.to_string())
    }
}

/// Whose list of recordings.
#[derive(Clone, Copy, Debug)]
pub enum ListViewer<'a> {
    /// Published public recordings only.
    Anonymous,
    /// Public ones, plus those the user owns or spoke in.
    User(&'a User),
}

/// A page of a newest-first list: where the next page starts, when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub started_at: i64,
    pub id: String,
}

impl Cursor {
    /// The opaque text form (`<ms>.<id>`).
    pub fn encode(&self) -> String {
        format!("{}.{}", self.started_at, self.id)
    }

    /// Parses what [`Cursor::encode`] made.
    pub fn decode(s: &str) -> Result<Cursor> {
        let bad = || {
            Error::Invalid(format!(
                "cursor {:?} is not one this server gave out",
                crate::truncate_for_message(s)
            ))
        };
        let (ms, id) = s.split_once('.').ok_or_else(bad)?;
        let started_at = ms.parse().map_err(|_| bad())?;
        let id: RecordingId = id.parse().map_err(|_| bad())?;
        Ok(Cursor {
            started_at,
            id: id.to_string(),
        })
    }
}

impl Catalog {
    /// Speaker ids of a recording's tracks.
    pub async fn speaker_ids(&self, id: RecordingId) -> Result<Vec<SpeakerId>> {
        Ok(self
            .tracks(id)
            .await?
            .into_iter()
            .map(|t| t.speaker.id)
            .collect())
    }

    /// Recordings `viewer` may list, newest first, `limit` from `after`; with `owner`, only that
    /// account's. Returns the page and the cursor of the next one.
    pub async fn list_recordings(
        &self,
        viewer: ListViewer<'_>,
        owner: Option<UserId>,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<(Vec<Recording>, Option<Cursor>)> {
        let mut sql = format!("SELECT {RECORDING_COLUMNS} FROM recordings r WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        match viewer {
            ListViewer::User(u) if u.is_admin => {}
            ListViewer::User(u) => {
                sql.push_str(
                    " AND (r.visibility = 'public' OR r.owner_id = ?
                      OR EXISTS (SELECT 1 FROM tracks t WHERE t.recording_id = r.id AND t.speaker_id = ?))",
                );
                binds.push(u.id.to_string());
                binds.push(u.id.to_string());
            }
            ListViewer::Anonymous => sql.push_str(" AND r.visibility = 'public'"),
        }
        if let Some(o) = owner {
            sql.push_str(" AND r.owner_id = ?");
            binds.push(o.to_string());
        }
        if after.is_some() {
            sql.push_str(" AND (r.started_at < ? OR (r.started_at = ? AND r.id < ?))");
        }
        sql.push_str(" ORDER BY r.started_at DESC, r.id DESC LIMIT ?");
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        if let Some(c) = after {
            q = q.bind(c.started_at).bind(c.started_at).bind(&c.id);
        }
        let rows = q.bind(i64::from(limit) + 1).fetch_all(self.pool()).await?;
        let mut out: Vec<Recording> = rows.iter().map(recording_from_row).collect::<Result<_>>()?;
        let next = if out.len() > limit as usize {
            out.truncate(limit as usize);
            out.last().map(|r| Cursor {
                started_at: r.started_at.0,
                id: r.id.to_string(),
            })
        } else {
            None
        };
        Ok((out, next))
    }

    /// Renames a speaker in a recording: their tracks and every transcript line.
    pub async fn rename_speaker(
        &self,
        id: RecordingId,
        speaker: SpeakerId,
        name: &str,
    ) -> Result<()> {
        let name = crate::clean_text("speaker name", name, 100, false)?;
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE tracks SET speaker_name = ? WHERE recording_id = ? AND speaker_id = ?",
        )
        .bind(&name)
        .bind(id.to_string())
        .bind(speaker.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!(
                "speaker {speaker} in recording {id}"
            )));
        }
        sqlx::query(
            "UPDATE segments SET speaker_name = ? WHERE recording_id = ? AND speaker_id = ?",
        )
        .bind(&name)
        .bind(id.to_string())
        .bind(speaker.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the text of transcript line `index` (0-based, in transcript order). The words
    /// that are still there keep their timings; see [`crate::retime_words`].
    pub async fn correct_segment(&self, id: RecordingId, index: i64, text: &str) -> Result<()> {
        let text = crate::clean_text("transcript line", text, 5000, false)?;
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(
            "SELECT start_ms, end_ms, words FROM segments WHERE recording_id = ? AND position = ?",
        )
        .bind(id.to_string())
        .bind(index)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::NotFound(format!("line {index} of recording {id}")))?;
        let words: String = row.try_get("words")?;
        let old: Vec<crate::Word> = serde_json::from_str(&words).map_err(|source| Error::Json {
            what: "segment words".into(),
            source,
        })?;
        let words = crate::retime_words(
            &old,
            row.try_get("start_ms")?,
            row.try_get("end_ms")?,
            &text,
        );
        let words = serde_json::to_string(&words).map_err(|source| Error::Json {
            what: "segment words".into(),
            source,
        })?;
        sqlx::query(
            "UPDATE segments SET text = ?, words = ? WHERE recording_id = ? AND position = ?",
        )
        .bind(&text)
        .bind(words)
        .bind(id.to_string())
        .bind(index)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Corrects a line's English translation (the host's fix of the machine's). Empty text
    /// removes the translation. Search follows through the outbox trigger.
    pub async fn correct_translation(&self, id: RecordingId, index: i64, text: &str) -> Result<()> {
        let text = crate::clean_text("translation", text, 5000, true)?;
        let done = sqlx::query(
            "UPDATE segments SET translation_lang = CASE WHEN ?1 = '' THEN NULL ELSE 'en' END,
                    translation_text = NULLIF(?1, '')
             WHERE recording_id = ?2 AND position = ?3",
        )
        .bind(&text)
        .bind(id.to_string())
        .bind(index)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("line {index} of recording {id}")));
        }
        Ok(())
    }

    /// An account by its user name.
    pub async fn user_by_username(&self, username: &str) -> Result<User> {
        let row = sqlx::query("SELECT id FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!("user {:?}", crate::truncate_for_message(username)))
            })?;
        let id: String = row.try_get("id")?;
        self.user(id.parse()?).await
    }
}

/// Reads `(sort key, id)` rows of a newest-first page of `limit` (the query asked for one more)
/// into the ids of the page and the cursor of the next one.
fn page_of<T: std::str::FromStr<Err = Error>>(
    rows: &[sqlx::sqlite::SqliteRow],
    limit: u32,
) -> Result<(Vec<T>, Option<Cursor>)> {
    let mut keys = Vec::with_capacity(rows.len());
    for r in rows {
        let at: i64 = r.try_get("at")?;
        let id: String = r.try_get("id")?;
        keys.push((at, id));
    }
    let next = if keys.len() > limit as usize {
        keys.truncate(limit as usize);
        keys.last().map(|(at, id)| Cursor {
            started_at: *at,
            id: id.clone(),
        })
    } else {
        None
    };
    let ids = keys
        .iter()
        .map(|(_, id)| id.parse())
        .collect::<Result<_>>()?;
    Ok((ids, next))
}

impl Catalog {
    /// Sets a recording's title (checked like every user-chosen text).
    pub async fn set_recording_title(&self, id: RecordingId, title: &str) -> Result<()> {
        let title = crate::clean_text("title", title, 200, false)?;
        self.set_recording_text(id, "UPDATE recordings SET title = ? WHERE id = ?", &title)
            .await
    }

    /// The recordings made in a room, newest first (a room can be recorded more than once).
    pub async fn recordings_of_room(&self, room: crate::RoomId) -> Result<Vec<Recording>> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings WHERE room_id = ? ORDER BY started_at DESC, id DESC"
        ))
        .bind(room.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(recording_from_row).collect()
    }

    /// Sets a recording's description: plain text of up to 4000 characters, lines kept;
    /// empty clears it.
    pub async fn set_recording_description(&self, id: RecordingId, text: &str) -> Result<()> {
        // Forms send line breaks as CR LF.
        let text = text.replace("\r\n", "\n");
        let text = crate::clean_text("description", &text, MAX_DESCRIPTION, true)?;
        self.set_recording_text(
            id,
            "UPDATE recordings SET description = ? WHERE id = ?",
            &text,
        )
        .await
    }

    /// The lobby as pages: open public rooms, newest first, `limit` from `after` (the cursor's
    /// time is the room's creation). Returns the page and the cursor of the next one.
    pub async fn list_rooms(
        &self,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<(Vec<crate::Room>, Option<Cursor>)> {
        let mut sql = String::from(
            "SELECT created_at AS at, id FROM rooms WHERE state = 'open' AND visibility = 'public'",
        );
        if after.is_some() {
            sql.push_str(" AND (created_at < ? OR (created_at = ? AND id < ?))");
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?");
        let mut q = sqlx::query(&sql);
        if let Some(c) = after {
            q = q.bind(c.started_at).bind(c.started_at).bind(&c.id);
        }
        let rows = q.bind(i64::from(limit) + 1).fetch_all(self.pool()).await?;
        let (ids, next) = page_of::<crate::RoomId>(&rows, limit)?;
        let mut rooms = Vec::with_capacity(ids.len());
        for id in ids {
            match self.room(id).await {
                Ok(r) => rooms.push(r),
                // Deleted since the page was read.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok((rooms, next))
    }

    /// Jobs of the recordings `user` manages (all of them for an admin), newest first, `limit`
    /// from `after`. Returns the page and the cursor of the next one.
    pub async fn list_jobs(
        &self,
        user: &User,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<(Vec<crate::Job>, Option<Cursor>)> {
        let mut sql = String::from(
            "SELECT j.created_at AS at, j.id AS id FROM jobs j JOIN recordings r ON r.id = j.recording_id
             WHERE (? OR r.owner_id = ?)",
        );
        if after.is_some() {
            sql.push_str(" AND (j.created_at < ? OR (j.created_at = ? AND j.id < ?))");
        }
        sql.push_str(" ORDER BY j.created_at DESC, j.id DESC LIMIT ?");
        let mut q = sqlx::query(&sql)
            .bind(user.is_admin)
            .bind(user.id.to_string());
        if let Some(c) = after {
            q = q.bind(c.started_at).bind(c.started_at).bind(&c.id);
        }
        let rows = q.bind(i64::from(limit) + 1).fetch_all(self.pool()).await?;
        let (ids, next) = page_of::<crate::JobId>(&rows, limit)?;
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            match self.job(id).await {
                Ok(j) => jobs.push(j),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok((jobs, next))
    }
}
