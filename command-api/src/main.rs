use anyhow::Context;
use command_api::configuration::Settings;
use http_kit::settings::Layered as _;
use http_kit::shutdown_signal;

/// mimalloc instead of the system allocator: the request, event and frame paths allocate
/// many small short-lived buffers, where glibc malloc showed up as a fifth of the CPU time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    http_kit::runtime::build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    command_api::telemetry::init();
    let settings = Settings::load().context("loading settings")?;
    tracing::info!(?settings, "starting command-api");
    let app = command_api::startup::build(settings).await?;
    tracing::info!(addr = %app.local_addr()?, "listening");
    app.run(shutdown_signal()).await
}
