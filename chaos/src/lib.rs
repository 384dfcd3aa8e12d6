//! The fault battery (#15, `RELIABILITY.md`): scenarios R1–R9, each on a cluster the
//! harness owns — its own PostgreSQL (`initdb`), nats-server and platform processes — with
//! load through the public API, a ledger of every acknowledged command, faults injected by
//! process id (or by its own partitioning proxy), and an oracle that replays the
//! PostgreSQL log.
//!
//! - [`cluster`]: the processes of one scenario; [`process`]: one role process;
//!   [`proxy`]: the TCP proxy that partitions;
//! - [`load`]: the load and the [`load::Ledger`]; [`live`]: a live client of the feed;
//! - [`oracle`]: what must hold afterwards; [`report`]: the figures;
//! - [`scenarios`]: R1–R9, each in the short tier (CI) or the full tier.

pub mod cluster;
pub mod live;
pub mod load;
pub mod oracle;
pub mod process;
pub mod proxy;
pub mod report;
pub mod scenarios;
