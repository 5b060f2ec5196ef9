//! The catalog: who, what and when, in one SQLite file (WAL mode, foreign keys on,
//! migrations embedded in the binary).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use crate::{
    Error, Recording, RecordingId, RecordingSource, RecordingState, Result, RoomId, Speaker,
    SpeakerId, Timestamp, Track, TrackId, UserId,
};

/// A handle on the catalog database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub(crate) pool: SqlitePool,
}

pub(crate) const RECORDING_COLUMNS: &str = "id, room_id, title, source, state, recovered, error, started_at, ended_at, duration_ms, language, visibility, owner_id, description";

impl Catalog {
    /// Opens (creating if needed) the catalog at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Catalog> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        Self::connect(path, true).await
    }

    /// Opens the catalog at `path` only if it exists (bringing its schema up to date); never
    /// creates a file or directory. A missing catalog is [`Error::NoCatalog`], so a command
    /// that only reads, run in the wrong place, says so instead of showing an empty catalog.
    pub async fn open_existing(path: &Path) -> Result<Catalog> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => Self::connect(path, false).await,
            Ok(_) => Err(Error::Invalid(format!(
                "{} is not a catalog file",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::NoCatalog(path.to_path_buf()))
            }
            Err(e) => Err(Error::io("open", path, e)),
        }
    }

    async fn connect(path: &Path, create: bool) -> Result<Catalog> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Catalog { pool })
    }

    /// The connection pool, for crates that add their own tables through migrations here.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Inserts a new recording with its tracks.
    pub async fn create_recording(&self, rec: &Recording, tracks: &[Track]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if let Some(room) = rec.room_id {
            sqlx::query("INSERT OR IGNORE INTO rooms (id, title, created_at) VALUES (?, ?, ?)")
                .bind(room.to_string())
                .bind(&rec.title)
                .bind(rec.started_at.0)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO recordings (id, room_id, title, source, state, recovered, error, started_at, ended_at, duration_ms, language, visibility, owner_id, description)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(rec.id.to_string())
        .bind(rec.room_id.map(|r| r.to_string()))
        .bind(&rec.title)
        .bind(rec.source.as_str())
        .bind(rec.state.as_str())
        .bind(rec.recovered)
        .bind(&rec.error)
        .bind(rec.started_at.0)
        .bind(rec.ended_at.map(|t| t.0))
        .bind(rec.duration_ms)
        .bind(&rec.language)
        .bind(rec.visibility.as_str())
        .bind(rec.owner_id.map(|u| u.to_string()))
        .bind(&rec.description)
        .execute(&mut *tx)
        .await?;
        insert_tracks(&mut tx, rec.id, tracks).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces a recording's tracks (as the manifest changes while recording).
    pub async fn set_tracks(&self, id: RecordingId, tracks: &[Track]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM tracks WHERE recording_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        insert_tracks(&mut tx, id, tracks).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a recording finished: its tracks, length, end time and state in one transaction.
    pub async fn finish_recording(
        &self,
        id: RecordingId,
        tracks: &[Track],
        ended_at: Timestamp,
        recovered: bool,
    ) -> Result<()> {
        let duration = tracks
            .iter()
            .map(|t| t.offset_ms + t.duration_ms)
            .max()
            .unwrap_or(0);
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE recordings SET state = 'recorded', ended_at = ?, duration_ms = ?, recovered = ?, error = NULL
             WHERE id = ?",
        )
        .bind(ended_at.0)
        .bind(duration)
        .bind(recovered)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("recording {id}")));
        }
        sqlx::query("DELETE FROM tracks WHERE recording_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        insert_tracks(&mut tx, id, tracks).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves a recording to `state`.
    pub async fn set_state(&self, id: RecordingId, state: RecordingState) -> Result<()> {
        self.set_recording_text(
            id,
            "UPDATE recordings SET state = ? WHERE id = ?",
            state.as_str(),
        )
        .await
    }

    /// Runs a one-value `UPDATE … WHERE id = ?` on a recording; `NotFound` when it is absent.
    pub(crate) async fn set_recording_text(
        &self,
        id: RecordingId,
        sql: &str,
        value: &str,
    ) -> Result<()> {
        let done = sqlx::query(sql)
            .bind(value)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("recording {id}")));
        }
        Ok(())
    }

    /// Marks a recording failed with a reason that users will read.
    pub async fn fail_recording(&self, id: RecordingId, reason: &str) -> Result<()> {
        sqlx::query("UPDATE recordings SET state = 'failed', error = ? WHERE id = ?")
            .bind(reason)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// One recording.
    pub async fn recording(&self, id: RecordingId) -> Result<Recording> {
        let row = sqlx::query(&format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings WHERE id = ?"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("recording {id}")))?;
        recording_from_row(&row)
    }

    /// Finds a recording by its full id or a unique prefix of at least 4 characters.
    pub async fn find_recording(&self, id_or_prefix: &str) -> Result<Recording> {
        let s = id_or_prefix.trim();
        if let Ok(id) = s.parse::<RecordingId>() {
            return self.recording(id).await;
        }
        if s.len() < 4 || !s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(Error::NotFound(format!(
                "recording {:?}",
                crate::truncate_for_message(s)
            )));
        }
        let rows = sqlx::query(&format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings WHERE id LIKE ? || '%' LIMIT 2"
        ))
        .bind(s.to_ascii_lowercase())
        .fetch_all(&self.pool)
        .await?;
        match rows.as_slice() {
            [one] => recording_from_row(one),
            [] => Err(Error::NotFound(format!("recording {s:?}"))),
            _ => Err(Error::Invalid(format!(
                "recording id prefix {s:?} is ambiguous; give more characters"
            ))),
        }
    }

    /// All recordings, newest first.
    pub async fn recordings(&self) -> Result<Vec<Recording>> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings ORDER BY started_at DESC, id DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(recording_from_row).collect()
    }

    /// Recordings in one state, oldest first.
    pub async fn recordings_in_state(&self, state: RecordingState) -> Result<Vec<Recording>> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings WHERE state = ? ORDER BY started_at, id"
        ))
        .bind(state.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(recording_from_row).collect()
    }

    /// A recording's tracks in their order.
    pub async fn tracks(&self, id: RecordingId) -> Result<Vec<Track>> {
        let rows = sqlx::query(
            "SELECT id, recording_id, speaker_id, speaker_name, file, offset_ms, duration_ms
             FROM tracks WHERE recording_id = ? ORDER BY position",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Track {
                    id: parse_col::<TrackId>(row, "id")?,
                    recording_id: parse_col::<RecordingId>(row, "recording_id")?,
                    speaker: Speaker {
                        id: parse_col::<SpeakerId>(row, "speaker_id")?,
                        name: row.try_get("speaker_name")?,
                    },
                    file: row.try_get("file")?,
                    offset_ms: row.try_get("offset_ms")?,
                    duration_ms: row.try_get("duration_ms")?,
                })
            })
            .collect()
    }

    /// Deletes a recording and (by cascade) its tracks.
    pub async fn delete_recording(&self, id: RecordingId) -> Result<()> {
        let done = sqlx::query("DELETE FROM recordings WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("recording {id}")));
        }
        Ok(())
    }
}

async fn insert_tracks(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: RecordingId,
    tracks: &[Track],
) -> Result<()> {
    for (position, t) in tracks.iter().enumerate() {
        sqlx::query(
            "INSERT INTO tracks (id, recording_id, position, speaker_id, speaker_name, file, offset_ms, duration_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(t.id.to_string())
        .bind(id.to_string())
        .bind(position as i64)
        .bind(t.speaker.id.to_string())
        .bind(&t.speaker.name)
        .bind(&t.file)
        .bind(t.offset_ms)
        .bind(t.duration_ms)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn parse_col<T: FromStr<Err = Error>>(row: &SqliteRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    s.parse()
}

pub(crate) fn recording_from_row(row: &SqliteRow) -> Result<Recording> {
    let room: Option<String> = row.try_get("room_id")?;
    Ok(Recording {
        id: parse_col(row, "id")?,
        room_id: room.map(|r| r.parse::<RoomId>()).transpose()?,
        title: row.try_get("title")?,
        source: parse_col::<RecordingSource>(row, "source")?,
        state: parse_col::<RecordingState>(row, "state")?,
        recovered: row.try_get("recovered")?,
        error: row.try_get("error")?,
        started_at: Timestamp(row.try_get("started_at")?),
        ended_at: row.try_get::<Option<i64>, _>("ended_at")?.map(Timestamp),
        duration_ms: row.try_get("duration_ms")?,
        language: row.try_get("language")?,
        visibility: parse_col(row, "visibility")?,
        owner_id: row
            .try_get::<Option<String>, _>("owner_id")?
            .map(|u| u.parse::<UserId>())
            .transpose()?,
        description: row.try_get("description")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opening_an_existing_catalog_never_creates_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("catalog.sqlite");
        let e = Catalog::open_existing(&path).await.unwrap_err();
        assert!(matches!(&e, Error::NoCatalog(p) if *p == path), "{e}");
        assert!(!dir.path().join("data").exists(), "nothing is created");
        let c = Catalog::open(&path).await.unwrap();
        c.create_recording(&recording("kept"), &[]).await.unwrap();
        c.close().await;
        let c = Catalog::open_existing(&path).await.unwrap();
        assert_eq!(c.recordings().await.unwrap()[0].title, "kept");
    }

    fn recording(title: &str) -> Recording {
        Recording {
            id: RecordingId::new(),
            room_id: None,
            title: title.into(),
            source: RecordingSource::Import,
            state: RecordingState::Recording,
            recovered: false,
            error: None,
            started_at: Timestamp::now(),
            ended_at: None,
            duration_ms: None,
            language: "auto".into(),
            visibility: Default::default(),
            owner_id: None,
            description: String::new(),
        }
    }

    fn track(rec: RecordingId, name: &str) -> Track {
        let id = TrackId::new();
        Track {
            id,
            recording_id: rec,
            speaker: Speaker {
                id: SpeakerId::new(),
                name: name.into(),
            },
            file: format!("tracks/{id}.opus"),
            offset_ms: 0,
            duration_ms: 1000,
        }
    }

    #[tokio::test]
    async fn recordings_and_tracks_round_trip_in_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        let cat = Catalog::open(&path).await.unwrap();
        let rec = recording("Morning <b>show</b>");
        let tracks = vec![track(rec.id, "Ana"), track(rec.id, "Bo")];
        cat.create_recording(&rec, &tracks).await.unwrap();
        assert_eq!(cat.recording(rec.id).await.unwrap(), rec);
        assert_eq!(cat.tracks(rec.id).await.unwrap(), tracks);

        let mut t2 = tracks.clone();
        t2[1].duration_ms = 5000;
        t2[1].offset_ms = 250;
        cat.finish_recording(rec.id, &t2, Timestamp::now(), true)
            .await
            .unwrap();
        let got = cat.recording(rec.id).await.unwrap();
        assert_eq!(got.state, RecordingState::Recorded);
        assert!(got.recovered);
        assert_eq!(got.duration_ms, Some(5250));

        let prefix = &rec.id.to_string()[..13];
        assert_eq!(cat.find_recording(prefix).await.unwrap().id, rec.id);
        cat.close().await;

        // Reopening runs no migration twice and keeps everything.
        let cat = Catalog::open(&path).await.unwrap();
        assert_eq!(cat.recordings().await.unwrap().len(), 1);
        let wal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(cat.pool())
            .await
            .unwrap();
        assert_eq!(wal, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(cat.pool())
            .await
            .unwrap();
        assert_eq!(fk, 1);

        cat.delete_recording(rec.id).await.unwrap();
        assert!(
            cat.tracks(rec.id).await.unwrap().is_empty(),
            "tracks cascade"
        );
        assert!(cat.recording(rec.id).await.unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn tracks_of_an_unknown_recording_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&dir.path().join("c.sqlite")).await.unwrap();
        let err = cat
            .set_tracks(RecordingId::new(), &[track(RecordingId::new(), "x")])
            .await;
        assert!(err.is_err(), "foreign keys are enforced");
    }
}
