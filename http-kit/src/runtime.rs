//! The services' Tokio runtime: the multi-threaded default, with a bounded blocking pool.
//!
//! Tokio's default allows 512 blocking threads. Local blob writes (object_store's file
//! backend), search reads and password hashes run there, so 100 concurrent uploads made 100
//! threads, each with its stack and its allocator's thread cache: the server's memory grew
//! with the number of uploads in flight (+85 to +117 MiB for 100 × 10 MiB, BENCHMARKS.md).
//! A bounded pool queues the work instead.

/// Blocking threads at most: plenty for two cores' disks and hashes.
pub const MAX_BLOCKING_THREADS: usize = 16;

/// The runtime every service binary runs on, with the process's TLS provider installed
/// first ([`crate::tls`]).
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    crate::tls::install_default_provider();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
}

/// A runtime of its own, at a lower CPU priority, for work that should yield the cores to
/// serving when both want them: in single-node mode, the projector and the search index's
/// writer (docs/adr/0026-background-work-yields-to-the-live-path.md). Its threads, and the
/// threads they start (Tantivy's indexing and merging), run at the nice value given, so under
/// a load that saturates the cores the kernel gives the request and fan-out threads the larger
/// share, and the background work catches up when the load falls.
///
/// Dropping it shuts it down without waiting (allowed inside another runtime).
pub struct Background {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Background {
    /// Starts the runtime: as many workers as cores, each at `nice` (0: the process's own
    /// priority; 1 to 19: lower). A nice value the system refuses is logged, not an error.
    pub fn start(nice: i32) -> std::io::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .max_blocking_threads(MAX_BLOCKING_THREADS)
            .thread_name("background")
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()?;
        Ok(Background {
            runtime: Some(runtime),
        })
    }

    /// Where to spawn the background work.
    pub fn handle(&self) -> tokio::runtime::Handle {
        match &self.runtime {
            Some(rt) => rt.handle().clone(),
            None => unreachable!("the runtime is only taken when dropped"),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Sets the calling thread's nice value (on Linux a thread's own; threads it starts inherit it).
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::warn!(error = %e, nice, "cannot lower a background thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's nice value.
    fn thread_nice() -> std::io::Result<i32> {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).map_err(Into::into)
    }

    #[test]
    fn background_threads_and_the_threads_they_start_run_at_the_nice_value_given() {
        let own = thread_nice().expect("nice");
        // Lower than the test's own: raising a priority would need a privilege.
        let nice = (own + 7).min(19);
        let bg = Background::start(nice).expect("runtime");
        let handle = bg.handle();
        let task = handle.spawn(async {
            let worker = thread_nice().expect("nice");
            let (blocking, child) = tokio::task::spawn_blocking(|| {
                let child = std::thread::spawn(|| thread_nice().expect("nice"))
                    .join()
                    .expect("thread");
                (thread_nice().expect("nice"), child)
            })
            .await
            .expect("blocking task");
            (worker, blocking, child)
        });
        let seen = handle.block_on(task).expect("task");
        assert_eq!(seen, (nice, nice, nice));
        // The caller's thread is untouched.
        assert_eq!(thread_nice().expect("nice"), own);
    }
}
