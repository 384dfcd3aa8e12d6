//! Waiting for something that happens asynchronously, bounded.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How long any single expected thing may take.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// Polls `condition` every `every` until it holds; panics with `what` once `within` has
/// passed without it.
pub async fn wait_until<F, Fut>(within: Duration, every: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !condition().await {
        assert!(Instant::now() < deadline, "{what} (waited {within:?})");
        tokio::time::sleep(every).await;
    }
}
