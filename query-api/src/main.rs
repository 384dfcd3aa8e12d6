use anyhow::Context;
use query_api::configuration::Settings;
use query_api::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    http_kit::telemetry::init();
    let settings = Settings::load().context("loading settings")?;
    tracing::info!(?settings, "starting query-api");
    let app = Application::build(settings).await?;
    tracing::info!(addr = %app.local_addr()?, "listening");
    app.run(http_kit::shutdown_signal()).await
}
