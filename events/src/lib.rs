//! The pure domain of the chat platform: identifiers, parsed values, commands,
//! events and the deciders that turn one into the other.
//!
//! Nothing here does I/O. A command handler loads a stream, folds it with
//! `evolve`, calls `decide` and appends what it returns:
//!
//! ```
//! use events::ids::{RoomId, UserId};
//! use events::room::{decide, replay, RoomCommand, RoomEvent};
//! use events::values::{RoomName, Topic, Visibility};
//!
//! let owner = UserId::new();
//! let room_id = RoomId::new();
//! let created = decide(&replay([]), owner, RoomCommand::Create {
//!     room_id,
//!     name: RoomName::parse("general").unwrap(),
//!     topic: Topic::parse("").unwrap(),
//!     visibility: Visibility::Public,
//! }).unwrap();
//! let state = replay(&created);
//! assert!(state.is_member(owner));
//! ```

pub mod attachment;
pub mod avatar;
pub mod ids;
pub mod mention;
pub mod retention;
pub mod room;
pub mod room_admin;
pub mod stored;
pub mod user;
pub mod values;

pub use ids::{AttachmentId, AvatarId, MessageId, RoomId, UserId};
pub use stored::StoredEvent;
