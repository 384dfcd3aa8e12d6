//! Mentions in a message body: `@username` names one user, `@room` the whole room. The text
//! is read once, when a send is decided; the event then carries user ids, so nothing
//! downstream (projections, the live feed, notifications) parses bodies again.

use crate::values::Username;

/// Most distinct users one message may mention; names beyond it are left as text.
pub const MAX_MENTIONS_PER_MESSAGE: usize = 50;

/// The word that mentions everyone in a room (owners and admins only; for others it is text).
pub const ROOM_MENTION: &str = "room";

/// What a body mentions, before anyone is looked up: the usernames (each once, in the order
/// first written, at most [`MAX_MENTIONS_PER_MESSAGE`]) and whether it says `@room`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mentions {
    pub usernames: Vec<Username>,
    pub room: bool,
}

/// Finds the mentions of `body`. A mention is `@` at the start or after a character that
/// cannot be part of an address or a name (so `alice@example.com` mentions nobody), followed
/// by a valid username, ended by a character that cannot continue one. A trailing `.` or `-`
/// ends a sentence rather than the name (`thanks @bob.`). Case matters: usernames are
/// lowercase, so `@Bob` is text.
///
/// ```
/// use events::mention::parse;
/// let m = parse("hi @alice and @bob.x, cc @alice; see a@b.com @room!");
/// let names: Vec<&str> = m.usernames.iter().map(|u| u.as_str()).collect();
/// assert_eq!(names, ["alice", "bob.x"]);
/// assert!(m.room);
/// assert!(parse("thanks @bob.").usernames[0].as_str() == "bob");
/// ```
///
/// The rules are pinned by shared vectors, `tests/vectors/mentions.json`, which the web
/// client checks too.
pub fn parse(body: &str) -> Mentions {
    let mut out = Mentions::default();
    let chars: Vec<char> = body.chars().collect();
    let name_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i] == '@'
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || "_.-@".contains(chars[i - 1])));
        if !starts {
            i += 1;
            continue;
        }
        let mut end = i + 1;
        while end < chars.len() && name_char(chars[end]) {
            end += 1;
        }
        // A name followed by more of a word (`@Bob`, `@bobé`) is not a mention.
        let cut_short = end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '@');
        let mut name: String = chars[i + 1..end].iter().collect();
        while name.ends_with(['.', '-']) {
            name.pop();
        }
        i = end.max(i + 1);
        if cut_short || name.is_empty() {
            continue;
        }
        if name == ROOM_MENTION {
            out.room = true;
            continue;
        }
        if out.usernames.len() >= MAX_MENTIONS_PER_MESSAGE {
            continue;
        }
        if let Ok(u) = Username::parse(&name)
            && !out.usernames.contains(&u)
        {
            out.usernames.push(u);
        }
    }
    out
}
