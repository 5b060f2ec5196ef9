//! Speaking indicators from the audio level each speaker's packets carry (RFC 6464).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::peer::Peer;
use crate::{ConnId, Event, Outbox, RoomKey};

/// Audio level (RFC 6464, in dBov: 0 is loudest, −127 silence; str0m gives it negative) at or
/// over which a speaker counts as speaking.
pub(crate) const SPEAKING_LEVEL: i8 = -50;
/// How long a level keeps someone "speaking".
pub(crate) const SPEAKING_HOLD: Duration = Duration::from_millis(400);
/// How often speaking indicators are recomputed.
pub(crate) const SPEAKING_EVERY: Duration = Duration::from_millis(200);

/// Who was speaking in each room at the last round, and when the next round is.
#[derive(Debug)]
pub(crate) struct Speaking<R> {
    next: Instant,
    last: HashMap<R, Vec<ConnId>>,
}

impl<R: RoomKey> Speaking<R> {
    pub fn new(now: Instant) -> Self {
        Speaking {
            next: now + SPEAKING_EVERY,
            last: HashMap::new(),
        }
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    pub fn next(&self) -> Instant {
        self.next
    }

    pub fn forget(&mut self, room: &R) {
        self.last.remove(room);
    }

    /// Tells each room whose speakers changed who is speaking now.
    pub fn update(
        &mut self,
        now: Instant,
        rooms: &HashMap<R, Vec<ConnId>>,
        peers: &HashMap<ConnId, Peer<R>>,
        out: &mut Outbox<R>,
    ) {
        self.next = now + SPEAKING_EVERY;
        for (room, conns) in rooms {
            let mut on: Vec<ConnId> = conns
                .iter()
                .copied()
                .filter(|c| {
                    peers.get(c).is_some_and(|p| {
                        p.publish
                            && p.forward
                            && p.level_at
                                .is_some_and(|t| now.saturating_duration_since(t) < SPEAKING_HOLD)
                    })
                })
                .collect();
            on.sort_unstable();
            let before = self.last.entry(*room).or_default();
            if *before != on {
                before.clone_from(&on);
                out.event(Event::Speaking {
                    room: *room,
                    conns: on,
                });
            }
        }
    }
}
