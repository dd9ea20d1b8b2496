//! Aggregation of repeated denials (and refused connections): what an unauthenticated host can
//! make the gateway record without limit becomes a bounded number of records that still
//! account for every event.
//!
//! Events are grouped by key = (conduit, source IP, kind, reason, decision). Per key and
//! interval (the decision keeps a blocked `deny` apart from a forwarded `would_deny`, e.g. across
//! a reload from enforce to monitor mode):
//!
//! - the FIRST event is written in full, as any record (all request fields);
//! - the following ones are only counted;
//! - when the interval ends (or the writer stops) one summary record is written: the LAST
//!   counted event's fields, `count` = how many events it stands for (those not written in full),
//!   `first_ts`/`last_ts` = when the first and last of them happened.
//!
//! So `sum(count or 1)` over the records of a key is exactly the number of events. Memory is
//! bounded: beyond `max_keys` live keys an event folds into one overflow key per (conduit, kind,
//! decision),
//! whose summary has no `src` and no `reason` (it mixes them) and is only counted. While the
//! log's storage is low ([`Aggregator::admit`] with `shed`), nothing is written in full: every
//! event is counted, so only summaries reach the disk.
//!
//! The state is sharded: a producer holds one shard's mutex for a hash-map lookup and an
//! increment (no allocation for a key already live). The writer thread collects due summaries.

use std::borrow::Cow;
use std::collections::hash_map::{Entry as MapEntry, HashMap};
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::event::{format_ts, Decision, Event, Kind};

/// Number of independently locked shards.
const SHARDS: usize = 16;

/// Interval used while shedding when aggregation is otherwise off.
const SHED_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    conduit: Option<Arc<str>>,
    /// `None` for the overflow key.
    ip: Option<IpAddr>,
    kind: Kind,
    /// `None` for the overflow key.
    reason: Option<Cow<'static, str>>,
    /// `deny` (blocked) and `would_deny` (forwarded, monitor mode) never share a summary.
    decision: Option<Decision>,
    overflow: bool,
}

impl Key {
    fn of(e: &Event) -> Self {
        Self {
            conduit: e.conduit.clone(),
            ip: e.src.as_deref().and_then(source_ip),
            kind: e.kind,
            reason: e.reason.clone(),
            decision: e.decision,
            overflow: false,
        }
    }

    fn overflow(&self) -> Self {
        Self {
            conduit: self.conduit.clone(),
            ip: None,
            kind: self.kind,
            reason: None,
            decision: self.decision,
            overflow: true,
        }
    }
}

/// The IP of an `ip:port` (or bare IP) source.
fn source_ip(src: &str) -> Option<IpAddr> {
    src.parse::<SocketAddr>()
        .map(|s| s.ip())
        .ok()
        .or_else(|| src.parse::<IpAddr>().ok())
}

#[derive(Debug)]
struct Entry {
    /// End of the key's interval.
    due: Instant,
    /// Events counted, not written in full.
    counted: u64,
    first: Option<SystemTime>,
    last: Option<SystemTime>,
    /// The last counted event (its fields go into the summary).
    last_event: Option<Box<Event>>,
}

impl Entry {
    fn new(due: Instant) -> Self {
        Self {
            due,
            counted: 0,
            first: None,
            last: None,
            last_event: None,
        }
    }

    fn count(&mut self, event: Event) {
        let at = event.at.unwrap_or_else(SystemTime::now);
        self.counted += 1;
        self.first.get_or_insert(at);
        self.last = Some(at);
        // Reuse the box of the previous event: no allocation per counted event.
        match &mut self.last_event {
            Some(b) => **b = event,
            None => self.last_event = Some(Box::new(event)),
        }
    }
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Key, Entry>,
    /// Entries that are not overflow keys.
    live: usize,
}

/// Aggregation state shared by every handle and the writer. See the module docs.
#[derive(Debug)]
pub(crate) struct Aggregator {
    /// Zero: aggregate only while shedding.
    interval: Duration,
    max_keys_per_shard: usize,
    max_keys: usize,
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<Shard>>,
    /// Entries over all shards (the writer looks only when some exist).
    entries: AtomicUsize,
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard cannot leave it inconsistent (plain counters).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Aggregator {
    /// `interval` zero turns aggregation off (except while shedding); `max_keys` bounds memory.
    pub(crate) fn new(interval: Duration, max_keys: usize) -> Self {
        let max_keys = max_keys.max(1);
        Self {
            interval,
            max_keys_per_shard: max_keys.div_ceil(SHARDS),
            max_keys,
            hasher: std::collections::hash_map::RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            entries: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &Key) -> &Mutex<Shard> {
        // The modulo is below SHARDS: the cast cannot truncate.
        &self.shards[(self.hasher.hash_one(key) % SHARDS as u64) as usize]
    }

    /// The interval in force (`shed`: never zero).
    fn interval(&self, shed: bool) -> Option<Duration> {
        match (self.interval.is_zero(), shed) {
            (false, _) => Some(self.interval),
            (true, true) => Some(SHED_INTERVAL),
            (true, false) => None,
        }
    }

    /// Takes one event. Returns it back when it must be written in full (the first of its key
    /// in the interval, or aggregation off); `None` when it was counted.
    pub(crate) fn admit(&self, event: Event, shed: bool) -> Option<Event> {
        let Some(interval) = self.interval(shed) else {
            return Some(event);
        };
        let key = Key::of(&event);
        let mut shard = lock(self.shard(&key));
        if let Some(e) = shard.map.get_mut(&key) {
            e.count(event);
            return None;
        }
        if shard.live >= self.max_keys_per_shard {
            drop(shard);
            self.count_in(key.overflow(), event, interval);
            return None;
        }
        let mut entry = Entry::new(Instant::now() + interval);
        shard.live += 1;
        self.entries.fetch_add(1, Ordering::Relaxed);
        if shed {
            entry.count(event);
            shard.map.insert(key, entry);
            None
        } else {
            shard.map.insert(key, entry);
            Some(event)
        }
    }

    /// Counts an event whose full record could not be queued (so that it is not lost).
    pub(crate) fn count(&self, event: Event) {
        let interval = self.interval(true).unwrap_or(SHED_INTERVAL);
        self.count_in(Key::of(&event), event, interval);
    }

    fn count_in(&self, key: Key, event: Event, interval: Duration) {
        let mut shard = lock(self.shard(&key));
        let full = !key.overflow && shard.live >= self.max_keys_per_shard;
        let key = if full && !shard.map.contains_key(&key) {
            let k = key.overflow();
            drop(shard);
            shard = lock(self.shard(&k));
            k
        } else {
            key
        };
        let overflow = key.overflow;
        match shard.map.entry(key) {
            MapEntry::Occupied(mut o) => o.get_mut().count(event),
            MapEntry::Vacant(v) => {
                let mut entry = Entry::new(Instant::now() + interval);
                entry.count(event);
                v.insert(entry);
                if !overflow {
                    shard.live += 1;
                }
                self.entries.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether aggregation is off outside shedding.
    pub(crate) fn interval_is_zero(&self) -> bool {
        self.interval.is_zero()
    }

    /// Whether any key is live (the writer then looks for due summaries).
    pub(crate) fn is_idle(&self) -> bool {
        self.entries.load(Ordering::Relaxed) == 0
    }

    /// Removes the keys whose interval ended by `now` (every key when `all`) and returns their
    /// summary records (keys with nothing counted end without one) and when the next key is
    /// due. Every interval has the same length, so a key made after this call is due later
    /// than `now + interval`: the writer need not look before the returned instant.
    pub(crate) fn take_due(&self, now: Instant, all: bool) -> (Vec<Event>, Instant) {
        let mut out = Vec::new();
        let mut next = now + self.interval(true).unwrap_or(SHED_INTERVAL);
        if self.is_idle() {
            return (out, next);
        }
        for m in &self.shards {
            let mut shard = lock(m);
            let mut ended = 0;
            let mut ended_live = 0;
            shard.map.retain(|key, e| {
                if !all && e.due > now {
                    next = next.min(e.due);
                    return true;
                }
                ended += 1;
                if !key.overflow {
                    ended_live += 1;
                }
                if let Some(s) = self.summary(key, e) {
                    out.push(s);
                }
                false
            });
            shard.live -= ended_live;
            self.entries.fetch_sub(ended, Ordering::Relaxed);
        }
        (out, next)
    }

    fn summary(&self, key: &Key, e: &mut Entry) -> Option<Event> {
        let mut ev = *e.last_event.take()?;
        let n = e.counted;
        ev.count = Some(n);
        ev.first_ts = e.first.map(|t| format_ts(time::OffsetDateTime::from(t)));
        ev.last_ts = e.last.map(|t| format_ts(time::OffsetDateTime::from(t)));
        // `ts` is when the summary is written; the events' times are first_ts..last_ts.
        ev.ts = None;
        ev.at = None;
        ev.request_id = None;
        ev.message = Some(if key.overflow {
            ev.src = None;
            ev.reason = None;
            ev.rule = None;
            format!(
                "{n} record(s) counted, not written: more than {} sources and reasons were live \
                 at once; fields are those of the last one",
                self.max_keys
            )
        } else {
            format!(
                "{n} more like the first of this source and reason in the interval; fields are \
                 those of the last one"
            )
        });
        Some(ev)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn denial(src: &str, reason: &'static str, tid: u16) -> Event {
        Event {
            conduit: Some("C1".into()),
            src: Some(src.into()),
            tid: Some(tid),
            decision: Some(Decision::Deny),
            reason: Some(reason.into()),
            ..Event::new(Kind::Request)
        }
    }

    #[test]
    fn first_is_written_rest_counted_and_summarised_with_the_last() {
        let a = Aggregator::new(Duration::from_secs(60), 100);
        assert!(a
            .admit(denial("10.0.0.1:1000", "no_rule", 1), false)
            .is_some());
        for tid in 2..=5 {
            // Another port of the same host is the same key.
            assert!(a
                .admit(denial("10.0.0.1:1001", "no_rule", tid), false)
                .is_none());
        }
        assert!(a
            .admit(denial("10.0.0.2:1000", "no_rule", 9), false)
            .is_some());
        assert!(
            a.take_due(Instant::now(), false).0.is_empty(),
            "not due yet"
        );
        let (s, _) = a.take_due(Instant::now(), true);
        assert_eq!(
            s.len(),
            1,
            "the key with nothing counted ends without a summary"
        );
        assert_eq!((s[0].count, s[0].tid), (Some(4), Some(5)));
        assert!(s[0].first_ts.is_some() && s[0].last_ts.is_some());
        assert!(a.is_idle());
        // A new interval writes its first event in full again.
        assert!(a
            .admit(denial("10.0.0.1:1000", "no_rule", 6), false)
            .is_some());
    }

    #[test]
    fn beyond_the_cap_events_fold_into_one_overflow_key_per_conduit() {
        let a = Aggregator::new(Duration::from_secs(60), 16);
        let mut full = 0u64;
        for i in 0..1000u32 {
            let src = format!("10.{}.{}.{}:502", i >> 16, (i >> 8) & 255, i & 255);
            if a.admit(denial(&src, "no_rule", 0), false).is_some() {
                full += 1;
            }
        }
        let counted: u64 = a
            .take_due(Instant::now(), true)
            .0
            .iter()
            .map(|e| e.count.unwrap())
            .sum();
        assert!(full <= 16, "{full}");
        assert_eq!(full + counted, 1000, "every event is accounted for");
    }

    #[test]
    fn shedding_writes_nothing_in_full() {
        let a = Aggregator::new(Duration::ZERO, 100);
        assert!(
            a.admit(denial("10.0.0.1:1", "r", 1), false).is_some(),
            "off"
        );
        for _ in 0..3 {
            assert!(a.admit(denial("10.0.0.1:1", "r", 1), true).is_none());
        }
        let (s, _) = a.take_due(Instant::now(), true);
        assert_eq!(s[0].count, Some(3));
    }

    #[test]
    fn deny_and_would_deny_of_one_source_and_reason_are_kept_apart() {
        // A reload from enforce to monitor mode: the same source and reason, first blocked,
        // then forwarded. One summary of both would say all were forwarded (or all blocked).
        let a = Aggregator::new(Duration::from_secs(60), 100);
        assert!(a.admit(denial("10.0.0.1:1", "r", 1), false).is_some());
        assert!(a.admit(denial("10.0.0.1:1", "r", 2), false).is_none());
        let monitor = |tid| Event {
            decision: Some(Decision::WouldDeny),
            ..denial("10.0.0.1:1", "r", tid)
        };
        assert!(
            a.admit(monitor(3), false).is_some(),
            "the first would_deny is written in full"
        );
        assert!(a.admit(monitor(4), false).is_none());
        assert!(a.admit(monitor(5), false).is_none());
        let (mut s, _) = a.take_due(Instant::now(), true);
        s.sort_by_key(|e| e.count);
        let got: Vec<_> = s.iter().map(|e| (e.decision, e.count)).collect();
        assert_eq!(
            got,
            [
                (Some(Decision::Deny), Some(1)),
                (Some(Decision::WouldDeny), Some(2))
            ]
        );
    }
}
