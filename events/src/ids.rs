//! Newtype identifiers. Every id is a UUID; the newtype keeps a room id from being
//! passed where a user id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered (UUIDv7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The wrapped UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// The id of this entity's event stream, e.g. `room-<uuid>`.
            pub fn stream_id(&self) -> String {
                format!(concat!($prefix, "-{}"), self.0)
            }

            /// The inverse of [`Self::stream_id`]: the id whose stream is `stream_id`, or
            /// `None` when `stream_id` is not a stream of this kind of entity.
            pub fn from_stream_id(stream_id: &str) -> Option<Self> {
                stream_id
                    .strip_prefix(concat!($prefix, "-"))
                    .and_then(|id| Uuid::parse_str(id).ok())
                    .map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

id_type!(
    /// A registered user.
    UserId,
    "user"
);
id_type!(
    /// A room: a group room or a direct (two-person) room.
    RoomId,
    "room"
);
id_type!(
    /// A file uploaded to a room, sent with a message (its bytes live in blob storage).
    AttachmentId,
    "attachment"
);
id_type!(
    /// A user's avatar image (its bytes live in blob storage).
    AvatarId,
    "avatar"
);
id_type!(
    /// A message inside a room.
    MessageId,
    "message"
);

/// Namespace for deriving the one direct room of a pair of users.
const DIRECT_ROOM_NAMESPACE: Uuid = Uuid::from_u128(0x6b1d_43a2_9c55_4f0e_8d7a_0f3e_2c51_9a77);

impl RoomId {
    /// The direct room of two users: the same id whichever of the two asks, so
    /// "one direct room per pair" is enforced by the event log's stream uniqueness.
    ///
    /// ```
    /// use events::ids::{RoomId, UserId};
    /// let (a, b) = (UserId::new(), UserId::new());
    /// assert_eq!(RoomId::direct(a, b), RoomId::direct(b, a));
    /// ```
    pub fn direct(a: UserId, b: UserId) -> RoomId {
        let (lo, hi) = if a.0 <= b.0 { (a.0, b.0) } else { (b.0, a.0) };
        let mut name = [0u8; 32];
        name[..16].copy_from_slice(lo.as_bytes());
        name[16..].copy_from_slice(hi.as_bytes());
        RoomId(Uuid::new_v5(&DIRECT_ROOM_NAMESPACE, &name))
    }
}
