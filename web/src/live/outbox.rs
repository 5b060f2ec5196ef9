//! What a room has to tell one member, waiting for that member's connection to take it.
//!
//! Two kinds of news: messages for this member alone (an offer, an error, an invitation), kept
//! in order and few by nature; and the room's state (who is here, who speaks, whether it
//! records), which *coalesces*: a member that falls behind is owed only the difference between
//! what it last received and the room now, however many changes happened meanwhile. So a slow
//! member costs the room nothing and is never dropped for being slow, and a burst of changes
//! costs each member at most the final state.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use roomtape_core::UserId;

use roomtape_core::CaptionKind;

use super::captions::CaptionEvent;
use super::protocol::{Person, RoomCaptions, ServerMsg};

/// Most messages for one member alone that may wait. They answer the member's own requests
/// (which its connection rate-limits) or come from moderators' rare actions, so a member that
/// lets this many pile up has stopped reading.
pub const DIRECT_CAP: usize = 128;

/// One member's waiting news; shared by the room task (which adds) and the member's connection
/// (which takes).
#[derive(Debug, Default)]
pub struct Outbox {
    pending: Mutex<Pending>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct Pending {
    direct: VecDeque<ServerMsg>,
    /// Presence owed, by person: the whole person as they are now, or `None` when they left.
    presence: BTreeMap<UserId, Option<Person>>,
    speaking: Option<Vec<UserId>>,
    recording: Option<bool>,
    offered: Option<RoomCaptions>,
    /// Final captions (and notices) in order, the oldest dropped past [`CAPTIONS_CAP`].
    captions: VecDeque<Arc<CaptionEvent>>,
    /// Each speaker's latest partial caption.
    partials: BTreeMap<UserId, Arc<CaptionEvent>>,
    closed: bool,
}

/// Final captions kept for a member who is slow to read; past that the oldest go (captions
/// are for reading now, and a member who cannot keep up is not dropped for them).
pub const CAPTIONS_CAP: usize = 64;

fn caption_msg(c: &CaptionEvent) -> ServerMsg {
    ServerMsg::Caption {
        speaker: c.speaker.id,
        name: c.speaker.name.clone(),
        kind: c.kind,
        text: c.text.clone(),
        start_ms: c.start_ms,
        end_ms: c.end_ms,
    }
}

/// The member's queue of its own messages is full: it has stopped reading.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

impl Outbox {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A message for this member alone, after those already waiting.
    pub fn push(&self, msg: ServerMsg) -> Result<(), Full> {
        {
            let mut p = self.pending();
            if p.closed {
                return Ok(());
            }
            if p.direct.len() >= DIRECT_CAP {
                return Err(Full);
            }
            p.direct.push_back(msg);
        }
        self.ready.notify_one();
        Ok(())
    }

    /// People who changed (whole) and who left, merged into what is owed already.
    pub fn presence(&self, changed: &[Person], gone: &[UserId]) {
        if changed.is_empty() && gone.is_empty() {
            return;
        }
        {
            let mut p = self.pending();
            if p.closed {
                return;
            }
            for c in changed {
                p.presence.insert(c.id, Some(c.clone()));
            }
            for g in gone {
                p.presence.insert(*g, None);
            }
        }
        self.ready.notify_one();
    }

    /// Who speaks now; replaces any earlier list not yet taken.
    pub fn speaking(&self, users: &[UserId]) {
        self.set(|p| p.speaking = Some(users.to_vec()));
    }

    /// Whether the room records now; replaces any earlier word not yet taken.
    pub fn recording(&self, on: bool) {
        self.set(|p| p.recording = Some(on));
    }

    pub fn captions_offered(&self, captions: RoomCaptions) {
        self.set(|p| p.offered = Some(captions));
    }

    /// A caption: a speaker's partial replaces the one not yet sent; a final (or notice) makes
    /// it stale and is queued.
    pub fn caption(&self, c: &Arc<CaptionEvent>) {
        self.set(|p| {
            if c.kind == CaptionKind::Partial {
                p.partials.insert(c.speaker.id, c.clone());
            } else {
                p.partials.remove(&c.speaker.id);
                if p.captions.len() >= CAPTIONS_CAP {
                    p.captions.pop_front();
                }
                p.captions.push_back(c.clone());
            }
        });
    }

    fn set(&self, f: impl FnOnce(&mut Pending)) {
        {
            let mut p = self.pending();
            if p.closed {
                return;
            }
            f(&mut p);
        }
        self.ready.notify_one();
    }

    /// Nothing more will be added; the connection takes what is left and stops.
    pub fn close(&self) {
        self.pending().closed = true;
        self.ready.notify_one();
    }

    /// Takes everything owed, in the order to send it: this member's own messages first (a
    /// welcome before the changes that follow it), then one presence, who speaks, and whether
    /// the room records. Empty when nothing is owed.
    pub fn take(&self) -> Vec<ServerMsg> {
        let mut p = self.pending();
        let mut out: Vec<ServerMsg> = p.direct.drain(..).collect();
        if !p.presence.is_empty() {
            let mut changed = Vec::new();
            let mut gone = Vec::new();
            for (id, person) in std::mem::take(&mut p.presence) {
                match person {
                    Some(person) => changed.push(person),
                    None => gone.push(id),
                }
            }
            super::hub::by_stage_then_name(&mut changed);
            out.push(ServerMsg::Presence { changed, gone });
        }
        if let Some(users) = p.speaking.take() {
            out.push(ServerMsg::Speaking { users });
        }
        if let Some(on) = p.recording.take() {
            out.push(ServerMsg::Recording { on });
        }
        if let Some(captions) = p.offered.take() {
            out.push(ServerMsg::CaptionsOffered { captions });
        }
        out.extend(p.captions.drain(..).map(|c| caption_msg(&c)));
        out.extend(
            std::mem::take(&mut p.partials)
                .into_values()
                .map(|c| caption_msg(&c)),
        );
        out
    }

    /// Waits until something is owed and takes it; `None` once closed and everything taken.
    pub async fn next(&self) -> Option<Vec<ServerMsg>> {
        loop {
            // Registered before looking, so an addition between the look and the wait wakes it.
            let ready = self.ready.notified();
            let batch = self.take();
            if !batch.is_empty() {
                return Some(batch);
            }
            if self.pending().closed {
                return None;
            }
            ready.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::protocol::Role;
    use super::*;

    fn person(id: UserId, hand: bool) -> Person {
        Person {
            id,
            name: "Ana".into(),
            role: Role::Listener,
            muted: false,
            hand,
            speaking: false,
            guest: false,
        }
    }

    #[test]
    fn a_burst_of_changes_costs_the_final_state() {
        let o = Outbox::default();
        let ana = UserId::new();
        let bo = UserId::new();
        o.push(ServerMsg::Pong).unwrap();
        for i in 0..10_000 {
            o.presence(&[person(ana, i % 2 == 0)], &[]);
        }
        o.presence(&[person(bo, false)], &[]);
        o.presence(&[], &[bo]);
        o.speaking(&[ana]);
        o.speaking(&[]);
        let got = o.take();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], ServerMsg::Pong);
        assert_eq!(
            got[1],
            ServerMsg::Presence {
                changed: vec![person(ana, false)],
                gone: vec![bo]
            }
        );
        assert_eq!(got[2], ServerMsg::Speaking { users: vec![] });
        assert!(o.take().is_empty());
    }

    #[test]
    fn own_messages_are_bounded_and_closing_drains() {
        let o = Outbox::default();
        for _ in 0..DIRECT_CAP {
            o.push(ServerMsg::Pong).unwrap();
        }
        assert_eq!(o.push(ServerMsg::Pong), Err(Full));
        o.recording(true);
        o.close();
        // After closing, additions are ignored; what was owed is still taken once.
        o.push(ServerMsg::Ended).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let first = rt.block_on(o.next()).unwrap();
        assert_eq!(first.len(), DIRECT_CAP + 1);
        assert_eq!(first.last(), Some(&ServerMsg::Recording { on: true }));
        assert_eq!(rt.block_on(o.next()), None);
    }
}
