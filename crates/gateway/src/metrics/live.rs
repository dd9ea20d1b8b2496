//! The live view behind the dashboard: per (conduit, unit id) the last answer, counts,
//! latency buckets and poll rate; the masters seen; the latest denials and alerts; the
//! would-deny review of monitor mode. [`super::Metrics::request`] feeds it under one short
//! lock per request, [`Live::to_json`] renders it for `/api/state`. Everything here is bounded
//! (see the limits in the parent module): a source address is a map key here, never a label.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use foldhash::HashMap;
use serde_json::{json, Value};

use super::{bucket_bounds, ip_text, MasterKey, UnitKey, RECENT};

/// Seconds of the poll-rate window (the dashboard's "polls/s" of a unit).
pub(super) const POLL_WINDOW_S: u64 = 10;

/// Forwarded requests per whole second over the last [`POLL_WINDOW_S`] seconds: the rate at
/// which the masters poll one unit. Seconds count from [`Metrics`]' start; slots are reused
/// as the window moves (no allocation).
#[derive(Debug, Default)]
pub(super) struct PollWindow {
    pub(super) slots: [u32; POLL_WINDOW_S as usize],
    /// The second the newest slot belongs to.
    pub(super) newest: u64,
    /// The second of the first poll counted (the window is shorter before it is full).
    pub(super) first: Option<u64>,
}

impl PollWindow {
    pub(super) fn slot(sec: u64) -> usize {
        // In range: the remainder is below POLL_WINDOW_S.
        (sec % POLL_WINDOW_S) as usize
    }

    /// One poll in second `sec` (taken under the live view's lock, so never older than the
    /// newest; an older one would count in the newest second).
    pub(super) fn count(&mut self, sec: u64) {
        let sec = sec.max(self.newest);
        if self.first.is_none() {
            self.first = Some(sec);
            self.newest = sec;
        }
        if sec >= self.newest + POLL_WINDOW_S {
            self.slots = [0; POLL_WINDOW_S as usize];
        } else {
            // The seconds that passed without a poll start from 0.
            for s in (self.newest + 1)..=sec {
                self.slots[Self::slot(s)] = 0;
            }
        }
        self.newest = sec;
        let c = &mut self.slots[Self::slot(sec)];
        *c = c.saturating_add(1);
    }

    /// Polls per second over the whole seconds before `now_sec` (the current one is still
    /// filling): `None` before one whole second has passed since the first poll.
    pub(super) fn rate(&self, now_sec: u64) -> Option<f64> {
        let first = self.first?;
        let span = now_sec.saturating_sub(first).min(POLL_WINDOW_S);
        if span == 0 {
            return None;
        }
        let polls: u64 = (now_sec - span..now_sec)
            .filter(|&s| s <= self.newest && s + POLL_WINDOW_S > self.newest)
            .map(|s| u64::from(self.slots[Self::slot(s)]))
            .sum();
        Some(polls as f64 / span as f64)
    }
}

/// The live view of one (conduit, unit id): what the control room asks about a device.
#[derive(Debug, Default)]
pub(super) struct UnitView {
    pub(super) ok: u64,
    pub(super) exceptions: u64,
    pub(super) timeouts: u64,
    pub(super) unreachable: u64,
    pub(super) denied: u64,
    pub(super) last_good: Option<Instant>,
    /// `online`, `exception`, `timeout`, `unreachable` (the last forwarded request's answer).
    pub(super) status: &'static str,
    pub(super) last_exception: Option<u8>,
    /// Counts per latency bucket of answered requests (index = bucket of `latency_buckets`,
    /// the last one = above), for p50/p99.
    pub(super) buckets: [u64; 18],
    /// Forwarded requests per second, recently.
    pub(super) polls: PollWindow,
}

#[derive(Debug)]
pub(super) struct MasterView {
    pub(super) requests: u64,
    pub(super) denied: u64,
    pub(super) last_seen: u64,
}

#[derive(Debug, Default)]
pub(super) struct Live {
    pub(super) units: BTreeMap<UnitKey, UnitView>,
    /// Keyed by address (no allocation per request); `None`: a source that is not an address.
    pub(super) masters: HashMap<MasterKey, MasterView>,
    pub(super) recent: VecDeque<Value>,
    pub(super) would_deny: BTreeMap<(Arc<str>, String, String), u64>,
    pub(super) allowed: u64,
    pub(super) denied: u64,
    /// Seq of the next recent event (the dashboard's "new since" marker).
    pub(super) next_id: u64,
}

/// The live view as the dashboard's JSON (taken under the lock, rendered at once).
pub(super) struct LiveJson {
    pub(super) units: Vec<Value>,
    pub(super) masters: Vec<Value>,
    pub(super) would_deny: Vec<Value>,
    pub(super) recent: Vec<Value>,
    pub(super) allowed: u64,
    pub(super) denied: u64,
}

impl Live {
    /// Units with their status, latency quantiles and poll rate at `now`; masters newest
    /// first; the would-deny groups; the recent events newest first.
    pub(super) fn to_json(&self, now: Instant, now_sec: u64) -> LiveJson {
        let units: Vec<Value> = self
            .units
            .iter()
            .map(|((conduit, unit), u)| {
                json!({
                    "conduit": &**conduit,
                    "unit": unit,
                    "status": if u.status.is_empty() { "no_traffic" } else { u.status },
                    "ok": u.ok,
                    "exceptions": u.exceptions,
                    "timeouts": u.timeouts,
                    "unreachable": u.unreachable,
                    "denied": u.denied,
                    "last_exception": u.last_exception,
                    "last_good_age_s": u.last_good.map(|t| now.duration_since(t).as_secs_f64()),
                    "p50_ms": quantile(&u.buckets, 0.50).map(|s| s * 1e3),
                    "p99_ms": quantile(&u.buckets, 0.99).map(|s| s * 1e3),
                    "polls_per_s": u.polls.rate(now_sec),
                })
            })
            .collect();
        let mut masters: Vec<Value> = self
            .masters
            .iter()
            .map(|((conduit, src), m)| {
                json!({"conduit": &**conduit, "src": ip_text(*src), "requests": m.requests,
                       "denied": m.denied, "last_seen_ms": m.last_seen})
            })
            .collect();
        masters.sort_by(|a, b| b["last_seen_ms"].as_u64().cmp(&a["last_seen_ms"].as_u64()));
        let would_deny: Vec<Value> = self
            .would_deny
            .iter()
            .map(|((conduit, rule, reason), n)| {
                json!({"conduit": &**conduit, "rule": rule, "reason": reason, "count": n})
            })
            .collect();
        let recent: Vec<Value> = self.recent.iter().rev().cloned().collect();
        LiveJson {
            units,
            masters,
            would_deny,
            recent,
            allowed: self.allowed,
            denied: self.denied,
        }
    }
}

/// Keeps the latest [`RECENT`] denials and alerts, the oldest forgotten first.
pub(super) fn push_recent(live: &mut Live, item: Value) {
    if live.recent.len() >= RECENT {
        live.recent.pop_front();
    }
    live.recent.push_back(item);
}

/// The upper bound of the bucket that holds quantile `q` (`None` without samples).
pub(super) fn quantile(buckets: &[u64; 18], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let want = ((total as f64) * q).ceil().max(1.0) as u64;
    let bounds = bucket_bounds();
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= want {
            // Above the last bound: report the last bound (a floor, said in the docs).
            return Some(bounds.get(i).copied().unwrap_or(bounds[bounds.len() - 1]));
        }
    }
    None
}

/// The value at `key`, a default one inserted first when there is none (the key is cloned
/// only then).
pub(super) fn entry_of<'m, K: Ord + Clone, V: Default>(
    map: &'m mut BTreeMap<K, V>,
    key: &K,
) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.clone(), V::default());
    }
    match map.get_mut(key) {
        Some(value) => value,
        None => unreachable!("inserted above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poll_rate_is_over_the_last_whole_seconds() {
        let mut w = PollWindow::default();
        assert_eq!(w.rate(5), None, "no poll yet");
        for sec in 100..105 {
            w.count(sec);
            w.count(sec);
        }
        assert_eq!(w.rate(100), None, "the first second is still filling");
        assert_eq!(w.rate(102), Some(2.0), "seconds 100 and 101");
        assert_eq!(w.rate(105), Some(2.0));
        assert_eq!(w.rate(110), Some(1.0), "10 polls over 100..109");
        assert_eq!(w.rate(200), Some(0.0), "quiet since");
        // After a gap longer than the window, old slots do not come back.
        w.count(200);
        w.count(203);
        assert_eq!(w.rate(204), Some(0.2), "2 polls over 194..203");
        // A gap shorter than the window clears the skipped seconds only.
        w.count(206);
        assert_eq!(w.rate(207), Some(0.3), "200, 203 and 206 over 197..206");
    }
}
