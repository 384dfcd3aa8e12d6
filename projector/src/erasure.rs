//! What an erasure does to the read models (ADR 23). The erased users' bodies, names and
//! attachment names are sealed in the log under keys now shredded, so a rebuild already reads
//! them as `[erased]`; the live read models were written while the keys existed, and these
//! statements bring them to the same state. Idempotent, and absorbing: whatever of an erased
//! user a batch wrote before or after their `UserErased` ends up erased.

use sqlx::PgConnection;
use uuid::Uuid;

/// Erases `users`' personal values from the read models: their messages' bodies (deleted ones
/// stay tombstones) and attachment names, their username and display name, and their avatar
/// (its blobs are deleted by the command side; the picture is no sealed value, so a rebuild
/// clears it here too). A scan of
/// `rm_messages` by sender: erasures are rare, and an index on the sender would cost every send.
pub(crate) async fn erase(tx: &mut PgConnection, users: &[Uuid]) -> Result<(), sqlx::Error> {
    if users.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE rm_messages SET
             body = CASE WHEN body IS NULL THEN NULL ELSE $2 END,
             attachments = CASE WHEN attachments IS NULL THEN NULL ELSE (
                 SELECT jsonb_agg(a || jsonb_build_object('name', $2::text) ORDER BY i)
                 FROM jsonb_array_elements(attachments) WITH ORDINALITY AS t(a, i)) END
         WHERE sender_id = ANY($1)
           AND (body IS DISTINCT FROM $2 OR attachments IS NOT NULL)",
    )
    .bind(users)
    .bind(vault::ERASED_TEXT)
    .execute(&mut *tx)
    .await?;
    let names: Vec<String> = users.iter().map(|u| vault::erased_username(*u)).collect();
    sqlx::query(
        "UPDATE rm_users u SET username = e.username, display_name = $3,
             avatar_id = NULL, avatar_content_type = NULL
         FROM UNNEST($1::uuid[], $2::text[]) AS e(user_id, username)
         WHERE u.user_id = e.user_id",
    )
    .bind(users)
    .bind(&names)
    .bind(vault::ERASED_TEXT)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
