//! Projector (read models from JetStream). This issue ships only its health endpoint; the read side is issue 3.

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let listen = std::env::var("APP_LISTEN").unwrap_or_else(|_| "127.0.0.1:8083".to_owned());
    let app = Router::new().route("/healthz", get(|| async { r#"{"status":"ok"}"# }));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(%listen, "listening");
    axum::serve(listener, app).await?;
    Ok(())
}
