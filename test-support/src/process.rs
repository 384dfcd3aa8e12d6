//! Signals to a process a test spawned (the real binaries: SIGTERM for a graceful
//! shutdown, SIGKILL for a crash).

/// Sends `signal` (`TERM`, `KILL`, `STOP`, `CONT`, ...) to the process `child`, which
/// must still run.
pub fn signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("the process still runs");
    let sent = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -{signal} {pid}: {sent}");
}
