//! Deactivated accounts, in every process that verifies tokens: their tokens are refused at
//! once ([`crate::auth::JwtKeys::revoke_user`]), not when they expire.
//!
//! A deactivation is committed in the log's database first; then command-api publishes a
//! notice on core NATS (`{prefix}.auth.revoked`, the user id as text), which every process
//! follows. A process that misses the notice (it was restarting, NATS was unreachable) learns
//! of it from its database: read at start and again every [`RELOAD_EVERY`].

use crate::auth::JwtKeys;
use futures::StreamExt;
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

/// How often the deactivated users are read again, for a notice that was missed.
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// The core NATS subject of deactivation notices.
pub fn subject(prefix: &str) -> String {
    format!("{prefix}.auth.revoked")
}

/// Tells every process that `user`'s tokens are refused (after the deactivation committed).
pub async fn announce(nats: &async_nats::Client, prefix: &str, user: Uuid) {
    if let Err(e) = nats.publish(subject(prefix), user.to_string().into()).await {
        tracing::warn!(error = %e, %user, "announcing a deactivation failed; others reload within 30 s");
    }
}

/// Keeps `jwt`'s revoked users current: `load` reads them all (at start and every
/// [`RELOAD_EVERY`]); notices on `subscription` add one at once. Users are only ever added. `on_revoke` runs for each
/// user newly revoked, and for every notice (a query node closes their sockets, and forgets
/// the keys of a user who may have been erased). Runs until the subscription ends.
pub async fn follow<L, F>(
    jwt: JwtKeys,
    subscription: Option<async_nats::Subscriber>,
    load: L,
    on_revoke: impl Fn(Uuid) + Send + 'static,
) where
    L: Fn() -> F + Send + 'static,
    F: Future<Output = anyhow::Result<Vec<Uuid>>> + Send,
{
    // Only ever added to: a deactivation is not undone, and a notice may come before the
    // database this process reads has the deactivation (a read model still catching up).
    let apply = |users: Vec<Uuid>| {
        for u in users {
            if !jwt.is_revoked(u) {
                jwt.revoke_user(u);
                on_revoke(u);
            }
        }
    };
    let mut reload = tokio::time::interval(RELOAD_EVERY);
    reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut subscription = subscription;
    loop {
        tokio::select! {
            _ = reload.tick() => match load().await {
                Ok(users) => apply(users),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "reading deactivated users failed"),
            },
            msg = async {
                match subscription.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            } => match msg {
                Some(msg) => {
                    match std::str::from_utf8(&msg.payload).ok().and_then(|s| Uuid::parse_str(s.trim()).ok()) {
                        // Every notice is passed on, even of a user refused already: an
                        // erasure of a deactivated account is announced again (ADR 23).
                        Some(user) => {
                            jwt.revoke_user(user);
                            on_revoke(user);
                        }
                        None => tracing::warn!(subject = %msg.subject, "a deactivation notice that is not a user id"),
                    }
                }
                None => subscription = None,
            },
        }
    }
}
