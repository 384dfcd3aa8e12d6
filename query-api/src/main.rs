use anyhow::Context;
use http_kit::settings::Layered as _;
use query_api::configuration::Settings;

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
    tracing::info!(?settings, "starting query-api");
    let app = query_api::startup::build(settings).await?;
    tracing::info!(addr = %app.local_addr()?, "listening");
    app.run(http_kit::shutdown_signal()).await
}
