//! `uploads`: upload throughput and the server's memory under concurrent uploads (issue #17).
//!
//! `--uploads` uploads (default 100) of `--size` bytes each (default 10 MiB) run at once,
//! `--rounds` times back to back (a round starts when every upload of the one before has its
//! answer). Each upload is `POST /v1/rooms/{room}/attachments?name=f-R-N.bin` on a connection of
//! its own, opened before the round starts, with a body generated on the fly in `--chunk`
//! pieces (64 KiB) and sent chunked, without `Content-Length`: the load generator never holds
//! a whole file either. `--content random` (pseudo-random bytes behind a short marker: sniffed
//! as `application/octet-stream`) or `pdf` (a PDF header first: `application/pdf`); never an
//! image, whose thumbnail reads the file whole by design. The SHA-256 of what was sent is
//! computed as it is sent, and an upload counts as done only with a `201` whose `size` and
//! `sha256` match. Upload i of a round uses user i mod `--users` (one user per upload by
//! default; the server must run with `APP_RATE_LIMIT_ENABLED=false` or its per-user upload
//! limit refuses them), all members of one public room made for the run ([`fanout::setup`]).
//!
//! Memory: VmRSS (`/proc/PID/status`) of `--server-pid` and their child processes, summed,
//! sampled every `--sample-every` (50 ms) on a thread of its own from the end of the idle
//! pause after setup to `--settle` (5 s) after the last round. Reported: RSS before (idle,
//! after setup), the peak during the rounds (and per round), after (at the end of the settle
//! time), growth = peak − before; the same for RssAnon (the heap and stacks, without the
//! binary's mapped pages); VmHWM before and after (the kernel's own peak, which catches spikes
//! shorter than the sampling interval); and the processes' thread count (blocking file writes
//! grow tokio's blocking pool). Throughput per round: MiB/s and
//! uploads/s over the round's wall time (first byte sent → last answer), latency per upload
//! (send start → whole answer), and the server's CPU (utime + stime of the same processes,
//! [`ProcScan`]) per GiB uploaded.
//!
//! `--baseline-sink` also runs the same rounds, with the same client, against a sink inside
//! the load generator (hyper, its own runtime of two threads named `upload-sink`) that reads
//! and discards the body and answers `201 {"size": N, …}`: the loopback HTTP ceiling of this
//! machine and client, to read the platform's figures against. Its CPU is its threads' own;
//! its memory is not measured (it is the load generator's). `--sink-only` runs just that.

use super::fanout::{self, ProcScan, ServerCpu};
use crate::report::{self, Table, f0, f2};
use crate::stats::{self, CpuSnapshot, CpuUsage, Errors, Latency, parse_duration};
use anyhow::{Context, anyhow};
use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue, TRANSFER_ENCODING,
};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

#[derive(clap::Args, Debug, Clone)]
pub struct UploadsArgs {
    /// Base URL of the platform.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Uploads in flight at once (each on a connection of its own).
    #[arg(long, default_value_t = 100)]
    pub uploads: usize,
    /// Bytes per upload: a number with an optional B, KiB, MiB or GiB (K, M, G) suffix.
    #[arg(long, default_value = "10MiB", value_parser = parse_size)]
    pub size: u64,
    /// The concurrent uploads run this many times, back to back.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// What the files hold.
    #[arg(long, value_enum, default_value_t = Content::Random)]
    pub content: Content,
    /// Piece size of the generated bodies (each piece is one chunk of the chunked body).
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub chunk: u64,
    /// Users uploading; upload i uses user i mod U. 0: one per upload.
    #[arg(long, default_value_t = 0)]
    pub users: usize,
    /// PIDs of the server processes whose memory (VmRSS, summed with their child processes)
    /// and CPU are measured; comma-separated or repeated. Required against the platform.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// How often the server's RSS is sampled.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub sample_every: Duration,
    /// Idle pause after setup before RSS "before" is read.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub idle: Duration,
    /// How long after the last round RSS "after" is read.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Longest one upload may take (connect excluded).
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Also run the rounds against an in-process sink that discards the body (the loopback
    /// HTTP ceiling of this client), after the platform's.
    #[arg(long)]
    pub baseline_sink: bool,
    /// Run only the sink rounds (no platform, no --server-pid needed).
    #[arg(long)]
    pub sink_only: bool,
}

/// What an uploaded file holds.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Content {
    /// Pseudo-random bytes behind a short text marker (sniffed as application/octet-stream).
    #[default]
    Random,
    /// A PDF header, then pseudo-random bytes (sniffed as application/pdf).
    Pdf,
}

impl Content {
    /// The first bytes of every file.
    fn head(self) -> &'static [u8] {
        match self {
            Content::Random => b"loadgen upload\n",
            Content::Pdf => b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        }
    }

    /// The content type the server should sniff.
    fn expected_type(self) -> &'static str {
        match self {
            Content::Random => "application/octet-stream",
            Content::Pdf => "application/pdf",
        }
    }
}

/// `10MiB`, `64KiB`, `1GiB`, `512B`, `10M`, or a bare number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad size {s:?} (try 10MiB, 64KiB)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?} (B, KiB, MiB, GiB)"
            ));
        }
    };
    let bytes = n * mult;
    if !bytes.is_finite() || bytes < 1.0 || bytes.fract() != 0.0 {
        return Err(format!(
            "bad size {s:?} (a whole, positive number of bytes)"
        ));
    }
    Ok(bytes as u64)
}

// ---------------------------------------------------------------------------
// The report.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize)]
pub struct UploadsReport {
    pub scenario: &'static str,
    pub url: String,
    pub started_at: String,
    pub uploads: usize,
    pub size_bytes: u64,
    pub chunk_bytes: u64,
    pub rounds: usize,
    pub content: Content,
    pub users: usize,
    pub server_pid: Vec<u32>,
    /// The rounds against the platform.
    pub platform: Option<TargetRun>,
    /// The same rounds against the in-process sink (`--baseline-sink`).
    pub sink: Option<TargetRun>,
    /// RSS "after" is read this long after the last round.
    pub settle_s: f64,
    pub notes: Vec<String>,
}

/// The rounds against one target.
#[derive(Clone, Debug, Serialize)]
pub struct TargetRun {
    /// `platform` or `sink`.
    pub target: &'static str,
    pub rounds: Vec<Round>,
    /// All rounds together (wall time: first round's start → last round's end).
    pub total: Round,
    /// The server's memory (platform only).
    pub memory: Option<Memory>,
    /// Content types the server answered with, and how often.
    pub content_types: BTreeMap<String, u64>,
    /// (seconds since the first round started, server VmRSS, RssAnon in MiB), every sample.
    pub rss_samples: Vec<(f64, f64, f64)>,
    /// The load generator's own peak RSS (VmHWM) at the end of these rounds, KiB.
    pub loadgen_vm_hwm_kib: Option<u64>,
    #[serde(skip)]
    hist: Histogram<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Round {
    /// 1-based; 0 for the total.
    pub round: usize,
    pub ok: u64,
    pub errors: Errors,
    /// Bytes of the uploads that succeeded.
    pub bytes_ok: u64,
    /// First byte sent → last answer.
    pub wall_s: f64,
    pub mib_per_s: f64,
    pub uploads_per_s: f64,
    /// Send start → whole answer, per successful upload.
    pub latency: Latency,
    /// The server's CPU seconds (utime + stime) in the round.
    pub server_cpu_s: Option<f64>,
    /// `server_cpu_s` / the round's wall time.
    pub server_cores: Option<f64>,
    /// Server CPU seconds per GiB uploaded.
    pub cpu_s_per_gib: Option<f64>,
    /// Server RSS at the round's start (first sample in it), its peak in the round, and that
    /// peak − the idle RSS before the rounds; MiB (platform only).
    pub rss_start_mib: Option<f64>,
    pub rss_peak_mib: Option<f64>,
    pub rss_growth_mib: Option<f64>,
    /// The same for RssAnon (the heap, without the binary's mapped pages): peak − before.
    pub anon_peak_mib: Option<f64>,
    pub anon_growth_mib: Option<f64>,
    /// The whole machine's CPU in the round, by process.
    pub machine_cpu: Option<CpuUsage>,
}

/// The server's memory over the run, KiB (summed over the processes).
#[derive(Clone, Debug, Serialize)]
pub struct Memory {
    /// Processes measured (the PIDs and their children) at the end.
    pub processes: usize,
    /// Idle, after setup.
    pub rss_before_kib: u64,
    /// Highest sample from the first round's start to the last round's end.
    pub rss_peak_kib: u64,
    /// `--settle` after the last round.
    pub rss_after_kib: u64,
    /// Peak − before.
    pub growth_kib: i64,
    /// After − before (what was not given back).
    pub retained_kib: i64,
    pub vm_hwm_before_kib: u64,
    pub vm_hwm_after_kib: u64,
    /// RssAnon (anonymous memory: the heap and stacks, not the binary's pages) before, at
    /// its peak, after; growth = peak − before.
    pub anon_before_kib: u64,
    pub anon_peak_kib: u64,
    pub anon_after_kib: u64,
    pub anon_growth_kib: i64,
    /// Threads of the processes before, at most (sampled), after.
    pub threads_before: u64,
    pub threads_peak: u64,
    pub threads_after: u64,
    pub samples: usize,
    pub sample_every_ms: f64,
    /// Seconds the server had been up when "before" was read.
    pub server_age_s: Option<f64>,
}

pub async fn run(args: &UploadsArgs, out: &Path) -> anyhow::Result<UploadsReport> {
    let r = measure(args).await?;
    emit(&r, out)?;
    Ok(r)
}

// ---------------------------------------------------------------------------
// The server's processes: memory and CPU from /proc.
// ---------------------------------------------------------------------------

/// The PIDs and all their descendants (one pass over /proc).
fn with_descendants(pids: &[u32]) -> Vec<u32> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat"))
                && let Some(ppid) = ppid_of(&stat)
            {
                parent.push((pid, ppid));
            }
        }
    }
    let mut chosen: HashSet<u32> = pids.iter().copied().collect();
    loop {
        let before = chosen.len();
        for (pid, ppid) in &parent {
            if chosen.contains(ppid) {
                chosen.insert(*pid);
            }
        }
        if chosen.len() == before {
            break;
        }
    }
    let mut v: Vec<u32> = chosen.into_iter().collect();
    v.sort_unstable();
    v
}

/// The parent PID in a `/proc/PID/stat` line.
fn ppid_of(stat: &str) -> Option<u32> {
    // pid (comm) state ppid …; comm may hold spaces and parentheses.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// A `kB` field of /proc/PID/status (`VmRSS`, `VmHWM`), in KiB.
fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Memory of a set of processes, summed, KiB.
#[derive(Clone, Copy, Debug, Default)]
struct Mem {
    rss: u64,
    anon: u64,
    hwm: u64,
    /// Threads (a count, not KiB): the blocking pool grows with concurrent file writes.
    threads: u64,
}

/// Σ VmRSS, Σ RssAnon, Σ VmHWM and Σ Threads over `pids` (a process gone is left out).
fn memory_kib(pids: &[u32]) -> Mem {
    pids.iter().fold(Mem::default(), |m, p| {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) else {
            return m;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Mem {
            rss: m.rss + field("VmRSS"),
            anon: m.anon + field("RssAnon"),
            hwm: m.hwm + field("VmHWM"),
            threads: m.threads + field("Threads"),
        }
    })
}

/// Seconds since the process started.
fn process_age_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    // rest starts at field 3 (state); starttime is field 22, in USER_HZ (100) ticks.
    let start_ticks: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(uptime - start_ticks / 100.0)
}

/// utime + stime (USER_HZ ticks) of this process's threads named `name` (the sink's).
fn thread_ticks(name: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut sum = 0;
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if stat.get(open + 1..close) != Some(name) {
            continue;
        }
        let rest: Vec<&str> = stat
            .get(close + 1..)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let t = |i: usize| rest.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        sum += t(11) + t(12);
    }
    sum
}

/// One memory sample.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Instant,
    mem: Mem,
}

/// Samples the server's RSS on a thread of its own (reading /proc blocks; the uploads'
/// runtime never waits for it). The set of processes (the PIDs' descendants) is looked up
/// again every second.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<Sample>, usize)>,
}

impl Sampler {
    fn start(pids: Vec<u32>, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            let mut procs = with_descendants(&pids);
            let mut looked = std::time::Instant::now();
            while !flag.load(Ordering::Relaxed) {
                if looked.elapsed() >= Duration::from_secs(1) {
                    procs = with_descendants(&pids);
                    looked = std::time::Instant::now();
                }
                let mem = memory_kib(&procs);
                samples.push(Sample {
                    at: Instant::now(),
                    mem,
                });
                std::thread::sleep(every);
            }
            (samples, procs.len())
        });
        Self { stop, thread }
    }

    fn finish(self) -> (Vec<Sample>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Where the CPU of the target is read.
#[derive(Clone)]
enum CpuSource {
    /// `--server-pid` with their children ([`ProcScan`], as `fanout` counts it).
    Pids(Vec<u32>),
    /// The sink's threads in this process.
    SinkThreads,
}

enum CpuMark {
    Procs(fanout::ProcTimes),
    Ticks(u64),
}

impl CpuSource {
    fn mark(&self) -> CpuMark {
        match self {
            CpuSource::Pids(p) => CpuMark::Procs(ProcScan::take().select(p, &[])),
            CpuSource::SinkThreads => CpuMark::Ticks(thread_ticks(SINK_THREAD)),
        }
    }

    /// CPU seconds between two marks.
    fn seconds(&self, a: &CpuMark, b: &CpuMark, window: Duration, uploads: u64) -> Option<f64> {
        match (self, a, b) {
            (CpuSource::Pids(p), CpuMark::Procs(a), CpuMark::Procs(b)) => {
                ServerCpu::between(a, b, window, uploads, format!("--server-pid {p:?}"))
                    .map(|c| c.cpu_s)
            }
            (CpuSource::SinkThreads, CpuMark::Ticks(a), CpuMark::Ticks(b)) => {
                Some(b.saturating_sub(*a) as f64 / 100.0)
            }
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// The bodies: generated on the fly, hashed as they go.
// ---------------------------------------------------------------------------

type UploadBody = UnsyncBoxBody<Bytes, Infallible>;

/// The pieces of one file: `size` bytes (the content's head, then splitmix64 output seeded
/// by `seed`) in `chunk`-byte pieces; the SHA-256 of all of it goes to `done` after the last.
struct Pieces {
    state: u64,
    left: u64,
    chunk: usize,
    head: &'static [u8],
    hasher: Sha256,
    done: Option<oneshot::Sender<String>>,
}

impl Pieces {
    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Iterator for Pieces {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.left == 0 {
            if let Some(done) = self.done.take() {
                let digest = std::mem::take(&mut self.hasher).finalize();
                let _ = done.send(format!("{digest:x}"));
            }
            return None;
        }
        let n = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(self.chunk);
        let mut b = BytesMut::with_capacity(n);
        let head = self.head.len().min(n);
        b.put_slice(&self.head[..head]);
        self.head = &self.head[head..];
        while b.len() + 8 <= n {
            let x = self.next_u64();
            b.put_u64_le(x);
        }
        if b.len() < n {
            let x = self.next_u64().to_le_bytes();
            let k = n - b.len();
            b.put_slice(&x[..k]);
        }
        self.hasher.update(&b);
        self.left -= n as u64;
        Some(b.freeze())
    }
}

fn pieces(
    size: u64,
    chunk: usize,
    content: Content,
    seed: u64,
) -> (Pieces, oneshot::Receiver<String>) {
    let (tx, rx) = oneshot::channel();
    (
        Pieces {
            state: seed,
            left: size,
            chunk: chunk.max(1),
            head: content.head(),
            hasher: Sha256::new(),
            done: Some(tx),
        },
        rx,
    )
}

/// A body of unknown length (so sent chunked) streaming `pieces`.
fn body_of(p: Pieces) -> UploadBody {
    let frames = futures::stream::iter(p.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    UnsyncBoxBody::new(StreamBody::new(frames))
}

// ---------------------------------------------------------------------------
// One upload.
// ---------------------------------------------------------------------------

/// host:port to connect to, and the `Host` header.
#[derive(Clone, Debug)]
struct Endpoint {
    authority: String,
    host: HeaderValue,
}

impl Endpoint {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(anyhow!("only http:// URLs are supported, got {url}"));
        }
        let auth = uri
            .authority()
            .ok_or_else(|| anyhow!("URL {url} has no host"))?;
        Ok(Self {
            authority: format!("{}:{}", auth.host(), auth.port_u16().unwrap_or(80)),
            host: HeaderValue::from_str(auth.as_str())?,
        })
    }
}

async fn connect(ep: &Endpoint) -> Result<SendRequest<UploadBody>, String> {
    let stream = TcpStream::connect(&ep.authority)
        .await
        .map_err(|_| "connect".to_owned())?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| "handshake".to_owned())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A successful upload: its bytes and the content type the server gave it.
struct Done {
    latency: Duration,
    bytes: u64,
    content_type: Option<String>,
}

struct Job {
    path: String,
    token: Option<HeaderValue>,
    size: u64,
    chunk: usize,
    content: Content,
    seed: u64,
}

/// Sends one upload on `sender`; the error is the key it is counted under.
async fn upload(
    mut sender: SendRequest<UploadBody>,
    host: HeaderValue,
    job: Job,
    timeout: Duration,
) -> Result<Done, String> {
    let (p, digest) = pieces(job.size, job.chunk, job.content, job.seed);
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(&job.path)
        .header(HOST, host)
        .header(CONTENT_TYPE, "application/octet-stream");
    if let Some(t) = &job.token {
        req = req.header(AUTHORIZATION, t.clone());
    }
    let req = req.body(body_of(p)).map_err(|_| "request".to_owned())?;
    let start = Instant::now();
    let call = async {
        sender.ready().await.map_err(|_| "io".to_owned())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|_| "io".to_owned())?;
        let (parts, body) = resp.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|_| "io".to_owned())?
            .to_bytes();
        Ok::<_, String>((parts.status, bytes))
    };
    let (status, answer) = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| "timeout".to_owned())??;
    let latency = start.elapsed();
    if status != StatusCode::CREATED {
        return Err(status.as_u16().to_string());
    }
    let v: Value = serde_json::from_slice(&answer).map_err(|_| "bad-json".to_owned())?;
    if v.get("size").and_then(Value::as_u64) != Some(job.size) {
        return Err("size-mismatch".into());
    }
    if let Some(theirs) = v.get("sha256").and_then(Value::as_str) {
        let ours = digest.await.map_err(|_| "sha256-unsent".to_owned())?;
        if theirs != ours {
            return Err("sha256-mismatch".into());
        }
    }
    Ok(Done {
        latency,
        bytes: job.size,
        content_type: v
            .get("content_type")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

// ---------------------------------------------------------------------------
// The sink.
// ---------------------------------------------------------------------------

/// The sink's thread name (15 bytes at most: it is read back from /proc).
const SINK_THREAD: &str = "upload-sink";

/// An HTTP/1.1 server in this process that reads every request body, discards it and answers
/// `201 {"size": N, "chunked": bool}` (whether it came chunked, without `Content-Length`).
struct Sink {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sink {
    fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(SINK_THREAD)
            .enable_all()
            .build()?;
        let (stop, mut stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(SINK_THREAD.into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                let _ = stream.set_nodelay(true);
                                tokio::spawn(async move {
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(
                                            TokioIo::new(stream),
                                            hyper::service::service_fn(sink_answer),
                                        )
                                        .await;
                                });
                            }
                        }
                    }
                });
            })?;
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn sink_answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let chunked = req.headers().contains_key(TRANSFER_ENCODING)
        && !req.headers().contains_key(CONTENT_LENGTH);
    let mut body = req.into_body();
    let mut n = 0u64;
    let mut broke = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    let (status, answer) = if broke {
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "upload_incomplete"}),
        )
    } else {
        (StatusCode::CREATED, json!({"size": n, "chunked": chunked}))
    };
    let mut resp = Response::new(Full::new(Bytes::from(answer.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

// ---------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------

struct Plan<'a> {
    args: &'a UploadsArgs,
    endpoint: Endpoint,
    /// `/v1/rooms/{room}/attachments` (platform) or `/sink`.
    base_path: String,
    tokens: Vec<Option<HeaderValue>>,
    cpu: CpuSource,
    /// Server PIDs for memory (platform only).
    memory_pids: Option<Vec<u32>>,
}

/// What a round (or all rounds) did.
struct Tally {
    ok: u64,
    bytes_ok: u64,
    errors: Errors,
    hist: Histogram<u64>,
    server_cpu_s: Option<f64>,
    machine_cpu: Option<CpuUsage>,
}

/// One round: its tally, when it ran, what types the server gave the files.
struct RoundResult {
    started: Instant,
    ended: Instant,
    tally: Tally,
    content_types: BTreeMap<String, u64>,
}

async fn one_round(plan: &Plan<'_>, round: usize) -> RoundResult {
    let args = plan.args;
    let n = args.uploads;
    let mut errors = Errors::default();
    // Connections first, so connecting is not in the round.
    let conns = futures::future::join_all((0..n).map(|_| connect(&plan.endpoint))).await;
    let cpu0 = plan.cpu.mark();
    let machine0 = CpuSnapshot::take();
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (i, c) in conns.into_iter().enumerate() {
        let sender = match c {
            Ok(s) => s,
            Err(e) => {
                errors.add(e);
                continue;
            }
        };
        let job = Job {
            path: format!("{}?name=f-{round}-{i}.bin", plan.base_path),
            token: plan.tokens[i % plan.tokens.len()].clone(),
            size: args.size,
            chunk: usize::try_from(args.chunk).unwrap_or(64 * 1024),
            content: args.content,
            seed: ((round as u64) << 32) ^ (i as u64) ^ 0x5eed,
        };
        set.spawn(upload(
            sender,
            plan.endpoint.host.clone(),
            job,
            args.timeout,
        ));
    }
    let mut hist = stats::new_histogram();
    let (mut ok, mut bytes_ok) = (0u64, 0u64);
    let mut content_types = BTreeMap::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok(Ok(d)) => {
                ok += 1;
                bytes_ok += d.bytes;
                stats::record(&mut hist, d.latency);
                *content_types
                    .entry(d.content_type.unwrap_or_else(|| "-".into()))
                    .or_insert(0) += 1;
            }
            Ok(Err(key)) => errors.add(key),
            Err(_) => errors.add("panic"),
        }
    }
    let ended = Instant::now();
    let server_cpu_s = plan
        .cpu
        .seconds(&cpu0, &plan.cpu.mark(), ended - started, ok.max(1));
    let machine_cpu = match (machine0, CpuSnapshot::take()) {
        (Some(a), Some(b)) => Some(b.usage_since(&a)),
        _ => None,
    };
    RoundResult {
        started,
        ended,
        tally: Tally {
            ok,
            bytes_ok,
            errors,
            hist,
            server_cpu_s,
            machine_cpu,
        },
        content_types,
    }
}

fn round_row(round: usize, t: &Tally, wall: Duration) -> Round {
    let wall_s = wall.as_secs_f64().max(1e-9);
    let gib = t.bytes_ok as f64 / GIB;
    Round {
        round,
        ok: t.ok,
        errors: t.errors.clone(),
        bytes_ok: t.bytes_ok,
        wall_s,
        mib_per_s: t.bytes_ok as f64 / MIB / wall_s,
        uploads_per_s: t.ok as f64 / wall_s,
        latency: Latency::of(&t.hist),
        server_cpu_s: t.server_cpu_s,
        server_cores: t.server_cpu_s.map(|c| c / wall_s),
        cpu_s_per_gib: t.server_cpu_s.filter(|_| gib > 0.0).map(|c| c / gib),
        rss_start_mib: None,
        rss_peak_mib: None,
        rss_growth_mib: None,
        anon_peak_mib: None,
        anon_growth_mib: None,
        machine_cpu: t.machine_cpu.clone(),
    }
}

async fn run_target(plan: &Plan<'_>, target: &'static str) -> anyhow::Result<TargetRun> {
    let args = plan.args;
    tokio::time::sleep(args.idle).await;
    let before = plan.memory_pids.as_ref().map(|p| {
        let mem = memory_kib(&with_descendants(p));
        (mem, p.first().copied().and_then(process_age_s))
    });
    if let Some((m, _)) = before {
        report::say(&format!(
            "{target}: server RSS before (idle) {:.1} MiB (anon {:.1}), VmHWM {:.1} MiB",
            m.rss as f64 / 1024.0,
            m.anon as f64 / 1024.0,
            m.hwm as f64 / 1024.0
        ));
    }
    let sampler = plan
        .memory_pids
        .as_ref()
        .map(|p| Sampler::start(p.clone(), args.sample_every));
    let cpu_total0 = plan.cpu.mark();
    let machine_total0 = CpuSnapshot::take();
    let mut results = Vec::with_capacity(args.rounds);
    for r in 1..=args.rounds {
        let res = one_round(plan, r).await;
        report::say(&format!(
            "{target} round {r}/{}: {} ok, errors {}, {:.1} s",
            args.rounds,
            res.tally.ok,
            res.tally.errors.brief(),
            (res.ended - res.started).as_secs_f64()
        ));
        results.push(res);
    }
    let (first, last) = match (results.first(), results.last()) {
        (Some(f), Some(l)) => (f.started, l.ended),
        _ => return Err(anyhow!("--rounds must be positive")),
    };
    let cpu_total1 = plan.cpu.mark();
    let machine_total = match (machine_total0, CpuSnapshot::take()) {
        (Some(a), Some(b)) => Some(b.usage_since(&a)),
        _ => None,
    };
    if sampler.is_some() {
        tokio::time::sleep(args.settle).await;
    }
    let sampled = sampler.map(Sampler::finish);
    let after = plan
        .memory_pids
        .as_ref()
        .map(|p| memory_kib(&with_descendants(p)));

    let mut rounds = Vec::with_capacity(results.len());
    let mut hist = stats::new_histogram();
    let mut errors = Errors::default();
    let mut content_types: BTreeMap<String, u64> = BTreeMap::new();
    let (mut ok, mut bytes_ok) = (0, 0);
    let samples = sampled.as_ref().map(|s| s.0.as_slice()).unwrap_or(&[]);
    let peak_in = |a: Instant, b: Instant, f: fn(&Mem) -> u64| {
        samples
            .iter()
            .filter(|s| s.at >= a && s.at <= b)
            .map(|s| f(&s.mem))
            .max()
    };
    let mib = |k: u64| k as f64 / 1024.0;
    let growth = |peak: u64, before: u64| (peak as f64 - before as f64) / 1024.0;
    for (i, res) in results.into_iter().enumerate() {
        hist.add(&res.tally.hist).ok();
        errors.merge(&res.tally.errors);
        for (k, v) in &res.content_types {
            *content_types.entry(k.clone()).or_default() += v;
        }
        ok += res.tally.ok;
        bytes_ok += res.tally.bytes_ok;
        let mut row = round_row(i + 1, &res.tally, res.ended - res.started);
        if let Some((b, _)) = before {
            row.rss_start_mib = samples
                .iter()
                .find(|s| s.at >= res.started)
                .map(|s| mib(s.mem.rss));
            let peak = peak_in(res.started, res.ended, |m| m.rss);
            row.rss_peak_mib = peak.map(mib);
            row.rss_growth_mib = peak.map(|k| growth(k, b.rss));
            let anon = peak_in(res.started, res.ended, |m| m.anon);
            row.anon_peak_mib = anon.map(mib);
            row.anon_growth_mib = anon.map(|k| growth(k, b.anon));
        }
        rounds.push(row);
    }
    let total_cpu = plan
        .cpu
        .seconds(&cpu_total0, &cpu_total1, last - first, ok.max(1));
    let all = Tally {
        ok,
        bytes_ok,
        errors,
        hist,
        server_cpu_s: total_cpu,
        machine_cpu: machine_total,
    };
    let mut total = round_row(0, &all, last - first);
    let hist = all.hist;
    let memory = match (before, after, &sampled) {
        (Some((b, age)), Some(a), Some((s, procs))) => {
            let peak = peak_in(first, last, |m| m.rss).unwrap_or(b.rss);
            let anon_peak = peak_in(first, last, |m| m.anon).unwrap_or(b.anon);
            total.rss_start_mib = Some(mib(b.rss));
            total.rss_peak_mib = Some(mib(peak));
            total.rss_growth_mib = Some(growth(peak, b.rss));
            total.anon_peak_mib = Some(mib(anon_peak));
            total.anon_growth_mib = Some(growth(anon_peak, b.anon));
            Some(Memory {
                processes: *procs,
                rss_before_kib: b.rss,
                rss_peak_kib: peak,
                rss_after_kib: a.rss,
                growth_kib: peak as i64 - b.rss as i64,
                retained_kib: a.rss as i64 - b.rss as i64,
                vm_hwm_before_kib: b.hwm,
                vm_hwm_after_kib: a.hwm,
                anon_before_kib: b.anon,
                anon_peak_kib: anon_peak,
                anon_after_kib: a.anon,
                anon_growth_kib: anon_peak as i64 - b.anon as i64,
                threads_before: b.threads,
                threads_peak: peak_in(first, last, |m| m.threads).unwrap_or(b.threads),
                threads_after: a.threads,
                samples: s.len(),
                sample_every_ms: args.sample_every.as_secs_f64() * 1000.0,
                server_age_s: age,
            })
        }
        _ => None,
    };
    let rss_samples = samples
        .iter()
        .map(|s| {
            (
                s.at.saturating_duration_since(first).as_secs_f64()
                    - first.saturating_duration_since(s.at).as_secs_f64(),
                mib(s.mem.rss),
                mib(s.mem.anon),
            )
        })
        .collect();
    Ok(TargetRun {
        target,
        rounds,
        total,
        memory,
        content_types,
        rss_samples,
        loadgen_vm_hwm_kib: status_kib("self", "VmHWM"),
        hist,
    })
}

pub async fn measure(args: &UploadsArgs) -> anyhow::Result<UploadsReport> {
    if args.uploads == 0 || args.rounds == 0 {
        return Err(anyhow!("--uploads and --rounds must be positive"));
    }
    let started_at = chrono::Utc::now().to_rfc3339();
    let mut notes = Vec::new();
    let users = if args.users == 0 {
        args.uploads
    } else {
        args.users.min(args.uploads)
    };
    let platform = if args.sink_only {
        None
    } else {
        if args.server_pid.is_empty() {
            return Err(anyhow!(
                "--server-pid is required (the server's memory is the point); \
                 or --sink-only for the client against the in-process sink"
            ));
        }
        for p in &args.server_pid {
            if !Path::new(&format!("/proc/{p}")).exists() {
                return Err(anyhow!("no process {p} (--server-pid)"));
            }
        }
        if let Some(age) = args.server_pid.first().copied().and_then(process_age_s)
            && age > 120.0
        {
            notes.push(format!(
                "note: the server has been up {age:.0}s; memory its allocator kept from earlier \
                 work is reused and hides the cost of these uploads: measure a fresh server"
            ));
        }
        // One sender (the room's creator) and users − 1 members: `users` tokens.
        let fx = fanout::setup(&args.url, users.saturating_sub(1), 1).await?;
        let mut tokens: Vec<Option<HeaderValue>> = vec![Some(fx.sender.clone())];
        tokens.extend(
            fx.listeners
                .iter()
                .take(users.saturating_sub(1))
                .cloned()
                .map(Some),
        );
        let room = fx
            .rooms
            .first()
            .ok_or_else(|| anyhow!("setup made no room"))?;
        report::say(&format!(
            "platform: {} × {} uploads ({} users, room {room}), {} rounds, content {:?}",
            args.uploads,
            size_brief(args.size),
            tokens.len(),
            args.rounds,
            args.content
        ));
        let plan = Plan {
            args,
            endpoint: Endpoint::parse(&args.url)?,
            base_path: format!("/v1/rooms/{room}/attachments"),
            tokens,
            cpu: CpuSource::Pids(args.server_pid.clone()),
            memory_pids: Some(args.server_pid.clone()),
        };
        Some(run_target(&plan, "platform").await?)
    };
    let sink = if args.sink_only || args.baseline_sink {
        let sink = Sink::start()?;
        report::say(&format!(
            "sink: the same rounds against the in-process sink at {}",
            sink.addr
        ));
        let plan = Plan {
            args,
            endpoint: Endpoint::parse(&format!("http://{}", sink.addr))?,
            base_path: "/sink".into(),
            tokens: vec![None],
            cpu: CpuSource::SinkThreads,
            memory_pids: None,
        };
        let r = run_target(&plan, "sink").await?;
        drop(sink);
        Some(r)
    } else {
        None
    };
    for r in [&platform, &sink].into_iter().flatten() {
        let expected = args.content.expected_type();
        if r.target == "platform" && r.content_types.keys().any(|k| k != expected) {
            notes.push(format!(
                "WARNING: content types answered {:?}, expected only {expected}",
                r.content_types
            ));
        }
    }
    Ok(UploadsReport {
        scenario: "uploads",
        url: if args.sink_only {
            "the in-process sink".into()
        } else {
            args.url.clone()
        },
        started_at,
        uploads: args.uploads,
        size_bytes: args.size,
        chunk_bytes: args.chunk,
        rounds: args.rounds,
        content: args.content,
        users,
        server_pid: args.server_pid.clone(),
        platform,
        sink,
        settle_s: args.settle.as_secs_f64(),
        notes,
    })
}

// ---------------------------------------------------------------------------
// Output.
// ---------------------------------------------------------------------------

/// `10 MiB`, `64 KiB`, `1000 B`.
fn size_brief(b: u64) -> String {
    if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else if b >= 1 << 10 && b.is_multiple_of(1 << 10) {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}

fn opt(x: Option<f64>, f: fn(f64) -> String) -> String {
    x.map_or("-".into(), f)
}

fn f1(x: f64) -> String {
    format!("{x:.1}")
}

fn kib_mib(k: u64) -> String {
    f1(k as f64 / 1024.0)
}

pub fn tables(r: &UploadsReport) -> (Table, Option<Table>) {
    let mut t = Table::new(
        format!(
            "uploads: {} concurrent × {} ({:?}), {} round(s), via {}",
            r.uploads,
            size_brief(r.size_bytes),
            r.content,
            r.rounds,
            r.url
        ),
        &[
            "target",
            "round",
            "ok",
            "errors",
            "GiB",
            "wall s",
            "MiB/s",
            "uploads/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "server CPU s",
            "CPU s/GiB",
            "RSS start MiB",
            "RSS peak MiB",
            "growth MiB",
        ],
    );
    for run in [&r.platform, &r.sink].into_iter().flatten() {
        for row in run.rounds.iter().chain(std::iter::once(&run.total)) {
            t.row(vec![
                run.target.into(),
                if row.round == 0 {
                    "all".into()
                } else {
                    row.round.to_string()
                },
                row.ok.to_string(),
                row.errors.brief(),
                f2(row.bytes_ok as f64 / GIB),
                f2(row.wall_s),
                f0(row.mib_per_s),
                f1(row.uploads_per_s),
                f0(row.latency.p50_ms),
                f0(row.latency.p99_ms),
                f0(row.latency.max_ms),
                opt(row.server_cpu_s, f2),
                opt(row.cpu_s_per_gib, f2),
                opt(row.rss_start_mib, f1),
                opt(row.rss_peak_mib, f1),
                opt(row.rss_growth_mib, f1),
            ]);
        }
    }
    let mem = r
        .platform
        .as_ref()
        .and_then(|p| p.memory.as_ref())
        .map(|m| {
            let mut t = Table::new(
                format!(
                    "server memory (--server-pid {:?} and children, summed; sampled every {:.0} ms; \
                     after = {} s after the last round)",
                    r.server_pid, m.sample_every_ms, r.settle_s
                ),
                &[
                    "",
                    "before MiB",
                    "peak MiB",
                    "after MiB",
                    "growth (peak−before) MiB",
                    "after−before MiB",
                ],
            );
            t.row(vec![
                "VmRSS".into(),
                kib_mib(m.rss_before_kib),
                kib_mib(m.rss_peak_kib),
                kib_mib(m.rss_after_kib),
                f1(m.growth_kib as f64 / 1024.0),
                f1(m.retained_kib as f64 / 1024.0),
            ]);
            t.row(vec![
                "RssAnon".into(),
                kib_mib(m.anon_before_kib),
                kib_mib(m.anon_peak_kib),
                kib_mib(m.anon_after_kib),
                f1(m.anon_growth_kib as f64 / 1024.0),
                f1((m.anon_after_kib as f64 - m.anon_before_kib as f64) / 1024.0),
            ]);
            t.row(vec![
                "VmHWM".into(),
                kib_mib(m.vm_hwm_before_kib),
                "-".into(),
                kib_mib(m.vm_hwm_after_kib),
                f1((m.vm_hwm_after_kib as f64 - m.rss_before_kib as f64) / 1024.0),
                "-".into(),
            ]);
            t.row(vec![
                "threads (count)".into(),
                m.threads_before.to_string(),
                m.threads_peak.to_string(),
                m.threads_after.to_string(),
                (m.threads_peak as i64 - m.threads_before as i64).to_string(),
                (m.threads_after as i64 - m.threads_before as i64).to_string(),
            ]);
            t
        });
    (t, mem)
}

pub fn emit(r: &UploadsReport, out: &Path) -> anyhow::Result<()> {
    let (t, mem) = tables(r);
    t.print();
    if let Some(m) = &mem {
        m.print();
    }
    for run in [&r.platform, &r.sink].into_iter().flatten() {
        report::say(&format!(
            "{}: content types {:?}; machine CPU over the rounds: {}",
            run.target,
            run.content_types,
            run.total
                .machine_cpu
                .as_ref()
                .map_or("-".into(), CpuUsage::brief)
        ));
    }
    for run in [&r.platform, &r.sink].into_iter().flatten() {
        if let Some(k) = run.loadgen_vm_hwm_kib {
            report::say(&format!(
                "loadgen peak RSS (VmHWM) by the end of the {} rounds: {:.1} MiB",
                run.target,
                k as f64 / 1024.0
            ));
        }
    }
    for n in &r.notes {
        report::say(n);
    }
    let json = report::write_json(out, "uploads.json", r)?;
    let mut files = vec![json];
    if let Some(p) = r.platform.as_ref().filter(|p| !p.rss_samples.is_empty()) {
        let svg = out.join("uploads-rss.svg");
        report::plot_xy(
            &svg,
            &format!(
                "uploads: server RSS, {} × {} × {} rounds",
                r.uploads,
                size_brief(r.size_bytes),
                r.rounds
            ),
            "seconds since the first round started",
            "VmRSS (MiB)",
            &[
                (
                    "VmRSS".into(),
                    p.rss_samples
                        .iter()
                        .filter(|x| x.0 >= 0.0)
                        .map(|x| (x.0, x.1))
                        .collect(),
                ),
                (
                    "RssAnon".into(),
                    p.rss_samples
                        .iter()
                        .filter(|x| x.0 >= 0.0)
                        .map(|x| (x.0, x.2))
                        .collect(),
                ),
            ],
        )?;
        files.push(svg);
    }
    let hists: Vec<(String, &Histogram<u64>)> = [&r.platform, &r.sink]
        .into_iter()
        .flatten()
        .filter(|run| !run.hist.is_empty())
        .map(|run| (run.target.to_owned(), &run.hist))
        .collect();
    if !hists.is_empty() {
        let svg = out.join("uploads-latency.svg");
        report::plot_percentiles(
            &svg,
            &format!(
                "uploads: latency per upload, {} × {}",
                r.uploads,
                size_brief(r.size_bytes)
            ),
            &hists,
        )?;
        files.push(svg);
    }
    for f in files {
        report::say(&format!("wrote {}", f.display()));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("64kib"), Ok(64 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5M"), Ok(3 << 19));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("12B"), Ok(12));
        assert!(parse_size("10MB").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("ten").is_err());
    }

    #[test]
    fn pieces_are_the_size_asked_begin_with_the_head_and_hash_what_they_gave() {
        for (size, chunk) in [(10 * 1024 + 3, 1024), (5, 64), (64 * 1024, 64 * 1024)] {
            let (p, rx) = pieces(size, chunk, Content::Pdf, 7);
            let mut all = Vec::new();
            for b in p {
                assert!(b.len() <= chunk);
                all.extend_from_slice(&b);
            }
            assert_eq!(all.len() as u64, size);
            let head = Content::Pdf.head();
            let k = head.len().min(all.len());
            assert_eq!(&all[..k], &head[..k]);
            let digest = format!("{:x}", Sha256::digest(&all));
            assert_eq!(rx.blocking_recv().unwrap(), digest);
        }
        // Different seeds, different bytes.
        let a: Vec<Bytes> = pieces(4096, 4096, Content::Random, 1).0.collect();
        let b: Vec<Bytes> = pieces(4096, 4096, Content::Random, 2).0.collect();
        assert_ne!(a, b);
    }

    #[test]
    fn parent_pids_come_from_stat_lines() {
        assert_eq!(
            ppid_of("4242 (query (api)) S 17 4242 4242 0 -1 4194560"),
            Some(17)
        );
        assert_eq!(ppid_of("garbage"), None);
        let me = std::process::id();
        assert!(with_descendants(&[me]).contains(&me));
        let m = memory_kib(&[me]);
        assert!(m.rss > 0 && m.anon > 0 && m.hwm >= m.rss, "{m:?}");
    }

    #[tokio::test]
    async fn uploads_stream_to_the_sink_chunked() {
        let sink = Sink::start().unwrap();
        let ep = Endpoint::parse(&format!("http://{}", sink.addr)).unwrap();
        let sender = connect(&ep).await.unwrap();
        let job = Job {
            path: "/sink?name=x".into(),
            token: None,
            size: 3 << 20,
            chunk: 64 << 10,
            content: Content::Random,
            seed: 1,
        };
        let done = upload(sender, ep.host.clone(), job, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(done.bytes, 3 << 20);
        // Sent chunked, without Content-Length.
        let mut sender = connect(&ep).await.unwrap();
        let (p, _) = pieces(1000, 100, Content::Random, 3);
        let req = Request::post("/sink")
            .header(HOST, ep.host.clone())
            .body(body_of(p))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let v: Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(v, json!({"size": 1000, "chunked": true}));
    }
}
