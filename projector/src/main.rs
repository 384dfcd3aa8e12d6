//! `projector [run] [--projection NAME]...`: runs the registered projections (all by default;
//! health and metrics on `APP_LISTEN`).
//! `projector rebuild (--all | NAME...)`: empties projections and replays the whole log.

use std::io::Write as _;

use anyhow::Context as _;
use http_kit::settings::Layered as _;
use projector::configuration::Settings;
use projector::startup::Command;

/// mimalloc instead of the system allocator: the request, event and frame paths allocate
/// many small short-lived buffers, where glibc malloc showed up as a fifth of the CPU time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    http_kit::runtime::build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    http_kit::telemetry::init();
    let settings = Settings::load().context("loading settings")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match Command::parse(&args)? {
        Command::Run { projections } => {
            tracing::info!(?settings, ?projections, "starting projector");
            let app = projector::startup::build(settings, &projections).await?;
            tracing::info!(addr = %app.local_addr()?, "listening");
            app.run(http_kit::shutdown_signal()).await
        }
        Command::Rebuild { projections } => {
            let display = projector::progress::Display::for_stderr();
            let show = |p: &projector::framework::Progress| display.show(p);
            for line in projector::startup::rebuild(&settings, &projections, &show).await? {
                writeln!(std::io::stdout(), "{line}")?;
            }
            Ok(())
        }
    }
}
