//! A PostgreSQL server owned by one test: its own cluster (`initdb`) in a temporary
//! directory, on a free port, which the test may stop abruptly and start again (an
//! outage) without touching the PostgreSQL other tests share.
//!
//! The binaries are found with `pg_config --bindir` or under
//! `/usr/lib/postgresql/*/bin`. `initdb` and `postgres` refuse to run as root; a test
//! running as root runs them as the `postgres` OS user (`runuser -u postgres --`).
//! Every wait is bounded ([`WAIT`]). Dropping the server stops it and removes its
//! directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The longest any start or stop may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// The OS user the server runs as when the test runs as root.
const SERVER_USER: &str = "postgres";

/// A running (or stopped) PostgreSQL cluster of one test. See the module docs.
pub struct OwnedPostgres {
    ctl: Ctl,
    /// Holds `data/`, the socket and `server.log`; removed on drop (after the stop).
    _dir: tempfile::TempDir,
    running: bool,
}

/// What running the server's binaries needs (cheap to clone onto a blocking thread).
#[derive(Clone)]
struct Ctl {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Run the binaries through `runuser -u postgres --` (the test runs as root).
    as_server_user: bool,
}

impl OwnedPostgres {
    /// Creates a cluster and starts it. `Ok(None)` when the PostgreSQL server binaries
    /// are not installed (the caller skips, loudly); any other failure is an error.
    pub async fn start_new() -> anyhow::Result<Option<OwnedPostgres>> {
        let Some(bindir) = find_bindir() else {
            return Ok(None);
        };
        tokio::task::spawn_blocking(move || Self::init(bindir).map(Some)).await?
    }

    fn init(bindir: PathBuf) -> anyhow::Result<OwnedPostgres> {
        let as_server_user = is_root()?;
        let dir = tempfile::Builder::new()
            .prefix("chat-owned-pg-")
            .tempdir()
            .context("temporary directory")?;
        if as_server_user {
            run(Command::new("chown")
                .arg(format!("{SERVER_USER}:{SERVER_USER}"))
                .arg(dir.path()))
            .context("chown the cluster's directory to the postgres user")?;
        }
        let ctl = Ctl {
            bindir,
            dir: dir.path().to_owned(),
            port: free_port()?,
            as_server_user,
        };
        ctl.init()?;
        let mut pg = OwnedPostgres {
            ctl,
            _dir: dir,
            running: false,
        };
        pg.ctl.start()?;
        pg.running = true;
        Ok(pg)
    }

    /// The port it listens on (the same after every restart).
    pub fn port(&self) -> u16 {
        self.ctl.port
    }

    /// The postmaster's process id while it runs (the first line of `postmaster.pid`).
    pub fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.ctl.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// The URL of `database` on this server (user `postgres`, trusted).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.ctl.port)
    }

    /// Stops the server the way a crash would (`pg_ctl -m immediate`): every connection
    /// is cut at once, nothing is shut down cleanly.
    pub async fn stop_immediate(&mut self) -> anyhow::Result<()> {
        let ctl = self.ctl.clone();
        tokio::task::spawn_blocking(move || ctl.stop()).await??;
        self.running = false;
        Ok(())
    }

    /// Starts the server again on the same port and data; returns once it accepts TCP
    /// connections (bounded by [`WAIT`]).
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let ctl = self.ctl.clone();
        tokio::task::spawn_blocking(move || ctl.start()).await??;
        self.running = true;
        Ok(())
    }

    /// The last lines of the server's log (for failure messages).
    pub fn log_tail(&self) -> String {
        self.ctl.log_tail()
    }
}

impl Drop for OwnedPostgres {
    fn drop(&mut self) {
        if self.running
            && let Err(e) = self.ctl.stop()
        {
            eprintln!("owned PostgreSQL: could not stop it: {e:#}");
        }
    }
}

impl Ctl {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn init(&self) -> anyhow::Result<()> {
        let data = self.data();
        self.run_bin(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "--no-sync".as_ref(),
                "--encoding=UTF8".as_ref(),
                "--locale=C".as_ref(),
            ],
        )
        .context("initdb")?;
        // A small, fast, private server: loopback only, the socket in its own directory.
        // `fsync = off` loses nothing when only the server stops (the OS keeps what was
        // written); `synchronous_commit` stays on, or an immediate stop would lose
        // acknowledged commits still in the server's WAL buffers.
        let config = format!(
            "\n# owned by one test\nport = {port}\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket}'\nfsync = off\n\
             full_page_writes = off\nmax_connections = 200\nshared_buffers = 32MB\n",
            port = self.port,
            socket = self.dir.display(),
        );
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).context("read postgresql.conf")?;
        text.push_str(&config);
        std::fs::write(&conf, text).context("write postgresql.conf")?;
        Ok(())
    }

    fn start(&self) -> anyhow::Result<()> {
        let data = self.data();
        let log = self.dir.join("server.log");
        let wait = WAIT.as_secs().to_string();
        self.run_bin(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                wait.as_ref(),
                "start".as_ref(),
            ],
        )
        .with_context(|| format!("pg_ctl start; server log:\n{}", self.log_tail()))?;
        // `pg_ctl -w` waits for the server; make sure it answers on TCP too, bounded.
        let deadline = Instant::now() + WAIT;
        let port = self.port.to_string();
        loop {
            let ready = Command::new(self.bindir.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", port.as_str(), "-t", "1", "-q"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the owned PostgreSQL did not accept connections within {WAIT:?}; \
                     server log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&self) -> anyhow::Result<()> {
        let data = self.data();
        let wait = WAIT.as_secs().to_string();
        self.run_bin(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                wait.as_ref(),
                "stop".as_ref(),
            ],
        )
        .context("pg_ctl stop")?;
        Ok(())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn run_bin(&self, bin: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<Output> {
        let path = self.bindir.join(bin);
        let mut cmd = if self.as_server_user {
            let mut c = Command::new("runuser");
            c.args(["-u", SERVER_USER, "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        cmd.args(args).current_dir(&self.dir);
        run(&mut cmd).with_context(|| path.display().to_string())
    }
}

/// Runs `cmd` (bounded by the binaries' own `-t`), failing with its output when it fails.
fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .context("could not run the command")?;
    if !out.status.success() {
        bail!(
            "exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Where `initdb`, `pg_ctl` and `pg_isready` are: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/<version>/bin`. `None` when none has `initdb`.
pub fn find_bindir() -> Option<PathBuf> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_initdb(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_initdb(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> anyhow::Result<bool> {
    let out = run(Command::new("id").arg("-u")).context("id -u")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A port nothing listens on now (the OS picks it).
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind a free port")?;
    Ok(listener.local_addr()?.port())
}
