//! What one connection may ask of its room, and how fast: a token bucket per kind of message,
//! checked by the connection's own task before anything reaches the room. Over a bucket, the
//! message is dropped and the client told to slow down; a client that keeps going over is
//! abusive and loses its connection — its own, nobody else's.
//!
//! Sans-IO: the caller passes the time.

use std::time::Instant;

use super::protocol::ClientMsg;

/// Kinds of client message, each with a bucket of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Raising and lowering a hand.
    Hand,
    /// Muting or unmuting oneself.
    SelfMute,
    /// A moderator's action on someone else.
    Moderate,
    /// Starting or stopping the recording, ending the room.
    Room,
    /// Answers to the server's offers.
    Answer,
    /// Keep-alives.
    Ping,
    /// Everything else.
    Other,
    /// Messages that did not parse (each answered with an error).
    Invalid,
}

const KINDS: usize = 8;

impl Kind {
    pub fn of(msg: &ClientMsg) -> Kind {
        match msg {
            ClientMsg::RaiseHand | ClientMsg::LowerHand => Kind::Hand,
            ClientMsg::SetMuted { .. } => Kind::SelfMute,
            ClientMsg::InviteToSpeak { .. }
            | ClientMsg::Mute { .. }
            | ClientMsg::MoveToAudience { .. }
            | ClientMsg::MakeCohost { .. }
            | ClientMsg::Remove { .. } => Kind::Moderate,
            ClientMsg::StartRecording
            | ClientMsg::StopRecording
            | ClientMsg::AllowCaptions { .. }
            | ClientMsg::EndRoom => Kind::Room,
            ClientMsg::Answer { .. } => Kind::Answer,
            ClientMsg::Ping => Kind::Ping,
            ClientMsg::Hello { .. }
            | ClientMsg::AcceptInvite
            | ClientMsg::DeclineInvite
            | ClientMsg::Captions { .. } => Kind::Other,
        }
    }

    /// (burst, per second): generous for people, tight for scripts. A person toggles a hand a
    /// few times in a row at most; a moderator clearing a stage acts a few times a second.
    fn rate(self) -> (f64, f64) {
        match self {
            Kind::Hand => (6.0, 1.0),
            Kind::SelfMute => (10.0, 2.0),
            Kind::Moderate => (30.0, 5.0),
            Kind::Room => (4.0, 0.2),
            Kind::Answer => (20.0, 5.0),
            Kind::Ping => (10.0, 2.0),
            Kind::Other => (10.0, 2.0),
            Kind::Invalid => (20.0, 2.0),
        }
    }
}

/// Messages dropped over the buckets that a connection may run up, and how fast that allowance
/// comes back: a burst of a hundred refused messages, or a steady three a second, ends it.
const STRIKES: (f64, f64) = (100.0, 3.0);

/// What to do with one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it to the room.
    Pass,
    /// Drop it; `tell` when the client should hear `slow_down` now (once per second at most,
    /// so refusals do not become a flood of their own).
    Drop { tell: bool },
    /// Drop it and close this connection.
    Close,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    burst: f64,
    per_second: f64,
    at: Instant,
}

impl Bucket {
    fn new((burst, per_second): (f64, f64), now: Instant) -> Self {
        Bucket {
            tokens: burst,
            burst,
            per_second,
            at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One connection's limits.
#[derive(Debug)]
pub struct Limiter {
    buckets: [Bucket; KINDS],
    strikes: Bucket,
    told: Option<Instant>,
}

impl Limiter {
    pub fn new(now: Instant) -> Self {
        let all = [
            Kind::Hand,
            Kind::SelfMute,
            Kind::Moderate,
            Kind::Room,
            Kind::Answer,
            Kind::Ping,
            Kind::Other,
            Kind::Invalid,
        ];
        Limiter {
            buckets: all.map(|k| Bucket::new(k.rate(), now)),
            strikes: Bucket::new(STRIKES, now),
            told: None,
        }
    }

    /// Decides on one message of `kind` arriving `now`.
    pub fn check(&mut self, kind: Kind, now: Instant) -> Verdict {
        if self.buckets[kind as usize].take(now) {
            return Verdict::Pass;
        }
        if !self.strikes.take(now) {
            return Verdict::Close;
        }
        let tell = self
            .told
            .is_none_or(|t| now.saturating_duration_since(t).as_secs_f64() >= 1.0);
        if tell {
            self.told = Some(now);
        }
        Verdict::Drop { tell }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_person_passes_and_a_flood_is_cut_off() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        // A person: a hand every few seconds for an hour, pings every 10 s, never refused.
        for s in 0..3600u64 {
            let now = t0 + Duration::from_secs(s);
            if s % 3 == 0 {
                assert_eq!(l.check(Kind::Hand, now), Verdict::Pass);
            }
            if s % 10 == 0 {
                assert_eq!(l.check(Kind::Ping, now), Verdict::Pass);
            }
        }
        // A script: ten thousand toggles in 0.2 s. The burst passes, one slow_down is said,
        // and the connection is closed within the strike allowance.
        let t1 = t0 + Duration::from_secs(4000);
        let mut verdicts = Vec::new();
        for i in 0..10_000u32 {
            let v = l.check(Kind::Hand, t1 + Duration::from_micros(u64::from(i) * 20));
            verdicts.push(v);
            if v == Verdict::Close {
                break;
            }
        }
        let passed = verdicts.iter().filter(|v| **v == Verdict::Pass).count();
        let told = verdicts
            .iter()
            .filter(|v| **v == Verdict::Drop { tell: true })
            .count();
        assert_eq!(passed, 6);
        assert_eq!(told, 1);
        assert_eq!(verdicts.last(), Some(&Verdict::Close));
        assert!(verdicts.len() < 120, "{}", verdicts.len());
    }

    #[test]
    fn kinds_have_their_own_buckets() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        while l.check(Kind::Hand, t0) == Verdict::Pass {}
        // Hands are spent; a mute and a ping still pass.
        assert_eq!(l.check(Kind::SelfMute, t0), Verdict::Pass);
        assert_eq!(l.check(Kind::Ping, t0), Verdict::Pass);
        // A second later, one more hand.
        assert_eq!(
            l.check(Kind::Hand, t0 + Duration::from_secs(1)),
            Verdict::Pass
        );
    }
}
