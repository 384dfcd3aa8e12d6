//! `projector`: runs every registered projection (health and metrics on `APP_LISTEN`).
//! `projector rebuild --all`: empties every registered projection and replays the whole log.

use std::io::Write as _;
use std::time::Instant;

use anyhow::Context as _;
use projector::configuration::Settings;
use projector::startup::Application;

/// mimalloc instead of the system allocator: the request, event and frame paths allocate
/// many small short-lived buffers, where glibc malloc showed up as a fifth of the CPU time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    http_kit::telemetry::init();
    let settings = Settings::load().context("loading settings")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["run"] => {
            tracing::info!(?settings, "starting projector");
            let app = Application::build(settings).await?;
            tracing::info!(addr = %app.local_addr()?, "listening");
            app.run(http_kit::shutdown_signal()).await
        }
        ["rebuild", "--all"] => {
            let (pool, log) = settings.connect_databases().await?;
            projector::migrate(&pool)
                .await
                .context("read-model migrations")?;
            for projection in projector::registry(&pool) {
                let started = Instant::now();
                let n =
                    projector::framework::rebuild(&*projection, &pool, &log, projector::LOG_BATCH)
                        .await?;
                let secs = started.elapsed().as_secs_f64();
                writeln!(
                    std::io::stdout(),
                    "rebuilt {}: {n} events in {secs:.2} s ({:.0} events/s)",
                    projection.name(),
                    n as f64 / secs.max(1e-9)
                )?;
            }
            Ok(())
        }
        _ => {
            anyhow::bail!("usage: projector [run] | projector rebuild --all");
        }
    }
}
