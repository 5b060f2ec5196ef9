//! Offers and answers as the stage changes. The server always offers and the client answers,
//! one offer at a time per connection; a change while an offer is out is offered after its
//! answer.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};

use crate::forward::Track;
use crate::{ConnId, Event, RoomKey, Sfu};

impl<R: RoomKey> Sfu<R> {
    /// Brings every peer of `room` to what the stage is now.
    pub(crate) fn negotiate_room(&mut self, now: Instant, room: R) {
        let conns = self.rooms.get(&room).cloned().unwrap_or_default();
        for c in conns {
            self.negotiate(now, c);
        }
    }

    /// Offers what `conn` is missing (or no longer needs): its microphone track while it is on
    /// stage, a send-only track per other speaker. One offer at a time.
    pub(crate) fn negotiate(&mut self, now: Instant, conn: ConnId) {
        let Some(p) = self.peers.get(&conn) else {
            return;
        };
        let room = p.room;
        let publishers: HashSet<ConnId> = self
            .rooms
            .get(&room)
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|c| *c != conn && self.peers.get(c).is_some_and(|q| q.publish))
                    .collect()
            })
            .unwrap_or_default();
        let names: HashMap<ConnId, String> = publishers
            .iter()
            .filter_map(|c| self.peers.get(c).map(|q| (*c, q.stream.clone())))
            .collect();
        let Some(p) = self.peers.get_mut(&conn) else {
            return;
        };
        if p.pending.is_some() {
            p.renegotiate = true;
            return;
        }
        let mut api = p.rtc.sdp_api();
        let dir = |on: bool| {
            if on {
                Direction::RecvOnly
            } else {
                Direction::Inactive
            }
        };
        let mut new_mic = None;
        match p.mic {
            None => {
                new_mic = Some(api.add_media(MediaKind::Audio, dir(p.publish), None, None, None));
            }
            Some(m) if p.mic_live != p.publish => api.set_direction(m, dir(p.publish)),
            Some(_) => {}
        }
        let live_after = p.publish;
        let mut new_outs = Vec::new();
        let mut publishers: Vec<ConnId> = publishers.into_iter().collect();
        publishers.sort_unstable();
        for s in publishers {
            if !p.outs.contains_key(&s) {
                let stream = names.get(&s).cloned();
                let mid = api.add_media(
                    MediaKind::Audio,
                    Direction::SendOnly,
                    stream.clone(),
                    stream,
                    None,
                );
                new_outs.push((s, mid));
            }
        }
        let gone: Vec<ConnId> = p
            .outs
            .keys()
            .copied()
            .filter(|s| !names.contains_key(s))
            .collect();
        for s in gone {
            if let Some(m) = p.outs.remove(&s) {
                api.stop_media(m.mid);
            }
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        p.pending = Some((pending, new_mic, live_after, new_outs));
        let mic = new_mic
            .or(p.mic)
            .filter(|_| live_after)
            .map(|m| m.to_string());
        self.out.event(Event::Offer {
            conn,
            sdp: offer.to_sdp_string(),
            mic,
        });
        self.drive(now, conn, None);
    }

    /// The client's answer to the offer that is out.
    pub(crate) fn answer(&mut self, now: Instant, conn: ConnId, sdp: &str) {
        let Some(p) = self.peers.get_mut(&conn) else {
            return;
        };
        let Some((pending, mic, live_after, outs)) = p.pending.take() else {
            self.out.event(Event::Error {
                conn,
                message: "no offer is waiting for an answer".into(),
            });
            return;
        };
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => {
                self.out.event(Event::Error {
                    conn,
                    message: format!("that answer is not SDP: {e}"),
                });
                p.pending = Some((pending, mic, live_after, outs));
                return;
            }
        };
        match p.rtc.sdp_api().accept_answer(pending, answer) {
            Ok(()) => {
                if mic.is_some() {
                    p.mic = mic;
                }
                p.mic_live = live_after;
                p.outs
                    .extend(outs.into_iter().map(|(c, m)| (c, Track::new(m))));
            }
            Err(e) => {
                self.out.event(Event::Error {
                    conn,
                    message: format!("the answer was refused: {e}"),
                });
                // The offer is spent; make a fresh one with everything still missing.
                p.renegotiate = true;
            }
        }
        let again = std::mem::take(&mut p.renegotiate);
        self.drive(now, conn, None);
        if again {
            self.negotiate(now, conn);
        }
    }
}
