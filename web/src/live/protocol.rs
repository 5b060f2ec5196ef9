//! The signaling protocol: JSON messages over the room's WebSocket, one typed enum each way,
//! tagged by `type`. The client's first message is `hello` with the protocol version; the server
//! answers `welcome`. Anything malformed, unknown, oversized or out of order gets an `error`
//! back and changes nothing.

use serde::{Deserialize, Serialize};

use roomtape_core::UserId;

/// The protocol version this server speaks.
pub const VERSION: u32 = 1;
/// Largest message a client may send, in bytes (an SDP answer for a full stage fits easily).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// What a client may say.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// First message: the version the client speaks.
    Hello {
        v: u32,
    },
    /// The answer to the server's latest `offer`.
    Answer {
        sdp: String,
    },
    RaiseHand,
    LowerHand,
    /// Host or co-host: ask a listener onto the stage.
    InviteToSpeak {
        user: UserId,
    },
    /// A listener accepts (and starts to publish) or declines an invitation.
    AcceptInvite,
    DeclineInvite,
    /// Mute or unmute oneself (a speaker muted by a host may unmute).
    SetMuted {
        muted: bool,
    },
    /// Host or co-host: stop forwarding a speaker's audio.
    Mute {
        user: UserId,
    },
    /// Host or co-host: a speaker back to the audience (anyone on stage may do it to themselves).
    MoveToAudience {
        user: UserId,
    },
    /// Host (or co-host, for speakers and listeners): make someone a co-host.
    MakeCohost {
        user: UserId,
    },
    /// Host or co-host: out of the room, for good.
    Remove {
        user: UserId,
    },
    StartRecording,
    StopRecording,
    /// Show me live captions (or stop).
    Captions {
        on: bool,
    },
    /// Host or co-host: offer live captions in the room (or turn them off for everyone).
    AllowCaptions {
        on: bool,
    },
    EndRoom,
    Ping,
}

/// Whether a room offers live captions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomCaptions {
    /// This server does not caption (no model, or `captions.enabled` is off).
    Unavailable,
    /// Its host turned them off.
    Off,
    On,
}

/// Roles in a live room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Host,
    Cohost,
    Speaker,
    Listener,
}

impl Role {
    /// Host, co-host or speaker: publishes audio.
    pub fn on_stage(self) -> bool {
        self != Role::Listener
    }

    /// Host or co-host: may run the room.
    pub fn moderates(self) -> bool {
        matches!(self, Role::Host | Role::Cohost)
    }
}

/// One person in the room, as everyone sees them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Person {
    pub id: UserId,
    pub name: String,
    pub role: Role,
    pub muted: bool,
    pub hand: bool,
    pub speaking: bool,
    /// Listening without an account (listen only).
    pub guest: bool,
}

/// What the server says.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Welcome {
        v: u32,
        you: UserId,
        role: Role,
        title: String,
        recording: bool,
        /// Whether the room offers live captions (ask for them with `captions`).
        captions: RoomCaptions,
        people: Vec<Person>,
    },
    /// A new session description to answer (the server always offers; the client answers).
    /// `mic` names the transceiver (by mid) to send the microphone on, while on stage.
    Offer {
        sdp: String,
        mic: Option<String>,
    },
    /// Who changed since the last presence (or the welcome): people who joined or whose role,
    /// hand or mute changed, whole; and the ids of those who left. Applying it by id to the
    /// welcome's list gives the room as it is, and a change costs its size, not the room's.
    Presence {
        changed: Vec<Person>,
        gone: Vec<UserId>,
    },
    /// Who is speaking now (from the RTP audio-level extension).
    Speaking {
        users: Vec<UserId>,
    },
    /// You are invited onto the stage.
    Invited {
        by: String,
    },
    /// Your role changed.
    Role {
        role: Role,
    },
    /// A host muted you; the server stopped forwarding your audio.
    Muted {
        by: String,
    },
    Recording {
        on: bool,
    },
    /// The room's host turned captions on or off.
    CaptionsOffered {
        captions: RoomCaptions,
    },
    /// A live caption of one speaker, to those who asked for captions. A speaker's `partial`
    /// replaces their previous one; `final` text is never changed.
    Caption {
        speaker: UserId,
        name: String,
        kind: roomtape_core::CaptionKind,
        text: String,
        /// Room time (ms since the room's live session began).
        start_ms: i64,
        end_ms: i64,
    },
    /// You were removed; the connection closes.
    Removed,
    /// The host ended the room; the connection closes.
    Ended,
    /// Something you sent was refused; nothing changed.
    Error {
        code: String,
        message: String,
    },
    Pong,
}

impl ServerMsg {
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Reads a client's text message; the error is ready to send back.
pub fn parse(text: &str) -> Result<ClientMsg, ServerMsg> {
    if text.len() > MAX_MESSAGE {
        return Err(ServerMsg::error(
            "too_large",
            format!("messages are at most {MAX_MESSAGE} bytes"),
        ));
    }
    let bad = |e: &dyn std::fmt::Display| {
        let m = e.to_string();
        let m: String = m.chars().filter(|c| !c.is_control()).take(200).collect();
        ServerMsg::error("bad_message", m)
    };
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(&e))?;
    // serde does not refuse extra fields on field-less variants of a tagged enum: do it here.
    if let Some(obj) = v.as_object()
        && let Some(t) = obj.get("type").and_then(|t| t.as_str())
        && BARE.contains(&t)
        && obj.len() != 1
    {
        return Err(bad(&format!("`{t}` takes no fields")));
    }
    serde_json::from_value(v).map_err(|e| bad(&e))
}

/// Messages that are only a `type`.
const BARE: &[&str] = &[
    "raise_hand",
    "lower_hand",
    "accept_invite",
    "decline_invite",
    "start_recording",
    "stop_recording",
    "end_room",
    "ping",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_and_bad_ones_get_errors() {
        assert_eq!(
            parse(r#"{"type":"hello","v":1}"#),
            Ok(ClientMsg::Hello { v: 1 })
        );
        assert_eq!(parse(r#"{"type":"raise_hand"}"#), Ok(ClientMsg::RaiseHand));
        assert_eq!(
            parse(r#"{"type":"captions","on":true}"#),
            Ok(ClientMsg::Captions { on: true })
        );
        for bad in [
            "",
            "null",
            "[]",
            r#"{"type":"fly"}"#,
            r#"{"type":"hello"}"#,
            r#"{"type":"hello","v":"one"}"#,
            r#"{"type":"raise_hand","extra":1}"#,
            r#"{"type":"mute","user":"not-a-uuid"}"#,
            r#"{"type":"captions"}"#,
            r#"{"type":"captions","on":"yes"}"#,
            r#"{"type":"allow_captions","on":true,"for":"all"}"#,
            "\u{0}\u{1}",
        ] {
            match parse(bad) {
                Err(ServerMsg::Error { code, .. }) => assert_eq!(code, "bad_message", "{bad:?}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        let big = format!(r#"{{"type":"answer","sdp":"{}"}}"#, "a".repeat(MAX_MESSAGE));
        assert!(matches!(parse(&big), Err(ServerMsg::Error { code, .. }) if code == "too_large"));
    }
}
