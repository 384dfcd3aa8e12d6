//! What the machine did: CPU time from `/proc`, bytes on disk, the machine's description.

use std::path::Path;

use serde::Serialize;

/// A snapshot of the machine's and this process's CPU time (clock ticks).
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    busy: u64,
    total: u64,
    process: u64,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Cpu {
    pub fn now() -> Cpu {
        let (busy, total) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let line = s.lines().next()?.to_owned();
                let v: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal
                let total: u64 = v.iter().take(8).sum();
                let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
                Some((total.saturating_sub(idle), total))
            })
            .unwrap_or((0, 0));
        let process = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                let rest = s.rsplit_once(") ")?.1.to_owned();
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0);
        Cpu {
            busy,
            total,
            process,
        }
    }

    /// Busy cores of the whole machine, and of this process, since `earlier`.
    pub fn since(&self, earlier: &Cpu) -> (f64, f64) {
        let total = self.total.saturating_sub(earlier.total) as f64;
        if total <= 0.0 {
            return (0.0, 0.0);
        }
        let n = cores() as f64;
        let busy = self.busy.saturating_sub(earlier.busy) as f64 / total * n;
        let process = self.process.saturating_sub(earlier.process) as f64 / total * n;
        (busy, process)
    }
}

/// Bytes of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub commit: String,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kb: f64 = m
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kb / (1024.0 * 1024.0))
        })
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    // The checkout at run time (build right before running to make it the binary's).
    let mut commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    if git(&["status", "--porcelain", "--", "search"]).is_some_and(|s| !s.is_empty()) {
        commit.push_str(" with uncommitted changes in search/");
    }
    Machine {
        cores: cores(),
        cpu,
        memory_gib,
        kernel,
        commit,
    }
}
