//! The scenarios. To add one: a module here with its `clap::Args` struct and a
//! `run(&args, out)`, and a variant in [`Scenario`] dispatched in [`run`].

pub mod all;
pub mod baseline_nats;
pub mod baseline_pg;
pub mod connections;
pub mod fanout;
pub mod fanout_centrifugo;
pub mod mixed;
pub mod presence;
pub mod rebuild;
pub mod search_lag;
pub mod send;
pub mod uploads;

use std::path::Path;

#[derive(clap::Subcommand, Debug)]
pub enum Scenario {
    /// Send-message throughput (closed loop, N clients) or latency at a fixed rate (--rate).
    Send(send::SendArgs),
    /// Raw PostgreSQL single-row INSERT+COMMIT rate at the same concurrency levels.
    BaselinePg(baseline_pg::PgArgs),
    /// Core NATS round-trip and JetStream publish-ack latency.
    BaselineNats(baseline_nats::NatsArgs),
    /// WebSocket delivery latency: messages at a fixed rate into rooms watched by C sockets
    /// (of the platform, or of Centrifugo with --target centrifugo).
    Fanout(fanout::FanoutArgs),
    /// Hold N idle WebSockets and report the server's memory per connection.
    Connections(connections::ConnectionsArgs),
    /// Send → searchable lag: messages at a fixed rate, some of them polled for over search.
    SearchLag(search_lag::SearchLagArgs),
    /// A realistic mixed workload (sends, edits, deletes, reactions, read markers,
    /// membership and room changes) until --events events were appended.
    Mixed(mixed::MixedArgs),
    /// Presence in one big room: a sign-in burst of --members sockets, then churn
    /// (--churn-rate closes/s, each re-opened 0.5 s later): server CPU per presence change.
    Presence(presence::PresenceArgs),
    /// A blue/green rebuild (--rebuild-cmd) under live sends, reads, searches and
    /// WebSockets: errors, empty histories, latency before/during/after, nothing lost.
    Rebuild(rebuild::RebuildArgs),
    /// Concurrent streamed uploads (--uploads × --size, --rounds times): throughput, latency,
    /// and the server's RSS growth (--server-pid); --baseline-sink adds a loopback ceiling.
    Uploads(uploads::UploadsArgs),
    /// baseline-pg, baseline-nats and send one after another; writes all.json and summary.md.
    All(all::AllArgs),
}

pub async fn run(scenario: Scenario, out: &Path) -> anyhow::Result<()> {
    match scenario {
        Scenario::Send(a) => send::run(&a, out).await.map(drop),
        Scenario::BaselinePg(a) => baseline_pg::run(&a, out).await.map(drop),
        Scenario::BaselineNats(a) => baseline_nats::run(&a, out).await.map(drop),
        Scenario::Fanout(a) => fanout::run(&a, out).await.map(drop),
        Scenario::Connections(a) => connections::run(&a, out).await.map(drop),
        Scenario::SearchLag(a) => search_lag::run(&a, out).await.map(drop),
        Scenario::Mixed(a) => mixed::run(&a, out).await.map(drop),
        Scenario::Presence(a) => presence::run(&a, out).await.map(drop),
        Scenario::Rebuild(a) => rebuild::run(&a, out).await.map(drop),
        Scenario::Uploads(a) => uploads::run(&a, out).await.map(drop),
        Scenario::All(a) => all::run(&a, out).await,
    }
}
