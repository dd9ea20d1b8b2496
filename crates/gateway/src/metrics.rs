//! What the gateway counts for operations: the OpenMetrics registry that `/metrics` serves and
//! the live view the dashboard shows (issue 9).
//!
//! ```text
//!  conn.rs finish/deny ─▶ Metrics::request(&event, latency)   requests, exceptions, per unit
//!  upstream.rs connect ─▶ Metrics::upstream_failed(conduit, timeout)
//!  server.rs accept    ─▶ Metrics::accepted / refused / waited, ConnGauge (open)
//!  server.rs reload    ─▶ Metrics::reloaded(ok), set_conduits(..)
//!  admin crate         ─▶ encode() (OpenMetrics text), snapshot() (JSON), ready()
//!  encode/snapshot     ─▶ the audit writer's Stats: fsync latency histogram, chain head,
//!                         last signed checkpoint (copied at each scrape, nothing pushed)
//! ```
//!
//! No HTTP here: the `zonegate-admin` crate serves what this module renders, so the gateway
//! does not depend on a web stack. Labels are bounded sets (conduit, unit id, function name,
//! decision, reason, exception code, listener): never a source address, which an attacker
//! could vary without limit. Source addresses appear only in the JSON view, in bounded maps.
//!
//! Cost per request: the session's [`SessionMeter`] holds the counter and histogram handles it
//! updates (a `Family` lookup, a read lock and a hash of every label, happens once per label
//! set and session), so a request costs atomic increments and one short mutex section for the
//! per-unit view.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use serde_json::{json, Value};
use zonegate_audit::{AuditHandle, Decision, Event, FsyncHistogram};
use zonegate_policy::canonical_ip;

mod live;
use live::{entry_of, push_recent, Live, MasterView};

/// Most recent denials and alerts kept for the dashboard.
const RECENT: usize = 100;
/// Most (conduit, source) pairs kept in "masters seen" (the oldest is forgotten first).
const MASTERS: usize = 256;
/// Most (conduit, rule, reason) groups of the would-deny review.
const WOULD_DENY_GROUPS: usize = 512;
/// Latency buckets (seconds): 100 µs to about 6.5 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 17)
}

/// The bounds of [`latency_buckets`], computed once (each bound is a power: not per request).
fn bucket_bounds() -> &'static [f64] {
    static BOUNDS: OnceLock<Vec<f64>> = OnceLock::new();
    BOUNDS.get_or_init(|| latency_buckets().collect())
}

/// A shared label value (conduit id, listener address): cloned per lookup without a copy.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Name(Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    conduit: Name,
    unit: u8,
    function: Cow<'static, str>,
    decision: &'static str,
    reason: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExceptionLabels {
    conduit: Name,
    code: u8,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConduitLabels {
    conduit: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    conduit: Name,
    listener: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    conduit: Name,
    listener: Name,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConfigLabels {
    hash: String,
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn new_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

/// Most request label sets one session keeps handles for (a session uses a handful: its
/// units, functions and decisions); past it, lookups go to the family.
const SESSION_LABEL_SETS: usize = 32;

/// The metric handles one client session updates on every request, looked up in their
/// families once: a family lookup hashes every label under the family's lock, and a session
/// repeats the same few label sets (the same unit, function and decision) for its whole life.
/// The handles share their values with the registry, so a scrape sees every increment.
#[derive(Debug)]
pub(crate) struct SessionMeter {
    /// The session's source address, parsed once (the masters view is keyed by it).
    src: Option<IpAddr>,
    latency: Option<(Arc<str>, Histogram)>,
    requests: Vec<(RequestLabels, Counter)>,
    /// The live view's keys of this session's last request: looked up by reference, cloned
    /// into the maps only when new (no reference count touched per request).
    unit_key: Option<UnitKey>,
    master_key: Option<MasterKey>,
}

/// The live view's key of a unit: conduit and unit id.
type UnitKey = (Arc<str>, u8);
/// The live view's key of a master: conduit and source address.
type MasterKey = (Arc<str>, Option<IpAddr>);

impl SessionMeter {
    /// The live view's keys for a request of `unit` on `conduit` (copies made only when they
    /// change, which for one session is almost never).
    fn live_keys(&mut self, conduit: &Arc<str>, unit: u8) -> (&UnitKey, &MasterKey) {
        if self
            .unit_key
            .as_ref()
            .is_some_and(|k| k.1 != unit || *k.0 != **conduit)
        {
            self.unit_key = None;
        }
        if self.master_key.as_ref().is_some_and(|k| *k.0 != **conduit) {
            self.master_key = None;
        }
        let src = self.src;
        let unit_key = self
            .unit_key
            .get_or_insert_with(|| (Arc::clone(conduit), unit));
        let master_key = self
            .master_key
            .get_or_insert_with(|| (Arc::clone(conduit), src));
        (unit_key, master_key)
    }

    fn count_request(
        &mut self,
        metrics: &Metrics,
        conduit: &Arc<str>,
        unit: u8,
        function: Cow<'static, str>,
        decision: &'static str,
        reason: Cow<'static, str>,
    ) {
        let hit = self.requests.iter().find(|(l, _)| {
            l.unit == unit
                && l.decision == decision
                && l.function == function
                && l.reason == reason
                && *l.conduit.0 == **conduit
        });
        if let Some((_, counter)) = hit {
            counter.inc();
            return;
        }
        let labels = RequestLabels {
            conduit: Name(Arc::clone(conduit)),
            unit,
            function,
            decision,
            reason,
        };
        let counter = metrics.requests.get_or_create(&labels).clone();
        counter.inc();
        if self.requests.len() < SESSION_LABEL_SETS {
            self.requests.push((labels, counter));
        }
    }

    fn upstream_latency(&mut self, metrics: &Metrics, conduit: &Arc<str>) -> Histogram {
        match &self.latency {
            Some((c, h)) if **c == **conduit => h.clone(),
            _ => {
                let h = metrics
                    .upstream_latency
                    .get_or_create(&ConduitLabels {
                        conduit: Name(Arc::clone(conduit)),
                    })
                    .clone();
                self.latency = Some((Arc::clone(conduit), h.clone()));
                h
            }
        }
    }
}

/// One conduit as the dashboard shows it (set at start and at every reload).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConduitInfo {
    /// `conduit_id`.
    pub id: String,
    /// The zones it connects (`connects:`).
    pub zones: Vec<String>,
    /// `enforce` or `monitor`.
    pub mode: &'static str,
    /// The conduit's security level as written (`SL 2`), if any.
    pub security_level: Option<String>,
    /// The address the listener is bound to.
    pub listen: String,
    /// The device behind it.
    pub upstream: String,
}

/// `zonegate_audit_fsync_seconds`: the writer's fsync latency buckets as an OpenMetrics
/// histogram. The writer keeps its own counts (`zonegate_audit::ops`, no prometheus there);
/// each scrape copies them in ([`Metrics::refresh_audit`]) and this encodes the copy.
#[derive(Debug, Clone, Default)]
struct FsyncSeconds(Arc<Mutex<(FsyncHistogram, f64)>>);

impl EncodeMetric for FsyncSeconds {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (h, sum) = *lock(&self.0);
        // prometheus-client writes `le="+Inf"` for f64::MAX only (its own histograms' last
        // bound); an infinite bound would come out as `le="inf"`, which scrapers reject.
        let buckets: Vec<(f64, u64)> = h
            .buckets()
            .map(|(le, n)| (if le.is_finite() { le } else { f64::MAX }, n))
            .collect();
        encoder.encode_histogram::<NoLabelSet>(sum, h.count(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The gateway's counters, gauges and histograms, and the live view behind the dashboard.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    exceptions: Family<ExceptionLabels, Counter>,
    upstream_connect_errors: Family<ConduitLabels, Counter>,
    upstream_connect_timeouts: Family<ConduitLabels, Counter>,
    upstream_shared_writes: Family<ConduitLabels, Counter>,
    upstream_shared_requests: Family<ConduitLabels, Counter>,
    upstream_latency: HistogramFamily<ConduitLabels>,
    connections_open: Family<ListenerLabels, Gauge>,
    connections_total: Family<ListenerLabels, Counter>,
    connections_refused: Family<RefusedLabels, Counter>,
    connections_waited: Family<ListenerLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    config_info: Family<ConfigLabels, Gauge>,
    audit_queue_depth: Gauge,
    audit_healthy: Gauge,
    audit_records: Counter,
    audit_lost: Counter,
    audit_paced: Counter,
    audit_fsyncs: Counter,
    audit_fsync_seconds: FsyncSeconds,
    audit_failures: Counter,
    syslog_dropped: Counter,
    admin_tls_refused: Family<ReasonLabels, Counter>,
    live: Mutex<Live>,
    conduits: Mutex<Vec<ConduitInfo>>,
    policy_hash: Mutex<String>,
    audit: OnceLock<AuditHandle>,
    listeners_up: AtomicBool,
    started: SystemTime,
    /// Second 0 of the poll-rate windows.
    epoch: Instant,
    /// Unix ms of the last reload (0: none).
    last_reload: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain counters updated in one step: a poisoned lock is still sound.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn ip_text(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

impl Metrics {
    /// An empty registry with every metric registered (so a scrape shows them all at 0).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("zonegate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Modbus requests decided, by conduit, unit id, function, decision and reason",
            requests.clone(),
        );
        let exceptions = Family::<ExceptionLabels, Counter>::default();
        registry.register(
            "exceptions_sent",
            "Exception responses sent to clients, by exception code (gateway's or device's)",
            exceptions.clone(),
        );
        let upstream_connect_errors = Family::<ConduitLabels, Counter>::default();
        registry.register(
            "upstream_connect_errors",
            "Device connections that failed (refused, reset, TLS handshake)",
            upstream_connect_errors.clone(),
        );
        let upstream_connect_timeouts = Family::<ConduitLabels, Counter>::default();
        registry.register(
            "upstream_connect_timeouts",
            "Device connections not established within connect_timeout",
            upstream_connect_timeouts.clone(),
        );
        let upstream_shared_writes = Family::<ConduitLabels, Counter>::default();
        registry.register(
            "upstream_shared_writes",
            "Writes to shared device connections (max_upstream_in_flight above 1)",
            upstream_shared_writes.clone(),
        );
        let upstream_shared_requests = Family::<ConduitLabels, Counter>::default();
        registry.register(
            "upstream_shared_requests",
            "Requests those writes carried (requests per write: how many sessions' requests went to the device together)",
            upstream_shared_requests.clone(),
        );
        let upstream_latency: HistogramFamily<ConduitLabels> =
            Family::new_with_constructor(new_histogram);
        registry.register_with_unit(
            "upstream_response",
            "Time from a forwarded request's arrival to the device's answer leaving for the client",
            Unit::Seconds,
            upstream_latency.clone(),
        );
        let connections_open = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "connections_open",
            "Client connections open now",
            connections_open.clone(),
        );
        let connections_total = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "connections",
            "Client connections admitted",
            connections_total.clone(),
        );
        let connections_refused = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Client connections refused, by reason",
            connections_refused.clone(),
        );
        let connections_waited = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "connections_backlog_waits",
            "Times the listener stopped accepting because max_connections were open",
            connections_waited.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reloads",
            "Model reloads, by result (ok, failed)",
            reloads.clone(),
        );
        let config_info = Family::<ConfigLabels, Gauge>::default();
        registry.register(
            "config_info",
            "The policy in force: model hash and mode (enforce, monitor, mixed)",
            config_info.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "The zonegate build", build);
        let audit_queue_depth = Gauge::default();
        registry.register(
            "audit_queue_depth",
            "Records waiting for the audit writer",
            audit_queue_depth.clone(),
        );
        let audit_healthy = Gauge::default();
        registry.register(
            "audit_writable",
            "1 while the audit log can be written, 0 while it fails",
            audit_healthy.clone(),
        );
        let audit_records = Counter::default();
        registry.register(
            "audit_records",
            "Audit records written",
            audit_records.clone(),
        );
        let audit_lost = Counter::default();
        registry.register(
            "audit_records_dropped",
            "Audit records dropped (queue or backlog full)",
            audit_lost.clone(),
        );
        let audit_paced = Counter::default();
        registry.register(
            "audit_paced",
            "Times a session waited for the audit writer to catch up before taking more requests",
            audit_paced.clone(),
        );
        let audit_fsyncs = Counter::default();
        registry.register(
            "audit_fsyncs",
            "fsync calls of the audit log",
            audit_fsyncs.clone(),
        );
        // A histogram now: the counter of the same name (`_seconds_total`, the summed time)
        // would clash with it by family name; `_sum` carries that figure.
        let audit_fsync_seconds = FsyncSeconds::default();
        registry.register_with_unit(
            "audit_fsync",
            "Latency of each fsync of the audit log (failed ones too)",
            Unit::Seconds,
            audit_fsync_seconds.clone(),
        );
        let audit_failures = Counter::default();
        registry.register(
            "audit_failures",
            "Audit write or fsync failures",
            audit_failures.clone(),
        );
        let syslog_dropped = Counter::default();
        registry.register(
            "syslog_dropped",
            "Audit records not exported to syslog (queue full, collector unreachable)",
            syslog_dropped.clone(),
        );
        let admin_tls_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "admin_tls_refused",
            "Admin endpoint TLS handshakes refused (no or untrusted client certificate, not TLS), by reason",
            admin_tls_refused.clone(),
        );
        Self {
            registry,
            requests,
            exceptions,
            upstream_connect_errors,
            upstream_connect_timeouts,
            upstream_shared_writes,
            upstream_shared_requests,
            upstream_latency,
            connections_open,
            connections_total,
            connections_refused,
            connections_waited,
            reloads,
            config_info,
            audit_queue_depth,
            audit_healthy,
            audit_records,
            audit_lost,
            audit_paced,
            audit_fsyncs,
            audit_fsync_seconds,
            audit_failures,
            syslog_dropped,
            admin_tls_refused,
            live: Mutex::default(),
            conduits: Mutex::default(),
            policy_hash: Mutex::default(),
            audit: OnceLock::new(),
            listeners_up: AtomicBool::new(false),
            started: SystemTime::now(),
            epoch: Instant::now(),
            last_reload: AtomicU64::new(0),
        }
    }

    // ---- hooks of the data path ----

    /// A request whose record is complete (answered, denied, dropped): counts it and updates
    /// the live view. `latency_us` is from arrival to the answer leaving.
    ///
    /// `meter` is the session's own cache of the handles it updates ([`SessionMeter`]); `now`
    /// the caller's clock reading for the answer (a clock read is slow on a VM's clock source).
    pub(crate) fn request(
        &self,
        meter: &mut SessionMeter,
        event: &Event,
        latency_us: u64,
        now: Instant,
    ) {
        let Some(conduit) = event.conduit.as_ref() else {
            return;
        };
        let unit = event.unit.unwrap_or(0);
        let decision = event.decision.unwrap_or(Decision::Deny);
        let reason = event.reason.clone().unwrap_or(Cow::Borrowed("none"));
        let function = event.function.clone().unwrap_or(Cow::Borrowed("unknown"));
        meter.count_request(
            self,
            conduit,
            unit,
            function,
            decision.as_str(),
            reason.clone(),
        );
        if let Some(code) = event.exception {
            self.exceptions
                .get_or_create(&ExceptionLabels {
                    conduit: Name(Arc::clone(conduit)),
                    code,
                })
                .inc();
        }
        let forwarded = matches!(decision, Decision::Allow | Decision::WouldDeny)
            && reason != "audit_unavailable";
        let unanswered = event
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("unanswered"));
        let seconds = latency_us as f64 / 1e6;
        if forwarded && !unanswered {
            meter.upstream_latency(self, conduit).observe(seconds);
        }
        let src = meter.src;
        let (unit_key, master_key) = meter.live_keys(conduit, unit);
        let now_ms = unix_ms(event.at.unwrap_or_else(SystemTime::now));
        let mut live = lock(&self.live);
        let denied = !forwarded;
        if denied {
            live.denied += 1;
        } else {
            live.allowed += 1;
        }
        if forwarded {
            let sec = now.saturating_duration_since(self.epoch).as_secs();
            let u = entry_of(&mut live.units, unit_key);
            u.polls.count(sec);
            match (unanswered, event.exception) {
                (true, Some(0x0A)) => {
                    u.unreachable += 1;
                    u.status = "unreachable";
                }
                (true, _) => {
                    u.timeouts += 1;
                    u.status = "timeout";
                }
                (false, Some(code)) => {
                    u.exceptions += 1;
                    u.status = "exception";
                    u.last_exception = Some(code);
                }
                (false, None) => {
                    u.ok += 1;
                    u.status = "online";
                    u.last_good = Some(now);
                }
            }
            if !unanswered {
                let i = bucket_bounds()
                    .iter()
                    .position(|&b| seconds <= b)
                    .unwrap_or(u.buckets.len() - 1);
                if let Some(b) = u.buckets.get_mut(i) {
                    *b += 1;
                }
            }
        } else {
            entry_of(&mut live.units, unit_key).denied += 1;
        }
        if !live.masters.contains_key(master_key) {
            if live.masters.len() >= MASTERS {
                if let Some(oldest) = live
                    .masters
                    .iter()
                    .min_by_key(|(_, m)| m.last_seen)
                    .map(|(k, _)| k.clone())
                {
                    live.masters.remove(&oldest);
                }
            }
            live.masters.insert(
                master_key.clone(),
                MasterView {
                    requests: 0,
                    denied: 0,
                    last_seen: now_ms,
                },
            );
        }
        if let Some(m) = live.masters.get_mut(master_key) {
            m.requests += 1;
            m.last_seen = now_ms;
            if denied || decision == Decision::WouldDeny {
                m.denied += 1;
            }
        }
        if decision == Decision::WouldDeny {
            let rule = event.rule.as_deref().unwrap_or("-").to_owned();
            let group = (Arc::clone(conduit), rule, reason.to_string());
            if live.would_deny.contains_key(&group) || live.would_deny.len() < WOULD_DENY_GROUPS {
                *live.would_deny.entry(group).or_insert(0) += 1;
            }
        }
        if decision != Decision::Allow {
            let id = live.next_id;
            live.next_id += 1;
            let item = json!({
                "id": id,
                "at_ms": now_ms,
                "kind": "request",
                "conduit": &**conduit,
                "src": ip_text(src),
                "unit": unit,
                "function": event.function.as_deref(),
                "decision": decision.as_str(),
                "reason": &*reason,
                "rule": event.rule.as_deref(),
                "exception": event.exception,
            });
            push_recent(&mut live, item);
        }
    }

    /// A meter for one client session from `src` (its address; `None`: not an IP peer, a
    /// serial line).
    pub(crate) fn session_meter(src: Option<IpAddr>) -> SessionMeter {
        SessionMeter {
            src: src.map(canonical_ip),
            latency: None,
            requests: Vec::new(),
            unit_key: None,
            master_key: None,
        }
    }

    /// A device connection that failed (`timeout`: not established within connect_timeout);
    /// `first` of an outage: also an alert on the dashboard.
    pub(crate) fn upstream_failed(&self, conduit: &str, timeout: bool, why: &str, first: bool) {
        let labels = ConduitLabels {
            conduit: Name(Arc::from(conduit)),
        };
        if timeout {
            self.upstream_connect_timeouts.get_or_create(&labels).inc();
        } else {
            self.upstream_connect_errors.get_or_create(&labels).inc();
        }
        if first {
            self.alert(conduit, "upstream_unreachable", why);
        }
    }

    /// The counters of a shared device connection's writes and of the requests they carried
    /// (looked up once per connection, not per write).
    pub(crate) fn shared_counters(&self, conduit: &str) -> (Counter, Counter) {
        let labels = ConduitLabels {
            conduit: Name(Arc::from(conduit)),
        };
        (
            self.upstream_shared_writes.get_or_create(&labels).clone(),
            self.upstream_shared_requests.get_or_create(&labels).clone(),
        )
    }

    /// An alert for the dashboard's recent list (not a request: a device down, an audit
    /// failure, a refused connection).
    pub(crate) fn alert(&self, conduit: &str, reason: &str, message: &str) {
        let mut live = lock(&self.live);
        let id = live.next_id;
        live.next_id += 1;
        let item = json!({
            "id": id,
            "at_ms": unix_ms(SystemTime::now()),
            "kind": "alert",
            "conduit": conduit,
            "reason": reason,
            "message": message,
        });
        push_recent(&mut live, item);
    }

    /// A client connection admitted by `listener`; the returned guard counts it open.
    pub(crate) fn accepted(&self, conduit: &Arc<str>, listener: &Arc<str>) -> ConnGauge {
        let labels = ListenerLabels {
            conduit: Name(Arc::clone(conduit)),
            listener: Name(Arc::clone(listener)),
        };
        self.connections_total.get_or_create(&labels).inc();
        let open = self.connections_open.get_or_create(&labels).clone();
        open.inc();
        ConnGauge(open)
    }

    /// A client connection refused by `listener` for `reason`.
    pub(crate) fn refused(&self, conduit: &Arc<str>, listener: &Arc<str>, reason: &'static str) {
        self.connections_refused
            .get_or_create(&RefusedLabels {
                conduit: Name(Arc::clone(conduit)),
                listener: Name(Arc::clone(listener)),
                reason,
            })
            .inc();
    }

    /// The listener stopped accepting at `max_connections` (backpressure).
    pub(crate) fn backlog_wait(&self, conduit: &Arc<str>, listener: &Arc<str>) {
        self.connections_waited
            .get_or_create(&ListenerLabels {
                conduit: Name(Arc::clone(conduit)),
                listener: Name(Arc::clone(listener)),
            })
            .inc();
    }

    /// A reload: applied (`ok`) or rejected.
    pub(crate) fn reloaded(&self, ok: bool) {
        self.reloads
            .get_or_create(&ResultLabels {
                result: if ok { "ok" } else { "failed" },
            })
            .inc();
        self.last_reload
            .store(unix_ms(SystemTime::now()), Ordering::Relaxed);
        if !ok {
            self.alert(
                "",
                "policy_rejected",
                "a new model was rejected; the old policy stays",
            );
        }
    }

    /// The policy in force: its hash and the conduits (start, each applied reload).
    pub(crate) fn set_policy(&self, hash: &str, conduits: Vec<ConduitInfo>) {
        let monitor = conduits.iter().filter(|c| c.mode == "monitor").count();
        let mode = match monitor {
            0 => "enforce",
            n if n == conduits.len() => "monitor",
            _ => "mixed",
        };
        self.config_info.clear();
        self.config_info
            .get_or_create(&ConfigLabels {
                hash: hash.to_owned(),
                mode,
            })
            .set(1);
        hash.clone_into(&mut lock(&self.policy_hash));
        *lock(&self.conduits) = conduits;
    }

    pub(crate) fn set_audit(&self, handle: AuditHandle) {
        let _ = self.audit.set(handle);
    }

    pub(crate) fn set_listeners_up(&self, up: bool) {
        self.listeners_up.store(up, Ordering::Release);
    }

    /// A handshake the admin endpoint refused (`reason`: the gateway's handshake reasons, a
    /// bounded set of static names).
    pub fn admin_tls_refused(&self, reason: &'static str) {
        self.admin_tls_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    // ---- what the admin endpoint reads ----

    /// Whether the audit log can be written now (true when there is none to write).
    pub fn audit_writable(&self) -> bool {
        self.audit.get().is_none_or(AuditHandle::is_healthy)
    }

    /// Ready: every listener is up and the audit log is writable.
    pub fn ready(&self) -> bool {
        self.listeners_up.load(Ordering::Acquire) && self.audit_writable()
    }

    /// Whether the listeners are up (false before start and after shutdown began).
    pub fn listeners_up(&self) -> bool {
        self.listeners_up.load(Ordering::Acquire)
    }

    /// Brings the audit figures up to date (read from the writer's counters).
    fn refresh_audit(&self) {
        let Some(a) = self.audit.get() else {
            return;
        };
        let s = a.stats();
        self.audit_queue_depth
            .set(i64::try_from(a.queue_len()).unwrap_or(i64::MAX));
        self.audit_healthy.set(i64::from(a.is_healthy()));
        let up = |c: &Counter, v: u64| {
            c.inc_by(v.saturating_sub(c.get()));
        };
        up(&self.audit_records, s.records);
        up(&self.audit_lost, s.lost);
        up(&self.audit_paced, s.paced);
        up(&self.audit_fsyncs, s.fsyncs);
        up(&self.audit_failures, s.failures);
        up(&self.syslog_dropped, s.export_dropped);
        *lock(&self.audit_fsync_seconds.0) = (s.fsync_histogram, s.fsync_micros as f64 / 1e6);
    }

    /// The registry in OpenMetrics text (`application/openmetrics-text; version=1.0.0`).
    pub fn encode(&self) -> String {
        self.refresh_audit();
        let mut out = String::with_capacity(8192);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
            out.push_str("# EOF\n");
        }
        out
    }

    /// Everything the dashboard shows, as JSON (`/api/state`).
    pub fn snapshot(&self) -> Value {
        self.refresh_audit();
        let now = Instant::now();
        let now_sec = now.duration_since(self.epoch).as_secs();
        let view = lock(&self.live).to_json(now, now_sec);
        let audit = self.audit.get().map(|a| {
            let s = a.stats();
            let head = a.head();
            json!({
                "writable": a.is_healthy(),
                "queue_depth": a.queue_len(),
                "records": s.records,
                "dropped": s.lost,
                "paced": s.paced,
                "checkpoints": s.checkpoints,
                "head_seq": head.as_ref().map(|h| h.0),
                "head_hash": head.map(|h| h.1),
                "last_checkpoint": s.last_checkpoint.map(|c| {
                    let at_ms = (c.unix_ms > 0).then_some(c.unix_ms);
                    json!({
                        "seq": c.seq,
                        "at_ms": at_ms,
                        "age_s": at_ms.map(|t| unix_ms(SystemTime::now()).saturating_sub(t) as f64 / 1e3),
                    })
                }),
            })
        });
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "started_ms": unix_ms(self.started),
            "now_ms": unix_ms(SystemTime::now()),
            "ready": self.ready(),
            "policy_hash": lock(&self.policy_hash).clone(),
            "last_reload_ms": match self.last_reload.load(Ordering::Relaxed) { 0 => None, t => Some(t) },
            "conduits": &*lock(&self.conduits),
            "totals": {"allowed": view.allowed, "denied": view.denied},
            "units": view.units,
            "masters": view.masters,
            "would_deny": view.would_deny,
            "recent": view.recent,
            "audit": audit,
        })
    }
}

/// Counts one open connection; the count goes down when the session's guard is dropped.
#[derive(Debug)]
pub(crate) struct ConnGauge(Gauge);

impl Drop for ConnGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use zonegate_audit::Kind;

    /// One request through a fresh session meter (the source parsed from the record's `src`).
    fn request(m: &Metrics, e: &Event, latency_us: u64) {
        let src = e
            .src
            .as_deref()
            .and_then(|s| s.parse::<std::net::SocketAddr>().ok());
        let mut meter = Metrics::session_meter(src.map(|a| a.ip()));
        m.request(&mut meter, e, latency_us, Instant::now());
    }

    #[test]
    fn a_session_meter_counts_into_the_registry_for_each_label_set() {
        let m = Metrics::new();
        let mut meter = Metrics::session_meter(Some("10.0.0.9".parse().unwrap()));
        let allowed = {
            let mut e = denied("rule");
            e.decision = Some(Decision::Allow);
            e.exception = None;
            e
        };
        for _ in 0..3 {
            m.request(&mut meter, &allowed, 100, Instant::now());
            m.request(&mut meter, &denied("no_matching_rule"), 0, Instant::now());
        }
        m.request(&mut meter, &allowed, 100, Instant::now());
        let text = m.encode();
        assert!(text.contains(
            "zonegate_requests_total{conduit=\"C1\",unit=\"1\",function=\"write_single_register\",decision=\"allow\",reason=\"rule\"} 4"
        ), "{text}");
        assert!(text.contains(
            "zonegate_requests_total{conduit=\"C1\",unit=\"1\",function=\"write_single_register\",decision=\"deny\",reason=\"no_matching_rule\"} 3"
        ), "{text}");
        assert!(text.contains("zonegate_upstream_response_seconds_count{conduit=\"C1\"} 4"));
        assert_eq!(m.snapshot()["masters"][0]["requests"], 7);
    }

    fn denied(reason: &'static str) -> Event {
        let mut e = Event::new(Kind::Request);
        e.conduit = Some(Arc::from("C1"));
        e.src = Some("10.0.0.9:40000".into());
        e.unit = Some(1);
        e.function = Some(Cow::Borrowed("write_single_register"));
        e.decision = Some(Decision::Deny);
        e.reason = Some(Cow::Borrowed(reason));
        e.exception = Some(1);
        e
    }

    #[test]
    fn a_denial_is_counted_with_bounded_labels_and_listed_without_the_port() {
        let m = Metrics::new();
        request(&m, &denied("no_matching_rule"), 50);
        let text = m.encode();
        assert!(text.contains(
            "zonegate_requests_total{conduit=\"C1\",unit=\"1\",function=\"write_single_register\",decision=\"deny\",reason=\"no_matching_rule\"} 1"
        ), "{text}");
        assert!(text.contains("zonegate_exceptions_sent_total{conduit=\"C1\",code=\"1\"} 1"));
        assert!(!text.contains("10.0.0.9"), "no source address in a label");
        assert!(text.contains("zonegate_build_info{version="));
        assert!(text.ends_with("# EOF\n"));
        let s = m.snapshot();
        assert_eq!(s["recent"][0]["src"], "10.0.0.9");
        assert_eq!(s["recent"][0]["reason"], "no_matching_rule");
        assert_eq!(s["totals"]["denied"], 1);
    }

    #[test]
    fn answered_requests_feed_the_histogram_and_the_unit_view() {
        let m = Metrics::new();
        let mut e = denied("rule");
        e.decision = Some(Decision::Allow);
        e.exception = None;
        for us in [200, 300, 900, 40_000] {
            request(&m, &e, us);
        }
        let text = m.encode();
        assert!(
            text.contains("zonegate_upstream_response_seconds_count{conduit=\"C1\"} 4"),
            "{text}"
        );
        let s = m.snapshot();
        let u = &s["units"][0];
        assert_eq!(u["status"], "online");
        assert_eq!(u["ok"], 4);
        // Bucket upper bounds: 0.2 ms, 0.4 ms ... p50 = the 0.4 ms bucket.
        assert!((u["p50_ms"].as_f64().unwrap() - 0.4).abs() < 1e-9, "{u}");
        assert!(u["p99_ms"].as_f64().unwrap() >= 40.0);
    }

    #[test]
    fn would_deny_is_grouped_by_rule_and_reason() {
        let m = Metrics::new();
        let mut e = denied("no_matching_rule");
        e.decision = Some(Decision::WouldDeny);
        e.exception = None;
        request(&m, &e, 100);
        request(&m, &e, 100);
        let s = m.snapshot();
        assert_eq!(s["would_deny"][0]["count"], 2);
        assert_eq!(s["would_deny"][0]["rule"], "-");
    }

    #[test]
    fn the_recent_ring_and_the_masters_map_are_bounded() {
        let m = Metrics::new();
        for i in 0..(MASTERS + 50) {
            let mut e = denied("no_matching_rule");
            e.src = Some(format!("10.1.{}.{}:1", i / 250, i % 250).into());
            request(&m, &e, 10);
        }
        let s = m.snapshot();
        assert_eq!(s["recent"].as_array().unwrap().len(), RECENT);
        assert_eq!(s["masters"].as_array().unwrap().len(), MASTERS);
    }

    #[test]
    fn the_fsync_histogram_is_encoded_with_buckets_sum_and_count() {
        let m = Metrics::new();
        let mut counts = [0; zonegate_audit::ops::FSYNC_BUCKETS];
        counts[0] = 2; // at most 50 µs
        counts[4] = 1; // at most 1 ms
        *lock(&m.audit_fsync_seconds.0) = (FsyncHistogram { counts }, 0.0011);
        let text = m.encode();
        assert!(
            text.contains("# TYPE zonegate_audit_fsync_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("zonegate_audit_fsync_seconds_count 3"),
            "{text}"
        );
        assert!(
            text.contains("zonegate_audit_fsync_seconds_sum 0.0011"),
            "{text}"
        );
        assert!(
            text.contains("zonegate_audit_fsync_seconds_bucket{le=\"0.001\"} 3"),
            "cumulative: {text}"
        );
        assert!(
            text.contains("zonegate_audit_fsync_seconds_bucket{le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(
            !text.contains("zonegate_audit_fsync_seconds_total"),
            "no counter by the histogram's name: {text}"
        );
        assert!(text.contains("zonegate_audit_fsyncs_total 0"), "{text}");
    }

    #[test]
    fn the_open_gauge_follows_the_guard() {
        let m = Metrics::new();
        let (c, l): (Arc<str>, Arc<str>) = (Arc::from("C1"), Arc::from("127.0.0.1:502"));
        let g = m.accepted(&c, &l);
        assert!(m
            .encode()
            .contains("zonegate_connections_open{conduit=\"C1\",listener=\"127.0.0.1:502\"} 1"));
        drop(g);
        assert!(m
            .encode()
            .contains("zonegate_connections_open{conduit=\"C1\",listener=\"127.0.0.1:502\"} 0"));
        assert!(m
            .encode()
            .contains("zonegate_connections_total{conduit=\"C1\",listener=\"127.0.0.1:502\"} 1"));
    }
}
