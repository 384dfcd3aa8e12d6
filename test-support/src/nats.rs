//! A NATS server owned by one test: `nats-server` with JetStream, its store in a temporary
//! directory, on a free port, which the test may kill (`SIGKILL`) and start again on the
//! same port and store without touching the server other tests share.
//!
//! The binary is `NATS_SERVER` when set, else `nats-server` on `PATH`, else
//! `/usr/sbin/nats-server` (Debian's package, which `scripts/services.sh` installs). Every
//! wait is bounded ([`WAIT`]). Dropping the server kills it and removes its directory.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The longest a start may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running (or killed) nats-server of one test. See the module docs.
pub struct OwnedNats {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// A configuration file (`-c`) and the environment it takes values from; the
    /// address, port and store given on the command line override the file's.
    config: Option<(PathBuf, Vec<(String, String)>)>,
}

impl OwnedNats {
    /// Starts a server. `Ok(None)` when no `nats-server` binary is installed (the caller
    /// skips, loudly).
    pub async fn start_new() -> anyhow::Result<Option<OwnedNats>> {
        Self::start_configured(None).await
    }

    /// [`OwnedNats::start_new`] with the configuration file `config` (users, permissions),
    /// its `$VARIABLE`s taken from `env`.
    pub async fn start_with_config(
        config: &std::path::Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Option<OwnedNats>> {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self::start_configured(Some((config.to_owned(), env))).await
    }

    async fn start_configured(
        config: Option<(PathBuf, Vec<(String, String)>)>,
    ) -> anyhow::Result<Option<OwnedNats>> {
        let Some(binary) = find_binary() else {
            return Ok(None);
        };
        let port = free_port()?;
        let dir = tempfile::Builder::new()
            .prefix("chat-owned-nats-")
            .tempdir()
            .context("temporary directory")?;
        let mut nats = OwnedNats {
            binary,
            port,
            dir,
            child: None,
            config,
        };
        nats.start().await?;
        Ok(Some(nats))
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The port it listens on (the same after every restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server again (after [`OwnedNats::kill`]) on the same port and store, and
    /// waits until it accepts connections.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("nats-server is running already");
        }
        let log = std::fs::File::create(self.dir.path().join("server.log"))?;
        let store = self.dir.path().join("store");
        let mut command = Command::new(&self.binary);
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        match &self.config {
            // The file's store comes from `NATS_STORE_DIR`, and its monitoring port is
            // fixed: another free one instead.
            Some((file, env)) => command
                .arg("-c")
                .arg(file)
                .args(["-m", &free_port()?.to_string()])
                .envs(env.iter().map(|(k, v)| (k, v)))
                .env("NATS_STORE_DIR", &store),
            None => command.args(["-js", "-sd"]).arg(&store),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", self.binary.display()))?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            // JetStream has restored its streams once the server says it is ready.
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            if log.contains("Server is ready")
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "nats-server exited ({status}): {}",
                    std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
                );
            }
            if started.elapsed() > WAIT {
                bail!(
                    "nats-server did not accept connections on port {} within {WAIT:?}: {}",
                    self.port,
                    std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `SIGKILL`s the server and waits for it to be gone.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("kill nats-server")?;
            child.wait().context("wait for nats-server")?;
        }
        Ok(())
    }
}

impl Drop for OwnedNats {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let debian = PathBuf::from("/usr/sbin/nats-server");
        debian.is_file().then_some(debian)
    })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
