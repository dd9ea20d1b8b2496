//! The crowd around the well-behaved clients: idle connections and hostile ones.
//!
//! - **idle** (`--idle-conns N`): connections that stay open and silent, like an HMI between
//!   polls; with `--idle-request` each first makes one FC 3 read (so the gateway holds a live,
//!   authorised session, not one it may close as unauthenticated).
//! - **slowloris** (`--hostile-slowloris N`): each sends a valid FC 3 request one byte every
//!   `--slowloris-interval`, stopping one byte short of the end, so the frame never completes.
//! - **never read** (`--hostile-noread N`): each writes pipelined FC 3 requests as fast as its
//!   socket takes them (non-blocking writes, waiting for writability in between) and never
//!   reads a reply, so the target's send buffer to it fills; it stops at `--noread-max-bytes`.
//!
//! Every crowd connection watches for the target closing it (a read of 0 bytes or an error; for
//! the never-read kind, a failed write) and reports that, with the time it took, at the end.
//! Bounds: connects are made `CONNECT_PARALLEL` at a time, each under `--timeout`, the whole
//! set-up under `setup_bound`; every task ends on the stop signal or at its hard deadline.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use crate::proto::{Op, Spec, MBAP_LEN};

/// Connects in flight at once while the crowd is set up: a burst of thousands would overflow
/// the target's listen backlog and measure SYN retries instead of memory.
const CONNECT_PARALLEL: usize = 64;

/// The kinds of crowd connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Open and silent.
    Idle,
    /// A request one byte at a time, never completed.
    Slowloris,
    /// Pipelined requests, replies never read.
    NoRead,
}

impl Kind {
    /// The name in the JSON output.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Slowloris => "slowloris",
            Self::NoRead => "noread",
        }
    }
}

/// What the crowd is made of.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The server or gateway.
    pub(crate) target: SocketAddr,
    /// Idle connections.
    pub(crate) idle: usize,
    /// One FC 3 read on each idle connection after connecting.
    pub(crate) idle_request: bool,
    /// Source addresses the idle connections are spread over, round robin (empty: the
    /// kernel's choice), e.g. 127.0.0.2..127.0.0.5 when one address runs short of ports.
    pub(crate) sources: Vec<IpAddr>,
    /// Slowloris connections.
    pub(crate) slowloris: usize,
    /// Time between two bytes of a slowloris connection.
    pub(crate) slowloris_interval: Duration,
    /// Never-read connections.
    pub(crate) noread: usize,
    /// Bytes of requests one never-read connection writes at most.
    pub(crate) noread_max_bytes: u64,
    /// The request of the idle and hostile connections (an FC 3 read).
    pub(crate) spec: Spec,
    /// Timeout of one connect and of the idle request.
    pub(crate) timeout: Duration,
}

impl Settings {
    /// True when there is no crowd at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.idle + self.slowloris + self.noread == 0
    }
}

/// The end of one crowd connection.
#[derive(Debug)]
struct Outcome {
    kind: Kind,
    /// The target closed (or reset) the connection after this long.
    closed_after: Option<Duration>,
    /// Bytes written (requests, or request bytes for slowloris).
    bytes: u64,
    /// A never-read connection found its socket full at least once (the target pushed back).
    blocked: bool,
    /// A never-read connection reached `noread_max_bytes` without ever blocking.
    capped: bool,
}

/// Set-up counts of one kind.
#[derive(Debug, Default, Clone)]
struct Setup {
    connected: u64,
    connect_errors: u64,
    request_errors: u64,
    first_error: Option<String>,
}

/// The running crowd: its tasks and the signal that ends them.
#[derive(Debug)]
pub(crate) struct Crowd {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Outcome>>,
    setup: [(Kind, Setup); 3],
    setup_s: f64,
}

/// Opens the crowd: the idle connections first (with their request), then the hostile ones.
/// Returns once every connection is open (or failed), within `setup_bound`; the tasks then run
/// until [`Crowd::finish`] or `hard_end`.
pub(crate) async fn open(s: &Settings, setup_bound: Duration, hard_end: Instant) -> Crowd {
    let began = Instant::now();
    let deadline = began + setup_bound;
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(s.idle + s.slowloris + s.noread);
    let mut setup: [(Kind, Setup); 3] = [
        (Kind::Idle, Setup::default()),
        (Kind::Slowloris, Setup::default()),
        (Kind::NoRead, Setup::default()),
    ];
    for (i, (kind, n)) in [
        (Kind::Idle, s.idle),
        (Kind::Slowloris, s.slowloris),
        (Kind::NoRead, s.noread),
    ]
    .into_iter()
    .enumerate()
    {
        let (streams, counts) = connect_many(s, kind, n, deadline).await;
        setup[i].1 = counts;
        for stream in streams {
            let stop = stop_rx.clone();
            let task = match kind {
                Kind::Idle => tokio::spawn(idle(stream, stop, hard_end)),
                Kind::Slowloris => tokio::spawn(slowloris(stream, s.clone(), stop, hard_end)),
                Kind::NoRead => tokio::spawn(noread(stream, s.clone(), stop, hard_end)),
            };
            tasks.push(task);
        }
    }
    Crowd {
        stop,
        tasks,
        setup,
        setup_s: began.elapsed().as_secs_f64(),
    }
}

impl Crowd {
    /// Stops every crowd task, waits for them (bounded by `bound`) and returns the JSON of the
    /// crowd: per kind, connected, connect errors, closed by the target (and how soon).
    pub(crate) async fn finish(self, bound: Duration) -> serde_json::Value {
        let _ = self.stop.send(true);
        let deadline = Instant::now() + bound;
        let mut outcomes = Vec::with_capacity(self.tasks.len());
        let mut lost = 0u64;
        for task in self.tasks {
            match timeout_at(deadline, task).await {
                Ok(Ok(o)) => outcomes.push(o),
                _ => lost += 1,
            }
        }
        let mut out = serde_json::Map::new();
        for (kind, setup) in self.setup {
            let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.kind == kind).collect();
            let wanted = setup.connected + setup.connect_errors;
            if wanted == 0 {
                continue;
            }
            let mut closed: Vec<Duration> = mine.iter().filter_map(|o| o.closed_after).collect();
            closed.sort_unstable();
            let median = closed.get(closed.len() / 2).map(Duration::as_secs_f64);
            let mut k = serde_json::json!({
                "connected": setup.connected,
                "connect_errors": setup.connect_errors,
                "closed_by_target": closed.len(),
                "open_at_end": mine.len() - closed.len(),
                "closed_after_s_median": median.map(|s| (s * 1000.0).round() / 1000.0),
                "bytes_sent": mine.iter().map(|o| o.bytes).sum::<u64>(),
                "first_error": setup.first_error,
            });
            if kind == Kind::Idle {
                k["request_errors"] = setup.request_errors.into();
            }
            if kind == Kind::NoRead {
                k["blocked"] = mine.iter().filter(|o| o.blocked).count().into();
                k["capped"] = mine.iter().filter(|o| o.capped).count().into();
            }
            out.insert(kind.name().to_owned(), k);
        }
        out.insert(
            "setup_s".to_owned(),
            ((self.setup_s * 1000.0).round() / 1000.0).into(),
        );
        out.insert("tasks_lost".to_owned(), lost.into());
        serde_json::Value::Object(out)
    }
}

/// Resolves once `stop` turns true or its sender is gone (the guard of `wait_for` is not `Send`,
/// so it must not live in a `select!` arm).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Opens `n` connections of `kind`, `CONNECT_PARALLEL` at a time; idle ones make their request.
async fn connect_many(
    s: &Settings,
    kind: Kind,
    n: usize,
    deadline: Instant,
) -> (Vec<TcpStream>, Setup) {
    let gate = Arc::new(Semaphore::new(CONNECT_PARALLEL));
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        let source = match kind {
            Kind::Idle if !s.sources.is_empty() => Some(s.sources[i % s.sources.len()]),
            _ => None,
        };
        let gate = Arc::clone(&gate);
        let s = s.clone();
        pending.push(tokio::spawn(async move {
            let _permit = gate
                .acquire_owned()
                .await
                .map_err(|e| (false, e.to_string()))?;
            let connect = async {
                let mut stream = connect(s.target, source, s.timeout)
                    .await
                    .map_err(|e| (false, e))?;
                if kind == Kind::Idle && s.idle_request {
                    one_read(&mut stream, &s.spec, s.timeout)
                        .await
                        .map_err(|e| (true, e))?;
                }
                Ok(stream)
            };
            match timeout_at(deadline, connect).await {
                Ok(r) => r,
                Err(_) => Err((false, "crowd set-up ran out of time".to_owned())),
            }
        }));
    }
    let mut streams = Vec::with_capacity(n);
    let mut setup = Setup::default();
    for p in pending {
        // The set-up deadline bounds every task; a join error is a panic, counted as a failure.
        let r = p
            .await
            .unwrap_or_else(|e| Err((false, format!("connect task: {e}"))));
        match r {
            Ok(stream) => {
                setup.connected += 1;
                streams.push(stream);
            }
            Err((after_connect, e)) => {
                if after_connect {
                    setup.request_errors += 1;
                } else {
                    setup.connect_errors += 1;
                }
                setup.first_error.get_or_insert(e);
            }
        }
    }
    (streams, setup)
}

async fn connect(
    target: SocketAddr,
    source: Option<IpAddr>,
    limit: Duration,
) -> Result<TcpStream, String> {
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    let stream = timeout(limit, socket.connect(target))
        .await
        .map_err(|_| format!("connect to {target} timed out"))?
        .map_err(|e| format!("connect to {target}: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    Ok(stream)
}

/// One FC 3 read and its checked answer (the idle connection's opening request).
async fn one_read(stream: &mut TcpStream, spec: &Spec, limit: Duration) -> Result<(), String> {
    let mut request = Vec::with_capacity(12);
    spec.encode(1, 0, &mut request);
    let exchange = async {
        stream
            .write_all(&request)
            .await
            .map_err(|e| format!("i/o: {e}"))?;
        let mut header = [0u8; MBAP_LEN];
        stream
            .read_exact(&mut header)
            .await
            .map_err(|e| format!("i/o: {e}"))?;
        let len = Spec::check_header(&header).map_err(|e| e.to_string())?;
        let mut pdu = [0u8; 256];
        let body = &mut pdu[..len];
        stream
            .read_exact(body)
            .await
            .map_err(|e| format!("i/o: {e}"))?;
        spec.check_response(1, &header, body)
            .map_err(|e| e.to_string())
    };
    timeout(limit, exchange)
        .await
        .map_err(|_| format!("no answer within {limit:?}"))?
}

/// Waits for the stop signal, the hard deadline, or the target closing the connection.
async fn idle(
    mut stream: TcpStream,
    mut stop: watch::Receiver<bool>,
    hard_end: Instant,
) -> Outcome {
    let began = Instant::now();
    let mut buf = [0u8; 512];
    let mut closed_after = None;
    loop {
        tokio::select! {
            r = stream.read(&mut buf) => match r {
                // Stray bytes (not expected) are read and dropped; the connection stays.
                Ok(n) if n > 0 => continue,
                _ => { closed_after = Some(began.elapsed()); break; }
            },
            () = stopped(&mut stop) => break,
            () = sleep_until(hard_end) => break,
        }
    }
    Outcome {
        kind: Kind::Idle,
        closed_after,
        bytes: 0,
        blocked: false,
        capped: false,
    }
}

/// Sends the first 11 of the 12 bytes of an FC 3 request, one every `interval`.
async fn slowloris(
    stream: TcpStream,
    s: Settings,
    mut stop: watch::Receiver<bool>,
    hard_end: Instant,
) -> Outcome {
    let began = Instant::now();
    let mut request = Vec::with_capacity(12);
    let read = Spec {
        op: Op::Read,
        ..s.spec
    };
    read.encode(1, 0, &mut request);
    request.pop(); // never the last byte: the frame never completes
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = [0u8; 512];
    let mut sent = 0usize;
    let mut next = Instant::now();
    let mut closed_after = None;
    loop {
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(n) if n > 0 => continue,
                _ => { closed_after = Some(began.elapsed()); break; }
            },
            () = sleep_until(next), if sent < request.len() => {
                if wr.write_all(&request[sent..=sent]).await.is_err() {
                    closed_after = Some(began.elapsed());
                    break;
                }
                sent += 1;
                next += s.slowloris_interval;
            }
            () = stopped(&mut stop) => break,
            () = sleep_until(hard_end) => break,
        }
    }
    Outcome {
        kind: Kind::Slowloris,
        closed_after,
        bytes: sent as u64,
        blocked: false,
        capped: false,
    }
}

/// Writes pipelined FC 3 requests whenever the socket takes them, never reading.
async fn noread(
    stream: TcpStream,
    s: Settings,
    mut stop: watch::Receiver<bool>,
    hard_end: Instant,
) -> Outcome {
    let began = Instant::now();
    // 512 requests back to back (6 KiB), written round and round; tids cycle.
    let mut block = Vec::with_capacity(512 * 12);
    let mut one = Vec::with_capacity(12);
    let read = Spec {
        op: Op::Read,
        ..s.spec
    };
    for tid in 0..512u16 {
        read.encode(tid, 0, &mut one);
        block.extend_from_slice(&one);
    }
    let mut offset = 0usize;
    let mut bytes = 0u64;
    let mut blocked = false;
    let mut closed_after = None;
    while bytes < s.noread_max_bytes {
        match stream.try_write(&block[offset..]) {
            Ok(n) => {
                bytes += n as u64;
                offset = (offset + n) % block.len();
                // Yield now and then so thousands of these share the runtime fairly.
                if bytes % (64 * 1024) < n as u64 {
                    tokio::task::yield_now().await;
                }
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => blocked = true,
            Err(_) => {
                closed_after = Some(began.elapsed());
                break;
            }
        }
        tokio::select! {
            r = stream.writable() => if r.is_err() { closed_after = Some(began.elapsed()); break; },
            () = stopped(&mut stop) => break,
            () = sleep_until(hard_end) => break,
        }
    }
    let capped = bytes >= s.noread_max_bytes && !blocked;
    if closed_after.is_none() && bytes >= s.noread_max_bytes {
        // At the cap: keep the connection (and its unread replies) until the end, still not
        // reading; a closure can no longer be seen here.
        tokio::select! {
            () = stopped(&mut stop) => {}
            () = sleep_until(hard_end) => {}
        }
    }
    Outcome {
        kind: Kind::NoRead,
        closed_after,
        bytes,
        blocked,
        capped,
    }
}
