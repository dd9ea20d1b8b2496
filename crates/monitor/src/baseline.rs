//! The baseline: what each (master, slave, unit) channel did during learning. Serialised as a
//! JSON file a person can read and edit (`--baseline`), and the input of `learn`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use foldhash::HashMap;
use serde::{Deserialize, Serialize};
use zonegate_modbus::{Request, Table};

/// Per channel, at most this many poll signatures are tracked (bounded memory on a scan).
const MAX_SIGNATURES: usize = 1024;
/// At most this many channels are learned; the rest are counted in `channels_dropped`.
const MAX_CHANNELS: usize = 65_536;

/// Why a baseline file does not load.
#[derive(Debug)]
#[non_exhaustive]
pub enum BaselineError {
    /// The file cannot be read (missing, unreadable, not UTF-8).
    Unreadable(std::io::Error),
    /// The text is not JSON (serde_json's message, with line and column).
    Json(String),
    /// JSON, but not a baseline: a missing or mistyped field, an unsupported version, an
    /// address that is not one.
    Shape(String),
}

impl fmt::Display for BaselineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(e) => write!(f, "cannot read it: {e}"),
            Self::Json(e) => write!(f, "not valid JSON: {e}"),
            Self::Shape(e) => write!(f, "not a baseline (wrong shape): {e}"),
        }
    }
}

impl std::error::Error for BaselineError {}

/// A (master, slave, unit) channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey {
    /// The client.
    pub master: IpAddr,
    /// The server.
    pub slave: IpAddr,
    /// The MBAP unit id.
    pub unit: u8,
}

/// A function with its FC 8 sub-function or FC 43 MEI type, written `3`, `8:4` or `43:14`.
pub fn function_key(request: &Request<'_>) -> String {
    let fc = request.function().get();
    match request.sub_function() {
        Some(sub) => format!("{fc}:{sub}"),
        None => fc.to_string(),
    }
}

/// Inclusive address ranges, sorted and merged (adjacent ranges coalesce).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RangeSet(pub Vec<[u16; 2]>);

impl RangeSet {
    /// Adds `first..=last`.
    pub fn insert(&mut self, first: u16, last: u16) {
        let v = &mut self.0;
        let at = v.partition_point(|r| r[0] < first);
        v.insert(at, [first, last]);
        let mut merged: Vec<[u16; 2]> = Vec::with_capacity(v.len());
        for r in v.drain(..) {
            match merged.last_mut() {
                Some(m) if u32::from(r[0]) <= u32::from(m[1]) + 1 => m[1] = m[1].max(r[1]),
                _ => merged.push(r),
            }
        }
        *v = merged;
    }

    /// True when every address of `first..=last` is in the set.
    pub fn covers(&self, first: u16, last: u16) -> bool {
        self.0.iter().any(|r| r[0] <= first && last <= r[1])
    }
}

/// Timing of one request signature (same function, table, start and quantity).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Poll {
    /// Function code.
    pub function: u8,
    /// First address (0 when the request has no range).
    pub start: u16,
    /// Quantity.
    pub count: u16,
    /// How often it was seen.
    pub samples: u64,
    /// Mean period in seconds.
    pub mean_s: f64,
    /// Standard deviation of the period in seconds.
    pub jitter_s: f64,
    #[serde(skip)]
    m2: f64,
    #[serde(skip)]
    last_us: Option<u64>,
}

impl Poll {
    /// Adds one occurrence at `ts_us`; returns the interval since the previous one.
    pub(crate) fn observe(&mut self, ts_us: u64) -> Option<f64> {
        let interval = self
            .last_us
            .map(|last| ts_us.saturating_sub(last) as f64 / 1e6);
        self.last_us = Some(ts_us);
        self.samples += 1;
        if let Some(x) = interval {
            // Welford's running mean and variance over the intervals.
            let n = (self.samples - 1) as f64;
            let delta = x - self.mean_s;
            self.mean_s += delta / n;
            self.m2 += delta * (x - self.mean_s);
            self.jitter_s = if n > 1.0 {
                (self.m2 / (n - 1.0)).sqrt()
            } else {
                0.0
            };
        }
        interval
    }
}

/// Everything learned about one channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    /// The client.
    pub master: String,
    /// The server.
    pub slave: String,
    /// Unit id.
    pub unit: u8,
    /// Requests seen.
    pub requests: u64,
    /// Microseconds since the epoch of the first request.
    pub first_seen_us: u64,
    /// ... and of the last.
    pub last_seen_us: u64,
    /// Request count per function key (`3`, `8:4`).
    pub functions: BTreeMap<String, u64>,
    /// Addresses read, per table (`coils`, `discrete`, `holding`, `input`, as the model names them).
    pub reads: BTreeMap<String, RangeSet>,
    /// Addresses written, per table.
    pub writes: BTreeMap<String, RangeSet>,
    /// Write requests seen, per function key.
    pub write_counts: BTreeMap<String, u64>,
    /// Written value range per register or coil, keyed `holding:100`.
    pub values: BTreeMap<String, [u16; 2]>,
    /// Poll timing per request signature.
    pub polls: Vec<Poll>,
    #[serde(skip)]
    poll_index: HashMap<(u8, u16, u16), usize>,
}

/// The table's name as the model writes it.
pub fn table_key(table: Table) -> &'static str {
    match table {
        Table::Coils => "coils",
        Table::DiscreteInputs => "discrete",
        Table::HoldingRegisters => "holding",
        Table::InputRegisters => "input",
        _ => "unknown",
    }
}

/// The table a written value goes to for `request` (FC 5/15 coils, 6/16/22/23 holding).
pub(crate) fn write_table(request: &Request<'_>) -> Option<Table> {
    match request.function().get() {
        5 | 15 => Some(Table::Coils),
        6 | 16 | 22 | 23 => Some(Table::HoldingRegisters),
        _ => None,
    }
}

impl Channel {
    /// The poll signature of `request`, created when new (bounded).
    pub(crate) fn poll_mut(&mut self, request: &Request<'_>) -> Option<&mut Poll> {
        let (start, count) = request
            .ranges()
            .next()
            .map_or((0, 0), |(_, r)| (r.start(), r.count()));
        let key = (request.function().get(), start, count);
        if self.poll_index.is_empty() && !self.polls.is_empty() {
            self.reindex();
        }
        let at = match self.poll_index.get(&key) {
            Some(&at) => at,
            None if self.polls.len() < MAX_SIGNATURES => {
                self.polls.push(Poll {
                    function: key.0,
                    start,
                    count,
                    ..Poll::default()
                });
                self.poll_index.insert(key, self.polls.len() - 1);
                self.polls.len() - 1
            }
            None => return None,
        };
        self.polls.get_mut(at)
    }

    /// The poll signature of `request`, if learned.
    pub(crate) fn poll(&self, function: u8, start: u16, count: u16) -> Option<&Poll> {
        self.polls
            .iter()
            .find(|p| p.function == function && p.start == start && p.count == count)
    }

    fn reindex(&mut self) {
        self.poll_index = self
            .polls
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.function, p.start, p.count), i))
            .collect();
    }

    /// Learns one request.
    pub(crate) fn learn(&mut self, ts_us: u64, request: &Request<'_>) {
        if self.requests == 0 {
            self.first_seen_us = ts_us;
        }
        self.requests += 1;
        self.last_seen_us = ts_us;
        let key = function_key(request);
        *self.functions.entry(key.clone()).or_default() += 1;
        let write = request.function().access() == zonegate_modbus::Access::Write
            || request.function().get() == 23;
        if write {
            *self.write_counts.entry(key).or_default() += 1;
        }
        for (i, (table, range)) in request.ranges().enumerate() {
            // FC 23 yields its read range first, then its write range.
            let is_write_range = if request.function().get() == 23 {
                i == 1
            } else {
                write
            };
            let map = if is_write_range {
                &mut self.writes
            } else {
                &mut self.reads
            };
            map.entry(table_key(table).to_string())
                .or_default()
                .insert(range.start(), range.last());
        }
        if let (Some(table), Some(written)) = (write_table(request), request.written()) {
            if let Some((_, range)) = request.ranges().last() {
                for (i, value) in written.iter().enumerate() {
                    let addr = range.start().wrapping_add(i as u16);
                    let e = self
                        .values
                        .entry(format!("{}:{addr}", table_key(table)))
                        .or_insert([value, value]);
                    e[0] = e[0].min(value);
                    e[1] = e[1].max(value);
                }
            }
        }
        if let Some(p) = self.poll_mut(request) {
            p.observe(ts_us);
        }
    }
}

/// A learned baseline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Format version (1).
    pub version: u32,
    /// Requests learned from.
    pub requests: u64,
    /// Channels that did not fit (more than 65,536).
    pub channels_dropped: u64,
    /// Every channel, sorted by master, slave, unit.
    pub channels: Vec<Channel>,
    #[serde(skip)]
    index: HashMap<ChannelKey, usize>,
}

impl Baseline {
    /// An empty baseline.
    pub fn new() -> Self {
        Self {
            version: 1,
            ..Self::default()
        }
    }

    /// Reads a baseline from its JSON text.
    pub fn from_json(text: &str) -> Result<Self, String> {
        Self::parse(text).map_err(|e| format!("baseline: {e}"))
    }

    /// Reads a baseline from its JSON text, saying which way it is wrong.
    pub fn parse(text: &str) -> Result<Self, BaselineError> {
        let mut b: Self = serde_json::from_str(text).map_err(|e| {
            // serde_json tells a text that is not JSON from JSON of another shape.
            if e.is_data() {
                BaselineError::Shape(e.to_string())
            } else {
                BaselineError::Json(e.to_string())
            }
        })?;
        if b.version != 1 {
            return Err(BaselineError::Shape(format!(
                "version {} is not supported (1)",
                b.version
            )));
        }
        for (i, c) in b.channels.iter().enumerate() {
            let address = |what: &str, text: &str| {
                text.parse().map_err(|_| {
                    BaselineError::Shape(format!("channels[{i}].{what} `{text}` is not an address"))
                })
            };
            let key = ChannelKey {
                master: address("master", &c.master)?,
                slave: address("slave", &c.slave)?,
                unit: c.unit,
            };
            b.index.insert(key, i);
        }
        Ok(b)
    }

    /// Reads the baseline file at `path` (the one loader of `monitor.baseline`: the gateway at
    /// start and reload, `zonegate check` and `analyze`).
    pub fn read_file(path: &Path) -> Result<Self, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(BaselineError::Unreadable)?;
        Self::parse(&text)
    }

    /// The baseline as pretty JSON, channels sorted.
    pub fn to_json(&self) -> String {
        let mut sorted = self.clone();
        sorted
            .channels
            .sort_by(|a, b| (&a.master, &a.slave, a.unit).cmp(&(&b.master, &b.slave, b.unit)));
        serde_json::to_string_pretty(&sorted).unwrap_or_default()
    }

    /// The channel `key`, if learned.
    pub fn channel(&self, key: &ChannelKey) -> Option<&Channel> {
        self.index.get(key).and_then(|&i| self.channels.get(i))
    }

    /// True when `master` sent any request in the baseline.
    pub fn has_master(&self, master: IpAddr) -> bool {
        self.index.keys().any(|k| k.master == master)
    }

    /// True when (`slave`, `unit`) answered any request in the baseline.
    pub fn has_slave(&self, slave: IpAddr, unit: u8) -> bool {
        self.index
            .keys()
            .any(|k| k.slave == slave && k.unit == unit)
    }

    /// Learns one request on `key`.
    pub fn learn(&mut self, key: ChannelKey, ts_us: u64, request: &Request<'_>) {
        self.requests += 1;
        let at = match self.index.get(&key) {
            Some(&at) => at,
            None if self.channels.len() < MAX_CHANNELS => {
                self.channels.push(Channel {
                    master: key.master.to_string(),
                    slave: key.slave.to_string(),
                    unit: key.unit,
                    ..Channel::default()
                });
                self.index.insert(key, self.channels.len() - 1);
                self.channels.len() - 1
            }
            None => {
                self.channels_dropped += 1;
                return;
            }
        };
        if let Some(c) = self.channels.get_mut(at) {
            c.learn(ts_us, request);
        }
    }

    /// The channels with their parsed keys.
    pub fn keyed(&self) -> impl Iterator<Item = (ChannelKey, &Channel)> {
        self.index
            .iter()
            .filter_map(|(k, &i)| self.channels.get(i).map(|c| (*k, c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_when_they_touch_or_overlap() {
        let mut r = RangeSet::default();
        r.insert(10, 19);
        r.insert(30, 39);
        r.insert(20, 25); // touches 10-19
        assert_eq!(r.0, vec![[10, 25], [30, 39]]);
        r.insert(0, 65535);
        assert_eq!(r.0, vec![[0, 65535]]);
        assert!(r.covers(100, 200));
    }

    #[test]
    fn a_baseline_survives_its_json_form() {
        let mut b = Baseline::new();
        let key = ChannelKey {
            master: "10.0.0.1".parse().unwrap(),
            slave: "10.0.0.2".parse().unwrap(),
            unit: 1,
        };
        let pdu = [16, 0, 5, 0, 2, 4, 0, 7, 0, 9];
        let request = Request::parse(&pdu).unwrap();
        b.learn(key, 1_000_000, &request);
        b.learn(key, 2_000_000, &request);
        let back = Baseline::from_json(&b.to_json()).unwrap();
        let c = back.channel(&key).unwrap();
        assert_eq!(c.requests, 2);
        assert_eq!(c.write_counts["16"], 2);
        assert_eq!(c.writes["holding"].0, vec![[5, 6]]);
        assert_eq!(c.values["holding:5"], [7, 7]);
        assert_eq!(c.polls[0].samples, 2);
        assert!((c.polls[0].mean_s - 1.0).abs() < 1e-9);
        assert!(Baseline::from_json(
            "{\"version\": 2, \"requests\": 0, \"channels_dropped\": 0, \"channels\": []}"
        )
        .is_err());
    }

    #[test]
    fn a_baseline_that_does_not_load_says_which_way() {
        assert!(matches!(
            Baseline::parse("{\"version\": 1, "),
            Err(BaselineError::Json(_))
        ));
        assert!(matches!(
            Baseline::parse("[1, 2]"),
            Err(BaselineError::Shape(_))
        ));
        let mut b = Baseline::new();
        let key = ChannelKey {
            master: "10.0.0.1".parse().unwrap(),
            slave: "10.0.0.2".parse().unwrap(),
            unit: 1,
        };
        b.learn(key, 1, &Request::parse(&[3, 0, 0, 0, 1]).unwrap());
        b.channels[0].master = "x".into();
        let bad = b.to_json();
        match Baseline::parse(&bad) {
            Err(BaselineError::Shape(m)) => assert!(m.contains("channels[0]"), "{m}"),
            other => panic!("{other:?}"),
        }
        let missing = Baseline::read_file(Path::new("/nonexistent/zonegate-baseline.json"));
        assert!(
            missing
                .as_ref()
                .is_err_and(|e| e.to_string().starts_with("cannot read it")),
            "{missing:?}"
        );
    }
}
