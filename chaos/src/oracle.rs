//! The oracle: what must hold after any scenario, computed from the PostgreSQL log alone.
//!
//! - every acknowledged message is in the log exactly once, with the id and `seq` the API
//!   answered; no `client_msg_id` is in it twice; each room's `seq`s run 1, 2, 3, … with no
//!   gap; every acknowledged edit and reaction is in the log;
//! - the read models equal a fresh replay of the log into a database of their own
//!   (`projector::catch_up_from_log`), row by row — a double apply or a lost event shows as
//!   a differing row;
//! - the JetStream stream holds every position of the log once, in order (sequence =
//!   position, `Nats-Msg-Id` = event id).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use sqlx::PgPool;
use uuid::Uuid;

use crate::cluster::Cluster;
use crate::load::{Ledger, Sent};

/// What the oracle found.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    pub events: i64,
    pub acknowledged: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub seq_gaps: usize,
    pub edits_lost: usize,
    pub reactions_lost: usize,
    pub rows_differing: usize,
    pub read_model_rows: usize,
    pub stream_wrong: usize,
    pub dead_letters: i64,
    pub replay: Duration,
    pub examples: Vec<String>,
}

impl Verdict {
    /// Nothing lost, duplicated or different (dead letters are judged by the scenario).
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.seq_gaps == 0
            && self.edits_lost == 0
            && self.reactions_lost == 0
            && self.rows_differing == 0
            && self.stream_wrong == 0
    }
}

/// A `MessageSent` of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub room: Uuid,
    pub message_id: Uuid,
    pub seq: i64,
    pub client_msg_id: Option<String>,
}

/// Compares the acknowledged messages with the log's: `(lost, duplicated, seq gaps,
/// examples)`. Pure, so the rules have tests of their own.
pub fn check_messages(acked: &[Sent], logged: &[Logged]) -> (usize, usize, usize, Vec<String>) {
    let mut examples = Vec::new();
    let mut by_client: HashMap<&str, Vec<&Logged>> = HashMap::new();
    for l in logged {
        if let Some(c) = &l.client_msg_id {
            by_client.entry(c.as_str()).or_default().push(l);
        }
    }
    let duplicated = by_client.values().filter(|v| v.len() > 1).count();
    for (c, v) in by_client.iter().filter(|(_, v)| v.len() > 1).take(3) {
        examples.push(format!("client_msg_id {c} is in the log {} times", v.len()));
    }
    let mut lost = 0;
    for a in acked {
        let found = by_client.get(a.client_msg_id.as_str()).and_then(|v| {
            v.iter()
                .find(|l| l.room == a.room && l.message_id == a.message_id && l.seq == a.seq)
        });
        if found.is_none() {
            lost += 1;
            if examples.len() < 10 {
                examples.push(format!(
                    "acknowledged message {} (room {}, seq {}) is not in the log as answered",
                    a.message_id, a.room, a.seq
                ));
            }
        }
    }
    let mut seqs: BTreeMap<Uuid, Vec<i64>> = BTreeMap::new();
    for l in logged {
        seqs.entry(l.room).or_default().push(l.seq);
    }
    let mut gaps = 0;
    for (room, mut s) in seqs {
        s.sort_unstable();
        for (i, seq) in s.iter().enumerate() {
            if *seq != i as i64 + 1 {
                gaps += 1;
                if examples.len() < 10 {
                    examples.push(format!("room {room}: seq {seq} at index {i}"));
                }
                break;
            }
        }
    }
    (lost, duplicated, gaps, examples)
}

/// Runs every check. The cluster must have converged (see [`Cluster::converge`]).
pub async fn judge(cluster: &Cluster, ledger: &Ledger) -> anyhow::Result<Verdict> {
    let pool = &cluster.pool;
    let mut v = Verdict {
        events: cluster.head().await?,
        acknowledged: ledger.sent.len(),
        ..Verdict::default()
    };
    // Poison events (R7) may lack any of these: they are not messages.
    type Row = (String, Option<String>, Option<i64>, Option<String>);
    let logged: Vec<Logged> = sqlx::query_as::<_, Row>(
        "SELECT stream_id, data->>'message_id', (data->>'seq')::bigint, data->>'client_msg_id' \
         FROM events WHERE event_type = 'MessageSent'",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .filter_map(|(stream, message_id, seq, client_msg_id)| {
        Some(Logged {
            room: stream.strip_prefix("room-")?.parse().ok()?,
            message_id: message_id?.parse().ok()?,
            seq: seq?,
            client_msg_id,
        })
    })
    .collect();
    let (lost, duplicated, gaps, examples) = check_messages(&ledger.sent, &logged);
    (v.lost, v.duplicated, v.seq_gaps) = (lost, duplicated, gaps);
    v.examples.extend(examples);

    // Bodies are sealed in the log (ADR 23): opened with their authors' keys.
    let mut edited: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT data FROM events WHERE event_type = 'MessageEdited'")
            .fetch_all(pool)
            .await?;
    let keyring = vault::Keyring::new(pool.clone(), false);
    keyring
        .load(
            edited
                .iter()
                .flat_map(|d| vault::fields::keys_named("MessageEdited", d)),
        )
        .await?;
    for data in &mut edited {
        keyring.open("MessageEdited", data)?;
    }
    let edits: std::collections::HashSet<(String, String)> = edited
        .iter()
        .filter_map(|d| {
            Some((
                d.get("message_id")?.as_str()?.to_owned(),
                d.get("body")?.as_str()?.to_owned(),
            ))
        })
        .collect();
    v.edits_lost = ledger
        .edits
        .iter()
        .filter(|(m, body)| !edits.contains(&(m.to_string(), body.clone())))
        .count();
    let reactions: Vec<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT data->>'message_id', data->>'user_id', data->>'emoji' FROM events \
         WHERE event_type = 'ReactionAdded'",
    )
    .fetch_all(pool)
    .await?;
    let reactions: std::collections::HashSet<(String, String, String)> = reactions
        .into_iter()
        .filter_map(|(m, u, e)| Some((m?, u?, e?)))
        .collect();
    v.reactions_lost = ledger
        .reactions
        .iter()
        .filter(|(m, u, e)| !reactions.contains(&(m.to_string(), u.to_string(), e.clone())))
        .count();
    if v.edits_lost + v.reactions_lost > 0 {
        v.examples.push(format!(
            "{} acknowledged edits and {} acknowledged reactions are not in the log",
            v.edits_lost, v.reactions_lost
        ));
    }

    let (rows, differing, shown, took) = replay_and_compare(cluster).await?;
    (v.read_model_rows, v.rows_differing, v.replay) = (rows, differing, took);
    v.examples.extend(shown);
    let (wrong, shown) = stream_equals_log(cluster).await?;
    v.stream_wrong = wrong;
    v.examples.extend(shown);
    // Events dead-lettered (by any projection: each that decodes one records it).
    v.dead_letters = sqlx::query_scalar("SELECT count(DISTINCT position) FROM dead_letters")
        .fetch_one(pool)
        .await?;
    Ok(v)
}

/// Replays the log into a fresh database and compares every read-model row with the live
/// ones: `(rows, differing rows, examples, replay time)`.
async fn replay_and_compare(
    cluster: &Cluster,
) -> anyhow::Result<(usize, usize, Vec<String>, Duration)> {
    let name = format!("oracle_{}", Uuid::new_v4().simple());
    let admin = PgPool::connect(&cluster.pg.url("postgres")).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await?;
    let oracle = PgPool::connect(&cluster.pg.url(&name)).await?;
    projector::migrate(&oracle)
        .await
        .context("the oracle's migrations")?;
    let started = Instant::now();
    projector::catch_up_from_log(&oracle, &cluster.pool)
        .await
        .context("replay the log into the oracle")?;
    let took = started.elapsed();
    let live = projector::oracle::snapshot(&cluster.pool).await?;
    let replayed = projector::oracle::snapshot(&oracle).await?;
    let (differing, shown) = projector::oracle::diff(&live, &replayed, 5);
    let rows = live.iter().map(|(_, r)| r.len()).sum();
    oracle.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
        .execute(&admin)
        .await?;
    Ok((rows, differing, shown, took))
}

/// Reads the whole stream in order: `(positions wrong, examples)`. Every sequence must
/// carry the log's event at that position, and nothing more.
async fn stream_equals_log(cluster: &Cluster) -> anyhow::Result<(usize, Vec<String>)> {
    use async_nats::jetstream::consumer::pull::OrderedConfig;
    let log: Vec<(i64, Uuid)> =
        sqlx::query_as("SELECT position, event_id FROM events ORDER BY position")
            .fetch_all(&cluster.pool)
            .await?;
    let client = async_nats::connect(cluster.nats.url()).await?;
    let js = async_nats::jetstream::new(client);
    let mut stream = js
        .get_stream(eventlog::RelayConfig::default().stream_name)
        .await?;
    let info = stream.info().await?.state.clone();
    let mut wrong = 0;
    let mut examples = Vec::new();
    if info.messages != log.len() as u64 || info.first_sequence != 1 {
        wrong += 1;
        examples.push(format!(
            "the stream holds {} messages from {} for a log of {}",
            info.messages,
            info.first_sequence,
            log.len()
        ));
    }
    let consumer = stream
        .create_consumer(OrderedConfig::default())
        .await
        .context("an ordered consumer")?;
    let mut messages = consumer.messages().await?;
    for (position, event_id) in &log {
        let next = tokio::time::timeout(Duration::from_secs(10), messages.next()).await;
        let Ok(Some(Ok(msg))) = next else {
            wrong += 1;
            examples.push(format!("the stream ends before position {position}"));
            break;
        };
        let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
        let id = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned());
        if seq != *position as u64 || id.as_deref() != Some(event_id.to_string().as_str()) {
            wrong += 1;
            if examples.len() < 5 {
                examples.push(format!(
                    "stream sequence {seq} carries {id:?}, the log's position {position} is {event_id}"
                ));
            }
        }
    }
    Ok((wrong, examples))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(room: Uuid, c: &str, m: Uuid, seq: i64) -> Sent {
        Sent {
            room,
            client_msg_id: c.into(),
            message_id: m,
            seq,
            at: Instant::now(),
        }
    }

    fn logged(room: Uuid, c: &str, m: Uuid, seq: i64) -> Logged {
        Logged {
            room,
            message_id: m,
            seq,
            client_msg_id: Some(c.into()),
        }
    }

    #[test]
    fn loss_duplicates_and_gaps_are_each_counted() {
        let (r, m1, m2, m3) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let acked = vec![sent(r, "a", m1, 1), sent(r, "b", m2, 2)];
        let all = vec![logged(r, "a", m1, 1), logged(r, "b", m2, 2)];
        let (lost, dup, gaps, _) = check_messages(&acked, &all);
        assert_eq!((lost, dup, gaps), (0, 0, 0));
        // Lost: b is not in the log; a gap: seq 2 is missing before 3.
        let without_b = vec![logged(r, "a", m1, 1), logged(r, "c", m3, 3)];
        let (lost, dup, gaps, _) = check_messages(&acked, &without_b);
        assert_eq!((lost, dup, gaps), (1, 0, 1));
        // Duplicated: a retry that was applied twice.
        let twice = vec![
            logged(r, "a", m1, 1),
            logged(r, "b", m2, 2),
            logged(r, "a", m3, 3),
        ];
        let (lost, dup, gaps, _) = check_messages(&acked, &twice);
        assert_eq!((lost, dup, gaps), (0, 1, 0));
        // In the log, but not as the API answered (another seq).
        let other_seq = vec![logged(r, "a", m1, 1), logged(r, "b", m2, 3)];
        let (lost, _, gaps, _) = check_messages(&acked, &other_seq);
        assert_eq!((lost, gaps), (1, 1));
    }
}
