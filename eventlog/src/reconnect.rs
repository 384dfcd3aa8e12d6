//! Waits that end when the NATS connection they were made on does.
//!
//! A request sent on a connection that is then lost is never answered: the client
//! reconnects at once (http-kit's `nats::connect`), but the request's future still waits
//! out its whole time-out. After a network partition healed by resetting the connections,
//! that kept the relay 5 s and the live feed 10 s behind (the chaos battery, R5). Every
//! long-lived NATS user in the platform (the relay, the projector, the live feed) guards
//! its requests and its idle waits with a [`Connection`] taken before it sends: when the
//! client reconnects, the wait ends with [`Reconnected`] and the caller starts over on the
//! new connection.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::Statistics;

/// How often a guarded wait checks whether the client reconnected (one atomic load).
pub const CHECK: Duration = Duration::from_millis(50);

/// The client reconnected while a guarded wait was pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the client reconnected to NATS before the answer came")]
pub struct Reconnected;

/// A client's connection as of [`Connection::current`].
#[derive(Clone, Debug)]
pub struct Connection {
    stats: Arc<Statistics>,
    connects: u64,
}

impl Connection {
    /// The connection `client` has now.
    pub fn current(client: &async_nats::Client) -> Connection {
        let stats = client.statistics();
        let connects = stats.connects.load(Ordering::Relaxed);
        Connection { stats, connects }
    }

    /// Whether the client has connected again since.
    pub fn replaced(&self) -> bool {
        self.stats.connects.load(Ordering::Relaxed) > self.connects
    }

    /// Completes when the client has connected again since (never, if it does not).
    pub async fn until_replaced(&self) {
        let mut check = tokio::time::interval(CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.replaced() {
            check.tick().await;
        }
    }

    /// `wait`'s output, unless the client connects again first.
    pub async fn guard<F: Future>(&self, wait: F) -> Result<F::Output, Reconnected> {
        tokio::select! {
            out = wait => Ok(out),
            () = self.until_replaced() => Err(Reconnected),
        }
    }

    /// Sleeps for `pause`, or less if the client connects again meanwhile (a retry after a
    /// failure is then due at once).
    pub async fn pause(&self, pause: Duration) {
        let _ = tokio::time::timeout(pause, self.until_replaced()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn connection() -> (Arc<Statistics>, Connection) {
        let stats = Arc::new(Statistics::default());
        stats.connects.store(1, Ordering::Relaxed);
        let c = Connection {
            stats: stats.clone(),
            connects: 1,
        };
        (stats, c)
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_when_the_client_reconnects_and_not_before() {
        let (stats, c) = connection();
        let pending = c.guard(std::future::pending::<()>());
        tokio::pin!(pending);
        assert!(
            tokio::time::timeout(Duration::from_secs(60), &mut pending)
                .await
                .is_err(),
            "no reconnection: still waiting"
        );
        stats.connects.fetch_add(1, Ordering::Relaxed);
        assert_eq!(pending.await, Err(Reconnected));
        assert!(c.replaced());
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_before_a_reconnection_is_returned() {
        let (_, c) = connection();
        assert_eq!(c.guard(async { 7 }).await, Ok(7));
        assert!(!c.replaced());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_is_cut_short_by_a_reconnection() {
        let (stats, c) = connection();
        let started = tokio::time::Instant::now();
        c.pause(Duration::from_secs(1)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(1), "the whole pause");

        let started = tokio::time::Instant::now();
        let bump = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            stats.connects.fetch_add(1, Ordering::Relaxed);
        };
        tokio::join!(c.pause(Duration::from_secs(1)), bump);
        assert!(started.elapsed() < Duration::from_millis(300));
    }
}
