//! A speaker's packet to every listener. Which way a copy leaves is a [`Forwarder`]: str0m's
//! own write path (the reference: each copy through the listener's `Rtc`, its send queue and
//! poll loop), or the fast path, which seals each copy with SRTP of our own (`srtp`) and
//! queues it straight out. Both number a listener's track the same way ([`Track`]) and run
//! the same tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::media::{Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, SeqNo, Ssrc};
use str0m::{Rtc, RtcConfig};

use crate::srtp::{self, KeySlot, SrtpTx};
use crate::{AudioPacket, ConnId, Event, RoomKey, Sfu, speaking};

/// How forwarded copies leave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Forwarding {
    /// Sealed by our own SRTP with the connection's keys: one header, one AEAD seal and one
    /// datagram per copy (about twice str0m's throughput per core; `bench fanout`).
    #[default]
    Sealed,
    /// Written to each listener's `Rtc` (str0m's `StreamTx::write_rtp`).
    Str0m,
}

impl Forwarding {
    /// A connection from `config` and its forwarder; `None` if it cannot be made.
    pub(crate) fn build(
        self,
        config: &RtcConfig,
        now: Instant,
    ) -> Option<(Rtc, Box<dyn Forwarder>)> {
        match self {
            Forwarding::Sealed => {
                let (rtc, keys) = srtp::build(config, now)?;
                Some((
                    rtc,
                    Box::new(Sealed {
                        keys,
                        tx: None,
                        dest: None,
                    }),
                ))
            }
            Forwarding::Str0m => Some((config.clone().build(now), Box::new(Written::default()))),
        }
    }
}

/// One forwarded copy, for one listener's track.
pub(crate) struct Copy<'a> {
    pub payload_type: Pt,
    pub marker: bool,
    pub sequence: SeqNo,
    pub timestamp: u32,
    /// The track's own SSRC, as str0m announced it.
    pub ssrc: u32,
    pub mid: Mid,
    pub level: Option<(i8, bool)>,
    pub payload: &'a [u8],
    /// The same payload, shared, for a forwarder that keeps it.
    pub shared: &'a Arc<[u8]>,
    pub at: Instant,
}

/// Reused buffers for one copy at a time.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    plain: Vec<u8>,
    sealed: Vec<u8>,
}

/// What became of a copy.
pub(crate) enum Sent<'a> {
    /// Ready to go to the address.
    Datagram(SocketAddr, &'a [u8]),
    /// Written into the `Rtc`: drive it to get the datagram.
    Written,
    /// Not sent (not connected yet, or it cannot be).
    Dropped,
}

/// The way forwarded copies reach one listener.
pub(crate) trait Forwarder: Send {
    /// str0m reported the connection up; false if copies can never be forwarded on it.
    fn connected(&mut self) -> bool;
    /// Whether the connection is up and can carry copies.
    fn ready(&self) -> bool;
    /// Sees a datagram str0m sends on this connection; `nominated` when it answers a check
    /// that nominated its pair.
    fn sent(&mut self, destination: SocketAddr, contents: &[u8], nominated: bool);
    /// Sends one copy.
    fn forward<'s>(&mut self, rtc: &mut Rtc, copy: &Copy<'_>, scratch: &'s mut Scratch)
    -> Sent<'s>;
    /// True if only this forwarder, never str0m, may send RTP on the listener's tracks.
    fn exclusive(&self) -> bool;
}

/// The fast path: copies sealed with the connection's keys, taken from its DTLS handshake.
struct Sealed {
    keys: KeySlot,
    /// Made once the connection is up.
    tx: Option<SrtpTx>,
    /// The address str0m sends this connection's DTLS and RTCP to (ICE's nominated pair).
    dest: Option<SocketAddr>,
}

impl Forwarder for Sealed {
    fn connected(&mut self) -> bool {
        let keys = srtp::take(&self.keys);
        self.tx = keys.as_ref().and_then(|k| SrtpTx::new(srtp::crypto(), k));
        if self.tx.is_none() {
            tracing::warn!(?keys, "no SRTP context to forward audio with");
        }
        self.tx.is_some()
    }

    fn ready(&self) -> bool {
        self.tx.is_some()
    }

    fn sent(&mut self, destination: SocketAddr, contents: &[u8], nominated: bool) {
        // DTLS and SRTCP (RFC 7983: first byte 20 and up) go only to the nominated pair; STUN
        // answers go to every address ICE checks, but a success answer (0x0101) to a check
        // that nominates its pair moves the pair at once.
        if contents.first().is_some_and(|b| *b >= 20)
            || (nominated && contents.starts_with(&[0x01, 0x01]))
        {
            self.dest = Some(destination);
        }
    }

    fn forward<'s>(&mut self, _rtc: &mut Rtc, c: &Copy<'_>, scratch: &'s mut Scratch) -> Sent<'s> {
        let (Some(tx), Some(dest)) = (self.tx.as_mut(), self.dest) else {
            return Sent::Dropped;
        };
        let header = srtp::Header {
            payload_type: *c.payload_type,
            marker: c.marker,
            sequence: *c.sequence as u16,
            timestamp: c.timestamp,
            ssrc: c.ssrc,
            level: c.level,
            mid: c.mid.as_bytes(),
        };
        let n = srtp::write_rtp(&header, c.payload, &mut scratch.plain);
        if let Err(e) = tx.protect(&scratch.plain, n, c.ssrc, *c.sequence, &mut scratch.sealed) {
            tracing::debug!("cannot seal a packet: {e}");
            return Sent::Dropped;
        }
        Sent::Datagram(dest, &scratch.sealed)
    }

    fn exclusive(&self) -> bool {
        true
    }
}

/// The reference path: each copy written to the listener's `Rtc`.
#[derive(Default)]
struct Written {
    up: bool,
}

impl Forwarder for Written {
    fn connected(&mut self) -> bool {
        self.up = true;
        true
    }

    fn ready(&self) -> bool {
        self.up
    }

    fn sent(&mut self, _: SocketAddr, _: &[u8], _: bool) {}

    fn forward<'s>(&mut self, rtc: &mut Rtc, c: &Copy<'_>, _: &'s mut Scratch) -> Sent<'s> {
        if !self.up {
            return Sent::Dropped;
        }
        let mut api = rtc.direct_api();
        let Some(tx) = api.stream_tx(&Ssrc::from(c.ssrc)) else {
            return Sent::Dropped;
        };
        let ext = ExtensionValues {
            audio_level: c.level.map(|l| l.0),
            voice_activity: c.level.map(|l| l.1),
            ..ExtensionValues::default()
        };
        tx.write_rtp(
            RtpWrite::new(
                c.payload_type,
                c.sequence,
                c.timestamp,
                c.at,
                c.shared.clone(),
            )
            .marker(c.marker)
            .ext_vals(ext),
        );
        Sent::Written
    }

    fn exclusive(&self) -> bool {
        false
    }
}

/// A send-only track carrying one speaker to one listener, and how the speaker's sequence
/// numbers map onto it: this track's numbers start at 1 and run on across the speaker's
/// SSRC changes, so the listener's SRTP rollover counter starts at 0 however long the speaker
/// has been talking.
#[derive(Debug)]
pub(crate) struct Track {
    pub mid: Mid,
    /// This track's own SSRC, as str0m announced it in the offer.
    pub ours: Option<u32>,
    ssrc: Option<Ssrc>,
    offset: i64,
    last: u64,
    /// The highest number given before the mapping last changed: a late packet from before
    /// that change would map to or below it, onto an index already sealed, and is dropped.
    floor: u64,
    /// Which of the numbers `last`, `last - 1`, … `last - 127` were given (bit i: `last - i`).
    /// A number is given once: a duplicate (the network's, or a hostile speaker's with a
    /// different payload under a sequence number it reused) would be sealed under the same
    /// GCM nonce as the first.
    given: u128,
}

/// The most a track's numbers may jump at once. A speaker muted by the server for minutes
/// comes back thousands of numbers on; a receiver's SRTP guesses the rollover counter from
/// within 2^15 of its last packet, so a longer jump would be read as old and every packet
/// after it dropped. A jump this long is closed up like an SSRC change.
const MAX_JUMP: i64 = 1 << 12;

impl Track {
    pub fn new(mid: Mid) -> Self {
        Track {
            mid,
            ours: None,
            ssrc: None,
            offset: 0,
            last: 0,
            floor: 0,
            given: 0,
        }
    }

    /// This track's sequence number for the speaker's `seq` on `ssrc`; `None` for a packet
    /// from before the track began or before its last remapping, one whose number was given
    /// already, or one too late to tell (128 numbers behind).
    pub fn seq(&mut self, ssrc: Ssrc, seq: SeqNo) -> Option<SeqNo> {
        let seq = *seq as i64;
        let next = self.last as i64 + 1;
        if self.ssrc != Some(ssrc) || seq + self.offset > next + MAX_JUMP {
            self.ssrc = Some(ssrc);
            self.offset = next - seq;
            self.floor = self.last;
        }
        let out = u64::try_from(seq + self.offset)
            .ok()
            .filter(|s| *s > self.floor)?;
        if out > self.last {
            let shift = out - self.last;
            self.given = if shift >= 128 { 0 } else { self.given << shift };
            self.given |= 1;
            self.last = out;
        } else {
            let behind = self.last - out;
            if behind >= 128 || self.given & (1 << behind) != 0 {
                return None;
            }
            self.given |= 1 << behind;
        }
        Some(out.into())
    }
}

impl<R: RoomKey> Sfu<R> {
    /// A packet `from` sent: to the recorder if the room's audio is asked for, and to every
    /// other participant's track for `from`.
    pub(crate) fn media(&mut self, now: Instant, from: ConnId, d: RtpPacket) {
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        // Only a speaker's own microphone track is forwarded; anything else a client sends is
        // dropped here.
        let mid = p
            .rtc
            .direct_api()
            .stream_rx(&d.header.ssrc)
            .map(|s| s.mid());
        if !p.publish || !p.mic_live || p.mic.is_none() || p.mic != mid {
            return;
        }
        let ext = &d.header.ext_vals;
        if let Some(level) = ext.audio_level
            && level >= speaking::SPEAKING_LEVEL
        {
            p.level_at = Some(d.timestamp);
        }
        if !p.forward {
            return;
        }
        let room = p.room;
        if self.audio.contains(&room) {
            self.out.event(Event::Audio {
                room,
                conn: from,
                packet: AudioPacket {
                    stream: p.tag,
                    sequence: d.header.sequence_number,
                    timestamp: d.header.timestamp,
                    payload: d.payload.to_vec(),
                    at: d.timestamp,
                },
            });
        }
        let listeners: Vec<ConnId> = self
            .rooms
            .get(&room)
            .map(|v| v.iter().copied().filter(|c| *c != from).collect())
            .unwrap_or_default();
        // The level and voice-activity flag go on; nothing else of the speaker's extensions.
        let level = ext
            .audio_level
            .map(|l| (l, ext.voice_activity.unwrap_or(false)));
        let mut written = Vec::new();
        for l in listeners {
            // A closed connection (it leaves with its next timer) gets nothing more.
            let Some(lp) = self.peers.get_mut(&l).filter(|p| p.rtc.is_alive()) else {
                continue;
            };
            // Not connected yet: a live room has nothing to hold back for later.
            if !lp.forwarder.ready() {
                continue;
            }
            let Some(out) = lp.outs.get_mut(&from) else {
                continue;
            };
            if out.ours.is_none() {
                out.ours = lp
                    .rtc
                    .direct_api()
                    .stream_tx_by_mid(out.mid, None)
                    .map(|s| *s.ssrc());
            }
            let Some(ssrc) = out.ours else {
                continue;
            };
            let Some(sequence) = out.seq(d.header.ssrc, d.seq_no) else {
                continue;
            };
            let copy = Copy {
                // Every track is negotiated from our one Opus payload type, so it is the
                // speaker's too.
                payload_type: d.header.payload_type,
                marker: d.header.marker,
                sequence,
                timestamp: d.header.timestamp,
                ssrc,
                mid: out.mid,
                level,
                payload: &d.payload,
                shared: &d.payload,
                at: d.timestamp,
            };
            match lp.forwarder.forward(&mut lp.rtc, &copy, &mut self.scratch) {
                Sent::Datagram(dest, bytes) => {
                    self.out.transmit(dest, bytes);
                    self.forwarded += 1;
                }
                Sent::Written => {
                    self.forwarded += 1;
                    written.push(l);
                }
                Sent::Dropped => {}
            }
        }
        for l in written {
            self.drive(now, l, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_track_numbers_from_one_and_runs_on_across_ssrc_changes() {
        let mut out = Track::new(Mid::from("3"));
        let (a, b) = (Ssrc::from(7), Ssrc::from(9));
        // A speaker far into a long talk (past a rollover) still starts this track at 1.
        let seq = |n: u64| SeqNo::from(n);
        assert_eq!(out.seq(a, seq(200_000)), Some(seq(1)));
        assert_eq!(out.seq(a, seq(200_002)), Some(seq(3)), "a gap stays a gap");
        assert_eq!(out.seq(a, seq(200_001)), Some(seq(2)), "late, in its place");
        assert_eq!(out.seq(a, seq(200_001)), None, "a duplicate is dropped");
        assert_eq!(
            out.seq(a, seq(199_999)),
            None,
            "from before the track began"
        );
        // A new SSRC with a random start continues after the highest number sent.
        assert_eq!(out.seq(b, seq(40)), Some(seq(4)));
        assert_eq!(out.seq(b, seq(41)), Some(seq(5)));
    }

    #[test]
    fn no_index_is_given_twice_and_a_long_jump_is_closed_up() {
        let mut out = Track::new(Mid::from("3"));
        let (a, b) = (Ssrc::from(7), Ssrc::from(9));
        let seq = |n: u64| SeqNo::from(n);
        for n in 1000..1010 {
            out.seq(a, seq(n));
        }
        // The new SSRC's first packet to arrive is not its first: those sent before it come
        // late and would map onto numbers the old SSRC already used.
        assert_eq!(out.seq(b, seq(42)), Some(seq(11)));
        assert_eq!(out.seq(b, seq(41)), None, "would be 10, sealed already");
        assert_eq!(out.seq(b, seq(38)), None);
        assert_eq!(out.seq(b, seq(43)), Some(seq(12)));
        // Muted for minutes (the speaker kept sending; nothing was forwarded): the track
        // goes on at the next number, not 15,000 further.
        assert_eq!(out.seq(b, seq(15_043)), Some(seq(13)));
        assert_eq!(out.seq(b, seq(15_042)), None, "from before the jump");
        assert_eq!(out.seq(b, seq(15_045)), Some(seq(15)), "a short gap stays");
    }

    proptest::proptest! {
        /// Whatever order and SSRCs packets come in, no track number is given twice (an
        /// SRTP index sealed twice under one key would reuse a GCM nonce).
        #[test]
        fn no_track_number_is_ever_given_twice(
            packets in proptest::collection::vec((0u32..3, 0u64..70_000), 1..400)
        ) {
            let mut out = Track::new(Mid::from("0"));
            let mut given = std::collections::HashSet::new();
            for (ssrc, seq) in packets {
                if let Some(n) = out.seq(Ssrc::from(ssrc), SeqNo::from(seq)) {
                    proptest::prop_assert!(given.insert(*n), "{} given twice", *n);
                }
            }
        }
    }
}
