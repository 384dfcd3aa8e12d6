use platform::Settings;

/// mimalloc instead of the system allocator: the request, event and frame paths allocate
/// many small short-lived buffers, where glibc malloc showed up as a fifth of the CPU time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    http_kit::telemetry::init();
    let settings = Settings::load()?;
    tracing::info!(?settings, "starting the chat platform");
    let platform = platform::build(settings).await?;
    tracing::info!(addr = %platform.local_addr()?, "chat platform listening (single node)");
    platform.run(http_kit::shutdown_signal()).await
}
