//! Building a service apart from serving it: [`Server::bind`] binds the listener (port 0
//! picks a free port, which [`Server::local_addr`] tells), [`Server::run`] serves until
//! a shutdown future resolves, drains in-flight requests, then stops the background
//! tasks that live as long as the service ([`Server::task`]: a relay, a projector).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use futures::future::{BoxFuture, FutureExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long background tasks get to stop once serving has ended.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Resolves when a background task should stop.
pub type Stop = BoxFuture<'static, ()>;

type Task = Box<dyn FnOnce(Stop) -> BoxFuture<'static, anyhow::Result<()>> + Send>;

/// A bound listener, the router it serves and the background tasks of the service.
pub struct Server {
    listener: TcpListener,
    router: Router,
    tasks: Vec<(&'static str, Task)>,
    stop_grace: Duration,
    header_read_timeout: Duration,
    drain_within: Duration,
}

impl Server {
    /// Binds `listen` (e.g. `127.0.0.1:8081`; port 0 picks a free port). Nothing is
    /// served until [`Server::run`].
    pub async fn bind(listen: &str, router: Router) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        Ok(Self {
            listener,
            router,
            tasks: Vec::new(),
            stop_grace: STOP_GRACE,
            header_read_timeout: HEADER_READ_TIMEOUT,
            drain_within: DRAIN_WITHIN,
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs `task` beside the server from [`Server::run`] on, until the [`Stop`] it is
    /// given resolves (after serving has ended). An error it ends with is logged.
    pub fn task<F, Fut>(mut self, name: &'static str, task: F) -> Self
    where
        F: FnOnce(Stop) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.tasks
            .push((name, Box::new(move |stop| task(stop).boxed())));
        self
    }

    /// How long the requests in flight get to finish once a shutdown has begun
    /// ([`DRAIN_WITHIN`] unless set).
    pub fn drain_within(mut self, within: Duration) -> Self {
        self.drain_within = within;
        self
    }

    /// How long a client has to send a request's headers ([`HEADER_READ_TIMEOUT`] unless
    /// set).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long the background tasks get to stop ([`STOP_GRACE`] unless set).
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Starts the background tasks and serves (handlers may extract
    /// `ConnectInfo<SocketAddr>`) until `shutdown` resolves; then drains in-flight
    /// requests and stops the tasks, waiting for them at most the stop grace.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let tasks: Vec<_> = self
            .tasks
            .into_iter()
            .map(|(name, task)| {
                let mut rx = stop_rx.clone();
                let stop = async move {
                    let _ = rx.wait_for(|stopped| *stopped).await;
                }
                .boxed();
                (name, tokio::spawn(task(stop)))
            })
            .collect();
        let served = serve(
            self.listener,
            self.router,
            self.header_read_timeout,
            self.drain_within,
            shutdown,
        )
        .await;
        let _ = stop_tx.send(true);
        let deadline = tokio::time::Instant::now() + self.stop_grace;
        for (name, handle) in tasks {
            match tokio::time::timeout_at(deadline, handle).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    tracing::error!(task = name, error = %format!("{e:#}"), "stopped with an error")
                }
                Ok(Err(e)) => tracing::error!(task = name, error = %e, "task failed"),
                Err(_) => tracing::warn!(task = name, "did not stop in time"),
            }
        }
        served
    }
}

/// A client has this long to send a request's headers, from the connection's start or
/// the previous response; then the connection is closed (a client that never finishes
/// its headers would otherwise hold a connection and a task for ever).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits
/// for the connections' in-flight requests (each connection finishes its request and
/// closes), at most [`DRAIN_WITHIN`]. What `axum::serve` does, with the HTTP/1 header read timeout it leaves unset
/// (`header_read_timeout`), and hyper's own parse-error answers with the JSON error body
/// ([`crate::parse_errors`]). Handlers may extract `ConnectInfo<SocketAddr>`.
async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    drain_within: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt as _;

    const MAX_READ_BUFFER: usize = 128 * 1024;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        // A connection's read buffer grows up to this (hyper's default is ~400 KiB): a
        // streamed upload is read a buffer at a time, so 100 concurrent ones held up to
        // 40 MiB in buffers alone. It still holds a request line of 64 KiB (414 above).
        .max_buf_size(MAX_READ_BUFFER);
    // The CONNECT protocol carries WebSockets over HTTP/2, as axum::serve allows.
    builder.http2().enable_connect_protocol();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, a connection reset before it was accepted:
                    // keep serving the others (as axum::serve does), after a pause when
                    // it is the process's limits.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                    ) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |req: axum::http::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(ConnectInfo(remote));
                    req
                });
        let conn = builder
            .serve_connection_with_upgrades(
                TokioIo::new(crate::parse_errors::JsonParseErrors::new(stream)),
                TowerToHyperService::new(service),
            )
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain_within, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            within = ?drain_within,
            "connections still busy after the shutdown's drain; stopping anyway"
        );
    }
    Ok(())
}

/// How long the requests in flight get to finish once a shutdown has begun. Handlers end
/// within the request time-out (10 s by default); this bounds what is left (a client that
/// reads its response slowly), so that a role always exits.
pub const DRAIN_WITHIN: Duration = Duration::from_secs(15);

/// A built service: its [`Server`], and the state its routes serve (for whoever runs it
/// in-process, such as tests, to reach into).
pub struct Application<S> {
    server: Server,
    pub state: S,
}

impl<S> Application<S> {
    pub fn new(server: Server, state: S) -> Self {
        Self { server, state }
    }

    /// The address bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.server.local_addr()
    }

    /// [`Server::run`].
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.server.run(shutdown).await
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Runs `server` until the returned sender fires: its address, the trigger, the run.
    fn start(
        server: Server,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ) {
        let addr = server.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        (addr, tx, running)
    }

    /// Sends `request` on a new connection; the whole answer, read until the server closes.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        conn.write_all(request).await.expect("write");
        let mut response = String::new();
        conn.read_to_string(&mut response).await.expect("read");
        response
    }

    #[tokio::test]
    async fn serves_on_the_bound_port_and_stops_its_tasks_after_shutdown() {
        let router = Router::new().route("/", get(|| async { "hi" }));
        let stopped = Arc::new(AtomicBool::new(false));
        let seen = stopped.clone();
        let server = Server::bind("127.0.0.1:0", router)
            .await
            .expect("bind")
            .task("waits", move |stop| async move {
                stop.await;
                seen.store(true, Ordering::SeqCst);
                Ok(())
            });
        let (addr, tx, running) = start(server);
        let response = exchange(
            addr,
            b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert!(response.ends_with("hi"), "{response}");
        assert!(!stopped.load(Ordering::SeqCst));
        let _ = tx.send(());
        running.await.expect("join").expect("run");
        assert!(stopped.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_disconnected() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let router = Router::new().route("/", get(|| async { "hi" }));
        let server = Server::bind("127.0.0.1:0", router)
            .await
            .expect("bind")
            .header_read_timeout(Duration::from_millis(300));
        let (addr, tx, running) = start(server);
        // Half a request line and one header, then silence.
        let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
        slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
            .await
            .expect("write");
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "still open after 10 s");
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        // Others are served meanwhile and after.
        let response = exchange(
            addr,
            b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert!(response.ends_with("hi"), "{response}");
        let _ = tx.send(());
        running.await.expect("join").expect("run");
    }

    #[tokio::test]
    async fn requests_hyper_cannot_parse_get_the_json_error_body() {
        let router = Router::new().route("/", get(|| async { "hi" }));
        let server = Server::bind("127.0.0.1:0", router).await.expect("bind");
        let (addr, tx, running) = start(server);
        let long_uri = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000));
        let many_headers = format!(
            "GET / HTTP/1.1\r\nhost: x\r\n{}\r\n",
            (0..150)
                .map(|i| format!("x-h{i}: v\r\n"))
                .collect::<String>()
        );
        for (request, status, code) in [
            (
                "GET / HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n".to_owned(),
                400,
                "bad_request",
            ),
            (
                "GET / HTTP/1.1\r\nhost: x\r\nbad header name: v\r\n\r\n".to_owned(),
                400,
                "bad_request",
            ),
            (long_uri, 414, "uri_too_long"),
            (many_headers, 431, "headers_too_large"),
        ] {
            let response = exchange(addr, request.as_bytes()).await;
            let (head, body) = response.split_once("\r\n\r\n").expect("a response");
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
            assert!(head.contains("content-type: application/json"), "{head}");
            let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
            assert_eq!(json["error"]["code"], code, "{body}");
        }
        // The well-formed are served as before.
        let response = exchange(
            addr,
            b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.ends_with("hi"), "{response}");
        let _ = tx.send(());
        running.await.expect("join").expect("run");
    }

    #[tokio::test]
    async fn shutdown_lets_an_in_flight_request_finish() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // The handler runs until the test releases it, after shutdown has begun.
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let held = Arc::new(std::sync::Mutex::new(Some((entered_tx, release_rx))));
        let router = Router::new().route(
            "/",
            get(move || {
                let held = held.clone();
                async move {
                    let taken = held.lock().expect("lock").take();
                    if let Some((entered, release)) = taken {
                        let _ = entered.send(());
                        let _ = release.await;
                    }
                    "done"
                }
            }),
        );
        let server = Server::bind("127.0.0.1:0", router).await.expect("bind");
        let (addr, tx, running) = start(server);
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        entered_rx.await.expect("the handler ran");
        let _ = tx.send(());
        // Shutdown has begun; the request is still in flight. Let it finish.
        tokio::task::yield_now().await;
        let _ = release_tx.send(());
        let mut response = String::new();
        conn.read_to_string(&mut response).await.expect("read");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("done"), "{response}");
        running.await.expect("join").expect("run");
        // No longer accepting.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn a_request_that_never_ends_does_not_hold_the_shutdown_beyond_the_drain() {
        use tokio::io::AsyncWriteExt;
        let (entered_tx, entered_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let router = Router::new().route(
            "/",
            get(move || {
                let _ = entered_tx.send(());
                std::future::pending::<&'static str>()
            }),
        );
        let drain = Duration::from_millis(200);
        let server = Server::bind("127.0.0.1:0", router)
            .await
            .expect("bind")
            .drain_within(drain);
        let (addr, tx, running) = start(server);
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        let mut entered_rx = entered_rx;
        entered_rx.recv().await.expect("the handler ran");
        let began = std::time::Instant::now();
        let _ = tx.send(());
        tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("the server stopped")
            .expect("join")
            .expect("run");
        assert!(
            began.elapsed() >= drain,
            "it waited for the drain: {:?}",
            began.elapsed()
        );
    }
}
