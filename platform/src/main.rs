use platform::{Platform, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    http_kit::telemetry::init();
    let settings = Settings::load()?;
    let platform = Platform::build(settings).await?;
    tracing::info!(addr = %platform.local_addr()?, "chat platform listening (single node)");
    platform.run(http_kit::shutdown_signal()).await
}
