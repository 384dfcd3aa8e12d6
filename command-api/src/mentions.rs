//! Resolving a body's `@username`s to users before a send is decided: the room's rules then
//! keep only those who are members (`events::room::decide`), and the event carries ids.

use events::UserId;
use events::mention;
use events::values::MessageBody;
use sqlx::PgPool;

/// What a body mentions, resolved: the registered users it names (in the order first named;
/// unknown names are text) and whether it says `@room`.
pub struct Resolved {
    pub users: Vec<UserId>,
    pub room: bool,
}

/// Looks up the users `body` names, in one query on the write side's user registry (the
/// credentials table, which holds every username). A body naming nobody costs no query.
pub async fn resolve(pool: &PgPool, body: &MessageBody) -> Result<Resolved, sqlx::Error> {
    let found = mention::parse(body.as_str());
    if found.usernames.is_empty() {
        return Ok(Resolved {
            users: Vec::new(),
            room: found.room,
        });
    }
    let names: Vec<&str> = found.usernames.iter().map(|u| u.as_str()).collect();
    let rows: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT user_id, username FROM credentials WHERE username = ANY($1)")
            .bind(&names)
            .fetch_all(pool)
            .await?;
    let users = names
        .iter()
        .filter_map(|n| rows.iter().find(|(_, u)| u == n).map(|(id, _)| UserId(*id)))
        .collect();
    Ok(Resolved {
        users,
        room: found.room,
    })
}
