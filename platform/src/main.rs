use std::io::Write as _;

use platform::{Command, Settings};

/// mimalloc instead of the system allocator: the request, event and frame paths allocate
/// many small short-lived buffers, where glibc malloc showed up as a fifth of the CPU time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    http_kit::runtime::build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    http_kit::telemetry::init();
    let settings = Settings::load()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match Command::parse(&args)? {
        Command::Run => {
            tracing::info!(?settings, "starting the chat platform");
            let platform = platform::build(settings).await?;
            tracing::info!(addr = %platform.local_addr()?, "chat platform listening (single node)");
            platform.run(http_kit::shutdown_signal()).await
        }
        Command::Rebuild { projections } => {
            let display = projector::progress::Display::for_stderr();
            let show = |p: &projector::framework::Progress| display.show(p);
            let lines =
                projector::startup::rebuild(&settings.projector, &projections, &show).await?;
            for line in lines {
                writeln!(std::io::stdout(), "{line}")?;
            }
            Ok(())
        }
    }
}
