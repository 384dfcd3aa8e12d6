//! A platform process the harness owns: one of the role binaries (`command-api`,
//! `projector`, `query-api`) started with its `APP_*` settings, its output in a log file
//! of its own, and faults delivered to it by process id (`kill -s KILL|STOP|CONT <pid>`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a role may take to answer `/readyz` 200 after its start.
pub const READY_WITHIN: Duration = Duration::from_secs(60);

/// One role process (started, killed, started again with the same settings).
pub struct Proc {
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    /// Where its HTTP server listens (`APP_LISTEN`).
    pub port: u16,
    child: Option<tokio::process::Child>,
    /// Times it was started (the first start included).
    pub starts: u32,
}

impl Proc {
    pub fn new(
        name: &str,
        program: PathBuf,
        args: &[&str],
        env: Vec<(String, String)>,
        dir: &Path,
        port: u16,
    ) -> Proc {
        Proc {
            name: name.to_owned(),
            program,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env,
            log: dir.join(format!("{name}.log")),
            port,
            child: None,
            starts: 0,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process (its output appended to its log).
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("{} is running already", self.name);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("open {}", self.log.display()))?;
        let child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("APP_LISTEN", format!("127.0.0.1:{}", self.port))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", self.program.display()))?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(tokio::process::Child::id)
    }

    /// Sends `signal` (`KILL`, `STOP`, `CONT`, `TERM`) to its process id.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .with_context(|| format!("{} is not running", self.name))?;
        signal_pid(pid, signal).with_context(|| format!("signal {} ({pid})", self.name))
    }

    /// `kill -9` and wait until it is gone. Returns its pid.
    pub async fn kill9(&mut self) -> anyhow::Result<u32> {
        let pid = self
            .pid()
            .with_context(|| format!("{} is not running", self.name))?;
        signal_pid(pid, "KILL")?;
        if let Some(mut child) = self.child.take() {
            let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .with_context(|| format!("{} did not die within 10 s of SIGKILL", self.name))??;
            if status.success() {
                bail!("{} exited cleanly instead of being killed", self.name);
            }
        }
        Ok(pid)
    }

    /// Kills it (if it runs) without waiting.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
        }
    }

    /// Waits until `/readyz` answers 200; returns how long that took.
    pub async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let url = format!("{}/readyz", self.base());
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{} exited with {status} before it was ready; its log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            let ready = http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(started.elapsed());
            }
            if started.elapsed() > READY_WITHIN {
                bail!(
                    "{} was not ready within {READY_WITHIN:?}; its log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Lines of its log that report a panic.
    pub fn panics(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("panicked at"))
            .count()
    }
}

/// `kill -s <signal> <pid>`.
pub fn signal_pid(pid: u32, signal: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stdin(Stdio::null())
        .output()
        .context("run kill")?;
    if !out.status.success() {
        bail!(
            "kill -s {signal} {pid}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A port nothing listens on now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The role binaries: beside this executable (`target/<profile>/`), or in `CHAOS_BIN_DIR`.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("CHAOS_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::current_exe()?
            .parent()
            .context("the executable's directory")?
            .to_owned(),
    };
    for bin in ["command-api", "projector", "query-api"] {
        if !dir.join(bin).is_file() {
            bail!(
                "{bin} is not in {}: build the roles first \
                 (cargo build -p command-api -p projector -p query-api), or set CHAOS_BIN_DIR",
                dir.display()
            );
        }
    }
    Ok(dir)
}
