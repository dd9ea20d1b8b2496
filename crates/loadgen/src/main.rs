//! `zonegate-loadgen`: a closed-loop Modbus/TCP load generator for the gateway benchmark.
//!
//! N connections each send one request (FC 3 read of 10 registers by default, or FC 16 writes
//! with `--write-min/--write-max`), wait for the answer, check it, and repeat until the duration
//! or the request budget runs out. Every request's latency is recorded; the run ends with one
//! JSON line on stdout:
//! `{"target", "label", "op", "connections", "requests", "errors", "rps", "p50_us", "p99_us", ...}`.
//!
//! The frames are encoded by hand (`proto.rs`): the loadgen shares no code with the gateway, so it
//! measures the gateway and not a common codec. Used by `scripts/bench-gateway.sh`.
//!
//! With `--tls-ca/--tls-cert/--tls-key` it speaks Modbus/TCP Security (mutual TLS, tls.rs);
//! `--new-connection-each` opens a new connection for every request (full handshakes per
//! second, with TLS).
//!
//! Around the well-behaved clients, a crowd (crowd.rs): `--idle-conns N` idle connections
//! (`--idle-request`: one read each first), `--hostile-slowloris N` (a request one byte every
//! `--slowloris-interval`, never completed) and `--hostile-noread N` (pipelined requests, replies
//! never read), all opened before the clock starts and held to the end; the JSON gains `crowd`
//! (per kind: connected, connect errors, closed by the target). `--rss-pid PID` adds `rss`: the
//! VmRSS/VmHWM of that process (the gateway) before the crowd, with it, and at the end (rss.rs).
//!
//! Every wait is bounded: connects and requests time out (`--timeout`), the run stops at
//! `--duration` (after `--warmup`), and `--max-requests` caps the total.

mod crowd;
mod proto;
mod rss;
mod stats;
mod tls;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{watch, Barrier};
use tokio::time::{timeout, Instant};

use crate::proto::{BadResponse, Op, Spec, MBAP_LEN};

/// Closed-loop Modbus/TCP load generator (FC 3 reads or FC 16 writes).
#[derive(Debug, Parser)]
#[command(name = "zonegate-loadgen", version, max_term_width = 100)]
struct Args {
    /// Address of the Modbus/TCP server or gateway, e.g. 127.0.0.1:5020.
    #[arg(long)]
    target: SocketAddr,
    /// Number of concurrent connections (each with one request in flight).
    #[arg(long, short = 'c', default_value_t = 1)]
    connections: usize,
    /// How long to measure (e.g. 5s, 500ms, 1m), after the warm-up.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Requests sent before measuring starts (not recorded), as a duration.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
    /// Upper bound on the number of requests of the whole run (all connections).
    #[arg(long, default_value_t = 50_000_000)]
    max_requests: u64,
    /// Timeout of one connect and of one request.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    timeout: Duration,
    /// Unit id of the requests.
    #[arg(long, default_value_t = 1)]
    unit: u8,
    /// First holding register (zero-based protocol address).
    #[arg(long, default_value_t = 100)]
    address: u16,
    /// Registers per request.
    #[arg(long, default_value_t = 10)]
    count: u16,
    /// Send FC 16 writes instead of FC 3 reads, values from this minimum...
    #[arg(long, requires = "write_max")]
    write_min: Option<u16>,
    /// ...to this maximum (inclusive).
    #[arg(long, requires = "write_min")]
    write_max: Option<u16>,
    /// Local address to bind the client sockets to (e.g. 127.0.0.2), to appear as a source.
    #[arg(long)]
    source: Option<IpAddr>,
    /// Name of the target in the JSON output (default: the address).
    #[arg(long)]
    label: Option<String>,
    /// Runtime worker threads (1 = a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Modbus/TCP Security: the CA bundle the server certificate chains to.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<std::path::PathBuf>,
    /// The client certificate (PEM) presented to the server.
    #[arg(long, requires = "tls_ca")]
    tls_cert: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "tls_ca")]
    tls_key: Option<std::path::PathBuf>,
    /// The name the server certificate must carry.
    #[arg(long, default_value = "localhost")]
    tls_server_name: String,
    /// Open a new connection for every request (with TLS: one full handshake per request).
    #[arg(long)]
    new_connection_each: bool,
    /// Idle connections held open during the run (plain TCP), besides the measured ones.
    #[arg(long, default_value_t = 0)]
    idle_conns: usize,
    /// Each idle connection first makes one FC 3 read (a live session, as an HMI has).
    #[arg(long)]
    idle_request: bool,
    /// Source addresses for the idle connections, round robin (e.g. 127.0.0.2,127.0.0.3).
    #[arg(long, value_delimiter = ',')]
    idle_source: Vec<IpAddr>,
    /// Hostile connections that send a request one byte at a time and never complete it.
    #[arg(long, default_value_t = 0)]
    hostile_slowloris: usize,
    /// Time between two bytes of a slowloris connection.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    slowloris_interval: Duration,
    /// Hostile connections that pipeline requests and never read a reply.
    #[arg(long, default_value_t = 0)]
    hostile_noread: usize,
    /// Bytes of requests one never-read connection writes at most.
    #[arg(long, default_value_t = 1 << 20)]
    noread_max_bytes: u64,
    /// Report the memory (VmRSS, VmHWM from /proc) of this process, e.g. the gateway's pid.
    #[arg(long)]
    rss_pid: Option<u32>,
}

/// Most crowd connections of one run (the file descriptors are the real limit: `ulimit -n`).
const MAX_CROWD: usize = 100_000;

/// Parses `500ms`, `5s`, `2m` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {text:?}: expected e.g. 5s"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("bad duration unit in {text:?}: use ms, s or m")),
    };
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("duration {text:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// What one connection measured.
#[derive(Debug, Default)]
struct WorkerResult {
    latencies: Vec<u32>,
    errors: u64,
    exceptions: BTreeMap<u8, u64>,
    reconnects: u64,
    first_error: Option<String>,
}

impl WorkerResult {
    fn error(&mut self, recording: bool, message: impl FnOnce() -> String) {
        if recording {
            self.errors += 1;
        }
        if self.first_error.is_none() {
            self.first_error = Some(message());
        }
    }
}

/// Shared, read-only settings of the workers.
#[derive(Debug)]
struct Plan {
    target: SocketAddr,
    source: Option<IpAddr>,
    spec: Spec,
    timeout: Duration,
    budget: AtomicU64,
    tls: Option<tls::Tls>,
    new_connection_each: bool,
}

/// A connection of a worker.
type Stream = Box<dyn tls::Link>;

async fn connect(plan: &Plan) -> Result<Stream, String> {
    let tcp = connect_tcp(plan).await?;
    match &plan.tls {
        None => Ok(Box::new(tcp)),
        Some(t) => {
            let s = timeout(plan.timeout, t.connector.connect(t.name.clone(), tcp))
                .await
                .map_err(|_| format!("TLS handshake with {} timed out", plan.target))?
                .map_err(|e| format!("TLS handshake with {}: {e}", plan.target))?;
            Ok(Box::new(s))
        }
    }
}

async fn connect_tcp(plan: &Plan) -> Result<TcpStream, String> {
    let socket = match plan.target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(ip) = plan.source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    let stream = timeout(plan.timeout, socket.connect(plan.target))
        .await
        .map_err(|_| format!("connect to {} timed out", plan.target))?
        .map_err(|e| format!("connect to {}: {e}", plan.target))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    Ok(stream)
}

/// One request/response exchange; `Err((message, resync))` where `resync` = reconnect needed.
async fn exchange(
    stream: &mut Stream,
    plan: &Plan,
    tid: u16,
    request: &[u8],
    pdu: &mut [u8; 256],
) -> Result<(), (BadResponse, bool)> {
    let io = |e: std::io::Error| (BadResponse::Header(format!("i/o: {e}")), true);
    let fut = async {
        stream.write_all(request).await.map_err(io)?;
        stream.flush().await.map_err(io)?;
        let mut header = [0u8; MBAP_LEN];
        stream.read_exact(&mut header).await.map_err(io)?;
        let len = Spec::check_header(&header).map_err(|e| (e, true))?;
        let body = &mut pdu[..len];
        stream.read_exact(body).await.map_err(io)?;
        plan.spec.check_response(tid, &header, body).map_err(|e| {
            let resync = !matches!(e, BadResponse::Exception(_));
            (e, resync)
        })
    };
    match timeout(plan.timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err((
            BadResponse::Header(format!("no answer within {:?}", plan.timeout)),
            true,
        )),
    }
}

async fn worker(
    plan: Arc<Plan>,
    start: Arc<Barrier>,
    mut times: watch::Receiver<Option<(Instant, Instant)>>,
) -> WorkerResult {
    let mut result = WorkerResult::default();
    let mut stream = match connect(&plan).await {
        Ok(s) => Some(s),
        Err(e) => {
            result.error(true, || e);
            None
        }
    };
    start.wait().await;
    let (record_from, end) = match times.wait_for(Option::is_some).await {
        Ok(t) => t.unwrap_or((Instant::now(), Instant::now())),
        Err(_) => return result,
    };
    let mut request = Vec::with_capacity(260);
    let mut pdu = [0u8; 256];
    let mut tid: u16 = 0;
    let mut seq: u64 = 0;
    let mut carried: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let budget = plan
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1));
        if budget.is_err() {
            break;
        }
        let recording = now >= record_from;
        let fresh = plan.new_connection_each && stream.is_none();
        let sent_at = Instant::now();
        let Some(s) = stream.as_mut() else {
            if !fresh {
                result.reconnects += 1;
            }
            match connect(&plan).await {
                Ok(s) => {
                    stream = Some(s);
                    if fresh {
                        // Connection set-up counts in the latency of its one request.
                        carried = Some(sent_at);
                    }
                }
                Err(e) => {
                    result.error(recording, || e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        };
        tid = tid.wrapping_add(1);
        seq += 1;
        plan.spec.encode(tid, seq, &mut request);
        let sent = carried.take().unwrap_or_else(Instant::now);
        match exchange(s, &plan, tid, &request, &mut pdu).await {
            Ok(()) => {
                if recording {
                    let us = sent.elapsed().as_micros();
                    result.latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
                if plan.new_connection_each {
                    // The next request opens (and, with TLS, handshakes) a new connection.
                    stream = None;
                }
            }
            Err((bad, resync)) => {
                if let BadResponse::Exception(code) = bad {
                    if recording {
                        *result.exceptions.entry(code).or_default() += 1;
                    }
                }
                result.error(recording, || bad.to_string());
                if resync {
                    stream = None;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    result
}

async fn run(args: &Args) -> Result<serde_json::Value, String> {
    let op = match (args.write_min, args.write_max) {
        (Some(min), Some(max)) => Op::Write { min, max },
        _ => Op::Read,
    };
    let spec = Spec {
        op,
        unit: args.unit,
        address: args.address,
        count: args.count,
    };
    spec.validate()?;
    if args.connections == 0 || args.connections > 10_000 {
        return Err(format!(
            "--connections {} outside 1..=10000",
            args.connections
        ));
    }
    let plan = Arc::new(Plan {
        target: args.target,
        source: args.source,
        spec,
        timeout: args.timeout,
        budget: AtomicU64::new(args.max_requests),
        tls: match (&args.tls_ca, &args.tls_cert, &args.tls_key) {
            (Some(ca), Some(cert), Some(key)) => {
                Some(tls::client(ca, cert, key, &args.tls_server_name)?)
            }
            _ => None,
        },
        new_connection_each: args.new_connection_each,
    });
    let crowd_settings = crowd::Settings {
        target: args.target,
        idle: args.idle_conns,
        idle_request: args.idle_request,
        sources: args.idle_source.clone(),
        slowloris: args.hostile_slowloris,
        slowloris_interval: args.slowloris_interval.max(Duration::from_millis(1)),
        noread: args.hostile_noread,
        noread_max_bytes: args.noread_max_bytes,
        spec: Spec {
            op: Op::Read,
            ..spec
        },
        timeout: args.timeout,
    };
    let crowd_size = args.idle_conns + args.hostile_slowloris + args.hostile_noread;
    if crowd_size > MAX_CROWD {
        return Err(format!(
            "{crowd_size} crowd connections: at most {MAX_CROWD}"
        ));
    }
    // The memory of the target with nothing of ours open, its peak reset to now.
    let peak_reset = args.rss_pid.map(rss::reset_peak);
    let rss_before = args.rss_pid.and_then(rss::sample);
    let crowd_bound = Duration::from_secs(60) + plan.timeout;
    let hard_end = Instant::now()
        + crowd_bound
        + args.warmup
        + args.duration
        + 2 * plan.timeout
        + Duration::from_secs(10);
    let crowd = if crowd_settings.is_empty() {
        None
    } else {
        Some(crowd::open(&crowd_settings, crowd_bound, hard_end).await)
    };
    let rss_loaded = args.rss_pid.and_then(rss::sample);
    let (stop_sampler, stop_rx) = watch::channel(false);
    let sampler = args
        .rss_pid
        .map(|pid| tokio::spawn(rss::max_while(pid, Duration::from_millis(100), stop_rx)));
    // Every connection is set up before the clock starts: the barrier opens when all have tried.
    let start = Arc::new(Barrier::new(args.connections + 1));
    let (tx_times, rx_times) = watch::channel(None);
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            tokio::spawn(worker(
                Arc::clone(&plan),
                Arc::clone(&start),
                rx_times.clone(),
            ))
        })
        .collect();
    let connect_bound = plan.timeout + Duration::from_secs(5);
    if timeout(connect_bound, start.wait()).await.is_err() {
        return Err(format!("connections not set up within {connect_bound:?}"));
    }
    let began = Instant::now();
    let record_from = began + args.warmup;
    let end = record_from + args.duration;
    let _ = tx_times.send(Some((record_from, end)));

    let mut latencies = Vec::new();
    let mut errors = 0u64;
    let mut reconnects = 0u64;
    let mut exceptions: BTreeMap<u8, u64> = BTreeMap::new();
    let mut first_error = None;
    let bound = args.warmup + args.duration + 2 * plan.timeout + Duration::from_secs(10);
    let deadline = began + bound;
    for task in tasks {
        let r = match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(format!("a connection task failed: {e}")),
            Err(_) => return Err(format!("the run did not finish within {bound:?}")),
        };
        latencies.extend_from_slice(&r.latencies);
        errors += r.errors;
        reconnects += r.reconnects;
        for (code, n) in r.exceptions {
            *exceptions.entry(code).or_default() += n;
        }
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let rss_end = args.rss_pid.and_then(rss::sample);
    let _ = stop_sampler.send(true);
    let rss_max = match sampler {
        Some(task) => timeout(Duration::from_secs(2), task)
            .await
            .ok()
            .and_then(Result::ok),
        None => None,
    };
    let crowd = match crowd {
        Some(c) => c.finish(Duration::from_secs(5)).await,
        None => serde_json::Value::Null,
    };
    let rss = match args.rss_pid {
        None => serde_json::Value::Null,
        Some(pid) => serde_json::json!({
            "pid": pid,
            "peak_reset": peak_reset,
            "before": rss::json(rss_before),
            "loaded": rss::json(rss_loaded),
            "end": rss::json(rss_end),
            "max_sampled_mb": rss_max.map(rss::mib),
        }),
    };
    let measured = end
        .min(Instant::now())
        .saturating_duration_since(record_from)
        .as_secs_f64();
    let requests = latencies.len() as u64;
    let s = stats::summarize(&mut latencies);
    let rps = if measured > 0.0 {
        requests as f64 / measured
    } else {
        0.0
    };
    let exceptions: serde_json::Map<String, serde_json::Value> = exceptions
        .into_iter()
        .map(|(c, n)| (format!("{c:#04x}"), n.into()))
        .collect();
    Ok(serde_json::json!({
        "target": args.target.to_string(),
        "label": args.label.clone().unwrap_or_else(|| args.target.to_string()),
        "op": match op { Op::Read => "read", Op::Write { .. } => "write" },
        "connections": args.connections,
        "duration_s": (measured * 1000.0).round() / 1000.0,
        "requests": requests,
        "errors": errors,
        "exceptions": exceptions,
        "reconnects": reconnects,
        "tls": plan.tls.is_some(),
        "new_connection_each": plan.new_connection_each,
        "rps": rps.round(),
        "p50_us": s.p50,
        "p90_us": s.p90,
        "p99_us": s.p99,
        "p999_us": s.p999,
        "max_us": s.max,
        "mean_us": s.mean,
        "first_error": first_error,
        "crowd": crowd,
        "rss": rss,
    }))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zonegate-loadgen: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zonegate-loadgen: {e}");
            ExitCode::from(2)
        }
    }
}
