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
