//! A room state that forgets its oldest messages decides exactly as the whole state does,
//! provided the facts of a message a command needs are learnt back from the events that
//! name it (what the command side's room actor does with the log).

mod support;

use events::ids::MessageId;
use events::room::{self, RoomCommand, RoomEvent, RoomState};
use events::values::Visibility;
use proptest::prelude::*;
use support::*;
use uuid::Uuid;

const PEOPLE: [events::ids::UserId; 4] = [OWNER, ADMIN, ALICE, BOB];
const EMOJI: [&str; 3] = ["👍", "🎉", "👀"];

fn message_id(n: u8) -> MessageId {
    MessageId(Uuid::from_u128(0x5000 + u128::from(n)))
}

/// The id a message-related event names.
fn named(ev: &RoomEvent) -> Option<MessageId> {
    match ev {
        RoomEvent::MessageSent { message_id, .. }
        | RoomEvent::MessageEdited { message_id, .. }
        | RoomEvent::MessageDeleted { message_id, .. }
        | RoomEvent::ReactionAdded { message_id, .. }
        | RoomEvent::ReactionRemoved { message_id, .. } => Some(*message_id),
        _ => None,
    }
}

/// One step: (who, what, which message, which emoji).
fn step() -> impl Strategy<Value = (usize, u8, u8, usize)> {
    (0..PEOPLE.len(), 0u8..7, 0u8..24, 0..EMOJI.len())
}

fn command(what: u8, m: MessageId, other: MessageId, e: usize) -> RoomCommand {
    match what {
        0 => send(m),
        1 => send_reply(m, other),
        2 => edit(m),
        3 => delete(m),
        4 => react(m, EMOJI[e]),
        5 => unreact(m, EMOJI[e]),
        _ => admin_delete(m),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_trimmed_state_decides_as_the_whole_one(
        keep in 0usize..4,
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let mut log: Vec<RoomEvent> = busy_room(Visibility::Public);
        let mut whole = room::replay(&log);
        let mut trimmed = room::replay(&log);
        trimmed.trim_messages(keep);
        for (who, what, n, e) in steps {
            let actor = PEOPLE[who];
            let cmd = command(what, message_id(n), message_id(n / 2), e);
            if let Some(id) = cmd.message_ref()
                && trimmed.lacks_message(id)
            {
                trimmed.learn_message(log.iter().filter(|ev| named(ev) == Some(id)));
            }
            let expected = room::decide(&whole, actor, cmd.clone());
            let actual = room::decide(&trimmed, actor, cmd.clone());
            prop_assert_eq!(&actual, &expected, "{:?} by {:?}", cmd, actor);
            for ev in expected.unwrap_or_default() {
                whole = room::evolve(whole, &ev);
                trimmed = room::evolve(trimmed, &ev);
                log.push(ev);
            }
            trimmed.trim_messages(keep);
            prop_assert!(trimmed.messages.len() <= keep);
            prop_assert!(trimmed.message_order.len() <= keep);
        }
    }
}

#[test]
fn trimming_forgets_the_oldest_messages_first() {
    let mut state: RoomState = room::replay(&history([
        public_room(),
        vec![sent(M1, 1, OWNER), sent(M2, 2, OWNER), sent(M3, 3, OWNER)],
    ]));
    assert!(
        !state.lacks_message(UNKNOWN_MESSAGE),
        "nothing was forgotten yet"
    );
    state.trim_messages(2);
    assert!(state.lacks_message(M1));
    assert!(!state.lacks_message(M2) && !state.lacks_message(M3));
    assert_eq!(state.last_seq, 3, "the sequence is not forgotten");
    state.learn_message(&[sent(M1, 1, OWNER), deleted(M1, 1, OWNER)]);
    assert!(state.messages[&M1].deleted);
    assert_eq!(
        room::decide(&state, OWNER, edit(M1)),
        Err(events::room::RoomError::MessageDeleted)
    );
}
