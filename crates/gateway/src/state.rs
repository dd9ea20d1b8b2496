//! Shared state of one conduit listener, and the policy snapshot sessions read.
//!
//! [`ConduitShared`] is created once per listener and shared (`Arc`) by its sessions. The part
//! that a reload replaces, [`ConduitState`] (compiled policy, rate limiter, gateway settings),
//! sits in an `ArcSwap`: sessions load it lock-free once per batch of client bytes, a reload
//! stores a new one, and requests already decided finish under the old one. No connection is
//! dropped by a reload.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use zonegate_modbus::pdu::Request;
use zonegate_modbus::{ExceptionCode, UnitId};
use zonegate_policy::{ConduitPolicy, Policy, RateLimiter, Transaction};

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
    pub(crate) max_in_flight: usize,
    pub(crate) upstream: UpstreamTarget,
    // Session data path: lock-out and the upstream pool.
    /// Idle timeout of a session that has made no allowed request yet.
    pub(crate) unauthenticated_idle_timeout: Duration,
    /// Most device connections of the conduit at once (the pool's size).
    pub(crate) max_upstream_connections: usize,
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
    pub(crate) limiter: RateLimiter,
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

    /// Decides one parsed request from `src`.
    pub(crate) fn decide(
        &self,
        src: IpAddr,
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
            role: None,
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
    /// Live sessions of this listener (for `max_connections`).
    pub(crate) connections: AtomicUsize,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) drain_timeout: Duration,
    pub(crate) tracker: Arc<Tracker>,
    // Session data path.
    /// The conduit's device connections, lent to sessions per request.
    pub(crate) pool: Arc<UpstreamPool>,
}
