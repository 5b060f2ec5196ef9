//! Time-ordered identifiers (UUIDv7), one newtype per kind of thing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Error;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id, ordered after every id made earlier by this process.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The id as a `Uuid`.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Uuid::try_parse(s.trim())
                    .map(Self)
                    .map_err(|_| Error::Invalid(format!(concat!("not a valid ", $what, " id: {:?}"), crate::truncate_for_message(s))))
            }
        }
    };
}

id_type!(
    /// A recording: one take of a room, or one imported file.
    RecordingId, "recording"
);
id_type!(
    /// One speaker's track inside a recording.
    TrackId, "track"
);
id_type!(
    /// A live room.
    RoomId, "room"
);
id_type!(
    /// A speaker's identity in a recording (a user, or a name given at import).
    SpeakerId, "speaker"
);
id_type!(
    /// A user account.
    UserId, "user"
);

id_type!(
    /// A job in the catalog's queue.
    JobId, "job"
);

id_type!(
    /// A URL a user registered to be told of events.
    WebhookId, "webhook"
);

id_type!(
    /// One event on its way to one webhook (the same on every attempt).
    DeliveryId, "delivery"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_round_trip() {
        let a = RecordingId::new();
        let b = RecordingId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<RecordingId>().unwrap(), a);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn bad_ids_are_rejected_with_a_message() {
        let err = "../etc/passwd".parse::<TrackId>().unwrap_err();
        assert!(err.to_string().contains("not a valid track id"));
    }
}
