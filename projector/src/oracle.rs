//! Compares read models row by row: every `rm_` table ordered by its primary key, every column
//! as text. Used by the exactly-once tests against a fresh replay of the log.

use sqlx::PgPool;

use crate::READ_MODEL_TABLES;

/// The primary-key order of each read-model table.
fn order_of(table: &str) -> &'static str {
    match table {
        "rm_users" => "user_id",
        "rm_rooms" => "room_id",
        "rm_members" => "room_id, user_id",
        "rm_messages" => "room_id, seq",
        "rm_direct_pairs" => "user_lo, user_hi",
        "rm_mentions" => "room_id, seq, user_id",
        "rm_room_mentions" => "room_id, seq",
        "rm_receipts" | "rm_notification_levels" | "rm_room_bans" => "room_id, user_id",
        "rm_audit" => "position",
        "rm_private_receipts" => "user_id",
        _ => "1",
    }
}

/// Every row of every read-model table, as text, in primary-key order.
pub async fn snapshot(pool: &PgPool) -> Result<Vec<(String, Vec<String>)>, sqlx::Error> {
    let mut out = Vec::new();
    for table in READ_MODEL_TABLES {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM {table} t ORDER BY {}",
            order_of(table)
        )))
        .fetch_all(pool)
        .await?;
        out.push(((*table).to_owned(), rows));
    }
    Ok(out)
}

/// The rows that differ between two snapshots: rows of `a` not in `b` plus rows of `b` not in
/// `a` (a changed row counts twice), with up to `examples` of them for the failure message.
pub fn diff(
    a: &[(String, Vec<String>)],
    b: &[(String, Vec<String>)],
    examples: usize,
) -> (usize, Vec<String>) {
    use std::collections::BTreeSet;
    let mut differing = 0;
    let mut shown = Vec::new();
    for ((table, ra), (_, rb)) in a.iter().zip(b) {
        let sa: BTreeSet<&String> = ra.iter().collect();
        let sb: BTreeSet<&String> = rb.iter().collect();
        for (side, row) in sa
            .difference(&sb)
            .map(|r| ("only in first", r))
            .chain(sb.difference(&sa).map(|r| ("only in second", r)))
        {
            differing += 1;
            if shown.len() < examples {
                shown.push(format!("{table} {side}: {row}"));
            }
        }
    }
    if a.len() != b.len() {
        differing += 1;
    }
    (differing, shown)
}
