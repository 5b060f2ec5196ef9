//! One participant's connection and what the SFU keeps beside it.

use std::collections::HashMap;
use std::time::Instant;

use str0m::Rtc;
use str0m::media::Mid;

use crate::ConnId;
use crate::forward::{Forwarder, Track};

/// An offer out: the pending state, the microphone slot it creates (first offer only), whether
/// the slot receives in it, and the speaker tracks it adds.
pub(crate) type Pending = (
    str0m::change::SdpPendingOffer,
    Option<Mid>,
    bool,
    Vec<(ConnId, Mid)>,
);

pub(crate) struct Peer<R> {
    pub room: R,
    /// The label of their audio on other participants' tracks.
    pub stream: String,
    pub rtc: Rtc,
    /// How forwarded copies reach this participant.
    pub forwarder: Box<dyn Forwarder>,
    pub publish: bool,
    pub forward: bool,
    /// Our track for their microphone, made in the first offer: receive-only while they are on
    /// stage, inactive otherwise (it also gives every peer something to connect for).
    pub mic: Option<Mid>,
    /// Whether the answered direction of `mic` is receive-only.
    pub mic_live: bool,
    /// Our send-only track for each other speaker, once answered.
    pub outs: HashMap<ConnId, Track>,
    /// The offer waiting for an answer, and what it adds.
    pub pending: Option<Pending>,
    /// Something changed while an offer was out: offer again after the answer.
    pub renegotiate: bool,
    pub created: Instant,
    /// When str0m next wants its timeout (the key of this peer in the timer set).
    pub deadline: Instant,
    /// A tag for the recorder's stream identity: a new one each time they go on stage.
    pub tag: u32,
    /// When their microphone last carried a speaking level.
    pub level_at: Option<Instant>,
}

impl<R: std::fmt::Debug> std::fmt::Debug for Peer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("room", &self.room)
            .field("stream", &self.stream)
            .field("publish", &self.publish)
            .field("forward", &self.forward)
            .field("mic", &self.mic)
            .field("outs", &self.outs.len())
            .finish_non_exhaustive()
    }
}

impl<R> Peer<R> {
    pub fn new(
        room: R,
        stream: String,
        rtc: Rtc,
        forwarder: Box<dyn Forwarder>,
        publish: bool,
        now: Instant,
        tag: u32,
    ) -> Self {
        Peer {
            room,
            stream,
            rtc,
            forwarder,
            publish,
            forward: true,
            mic: None,
            mic_live: false,
            outs: HashMap::new(),
            pending: None,
            renegotiate: false,
            created: now,
            deadline: now,
            tag,
            level_at: None,
        }
    }

    /// Whether `contents`, a datagram str0m sends on this connection, is RTP on one of the
    /// tracks only our sealer may send on: it would reuse (SSRC, index) pairs, and so GCM
    /// nonces, under the connection's key.
    pub fn is_rtp_on_our_track(&self, contents: &[u8]) -> bool {
        // RFC 7983: RTP and RTCP start 128..=191; RTCP's packet types are 192..=223 (RFC 5761).
        let rtp = contents.len() >= 12
            && (128..=191).contains(&contents[0])
            && !(192..=223).contains(&contents[1]);
        if !rtp {
            return false;
        }
        let ssrc = u32::from_be_bytes([contents[8], contents[9], contents[10], contents[11]]);
        self.outs.values().any(|t| t.ours == Some(ssrc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::Forwarding;

    #[test]
    fn rtp_on_a_sealed_track_is_recognised_and_nothing_else_is() {
        let now = Instant::now();
        let (rtc, forwarder) = Forwarding::Str0m
            .build(&str0m::RtcConfig::new(), now)
            .expect("a connection");
        let mut p = Peer::new(1u8, "s".into(), rtc, forwarder, false, now, 1);
        let mut track = Track::new(Mid::from("a"));
        track.ours = Some(0xdead_beef);
        p.outs.insert(2, track);
        let packet = |second: u8, ssrc: u32| {
            let mut v = vec![0x80, second, 0, 1, 0, 0, 0, 0];
            v.extend_from_slice(&ssrc.to_be_bytes());
            v.extend_from_slice(&[0; 10]);
            v
        };
        assert!(p.is_rtp_on_our_track(&packet(111, 0xdead_beef)));
        assert!(
            p.is_rtp_on_our_track(&packet(111 | 0x80, 0xdead_beef)),
            "with the marker bit"
        );
        assert!(!p.is_rtp_on_our_track(&packet(111, 7)), "another SSRC");
        assert!(
            !p.is_rtp_on_our_track(&packet(200, 0xdead_beef)),
            "a sender report"
        );
        assert!(!p.is_rtp_on_our_track(&[22, 254, 253]), "DTLS");
        assert!(!p.is_rtp_on_our_track(&[0, 1, 0, 0]), "STUN");
    }
}
