//! Webhooks in the catalog: the URLs users register, the event outbox that triggers fill
//! (`migrations/0005_webhooks.sql`), and deliveries with their outcome. Sending is the web
//! service's business; this module only decides who gets what and keeps the books.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::{Catalog, DeliveryId, Error, RecordingId, Result, Timestamp, UserId, WebhookId};

/// Every event type, in the order they happen to a recording.
pub const WEBHOOK_EVENTS: [&str; 2] = ["recording.finished", "transcript.ready"];

/// A registered URL as its owner sees it (never the secret, which is shown once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: WebhookId,
    pub user_id: UserId,
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    pub created_at: Timestamp,
}

/// An event taken from the outbox, with the snapshot of its recording.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEvent {
    /// Minted when the event is fanned out; the same in every delivery of the event.
    pub id: String,
    /// `recording.finished` or `transcript.ready`.
    pub kind: String,
    pub recording_id: RecordingId,
    /// `{id, title, state, visibility, duration_ms, language, source, owner_id}` at the moment
    /// of the event.
    pub recording: serde_json::Value,
    pub created_at: Timestamp,
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not yet accepted by the receiver; `next_attempt_at` says when it is tried next.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed.
    Failed,
}

impl DeliveryState {
    /// The catalog's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => DeliveryState::Pending,
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            other => return Err(Error::Invalid(format!("unknown delivery state {other:?}"))),
        })
    }
}

/// One event for one webhook, with its outcome so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub event_id: String,
    pub event: String,
    pub recording_id: RecordingId,
    pub state: DeliveryState,
    pub attempts: u32,
    /// When a pending delivery is tried next (or, while it is being sent, when that attempt
    /// is given up on); none once delivered or failed.
    pub next_attempt_at: Option<Timestamp>,
    /// The HTTP status of the last answer, if there was one.
    pub last_status: Option<u16>,
    /// Why the last attempt failed; none after success.
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When it was delivered or given up.
    pub finished_at: Option<Timestamp>,
}

/// A delivery claimed for one attempt: everything the sender needs.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub url: String,
    pub secret: String,
    pub event: String,
    pub payload: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered { status: u16 },
    /// It failed and is tried again at `at`.
    Retry {
        status: Option<u16>,
        error: String,
        at: Timestamp,
    },
    /// It failed for the last time.
    Failed { status: Option<u16>, error: String },
}

const DELIVERY_COLUMNS: &str = "d.id, d.webhook_id, d.event_id, d.event, d.recording_id, d.state, d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.updated_at, d.finished_at";

fn webhook_from_row(row: &SqliteRow) -> Result<Webhook> {
    Ok(Webhook {
        id: row.try_get::<String, _>("id")?.parse()?,
        user_id: row.try_get::<String, _>("user_id")?.parse()?,
        url: row.try_get("url")?,
        events: row
            .try_get::<String, _>("events")?
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

fn delivery_from_row(row: &SqliteRow) -> Result<WebhookDelivery> {
    Ok(WebhookDelivery {
        id: row.try_get::<String, _>("id")?.parse()?,
        webhook_id: row.try_get::<String, _>("webhook_id")?.parse()?,
        event_id: row.try_get("event_id")?,
        event: row.try_get("event")?,
        recording_id: row.try_get::<String, _>("recording_id")?.parse()?,
        state: DeliveryState::parse(&row.try_get::<String, _>("state")?)?,
        attempts: row
            .try_get::<i64, _>("attempts")?
            .clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_at: row
            .try_get::<Option<i64>, _>("next_attempt_at")?
            .map(Timestamp),
        last_status: row
            .try_get::<Option<i64>, _>("last_status")?
            .and_then(|s| u16::try_from(s).ok()),
        last_error: row.try_get("last_error")?,
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
        finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(Timestamp),
    })
}

impl Catalog {
    /// Registers a webhook for `user`. `url` and `events` must have been checked by the caller
    /// (the web service knows URLs); here only the per-user limit is enforced, in the same
    /// transaction as the insert.
    pub async fn create_webhook(
        &self,
        user: UserId,
        url: &str,
        secret: &str,
        events: &[&str],
        max_per_user: u32,
    ) -> Result<Webhook> {
        if let Some(e) = events.iter().find(|e| !WEBHOOK_EVENTS.contains(e)) {
            return Err(Error::Invalid(format!("unknown event type {e:?}")));
        }
        let webhook = Webhook {
            id: WebhookId::new(),
            user_id: user,
            url: url.to_string(),
            events: events.iter().map(|e| e.to_string()).collect(),
            created_at: Timestamp::now(),
        };
        // In one transaction: an insert by someone else meanwhile makes this one fail (the
        // snapshot is stale) rather than go over the limit.
        let mut tx = self.pool.begin().await?;
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM webhooks WHERE user_id = ?")
            .bind(user.to_string())
            .fetch_one(&mut *tx)
            .await?;
        if count >= i64::from(max_per_user) {
            return Err(Error::Invalid(format!(
                "you have {count} webhook(s), the most allowed; delete one first"
            )));
        }
        sqlx::query(
            "INSERT INTO webhooks (id, user_id, url, secret, events, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(webhook.id.to_string())
        .bind(user.to_string())
        .bind(url)
        .bind(secret)
        .bind(webhook.events.join(" "))
        .bind(webhook.created_at.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(webhook)
    }

    /// `user`'s webhooks, newest first.
    pub async fn webhooks(&self, user: UserId) -> Result<Vec<Webhook>> {
        let rows = sqlx::query(
            "SELECT id, user_id, url, events, created_at FROM webhooks WHERE user_id = ?
             ORDER BY created_at DESC, id DESC",
        )
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    /// Deletes one of `user`'s webhooks with its deliveries and secret; `NotFound` when `user`
    /// has no such webhook (whoever else may have it).
    pub async fn delete_webhook(&self, user: UserId, id: WebhookId) -> Result<()> {
        let done = sqlx::query("DELETE FROM webhooks WHERE id = ? AND user_id = ?")
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("webhook {id}")));
        }
        Ok(())
    }

    /// The latest `limit` deliveries of one of `user`'s webhooks, newest first; `NotFound`
    /// when `user` has no such webhook.
    pub async fn webhook_deliveries(
        &self,
        user: UserId,
        id: WebhookId,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        let mine: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM webhooks WHERE id = ? AND user_id = ?")
                .bind(id.to_string())
                .bind(user.to_string())
                .fetch_optional(&self.pool)
                .await?;
        if mine.is_none() {
            return Err(Error::NotFound(format!("webhook {id}")));
        }
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.webhook_id = ?
             ORDER BY d.created_at DESC, d.id DESC LIMIT ?"
        ))
        .bind(id.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// The latest `limit` deliveries of all of `user`'s webhooks, newest first.
    pub async fn recent_webhook_deliveries(
        &self,
        user: UserId,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
             JOIN webhooks w ON w.id = d.webhook_id WHERE w.user_id = ?
             ORDER BY d.created_at DESC, d.id DESC LIMIT ?"
        ))
        .bind(user.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// Turns up to `limit` events from the outbox into deliveries, one per webhook that gets
    /// it: the recording owner's and every admin's, registered before the event and listening
    /// to its type. `payload` makes the body from the event (once, so every attempt and every
    /// receiver gets the same bytes). Deliveries are added and the events removed in one
    /// transaction. Returns the number of events handled.
    pub async fn fan_out_webhook_events(
        &self,
        limit: u32,
        payload: impl Fn(&WebhookEvent) -> String,
    ) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let events = sqlx::query(
            "SELECT seq, type, recording_id, owner_id, recording, created_at FROM webhook_events
             ORDER BY seq LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if events.is_empty() {
            return Ok(0);
        }
        let now = Timestamp::now().0;
        for row in &events {
            let seq: i64 = row.try_get("seq")?;
            let owner: Option<String> = row.try_get("owner_id")?;
            let snapshot: String = row.try_get("recording")?;
            let event = WebhookEvent {
                id: crate::JobId::new().as_uuid().simple().to_string(),
                kind: row.try_get("type")?,
                recording_id: row.try_get::<String, _>("recording_id")?.parse()?,
                recording: serde_json::from_str(&snapshot)
                    .map_err(|e| Error::Invalid(format!("webhook event {seq}: {e}")))?,
                created_at: Timestamp(row.try_get("created_at")?),
            };
            let hooks: Vec<(String,)> = sqlx::query_as(
                "SELECT w.id FROM webhooks w JOIN users u ON u.id = w.user_id
                 WHERE (w.user_id = ?1 OR u.is_admin = 1)
                   AND w.created_at <= ?2
                   AND instr(' ' || w.events || ' ', ' ' || ?3 || ' ') > 0",
            )
            .bind(owner)
            .bind(event.created_at.0)
            .bind(&event.kind)
            .fetch_all(&mut *tx)
            .await?;
            if !hooks.is_empty() {
                let body = payload(&event);
                for (hook,) in hooks {
                    sqlx::query(
                        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event, recording_id,
                             payload, state, attempts, next_attempt_at, created_at, updated_at)
                         VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                    )
                    .bind(DeliveryId::new().to_string())
                    .bind(hook)
                    .bind(&event.id)
                    .bind(&event.kind)
                    .bind(event.recording_id.to_string())
                    .bind(&body)
                    .bind(now)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            sqlx::query("DELETE FROM webhook_events WHERE seq = ?")
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(events.len())
    }

    /// Claims up to `limit` due deliveries for one attempt each: at most one per webhook (the
    /// oldest due), none of the webhooks in `busy`. Each claimed delivery's attempt count goes
    /// up and its next attempt moves `lease_ms` ahead, so a sender that dies mid-attempt leaves
    /// it to be tried again then.
    pub async fn claim_webhook_deliveries(
        &self,
        limit: u32,
        lease_ms: i64,
        busy: &[WebhookId],
    ) -> Result<Vec<DueDelivery>> {
        let now = Timestamp::now().0;
        let busy = serde_json::to_string(&busy.iter().map(|b| b.to_string()).collect::<Vec<_>>())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT d.id, d.webhook_id, d.event, d.payload, d.attempts, w.url, w.secret
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.state = 'pending' AND d.next_attempt_at <= ?1
               AND d.webhook_id NOT IN (SELECT value FROM json_each(?2))
               AND d.id = (SELECT e.id FROM webhook_deliveries e
                           WHERE e.webhook_id = d.webhook_id AND e.state = 'pending'
                             AND e.next_attempt_at <= ?1
                           ORDER BY e.next_attempt_at, e.created_at, e.id LIMIT 1)
             ORDER BY d.next_attempt_at, d.created_at, d.id LIMIT ?3",
        )
        .bind(now)
        .bind(&busy)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            let attempts: i64 = row.try_get("attempts")?;
            // Another process may have claimed it since: then its due time has moved.
            let done = sqlx::query(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?,
                        updated_at = ?
                 WHERE id = ? AND state = 'pending' AND attempts = ? AND next_attempt_at <= ?",
            )
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .bind(&id)
            .bind(attempts)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                continue;
            }
            out.push(DueDelivery {
                id: id.parse()?,
                webhook_id: row.try_get::<String, _>("webhook_id")?.parse()?,
                url: row.try_get("url")?,
                secret: row.try_get("secret")?,
                event: row.try_get("event")?,
                payload: row.try_get("payload")?,
                attempt: (attempts + 1).clamp(0, i64::from(u32::MAX)) as u32,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Records how attempt number `attempt` of a delivery ended. Nothing changes when that
    /// attempt is no longer the delivery's latest (its claim lapsed and it was claimed again).
    pub async fn finish_webhook_delivery(
        &self,
        id: DeliveryId,
        attempt: u32,
        outcome: &DeliveryOutcome,
    ) -> Result<()> {
        let now = Timestamp::now().0;
        let (state, status, error, next, finished) = match outcome {
            DeliveryOutcome::Delivered { status } => (
                DeliveryState::Delivered,
                Some(*status),
                None,
                None,
                Some(now),
            ),
            DeliveryOutcome::Retry { status, error, at } => (
                DeliveryState::Pending,
                *status,
                Some(error.as_str()),
                Some(at.0),
                None,
            ),
            DeliveryOutcome::Failed { status, error } => (
                DeliveryState::Failed,
                *status,
                Some(error.as_str()),
                None,
                Some(now),
            ),
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET state = ?, last_status = ?, last_error = ?,
                    next_attempt_at = ?, finished_at = ?, updated_at = ?
             WHERE id = ? AND state = 'pending' AND attempts = ?",
        )
        .bind(state.as_str())
        .bind(status.map(i64::from))
        .bind(error)
        .bind(next)
        .bind(finished)
        .bind(now)
        .bind(id.to_string())
        .bind(i64::from(attempt))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives back a claimed attempt that never ran to its end (the service is stopping): the
    /// delivery is due again at once and the attempt is not counted.
    pub async fn release_webhook_delivery(&self, id: DeliveryId, attempt: u32) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts - 1, next_attempt_at = ?
             WHERE id = ? AND state = 'pending' AND attempts = ?",
        )
        .bind(Timestamp::now().0)
        .bind(id.to_string())
        .bind(i64::from(attempt))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes finished deliveries last changed before `before`; returns how many.
    pub async fn prune_webhook_deliveries(&self, before: Timestamp) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE state IN ('delivered', 'failed') AND updated_at < ?",
        )
        .bind(before.0)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Recording, RecordingSource, RecordingState, Transcript};

    async fn catalog() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("c.sqlite")).await.unwrap();
        (dir, c)
    }

    fn recording(owner: Option<UserId>, state: RecordingState) -> Recording {
        Recording {
            id: RecordingId::new(),
            room_id: None,
            title: "Harbour <talk>".into(),
            source: RecordingSource::Import,
            state,
            recovered: false,
            error: None,
            started_at: Timestamp::now(),
            ended_at: None,
            duration_ms: Some(1234),
            language: "en".into(),
            visibility: Default::default(),
            owner_id: owner,
            description: String::new(),
        }
    }

    async fn fan_out(c: &Catalog) -> Vec<WebhookEvent> {
        let seen = std::sync::Mutex::new(Vec::new());
        c.fan_out_webhook_events(100, |e| {
            seen.lock().unwrap().push(e.clone());
            format!("{{\"type\":\"{}\"}}", e.kind)
        })
        .await
        .unwrap();
        seen.into_inner().unwrap()
    }

    #[tokio::test]
    async fn events_reach_the_owner_and_admins_only_once_each() {
        let (_d, c) = catalog().await;
        let admin = c.create_user("boss", "Boss", "x").await.unwrap();
        c.set_admin(admin.id, true).await.unwrap();
        let ana = c.create_user("ana", "Ana", "x").await.unwrap();
        let bob = c.create_user("bob", "Bob", "x").await.unwrap();
        let all = &WEBHOOK_EVENTS[..];
        let h_admin = c
            .create_webhook(admin.id, "http://a", "s", all, 10)
            .await
            .unwrap();
        let h_ana = c
            .create_webhook(ana.id, "http://b", "s", &["transcript.ready"], 10)
            .await
            .unwrap();
        let h_bob = c
            .create_webhook(bob.id, "http://c", "s", all, 10)
            .await
            .unwrap();

        // An import arrives finished; live recordings finish later.
        let imported = recording(Some(ana.id), RecordingState::Recorded);
        c.create_recording(&imported, &[]).await.unwrap();
        let live = recording(Some(ana.id), RecordingState::Recording);
        c.create_recording(&live, &[]).await.unwrap();
        c.finish_recording(live.id, &[], Timestamp::now(), false)
            .await
            .unwrap();
        let events = fan_out(&c).await;
        let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["recording.finished", "recording.finished"]);
        assert_eq!(events[0].recording["title"], "Harbour <talk>");
        assert_eq!(events[0].recording["state"], "recorded");
        assert_eq!(events[0].recording["duration_ms"], 1234);
        assert!(fan_out(&c).await.is_empty(), "the outbox is emptied");

        // Only the admin listens to recording.finished among those who may see it.
        assert_eq!(
            c.webhook_deliveries(admin.id, h_admin.id, 50)
                .await
                .unwrap()
                .len(),
            2
        );
        assert!(
            c.webhook_deliveries(ana.id, h_ana.id, 50)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            c.webhook_deliveries(bob.id, h_bob.id, 50)
                .await
                .unwrap()
                .is_empty()
        );
        // Someone else's webhook is not found.
        assert!(
            c.webhook_deliveries(bob.id, h_ana.id, 50)
                .await
                .unwrap_err()
                .is_not_found()
        );
        assert!(
            c.delete_webhook(bob.id, h_ana.id)
                .await
                .unwrap_err()
                .is_not_found()
        );

        // A transcription that fails once and then succeeds: one transcript.ready, and no
        // second recording.finished when the failed attempt puts the recording back.
        let job = c.enqueue_transcription(imported.id).await.unwrap();
        let leased = c.lease_job("w", 60_000, None).await.unwrap().unwrap();
        assert_eq!(leased.id, job);
        c.fail_job(job, "w", "boom", crate::Failure::Transient)
            .await
            .unwrap();
        sqlx::query("UPDATE jobs SET not_before = 0")
            .execute(&c.pool)
            .await
            .unwrap();
        c.lease_job("w", 60_000, None).await.unwrap().unwrap();
        let t = Transcript {
            recording_id: imported.id,
            title: imported.title.clone(),
            model: "tiny".into(),
            created_at: Timestamp::now(),
            speakers: vec![],
            segments: vec![],
        };
        assert!(c.complete_transcription(job, "w", &t).await.unwrap());
        let events = fan_out(&c).await;
        let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["transcript.ready"]);
        assert_eq!(events[0].recording["state"], "transcribed");
        assert_eq!(
            c.webhook_deliveries(ana.id, h_ana.id, 50)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            c.webhook_deliveries(admin.id, h_admin.id, 50)
                .await
                .unwrap()
                .len(),
            3
        );
        assert!(
            c.webhook_deliveries(bob.id, h_bob.id, 50)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn deliveries_are_claimed_one_per_webhook_and_finished_once() {
        let (_d, c) = catalog().await;
        let ana = c.create_user("ana", "Ana", "x").await.unwrap();
        let hook = c
            .create_webhook(ana.id, "http://a", "sec", &WEBHOOK_EVENTS, 10)
            .await
            .unwrap();
        for _ in 0..2 {
            let r = recording(Some(ana.id), RecordingState::Recorded);
            c.create_recording(&r, &[]).await.unwrap();
        }
        fan_out(&c).await;
        let first = c.claim_webhook_deliveries(10, 60_000, &[]).await.unwrap();
        assert_eq!(first.len(), 1, "one at a time per webhook");
        assert_eq!((first[0].attempt, first[0].secret.as_str()), (1, "sec"));
        // While it is out, the webhook is busy and the claimed one is not due.
        assert!(
            c.claim_webhook_deliveries(10, 60_000, &[hook.id])
                .await
                .unwrap()
                .is_empty()
        );
        let d = &first[0];
        let retry = DeliveryOutcome::Retry {
            status: Some(500),
            error: "HTTP 500".into(),
            at: Timestamp(0),
        };
        c.finish_webhook_delivery(d.id, 1, &retry).await.unwrap();
        // A stale report (an attempt number that is not the latest) changes nothing.
        c.finish_webhook_delivery(d.id, 7, &DeliveryOutcome::Delivered { status: 200 })
            .await
            .unwrap();
        let again = c.claim_webhook_deliveries(10, 60_000, &[]).await.unwrap();
        assert_eq!((again[0].id, again[0].attempt), (d.id, 2));
        c.finish_webhook_delivery(d.id, 2, &DeliveryOutcome::Delivered { status: 204 })
            .await
            .unwrap();
        let list = c.webhook_deliveries(ana.id, hook.id, 50).await.unwrap();
        let done = list.iter().find(|x| x.id == d.id).unwrap();
        assert_eq!(done.state, DeliveryState::Delivered);
        assert_eq!((done.attempts, done.last_status), (2, Some(204)));
        assert_eq!(done.last_error, None);
        assert!(done.next_attempt_at.is_none() && done.finished_at.is_some());

        // The per-user limit.
        let err = c
            .create_webhook(ana.id, "http://b", "s", &WEBHOOK_EVENTS, 1)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("most allowed"), "{err}");
        // Deleting a webhook takes its deliveries along.
        c.delete_webhook(ana.id, hook.id).await.unwrap();
        assert!(
            c.recent_webhook_deliveries(ana.id, 50)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
