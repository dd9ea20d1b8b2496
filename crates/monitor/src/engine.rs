//! The monitor engine: pairs responses with requests per flow, keeps the counters, runs every
//! detector and learns the baseline, over ADUs handed to it with their timestamps.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use foldhash::HashMap;
use serde::Serialize;
use zonegate_modbus::{diagnostics, FrameError, Request, Response};

use crate::baseline::{table_key, write_table, Baseline, ChannelKey};
use crate::detectors::{Kind, Thresholds};
use crate::inventory::Inventory;

/// Outstanding requests kept per flow; older ones count as unanswered.
const MAX_PENDING: usize = 256;
/// Flows kept at once; the least recently active is closed when a new one needs room.
const MAX_FLOWS: usize = 16_384;
/// Detector state maps (suppression, windows, live polls) are cleared past this size.
const MAX_STATE: usize = 262_144;
/// Answers without a request on a new connection this soon after the first input are taken
/// as the capture starting mid-transaction.
const STARTUP_GRACE_US: u64 = 1_000_000;

/// One TCP connection, client (master) to server (slave).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    /// The client.
    pub client: SocketAddr,
    /// The server (the Modbus port).
    pub server: SocketAddr,
}

/// Which way an ADU went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Client to server: a request.
    ToServer,
    /// Server to client: a response.
    ToClient,
}

/// One ADU as seen on the wire.
#[derive(Debug, Clone, Copy)]
pub struct Adu<'a> {
    /// Microseconds since the Unix epoch.
    pub ts_us: u64,
    /// The connection.
    pub flow: Flow,
    /// Its direction.
    pub side: Side,
    /// MBAP transaction id.
    pub transaction_id: u16,
    /// MBAP unit id.
    pub unit: u8,
    /// The PDU (function code first).
    pub pdu: &'a [u8],
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The detector (stable name).
    pub kind: Kind,
    /// Microseconds since the epoch.
    #[serde(skip)]
    pub ts_us: u64,
    /// The sender of what fired it.
    pub src: SocketAddr,
    /// Its receiver.
    pub dst: SocketAddr,
    /// Unit id, when there was an ADU.
    pub unit: Option<u8>,
    /// Function code, when there was a PDU.
    pub fc: Option<u8>,
    /// What happened, for a person.
    pub message: String,
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The answer half of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// When it came.
    pub ts_us: u64,
    /// Its unit id.
    pub unit: u8,
    /// Its function byte (with 0x80 on an exception).
    pub function_raw: u8,
    /// The exception code, on an exception.
    pub exception: Option<u8>,
}

/// A finished transaction: a request and its answer, or a request left unanswered, or an
/// answer without a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The connection.
    pub flow: Flow,
    /// MBAP transaction id.
    pub transaction_id: u16,
    /// When the request was sent (absent for an unsolicited answer).
    pub request_ts_us: Option<u64>,
    /// The request's unit id.
    pub unit: u8,
    /// The request's function byte.
    pub function: u8,
    /// FC 8 sub-function or FC 43 MEI type.
    pub sub_function: Option<u16>,
    /// `read`, `write`, `diagnostic`, `other`, or `invalid` when the PDU did not parse.
    pub access: &'static str,
    /// The first address and quantity, when the request has a range.
    pub range: Option<(&'static str, u16, u16)>,
    /// The answer, if one came.
    pub answer: Option<Answer>,
}

/// The counters of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Requests (every MBAP-framed ADU to a server).
    pub requests: u64,
    /// Responses (every MBAP-framed ADU to a client).
    pub responses: u64,
    /// Requests per function byte.
    pub requests_by_function: BTreeMap<u8, u64>,
    /// Exception responses per exception code.
    pub exceptions_by_code: BTreeMap<u8, u64>,
    /// Requests that never got an answer.
    pub unanswered: u64,
    /// Alerts per kind, repeats included.
    pub alerts_by_kind: BTreeMap<String, u64>,
    /// Answers matching no request in the first second of input: the input
    /// began between a request and its answer (not `unsolicited_response`).
    pub answers_before_start: u64,
    /// Alerts not listed because the same one was listed within `suppress_s`.
    pub alerts_suppressed: u64,
}

#[derive(Debug)]
struct Pending {
    ts_us: u64,
    unit: u8,
    pdu: Vec<u8>,
}

#[derive(Debug, Default)]
struct FlowState {
    /// Outstanding requests by transaction id; a client that reuses an id before the answer
    /// (after a timeout) has more than one.
    pending: HashMap<u16, Vec<Pending>>,
    pending_count: usize,
    requests: u64,
    last_us: u64,
}

/// A polled request signature on a channel: function, start, quantity.
type PollKey = (ChannelKey, u8, u16, u16);

type AlertKey = (Kind, IpAddr, IpAddr, Option<u8>, Option<u8>);

/// The monitor: feed it ADUs and stream events, read alerts, transactions and counters.
#[derive(Debug)]
pub struct Monitor {
    thresholds: Thresholds,
    baseline: Option<Baseline>,
    learned: Option<Baseline>,
    inventory: Inventory,
    stats: Stats,
    flows: HashMap<Flow, FlowState>,
    suppress: HashMap<AlertKey, u64>,
    exceptions: HashMap<(IpAddr, u8), VecDeque<u64>>,
    flood: HashMap<(IpAddr, IpAddr), (u64, u32)>,
    /// Per polled signature: last time, sum of intervals, intervals in the current window.
    polls: HashMap<PollKey, (u64, f64, u64)>,
    keep_transactions: bool,
    first_us: Option<u64>,
    /// Alerts since the last drain.
    pub alerts: Vec<Alert>,
    /// Finished transactions since the last drain (only when enabled).
    pub transactions: Vec<Transaction>,
}

impl Monitor {
    /// A monitor with `thresholds`, comparing against `baseline` when given.
    pub fn new(thresholds: Thresholds, baseline: Option<Baseline>) -> Self {
        Self {
            thresholds,
            baseline,
            learned: None,
            inventory: Inventory::default(),
            stats: Stats::default(),
            flows: HashMap::default(),
            suppress: HashMap::default(),
            exceptions: HashMap::default(),
            flood: HashMap::default(),
            polls: HashMap::default(),
            keep_transactions: false,
            first_us: None,
            alerts: Vec::new(),
            transactions: Vec::new(),
        }
    }

    /// Changes the thresholds and the baseline (a live reload); the open flows, the counters
    /// and the detectors' windows are kept.
    pub fn set_config(&mut self, thresholds: Thresholds, baseline: Option<Baseline>) {
        self.thresholds = thresholds;
        self.baseline = baseline;
        // Live poll periods were measured against the old baseline's signatures.
        self.polls.clear();
    }

    /// The thresholds in force.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Also learn a baseline from what is fed (read it with [`Self::learned`]).
    pub fn learning(mut self) -> Self {
        self.learned = Some(Baseline::new());
        self
    }

    /// Also record every finished transaction in [`Self::transactions`].
    pub fn recording_transactions(mut self) -> Self {
        self.keep_transactions = true;
        self
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The passive inventory.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The baseline learned so far, when learning.
    pub fn learned(&self) -> Option<&Baseline> {
        self.learned.as_ref()
    }

    /// Flows open now.
    pub fn open_flows(&self) -> usize {
        self.flows.len()
    }

    /// Raises `alert` (subject to the switch-offs and repeat suppression).
    pub fn alert(&mut self, a: Alert) {
        self.fire(a.kind, a.ts_us, a.src, a.dst, a.unit, a.fc, a.message);
    }

    #[allow(clippy::too_many_arguments)]
    fn fire(
        &mut self,
        kind: Kind,
        ts_us: u64,
        src: SocketAddr,
        dst: SocketAddr,
        unit: Option<u8>,
        fc: Option<u8>,
        message: String,
    ) {
        if !self.thresholds.enabled(kind) {
            return;
        }
        *self
            .stats
            .alerts_by_kind
            .entry(kind.as_str().to_string())
            .or_default() += 1;
        if self.suppress.len() > MAX_STATE {
            self.suppress.clear();
        }
        let key = (kind, src.ip(), dst.ip(), unit, fc);
        let window = self.thresholds.suppress_s.saturating_mul(1_000_000);
        match self.suppress.get(&key) {
            Some(&last) if ts_us.saturating_sub(last) < window && window > 0 => {
                self.stats.alerts_suppressed += 1;
                return;
            }
            _ => {
                self.suppress.insert(key, ts_us);
            }
        }
        self.alerts.push(Alert {
            kind,
            ts_us,
            src,
            dst,
            unit,
            fc,
            message,
        });
    }

    /// A framing error on `side` of `flow` (the caller resynchronises or ends the flow).
    pub fn frame_error(&mut self, ts_us: u64, flow: Flow, side: Side, error: &FrameError) {
        let (src, dst) = ends(flow, side);
        let kind = match error {
            FrameError::ProtocolId(_) => Kind::NonModbusTraffic,
            _ => Kind::MalformedFrame,
        };
        self.fire(
            kind,
            ts_us,
            src,
            dst,
            None,
            None,
            format!("MBAP framing: {error}"),
        );
    }

    /// A connection ended: its outstanding requests count as unanswered.
    pub fn flow_closed(&mut self, flow: Flow) {
        if let Some(state) = self.flows.remove(&flow) {
            let all = state
                .pending
                .into_iter()
                .flat_map(|(t, v)| v.into_iter().map(move |p| (t, p)))
                .collect();
            self.expire(flow, all);
        }
    }

    /// End of input: every flow is closed.
    pub fn finish(&mut self) {
        let flows: Vec<Flow> = self.flows.keys().copied().collect();
        for flow in flows {
            self.flow_closed(flow);
        }
    }

    fn expire(&mut self, flow: Flow, mut pending: Vec<(u16, Pending)>) {
        pending.sort_by_key(|(_, p)| p.ts_us);
        for (tid, p) in pending {
            self.stats.unanswered += 1;
            if self.keep_transactions {
                let tx = transaction(flow, tid, &p, None);
                self.transactions.push(tx);
            }
        }
    }

    /// Feeds one ADU.
    pub fn adu(&mut self, adu: Adu<'_>) {
        match adu.side {
            Side::ToServer => self.request(adu),
            Side::ToClient => self.response(adu),
        }
    }

    fn flow_state(&mut self, flow: Flow, ts_us: u64) -> &mut FlowState {
        if !self.flows.contains_key(&flow) && self.flows.len() >= MAX_FLOWS {
            let oldest = self
                .flows
                .iter()
                .min_by_key(|(_, s)| s.last_us)
                .map(|(f, _)| *f);
            if let Some(oldest) = oldest {
                self.flow_closed(oldest);
            }
        }
        let state = self.flows.entry(flow).or_default();
        state.last_us = state.last_us.max(ts_us);
        state
    }

    fn request(&mut self, adu: Adu<'_>) {
        let Adu {
            ts_us,
            flow,
            transaction_id,
            unit,
            pdu,
            ..
        } = adu;
        let Some(&fc) = pdu.first() else { return };
        self.first_us.get_or_insert(ts_us);
        self.stats.requests += 1;
        *self.stats.requests_by_function.entry(fc).or_default() += 1;
        let (src, dst) = (flow.client, flow.server);
        let state = self.flow_state(flow, ts_us);
        state.requests += 1;
        state
            .pending
            .entry(transaction_id)
            .or_default()
            .push(Pending {
                ts_us,
                unit,
                pdu: pdu.to_vec(),
            });
        state.pending_count += 1;
        let mut expired = Vec::new();
        if state.pending_count > MAX_PENDING {
            let oldest = state
                .pending
                .iter()
                .filter_map(|(&t, v)| v.first().map(|p| (t, p.ts_us)))
                .min_by_key(|&(_, ts)| ts)
                .map(|(t, _)| t);
            if let Some(t) = oldest {
                if let Some(v) = state.pending.get_mut(&t) {
                    expired.push((t, v.remove(0)));
                    state.pending_count -= 1;
                    if v.is_empty() {
                        state.pending.remove(&t);
                    }
                }
            }
        }
        self.expire(flow, expired);
        self.inventory.request(src.ip(), dst.ip(), unit, fc);
        let request = match Request::parse(pdu) {
            Ok(r) => r,
            Err(e) => {
                self.fire(
                    Kind::MalformedFrame,
                    ts_us,
                    src,
                    dst,
                    Some(unit),
                    Some(fc),
                    format!("invalid request PDU: {e}"),
                );
                return;
            }
        };
        let key = ChannelKey {
            master: src.ip(),
            slave: dst.ip(),
            unit,
        };
        self.request_detectors(ts_us, src, dst, key, &request);
        if let Some(learned) = &mut self.learned {
            learned.learn(key, ts_us, &request);
        }
    }

    fn request_detectors(
        &mut self,
        ts: u64,
        src: SocketAddr,
        dst: SocketAddr,
        key: ChannelKey,
        request: &Request<'_>,
    ) {
        let fc = request.function().get();
        let unit = Some(key.unit);
        let sub = request.sub_function();
        let fkey = crate::baseline::function_key(request);
        let in_baseline = self
            .baseline
            .as_ref()
            .and_then(|b| b.channel(&key))
            .is_some_and(|c| c.functions.contains_key(&fkey));
        if fc == 8 {
            let kind = match sub {
                Some(diagnostics::FORCE_LISTEN_ONLY) => {
                    Some((Kind::DiagnosticsListenOnly, "Force Listen Only Mode (8/04)"))
                }
                Some(diagnostics::RESTART_COMMUNICATIONS) => Some((
                    Kind::DiagnosticsRestart,
                    "Restart Communications Option (8/01)",
                )),
                Some(diagnostics::CLEAR_COUNTERS) => Some((
                    Kind::DiagnosticsClearCounters,
                    "Clear Counters and Diagnostic Register (8/0A)",
                )),
                Some(diagnostics::CLEAR_OVERRUN_COUNTER) => Some((
                    Kind::DiagnosticsClearCounters,
                    "Clear Overrun Counter and Flag (8/14)",
                )),
                _ => None,
            };
            if let Some((kind, what)) = kind {
                self.fire(
                    kind,
                    ts,
                    src,
                    dst,
                    unit,
                    Some(fc),
                    format!("{what} sent to unit {}", key.unit),
                );
            }
        }
        if fc == 43 && sub == Some(14) && !in_baseline {
            self.fire(
                Kind::DeviceIdentification,
                ts,
                src,
                dst,
                unit,
                Some(fc),
                format!("Read Device Identification (43/14) of unit {}", key.unit),
            );
        }
        if fc == 17 && !in_baseline {
            self.fire(
                Kind::ReportServerId,
                ts,
                src,
                dst,
                unit,
                Some(fc),
                format!("Report Server ID (17) of unit {}", key.unit),
            );
        }
        self.flood(ts, src, dst, unit, fc);
        let Some(baseline) = self.baseline.as_ref() else {
            return;
        };
        let mut found: Vec<(Kind, String)> = Vec::new();
        if !baseline.has_master(key.master) {
            found.push((
                Kind::NewMaster,
                format!("{} sends requests; the baseline never saw it", key.master),
            ));
        }
        if !baseline.has_slave(key.slave, key.unit) {
            found.push((
                Kind::NewSlave,
                format!(
                    "{} unit {} is addressed; the baseline never saw it",
                    key.slave, key.unit
                ),
            ));
        }
        let channel = baseline.channel(&key);
        if !in_baseline {
            found.push((
                Kind::NewFunction,
                format!(
                    "function {fkey} from {} to {} unit {} is not in the baseline",
                    key.master, key.slave, key.unit
                ),
            ));
        }
        if let (Some(c), Some(table)) = (channel, write_table(request)) {
            let written = request.written();
            let writes = c.writes.get(table_key(table));
            if let Some((_, range)) = request.ranges().last() {
                if !writes.is_some_and(|w| w.covers(range.start(), range.last())) {
                    found.push((Kind::WriteOutOfBaseline, format!("write to {} {} by function {fc}: the baseline never saw this master write there", table_key(table), range)));
                } else if let Some(written) = written {
                    for (i, value) in written.iter().enumerate() {
                        let addr = range.start().wrapping_add(i as u16);
                        let seen = c.values.get(&format!("{}:{addr}", table_key(table)));
                        if let Some(&[lo, hi]) = seen {
                            if value < lo || value > hi {
                                found.push((Kind::ValueOutOfBaseline, format!("value {value} written to {} {addr}; the baseline saw {lo}..={hi}", table_key(table))));
                                break;
                            }
                        }
                    }
                }
            }
        }
        if let Some(c) = channel {
            let (start, count) = request
                .ranges()
                .next()
                .map_or((0, 0), |(_, r)| (r.start(), r.count()));
            let t = &self.thresholds;
            let periodic = c.poll(fc, start, count).filter(|p| {
                p.samples >= t.poll_min_samples
                    && p.mean_s > 0.0
                    && p.jitter_s <= p.mean_s * t.poll_max_jitter_ratio
            });
            if let Some(poll) = periodic {
                let (mean, factor, window) =
                    (poll.mean_s, t.poll_rate_factor, t.poll_min_samples.max(1));
                if self.polls.len() > MAX_STATE {
                    self.polls.clear();
                }
                // The mean period over the last `window` intervals, against the baseline's.
                let live = self
                    .polls
                    .entry((key, fc, start, count))
                    .or_insert((ts, 0.0, 0));
                let interval = ts.saturating_sub(live.0) as f64 / 1e6;
                if live.0 != ts || live.2 > 0 {
                    live.1 += interval;
                    live.2 += 1;
                }
                live.0 = ts;
                if live.2 >= window {
                    let period = live.1 / live.2 as f64;
                    *live = (ts, 0.0, 0);
                    if period > mean * factor || period < mean / factor {
                        found.push((Kind::PollRateChange, format!("function {fc} at {start}+{count}: mean period {period:.3} s over the last {window} requests; the baseline's is {mean:.3} s (jitter {:.3} s)", poll.jitter_s)));
                    }
                }
            }
        }
        for (kind, message) in found {
            self.fire(kind, ts, src, dst, unit, Some(fc), message);
        }
    }

    fn flood(&mut self, ts: u64, src: SocketAddr, dst: SocketAddr, unit: Option<u8>, fc: u8) {
        if self.flood.len() > MAX_STATE {
            self.flood.clear();
        }
        let second = ts / 1_000_000;
        let e = self
            .flood
            .entry((src.ip(), dst.ip()))
            .or_insert((second, 0));
        if e.0 != second {
            *e = (second, 0);
        }
        e.1 += 1;
        let limit = self.thresholds.request_flood_per_s;
        if e.1 == limit.saturating_add(1) {
            self.fire(
                Kind::RequestFlood,
                ts,
                src,
                dst,
                unit,
                Some(fc),
                format!(
                    "more than {limit} requests in one second from {} to {}",
                    src.ip(),
                    dst.ip()
                ),
            );
        }
    }

    fn response(&mut self, adu: Adu<'_>) {
        let Adu {
            ts_us,
            flow,
            transaction_id,
            unit,
            pdu,
            ..
        } = adu;
        let Some(&raw) = pdu.first() else { return };
        self.stats.responses += 1;
        let exception = (raw & 0x80 != 0).then(|| pdu.get(1).copied()).flatten();
        if let Some(code) = exception {
            *self.stats.exceptions_by_code.entry(code).or_default() += 1;
        }
        let (src, dst) = (flow.server, flow.client);
        let first_us = *self.first_us.get_or_insert(ts_us);
        let state = self.flow_state(flow, ts_us);
        let taken = state.pending.get_mut(&transaction_id).and_then(|v| {
            // Of several requests with this id, the one the answer fits (else the oldest).
            let at = v
                .iter()
                .position(|p| {
                    p.unit == unit
                        && Request::parse(&p.pdu)
                            .is_ok_and(|r| Response::parse_for(pdu, &r).is_ok())
                })
                .unwrap_or(0);
            (at < v.len()).then(|| v.remove(at))
        });
        if taken.is_some() {
            state.pending_count -= 1;
        }
        if state
            .pending
            .get(&transaction_id)
            .is_some_and(Vec::is_empty)
        {
            state.pending.remove(&transaction_id);
        }
        let mid_stream = ts_us.saturating_sub(first_us) < STARTUP_GRACE_US;
        let Some(pending) = taken else {
            if mid_stream {
                // The capture (or the monitor) started between a request and its answer.
                self.stats.answers_before_start += 1;
                return;
            }
            self.fire(
                Kind::UnsolicitedResponse,
                ts_us,
                src,
                dst,
                Some(unit),
                Some(raw & 0x7f),
                format!(
                    "response with transaction id {transaction_id} matches no outstanding request"
                ),
            );
            if self.keep_transactions {
                self.transactions.push(Transaction {
                    flow,
                    transaction_id,
                    request_ts_us: None,
                    unit,
                    function: raw & 0x7f,
                    sub_function: None,
                    access: "other",
                    range: None,
                    answer: Some(Answer {
                        ts_us,
                        unit,
                        function_raw: raw,
                        exception,
                    }),
                });
            }
            return;
        };
        let answer = Answer {
            ts_us,
            unit,
            function_raw: raw,
            exception,
        };
        let req_fc = pending.pdu.first().copied().unwrap_or(0);
        let mut mismatch = None;
        if unit != pending.unit {
            mismatch = Some(format!(
                "unit id {unit} answers a request to unit {}",
                pending.unit
            ));
        } else if raw & 0x7f != req_fc {
            mismatch = Some(format!(
                "function {} answers a request with function {req_fc}",
                raw & 0x7f
            ));
        }
        let request = Request::parse(&pending.pdu).ok();
        if let (None, Some(request)) = (&mismatch, &request) {
            match Response::parse_for(pdu, request) {
                Ok(Response::ReadDeviceIdentification(id)) => {
                    for o in id.objects.iter() {
                        self.inventory.object(src.ip(), unit, o.id, o.value);
                    }
                }
                Ok(Response::ReportServerId { data }) => {
                    self.inventory.server_id(src.ip(), unit, data)
                }
                Ok(_) => {}
                Err(e) => {
                    // Devices that break a rule of 43/14 (e.g. conformity level 0) still say
                    // who they are: read the objects leniently for the inventory.
                    if pdu.get(..2) == Some(&[43, 14]) {
                        for (id, value) in lenient_objects(pdu) {
                            self.inventory.object(src.ip(), unit, id, value);
                        }
                    }
                    mismatch = Some(format!("response invalid for its request: {e}"));
                }
            }
        }
        if let Some(message) = mismatch {
            self.fire(
                Kind::MismatchedResponse,
                ts_us,
                src,
                dst,
                Some(unit),
                Some(raw & 0x7f),
                message,
            );
        }
        match exception {
            Some(0x01) => self.scan(Kind::FunctionCodeScan, ts_us, src, dst, unit, raw & 0x7f),
            Some(0x02) => self.scan(Kind::AddressScan, ts_us, src, dst, unit, raw & 0x7f),
            _ => {}
        }
        if self.keep_transactions {
            let tx = transaction(flow, transaction_id, &pending, Some(answer));
            self.transactions.push(tx);
        }
    }

    fn scan(&mut self, kind: Kind, ts: u64, src: SocketAddr, dst: SocketAddr, unit: u8, fc: u8) {
        let (count, window_s) = match kind {
            Kind::FunctionCodeScan => (
                self.thresholds.function_code_scan_count,
                self.thresholds.function_code_scan_window_s,
            ),
            _ => (
                self.thresholds.address_scan_count,
                self.thresholds.address_scan_window_s,
            ),
        };
        if self.exceptions.len() > MAX_STATE {
            self.exceptions.clear();
        }
        let code = if kind == Kind::FunctionCodeScan { 1 } else { 2 };
        let window = self.exceptions.entry((dst.ip(), code)).or_default();
        let horizon = ts.saturating_sub(window_s.saturating_mul(1_000_000));
        while window.front().is_some_and(|&t| t < horizon) {
            window.pop_front();
        }
        window.push_back(ts);
        if window.len() >= count as usize {
            window.clear();
            let what = if code == 1 {
                "illegal-function"
            } else {
                "illegal-data-address"
            };
            self.fire(
                kind,
                ts,
                src,
                dst,
                Some(unit),
                Some(fc),
                format!(
                    "{count} {what} exceptions to {} within {window_s} s",
                    dst.ip()
                ),
            );
        }
    }
}

/// The objects of an FC 43/14 answer (`43 14 code conformity more next count {id len value}`),
/// as far as they are well formed.
fn lenient_objects(pdu: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let count = pdu.get(6).copied().unwrap_or(0);
    let mut at = 7;
    for _ in 0..count {
        let (Some(&id), Some(&len)) = (pdu.get(at), pdu.get(at + 1)) else {
            break;
        };
        let Some(value) = pdu.get(at + 2..at + 2 + usize::from(len)) else {
            break;
        };
        out.push((id, value));
        at += 2 + usize::from(len);
    }
    out
}

fn ends(flow: Flow, side: Side) -> (SocketAddr, SocketAddr) {
    match side {
        Side::ToServer => (flow.client, flow.server),
        Side::ToClient => (flow.server, flow.client),
    }
}

fn transaction(flow: Flow, tid: u16, p: &Pending, answer: Option<Answer>) -> Transaction {
    let request = Request::parse(&p.pdu).ok();
    Transaction {
        flow,
        transaction_id: tid,
        request_ts_us: Some(p.ts_us),
        unit: p.unit,
        function: p.pdu.first().copied().unwrap_or(0),
        sub_function: request.as_ref().and_then(Request::sub_function),
        access: request.as_ref().map_or("invalid", |r| r.access().as_str()),
        range: request
            .as_ref()
            .and_then(|r| r.ranges().next())
            .map(|(t, r)| (table_key(t), r.start(), r.count())),
        answer,
    }
}
