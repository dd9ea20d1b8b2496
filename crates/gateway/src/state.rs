//! Shared state of one conduit listener, and the policy snapshot sessions read.
//!
//! [`ConduitShared`] is created once per listener and shared (`Arc`) by its sessions. The part
//! that a reload replaces, [`ConduitState`] (compiled policy, rate limiter, gateway settings),
//! sits in an `ArcSwap`: sessions load it lock-free once per batch of client bytes, a reload
//! stores a new one, and requests already decided finish under the old one. No connection is
//! dropped by a reload.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use zonegate_modbus::pdu::Request;
use zonegate_modbus::{ExceptionCode, UnitId};
use zonegate_policy::{canonical_ip, ConduitPolicy, Policy, RateLimiter, Transaction};

use crate::record::Recorder;
use crate::upstream::UpstreamPool;

/// `enforce` or `monitor` (forward everything, record `would_deny`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Enforce,
    Monitor,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Monitor => "monitor",
        }
    }
}

/// What a denied request gets in enforce mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DenyAction {
    /// The exception code of the verdict.
    Exception,
    /// Nothing.
    Drop,
    /// The connection is closed.
    Close,
}

/// The device behind the conduit (`tcp://host:port`).
#[derive(Debug, Clone)]
pub(crate) struct UpstreamTarget {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `host:port`, the `dst` of events.
    pub(crate) label: Arc<str>,
    /// `tls://`: Modbus/TCP Security to the device (`None`: plaintext `tcp://`).
    pub(crate) tls: Option<crate::tls::UpstreamTls>,
    /// `rtu://` or `rtu+tcp://`: a Modbus RTU bus (bus.rs); `host`/`port` are unused.
    pub(crate) bus: Option<crate::bus::BusTarget>,
}

/// The gateway settings of one conduit, as the data path uses them.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) mode: Mode,
    pub(crate) deny: DenyAction,
    pub(crate) idle_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_source: usize,
    /// How long newcomers wait in the listen backlog at `max_connections` (then refused).
    pub(crate) max_connections_wait: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) upstream: UpstreamTarget,
    // Session data path: lock-out and the upstream pool.
    /// Idle timeout of a session that has made no allowed request yet.
    pub(crate) unauthenticated_idle_timeout: Duration,
    /// Most device connections of the conduit at once (the pool's size).
    pub(crate) max_upstream_connections: usize,
    /// Requests outstanding on one shared device connection; 1: connections are lent to one
    /// session at a time (upstream.rs), above 1 they are shared (upstream/shared.rs).
    pub(crate) max_upstream_in_flight: usize,
    /// Modbus/TCP Security listener: the rustls configuration (`None`: plaintext).
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
}

/// The outcome of `decide`, owned so that it outlives the policy borrow.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub(crate) allow: bool,
    pub(crate) reason: &'static str,
    pub(crate) rule: Option<Arc<str>>,
    pub(crate) exception: Option<ExceptionCode>,
}

/// What a reload replaces: the compiled policy of the conduit, its limiter and settings.
pub(crate) struct ConduitState {
    pub(crate) policy: Arc<Policy>,
    /// Index of this conduit in `policy.conduits()`; `None` when a reload removed the conduit
    /// (then every request is denied until the gateway restarts).
    pub(crate) index: Option<usize>,
    /// Shared with the state a reload replaces when it suits the new policy: a rule that
    /// keeps its conduit, id and rate keeps its buckets (issue 14.7).
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) settings: Settings,
    /// The conduit's rule ids, shared: an event names its rule without a copy per request.
    pub(crate) rule_ids: Vec<Arc<str>>,
}

/// The rule ids of conduit `index` of `policy` (see [`ConduitState::rule_ids`]).
pub(crate) fn rule_ids(policy: &Policy, index: Option<usize>) -> Vec<Arc<str>> {
    index
        .and_then(|i| policy.conduits().get(i))
        .map(|c| c.rules().iter().map(|r| Arc::from(r.id())).collect())
        .unwrap_or_default()
}

impl ConduitState {
    fn conduit(&self) -> Option<&ConduitPolicy> {
        self.index.and_then(|i| self.policy.conduits().get(i))
    }

    /// True when some rule of the conduit could allow a request from `src` (the accept-time
    /// check; false when a reload removed the conduit).
    pub(crate) fn may_match_source(&self, src: IpAddr) -> bool {
        self.conduit().is_some_and(|c| c.may_match_source(src))
    }

    /// Decides one parsed request from `src`, whose TLS role is `role` (`None`: plaintext, or
    /// the null role of a certificate without one).
    pub(crate) fn decide(
        &self,
        src: IpAddr,
        role: Option<&str>,
        unit: UnitId,
        request: &Request<'_>,
        now: Instant,
    ) -> Verdict {
        let Some(conduit) = self.conduit() else {
            return Verdict {
                allow: false,
                reason: "conduit_removed",
                rule: None,
                exception: Some(ExceptionCode::IllegalFunction),
            };
        };
        let tx = Transaction {
            src,
            unit,
            request,
            role,
        };
        let v = conduit.decide(&tx, &self.limiter, now.into_std());
        Verdict {
            allow: v.is_allow(),
            reason: v.reason.as_str(),
            rule: v.rule.map(|id| {
                self.rule_ids
                    .iter()
                    .find(|r| ***r == *id)
                    .map_or_else(|| Arc::from(id), Arc::clone)
            }),
            exception: v.exception(),
        }
    }
}

/// Counts live sessions so that shutdown can wait for them to drain.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    active: AtomicUsize,
    idle: Notify,
}

impl Tracker {
    pub(crate) fn enter(&self) {
        self.active.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn leave(&self) {
        if self.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Waits until no session is left or `deadline` passes; returns the sessions left.
    pub(crate) async fn wait_idle(&self, deadline: Instant) -> usize {
        loop {
            let notified = self.idle.notified();
            let n = self.active();
            if n == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.active();
            }
        }
    }
}

/// Everything the sessions of one conduit listener share.
pub(crate) struct ConduitShared {
    pub(crate) conduit: Arc<str>,
    pub(crate) state: ArcSwap<ConduitState>,
    pub(crate) recorder: Recorder,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) drain_timeout: Duration,
    pub(crate) tracker: Arc<Tracker>,
    // Session data path.
    /// The conduit's device connections, lent to sessions per request.
    pub(crate) pool: Arc<UpstreamPool>,
    // --- accept side (issue 14.1): who holds the connection slots ---
    /// Connections admitted and not yet ended, in total and per source address; the accept
    /// loop checks `max_connections` and `max_connections_per_source` against it, and each
    /// admitted connection's [`ConnectionPermit`] gives its count back when dropped.
    pub(crate) admitted: Admitted,
    /// Counters and the live view of the admin endpoint (metrics.rs), shared by all listeners.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The live monitor and the conduit's `shadow:` candidate (watch.rs).
    pub(crate) watch: crate::watch::ConduitWatch,
    /// The threads sessions run on (workers.rs); `None`: the runtime the gateway started on.
    pub(crate) sessions: Option<Arc<crate::workers::SessionThreads>>,
}

/// Connections admitted by one listener, in total and per source address (IPv4-mapped IPv6
/// counted as IPv4). Locked only at accept and when a connection ends, never per request.
#[derive(Debug, Default)]
pub(crate) struct Admitted {
    inner: Mutex<AdmittedInner>,
    /// Woken when a connection ends: the accept loop, stopped at `max_connections`, resumes.
    pub(crate) freed: Notify,
}

#[derive(Debug, Default)]
struct AdmittedInner {
    total: usize,
    /// Only sources with at least one live connection: the map is as small as the number of
    /// sources connected now (at most `max_connections`).
    per_source: HashMap<IpAddr, usize>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_connections` connections are open.
    MaxConnections(usize),
    /// `max_connections_per_source` connections from this source are open.
    MaxConnectionsPerSource(usize),
}

impl Refusal {
    /// The `reason` of the refused-connection record.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::MaxConnections(_) => "max_connections",
            Self::MaxConnectionsPerSource(_) => "max_connections_per_source",
        }
    }

    /// The `message` of the refused-connection record.
    pub(crate) fn message(self) -> String {
        match self {
            Self::MaxConnections(n) => format!("refused: max_connections ({n}) reached"),
            Self::MaxConnectionsPerSource(n) => {
                format!("refused: max_connections_per_source ({n}) reached for this source")
            }
        }
    }
}

impl Admitted {
    fn lock(&self) -> std::sync::MutexGuard<'_, AdmittedInner> {
        // The counts are plain integers updated in one step: a poisoned lock is still sound.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one connection from `src` when both limits leave room (check and count in one
    /// step, so two accepts cannot both take the last slot); returns the address counted.
    fn take(
        &self,
        src: IpAddr,
        max_total: usize,
        max_per_source: usize,
    ) -> Result<IpAddr, Refusal> {
        let src = canonical_ip(src);
        let mut inner = self.lock();
        if inner.total >= max_total {
            return Err(Refusal::MaxConnections(max_total));
        }
        let from_src = inner.per_source.get(&src).copied().unwrap_or(0);
        if from_src >= max_per_source {
            return Err(Refusal::MaxConnectionsPerSource(max_per_source));
        }
        inner.total += 1;
        *inner.per_source.entry(src).or_insert(0) += 1;
        Ok(src)
    }

    /// Whether `max_total` connections are open (the accept loop then stops accepting).
    pub(crate) fn is_full(&self, max_total: usize) -> bool {
        self.lock().total >= max_total
    }

    /// Live admitted connections (all sources).
    #[cfg(test)]
    pub(crate) fn total(&self) -> usize {
        self.lock().total
    }

    /// Live admitted connections from `src`.
    #[cfg(test)]
    pub(crate) fn count_from(&self, src: IpAddr) -> usize {
        self.lock()
            .per_source
            .get(&canonical_ip(src))
            .copied()
            .unwrap_or(0)
    }

    fn release(&self, src: IpAddr) {
        let mut inner = self.lock();
        inner.total = inner.total.saturating_sub(1);
        if let Some(n) = inner.per_source.get_mut(&src) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.per_source.remove(&src);
            }
        }
        drop(inner);
        // One waiter (the accept loop); a permit stored while it is not waiting only makes it
        // look once more.
        self.freed.notify_one();
    }
}

/// One admitted connection's hold on the listener's counts: both the total and the
/// per-source count are given back when it is dropped, however the session ends (normal
/// end, error, panic in the session task, the task dropped at runtime shutdown).
///
/// The accept loop moves it into the session's task. (Merge note: conn.rs still keeps the
/// older `ConduitShared::connections` counter, decremented in `Session::abandon`; nothing
/// enforces a limit with it any more, so it can go, or `Session::serve` can take this permit
/// as an argument instead of the task holding it.)
pub(crate) struct ConnectionPermit {
    shared: Arc<ConduitShared>,
    src: IpAddr,
}

impl std::fmt::Debug for ConnectionPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPermit")
            .field("conduit", &self.shared.conduit)
            .field("src", &self.src)
            .finish()
    }
}

impl ConnectionPermit {
    /// Admits a connection from `src` when both limits leave room, counting it at once (the
    /// check and the count are one step, so two accepts cannot both take the last slot).
    pub(crate) fn admit(
        shared: &Arc<ConduitShared>,
        src: IpAddr,
        max_connections: usize,
        max_per_source: usize,
    ) -> Result<Self, Refusal> {
        let src = shared.admitted.take(src, max_connections, max_per_source)?;
        Ok(Self {
            shared: Arc::clone(shared),
            src,
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.shared.admitted.release(self.src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn admitted_counts_total_and_per_source_and_gives_both_back() {
        let a = Admitted::default();
        let (x, y) = (ip("10.0.0.1"), ip("10.0.0.2"));
        assert_eq!(a.take(x, 3, 2), Ok(x));
        assert_eq!(a.take(x, 3, 2), Ok(x));
        assert_eq!(a.take(x, 3, 2), Err(Refusal::MaxConnectionsPerSource(2)));
        // IPv4-mapped IPv6 is the same source.
        assert_eq!(
            a.take(ip("::ffff:10.0.0.1"), 3, 2),
            Err(Refusal::MaxConnectionsPerSource(2))
        );
        assert_eq!(a.take(y, 3, 2), Ok(y));
        assert_eq!(
            a.take(ip("10.0.0.3"), 3, 2),
            Err(Refusal::MaxConnections(3))
        );
        assert_eq!((a.total(), a.count_from(x), a.count_from(y)), (3, 2, 1));
        a.release(x);
        assert_eq!((a.total(), a.count_from(x)), (2, 1));
        assert_eq!(a.take(x, 3, 2), Ok(x));
        a.release(y);
        a.release(x);
        a.release(x);
        assert_eq!((a.total(), a.count_from(x), a.count_from(y)), (0, 0, 0));
        // The map forgets sources with no connection left.
        assert!(a.lock().per_source.is_empty());
        // Releasing more than was taken never wraps.
        a.release(x);
        assert_eq!(a.total(), 0);
    }
}
