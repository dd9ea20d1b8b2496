//! The live monitor and the shadow candidates: what the gateway watches beside what it
//! enforces (issue 12; docs/DESIGN.md, "The live monitor").
//!
//! ```text
//!  Session (conn.rs) ── finished transaction ──try_send──▶ bounded queue ──▶ monitor thread
//!        │              (request + answer PDUs,             (full: dropped,    zonegate-monitor:
//!        │               conduit, client, device, times)     counted)          pairs, detectors
//!        │                                                                      │ alerts
//!        └── each request: the conduit's `shadow:` candidate decides too        ▼
//!            └─ would deny ─▶ `shadow` record (would_deny)         audit Recorder: `alert` records
//! ```
//!
//! The data path never waits for the monitor: a transaction is copied into a fixed-size job
//! (no allocation) and offered with `try_send`; when the queue is full the job is dropped and
//! counted, and the monitor thread says so in an `alert` record (reason `monitor_overload`) at
//! most every 10 s. The monitor runs on its own OS thread, so its work never takes a tokio
//! worker from the sessions. This module hands the monitor the PDUs the codec already
//! deframed; the monitor crate (with the codec) reads them, the gateway parses nothing.
//!
//! Reload: the `monitor:` section (thresholds, detectors on/off, baseline) applies to the
//! running monitor without losing its state; a new `queue` size or switching the monitor on or
//! off starts a new monitor thread. A `shadow:` candidate is loaded and compiled with every
//! load of the model; a candidate (or baseline) that does not load is logged, recorded as
//! `policy_rejected` naming the file, and left out: it never changes what is enforced. The
//! loaders are the ones `zonegate check` reports with (`Baseline::read_file`,
//! `zonegate_policy::load_candidate`: ZG-C042, ZG-C043), so `check` says beforehand what a
//! start would leave out.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use tokio::time::Instant;
use tracing::{error, info, warn};
use zonegate_audit::{Decision, Event, Kind};
use zonegate_modbus::{FunctionCode, Request, UnitId};
use zonegate_monitor::{Adu, Baseline, Flow, Monitor, Side, Thresholds};
use zonegate_policy::{Model, Policy, RateLimiter, Transaction};

use crate::record::Recorder;
use crate::slots::{Slot, MAX_PDU};
use crate::state::ConduitShared;

/// How long the monitor thread sleeps when its queue is empty. It polls rather than blocks:
/// a receiver blocked on the channel would make every `try_send` of the data path wake it (a
/// futex call per request, measured as a third of the throughput at one connection); a
/// polling one is never waited on, and the queue holds far more than 10 ms of traffic.
const IDLE: Duration = Duration::from_millis(10);
/// How long it sleeps when its last look found work: a short poll under load makes short
/// bursts (a millisecond of transactions, not ten), which hold a shared core for less.
const BUSY_POLL: Duration = Duration::from_millis(1);
/// The `monitor_overload` record is written at most this often.
const OVERLOAD_EVERY: Duration = Duration::from_secs(10);

/// Counters of the live monitor (for tests and the shutdown log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonitorStats {
    /// Transactions handed to the monitor's queue.
    pub queued: u64,
    /// Transactions dropped because the queue was full.
    pub dropped: u64,
    /// Transactions the monitor has processed.
    pub processed: u64,
    /// Alerts recorded.
    pub alerts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    dropped: AtomicU64,
    processed: AtomicU64,
    alerts: AtomicU64,
}

/// One finished transaction, copied out of the session's slot (fixed size: no allocation).
struct Job {
    conduit: Option<Arc<str>>,
    client: SocketAddr,
    device: Option<Arc<str>>,
    tid: u16,
    unit: u8,
    request_id: Option<u64>,
    request_at: SystemTime,
    answer_at: SystemTime,
    /// The request and answer PDUs.
    pdus: Pdus,
    answered: bool,
}

/// Request and answer PDUs that fit together this size travel inside the job.
const INLINE_PDUS: usize = 96;

/// The two PDUs of a job: inline when small (a poll's request and a short answer: no
/// allocation), else on the heap. A job is written into the channel's slot by the data path and
/// read by the monitor thread on the other core, so its size is cache lines moved per
/// transaction; a fixed 2 x 253-byte buffer made the hand-off the monitor's largest cost.
enum Pdus {
    /// Request in `buf[..req_len]`, answer in `buf[req_len..req_len + ans_len]`.
    Inline {
        buf: [u8; INLINE_PDUS],
        req_len: u8,
        ans_len: u8,
    },
    /// Request in `buf[..req_len]`, answer in `buf[req_len..]`.
    Heap { buf: Box<[u8]>, req_len: usize },
}

impl Pdus {
    fn new(request: &[u8], answer: &[u8]) -> Self {
        let (r, a) = (request.len().min(MAX_PDU), answer.len().min(MAX_PDU));
        if r + a <= INLINE_PDUS {
            let mut buf = [0u8; INLINE_PDUS];
            buf[..r].copy_from_slice(&request[..r]);
            buf[r..r + a].copy_from_slice(&answer[..a]);
            // Both at most INLINE_PDUS (96): they fit a u8.
            Self::Inline {
                buf,
                req_len: r as u8,
                ans_len: a as u8,
            }
        } else {
            let mut buf = Vec::with_capacity(r + a);
            buf.extend_from_slice(&request[..r]);
            buf.extend_from_slice(&answer[..a]);
            Self::Heap {
                buf: buf.into_boxed_slice(),
                req_len: r,
            }
        }
    }

    fn request(&self) -> &[u8] {
        match self {
            Self::Inline { buf, req_len, .. } => &buf[..usize::from(*req_len)],
            Self::Heap { buf, req_len } => &buf[..*req_len],
        }
    }

    fn answer(&self) -> &[u8] {
        match self {
            Self::Inline {
                buf,
                req_len,
                ans_len,
            } => &buf[usize::from(*req_len)..usize::from(*req_len) + usize::from(*ans_len)],
            Self::Heap { buf, req_len } => &buf[*req_len..],
        }
    }
}

// A small job is copied into the channel's own slots, never boxed: no allocation per poll.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Tx(Job),
    /// The session of this client ended: its flow is closed.
    Closed(SocketAddr, Option<Arc<str>>),
}

/// What the model's `monitor:` section makes of the monitor.
struct Config {
    thresholds: Thresholds,
    baseline: Option<Baseline>,
    queue: usize,
}

/// A reload's thresholds and baseline, waiting for the monitor thread.
type Pending = Arc<Mutex<Option<(Thresholds, Option<Baseline>)>>>;

/// The running monitor thread's side of the channel.
struct Running {
    tx: SyncSender<Msg>,
    queue: usize,
    thread: std::thread::JoinHandle<()>,
}

/// The gateway-wide live monitor.
pub(crate) struct Watch {
    /// `None`: the monitor is off (one atomic load per transaction, nothing else).
    tx: ArcSwapOption<SyncSender<Msg>>,
    running: Mutex<Option<Running>>,
    /// A reload's thresholds and baseline, taken by the monitor thread at its next job.
    pending: Pending,
    pending_flag: Arc<AtomicBool>,
    counters: Arc<Counters>,
    /// The files named by the model's monitor and shadow settings (a change reloads).
    files: Mutex<Vec<PathBuf>>,
    /// Test hook: the monitor thread holds this lock while it processes a job.
    hold: Option<Arc<Mutex<()>>>,
}

/// One conduit's `shadow:` candidate, compiled.
pub(crate) struct Shadow {
    file: String,
    policy: Arc<Policy>,
    index: usize,
    limiter: Arc<RateLimiter>,
}

/// What a conduit's sessions see of the watch: the gateway's monitor and the conduit's
/// shadow candidate in force.
pub(crate) struct ConduitWatch {
    pub(crate) monitor: Arc<Watch>,
    pub(crate) shadow: ArcSwapOption<Shadow>,
}

impl ConduitWatch {
    pub(crate) fn new(monitor: Arc<Watch>) -> Self {
        Self {
            monitor,
            shadow: ArcSwapOption::empty(),
        }
    }
}

impl Watch {
    pub(crate) fn new(hold: Option<Arc<Mutex<()>>>) -> Self {
        Self {
            tx: ArcSwapOption::empty(),
            running: Mutex::new(None),
            pending: Arc::default(),
            pending_flag: Arc::default(),
            counters: Arc::default(),
            files: Mutex::new(Vec::new()),
            hold,
        }
    }

    pub(crate) fn stats(&self) -> MonitorStats {
        let c = &self.counters;
        MonitorStats {
            queued: c.queued.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            processed: c.processed.load(Ordering::Relaxed),
            alerts: c.alerts.load(Ordering::Relaxed),
        }
    }

    /// Hash of the content of the files the monitor and shadow settings name (part of the
    /// reload trigger).
    pub(crate) fn files_hash(&self) -> String {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all = String::new();
        for f in files.iter() {
            let hash = std::fs::read(f)
                .ok()
                .map_or_else(|| "absent".to_owned(), |b| zonegate_audit::sha256_hex(&b));
            all.push_str(&format!("{}={hash}\n", f.display()));
        }
        all
    }

    /// Applies the model's `monitor:` section and its conduits' `shadow:` candidates (start
    /// and every reload). Problems with the files are logged and recorded, never returned:
    /// they leave enforcement as the model says.
    pub(crate) fn configure(
        &self,
        model: &Model,
        conduits: &[Arc<ConduitShared>],
        recorder: &Recorder,
    ) {
        let mut files = Vec::new();
        let config = model.monitor.as_ref().filter(|m| m.enabled).map(|m| {
            let baseline = m.baseline.as_ref().and_then(|b| {
                let path = model.resolve(&b.value);
                files.push(path.clone());
                // The monitor crate's loader: the one `zonegate check` reports with.
                match Baseline::read_file(&path) {
                    Ok(b) => Some(b),
                    Err(why) => {
                        rejected(
                            recorder,
                            &format!(
                                "monitor.baseline {} (line {}) not used: {why}; the detectors \
                                 that need a baseline are silent",
                                path.display(),
                                b.line
                            ),
                        );
                        None
                    }
                }
            });
            Config {
                thresholds: Thresholds::from_section(m),
                baseline,
                queue: m.queue.max(1),
            }
        });
        self.apply(config, recorder);
        for shared in conduits {
            let candidate = model
                .conduit(&shared.conduit)
                .and_then(|c| c.shadow.as_ref());
            let shadow = candidate.and_then(|s| {
                let path = model.resolve(&s.value);
                files.push(path.clone());
                let old = shared.watch.shadow.load_full();
                match load_shadow(&path, &shared.conduit, old.as_deref()) {
                    Ok(shadow) => {
                        info!(conduit = %shared.conduit, "shadow candidate {} loaded", path.display());
                        Some(Arc::new(shadow))
                    }
                    Err(why) => {
                        rejected(
                            recorder,
                            &format!(
                                "conduit {}: shadow candidate {} rejected, not evaluated: {why}",
                                shared.conduit,
                                path.display()
                            ),
                        );
                        None
                    }
                }
            });
            shared.watch.shadow.store(shadow);
        }
        *self.files.lock().unwrap_or_else(PoisonError::into_inner) = files;
    }

    fn apply(&self, config: Option<Config>, recorder: &Recorder) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        match config {
            None => {
                if running.take().is_some() {
                    info!("live monitor off");
                }
                // Dropping the last sender ends the thread once it has drained its queue.
                self.tx.store(None);
            }
            Some(c) if running.as_ref().is_some_and(|r| r.queue == c.queue) => {
                *self.pending.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((c.thresholds, c.baseline));
                self.pending_flag.store(true, Ordering::Release);
            }
            Some(c) => {
                let (tx, rx) = mpsc::sync_channel(c.queue);
                let monitor = Monitor::new(c.thresholds, c.baseline);
                let worker = Worker {
                    monitor,
                    recorder: recorder.clone(),
                    counters: Arc::clone(&self.counters),
                    pending: Arc::clone(&self.pending),
                    pending_flag: Arc::clone(&self.pending_flag),
                    hold: self.hold.clone(),
                    reported_drops: self.counters.dropped.load(Ordering::Relaxed),
                    last_report: None,
                    last_device: None,
                };
                let spawned = std::thread::Builder::new()
                    .name("zonegate-monitor".into())
                    .spawn(move || {
                        zonegate_audit::priority::run_in_background();
                        worker.run(&rx)
                    });
                match spawned {
                    Ok(thread) => {
                        info!("live monitor on (queue {})", c.queue);
                        self.tx.store(Some(Arc::new(tx.clone())));
                        // A previous thread (another queue size) drains and ends by itself.
                        *running = Some(Running {
                            tx,
                            queue: c.queue,
                            thread,
                        });
                    }
                    Err(e) => {
                        error!("cannot start the monitor thread: {e}; the monitor is off");
                        self.tx.store(None);
                        *running = None;
                    }
                }
            }
        }
    }

    fn offer(&self, msg: Msg) {
        let guard = self.tx.load();
        if let Some(tx) = guard.as_ref() {
            self.offer_to(tx, msg);
        }
    }

    fn offer_to(&self, tx: &SyncSender<Msg>, msg: Msg) {
        let is_tx = matches!(msg, Msg::Tx(_));
        match tx.try_send(msg) {
            Ok(()) => {
                if is_tx {
                    self.counters.queued.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(TrySendError::Full(_)) => {
                if is_tx {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Stops the monitor thread (at shutdown, before the audit `stop` record): what is queued
    /// is processed first.
    pub(crate) fn stop(&self) {
        self.tx.store(None);
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(Running { tx, thread, .. }) = running {
            drop(tx);
            if thread.join().is_err() {
                error!("the monitor thread panicked");
            }
        }
    }

    fn enabled(&self) -> bool {
        self.tx.load().is_some()
    }
}

fn rejected(recorder: &Recorder, message: &str) {
    error!("{message}");
    drop(recorder.handle().policy_rejected(message));
}

/// Loads, compiles and picks the conduit `conduit` of a candidate model (the policy crate's
/// loader, the one `zonegate check` uses), keeping the rate buckets of the previous one.
fn load_shadow(
    path: &std::path::Path,
    conduit: &str,
    old: Option<&Shadow>,
) -> Result<Shadow, String> {
    let candidate = zonegate_policy::load_candidate(path, conduit).map_err(|e| e.to_string())?;
    let policy = Arc::new(candidate.policy);
    // Rate buckets carry over while the candidate's rules keep their rates.
    let limiter = match old {
        Some(o) if o.limiter.suits(&policy) => Arc::clone(&o.limiter),
        _ => Arc::new(RateLimiter::new(&policy)),
    };
    Ok(Shadow {
        file: path.display().to_string(),
        policy,
        index: candidate.index,
        limiter,
    })
}

/// Hands a finished transaction of a session to the monitor (conn.rs calls it for every slot
/// that leaves: answered, refused by the gateway, unanswered). Never blocks.
/// `latency_us`: from the request's arrival to its answer (the answer's time is derived from
/// it rather than read from the clock again).
pub(crate) fn transaction(
    shared: &ConduitShared,
    client: SocketAddr,
    slot: &Slot,
    latency_us: u64,
) {
    let watch = &shared.watch.monitor;
    // One load of the sender for the whole hand-over (it is the data path's only cost).
    let guard = watch.tx.load();
    let Some(tx) = guard.as_ref() else {
        return;
    };
    let request = slot.request();
    let answer = slot.answer();
    let request_at = slot.event.at.unwrap_or_else(SystemTime::now);
    let job = Job {
        conduit: slot.event.conduit.clone(),
        client,
        device: slot.event.dst.clone(),
        tid: slot.client_tid,
        unit: slot.unit.get(),
        request_id: slot.event.request_id,
        request_at,
        answer_at: request_at + Duration::from_micros(latency_us),
        pdus: Pdus::new(request, answer),
        // A slot leaves with an answer unless the request expects none (FC 8/04).
        answered: !answer.is_empty(),
    };
    watch.offer_to(tx, Msg::Tx(job));
}

/// A session ended: the monitor closes its flow (its unanswered requests are counted).
pub(crate) fn session_ended(shared: &ConduitShared, client: SocketAddr, device: Arc<str>) {
    let watch = &shared.watch.monitor;
    if watch.enabled() {
        watch.offer(Msg::Closed(client, Some(device)));
    }
}

/// Decides `request` under the conduit's `shadow:` candidate, when it has one, and records a
/// `shadow` record when the candidate would deny it. `event` is the request's record so far.
#[allow(clippy::too_many_arguments)]
pub(crate) fn shadow(
    shared: &ConduitShared,
    event: &Event,
    src: IpAddr,
    role: Option<&str>,
    unit: UnitId,
    request: &Request<'_>,
    now: Instant,
    enforced_allow: bool,
) {
    let guard = shared.watch.shadow.load();
    let Some(shadow) = guard.as_ref() else {
        return;
    };
    let Some(conduit) = shadow.policy.conduits().get(shadow.index) else {
        return;
    };
    let tx = Transaction {
        src,
        unit,
        request,
        role,
    };
    let v = conduit.decide(&tx, &shadow.limiter, now.into_std());
    if v.is_allow() {
        return;
    }
    let mut ev = event.clone();
    ev.kind = Kind::Shadow;
    ev.decision = Some(Decision::WouldDeny);
    ev.reason = Some(Cow::Borrowed(v.reason.as_str()));
    ev.rule = v.rule.map(Arc::from);
    ev.exception = v.exception().map(|c| c.to_u8());
    ev.message = Some(format!(
        "candidate {} would deny ({}); the enforced policy {}",
        shadow.file,
        v.reason.as_str(),
        if enforced_allow {
            "allows it"
        } else {
            "denies it too"
        }
    ));
    shared.recorder.record_denial(ev);
}

/// The monitor thread.
struct Worker {
    monitor: Monitor,
    recorder: Recorder,
    counters: Arc<Counters>,
    pending: Pending,
    pending_flag: Arc<AtomicBool>,
    hold: Option<Arc<Mutex<()>>>,
    reported_drops: u64,
    last_report: Option<StdInstant>,
    /// The last device label and its address: a session's jobs all name the same device, and
    /// parsing the label per transaction showed in the profile.
    last_device: Option<(Arc<str>, SocketAddr)>,
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The device's address from the record's `dst` (`host:port`, `tls://host:port`): the
/// baseline knows devices by IP address; a host name counts as 0.0.0.0 with its port.
fn device_addr(label: Option<&str>) -> SocketAddr {
    let label = label.unwrap_or("");
    let bare = label.strip_prefix("tls://").unwrap_or(label);
    bare.parse().unwrap_or_else(|_| {
        let port = bare
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(502);
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
    })
}

impl Worker {
    fn run(mut self, rx: &mpsc::Receiver<Msg>) {
        let mut worked = false;
        loop {
            let msg = rx.try_recv();
            if self.pending_flag.swap(false, Ordering::AcqRel) {
                let next = self
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some((thresholds, baseline)) = next {
                    self.monitor.set_config(thresholds, baseline);
                }
            }
            match msg {
                Ok(Msg::Tx(job)) => {
                    let hold = self.hold.clone();
                    let _held = hold
                        .as_ref()
                        .map(|h| h.lock().unwrap_or_else(PoisonError::into_inner));
                    self.feed(&job);
                    self.counters.processed.fetch_add(1, Ordering::Relaxed);
                    worked = true;
                }
                Ok(Msg::Closed(client, device)) => {
                    let server = self.server(device.as_ref());
                    self.monitor.flow_closed(Flow { client, server });
                }
                Err(TryRecvError::Empty) => {
                    self.report_drops(false);
                    std::thread::sleep(if worked { BUSY_POLL } else { IDLE });
                    worked = false;
                    continue;
                }
                Err(TryRecvError::Disconnected) => {
                    self.report_drops(true);
                    return;
                }
            }
            self.report_drops(false);
        }
    }

    /// The address of the device labelled `device` (see [`device_addr`]), cached.
    fn server(&mut self, device: Option<&Arc<str>>) -> SocketAddr {
        match (device, &self.last_device) {
            (Some(d), Some((last, addr))) if Arc::ptr_eq(d, last) => *addr,
            (Some(d), _) => {
                let addr = device_addr(Some(d));
                self.last_device = Some((Arc::clone(d), addr));
                addr
            }
            (None, _) => device_addr(None),
        }
    }

    fn feed(&mut self, job: &Job) {
        let server = self.server(job.device.as_ref());
        let flow = Flow {
            client: job.client,
            server,
        };
        let request = job.pdus.request();
        self.monitor.adu(Adu {
            ts_us: micros(job.request_at),
            flow,
            side: Side::ToServer,
            transaction_id: job.tid,
            unit: job.unit,
            pdu: request,
        });
        if job.answered {
            self.monitor.adu(Adu {
                ts_us: micros(job.answer_at).max(micros(job.request_at)),
                flow,
                side: Side::ToClient,
                transaction_id: job.tid,
                unit: job.unit,
                pdu: job.pdus.answer(),
            });
        }
        let fc = request.first().copied();
        for alert in std::mem::take(&mut self.monitor.alerts) {
            warn!(conduit = ?job.conduit, client = %job.client, "monitor alert {}: {}", alert.kind, alert.message);
            let ev = Event {
                kind: Kind::Alert,
                conduit: job.conduit.clone(),
                src: Some(job.client.to_string().into()),
                dst: job.device.clone(),
                unit: Some(job.unit),
                tid: Some(job.tid),
                fc,
                function: fc.and_then(|c| FunctionCode::new(c).name().map(Cow::Borrowed)),
                reason: Some(Cow::Borrowed(alert.kind.as_str())),
                message: Some(alert.message),
                request_id: job.request_id,
                at: Some(UNIX_EPOCH + Duration::from_micros(alert.ts_us)),
                ..Event::default()
            };
            self.counters.alerts.fetch_add(1, Ordering::Relaxed);
            // Alerts go the way of denials: aggregated per source and kind, never taking
            // the queue's reserve for request records, shed first when the disk runs low.
            self.recorder.record_denial(ev);
        }
        // Offline output only; live, nothing reads them.
        self.monitor.transactions.clear();
    }

    /// Says in the audit log how many transactions the full queue cost (at most every 10 s;
    /// `last`: the monitor is stopping, say it now).
    fn report_drops(&mut self, last: bool) {
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        if dropped == self.reported_drops {
            return;
        }
        if !last
            && self
                .last_report
                .is_some_and(|t| t.elapsed() < OVERLOAD_EVERY)
        {
            return;
        }
        let n = dropped - self.reported_drops;
        self.reported_drops = dropped;
        self.last_report = Some(StdInstant::now());
        warn!("live monitor: {n} transaction(s) not monitored (queue full)");
        let mut ev = Event::new(Kind::Alert);
        ev.reason = Some(Cow::Borrowed("monitor_overload"));
        ev.message = Some(format!(
            "{n} transaction(s) not monitored: the monitor queue was full ({dropped} in all)"
        ));
        self.recorder.record(ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_detector_has_the_syslog_severity_of_its_table() {
        for d in zonegate_monitor::DETECTORS {
            assert_eq!(
                zonegate_audit::syslog::alert_severity(d.kind.as_str()),
                d.severity,
                "{}",
                d.kind
            );
        }
    }

    #[test]
    fn a_jobs_pdus_come_back_whole_inline_or_on_the_heap() {
        let read = [0x03, 0x00, 0x64, 0x00, 0x0a];
        let short: Vec<u8> = [0x03, 20].into_iter().chain(0..20).collect();
        let long: Vec<u8> = [0x03, 250].into_iter().chain(0..250).collect();
        let write: Vec<u8> = [0x10, 0, 0, 0, 123, 246]
            .into_iter()
            .chain(0..246)
            .collect();
        for (request, answer, inline) in [
            (&read[..], &short[..], true),
            (&read[..], &[][..], true),
            (&read[..], &long[..], false),
            (&write[..], &[0x10, 0, 0, 0, 123][..], false),
        ] {
            let p = Pdus::new(request, answer);
            assert_eq!(matches!(p, Pdus::Inline { .. }), inline);
            assert_eq!((p.request(), p.answer()), (request, answer));
        }
    }

    #[test]
    fn device_addresses_come_from_the_record_label() {
        assert_eq!(
            device_addr(Some("127.0.0.1:5020")),
            "127.0.0.1:5020".parse().unwrap()
        );
        assert_eq!(
            device_addr(Some("tls://[::1]:802")),
            "[::1]:802".parse().unwrap()
        );
        assert_eq!(
            device_addr(Some("plc.local:502")),
            "0.0.0.0:502".parse().unwrap()
        );
    }
}
