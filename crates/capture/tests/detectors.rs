//! Every detector on crafted traffic that fires it, and the reassembly cases (out of order,
//! retransmitted, gap, impossible MBAP length), through a pcap written here, read back with
//! `read_capture` and fed through the `Reassembler` into the `Monitor`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::SocketAddr;

use zonegate_capture::{read_capture, Event, Reassembler, TcpStats};
use zonegate_monitor::{Alert, Baseline, Kind, Monitor, Stats, Thresholds};

const MASTER: [u8; 4] = [10, 0, 0, 1];
const SLAVE: [u8; 4] = [10, 0, 0, 2];

/// A pcap (Ethernet, microsecond timestamps) being written in memory.
struct Pcap {
    bytes: Vec<u8>,
    /// Next sequence number per direction (client->server, server->client).
    seq: [u32; 2],
}

impl Pcap {
    fn new() -> Self {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&65535u32.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        Self {
            bytes,
            seq: [1000, 5000],
        }
    }

    /// A raw TCP segment with an explicit sequence number.
    fn segment(
        &mut self,
        ts_us: u64,
        to_server: bool,
        client_port: u16,
        seq: u32,
        flags: u8,
        payload: &[u8],
    ) {
        let (src, dst, sport, dport) = if to_server {
            (MASTER, SLAVE, client_port, 502)
        } else {
            (SLAVE, MASTER, 502, client_port)
        };
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 20 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        self.bytes
            .extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&(f.len() as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&(f.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(&f);
    }

    /// The next in-order segment of a direction.
    fn send(&mut self, ts_us: u64, to_server: bool, payload: &[u8]) {
        let d = usize::from(!to_server);
        let seq = self.seq[d];
        self.seq[d] = seq.wrapping_add(payload.len() as u32);
        self.segment(ts_us, to_server, 40000, seq, 0x18, payload);
    }

    fn adu(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
        let mut a = tid.to_be_bytes().to_vec();
        a.extend_from_slice(&[0, 0]);
        a.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
        a.push(unit);
        a.extend_from_slice(pdu);
        a
    }

    fn request(&mut self, ts_us: u64, tid: u16, pdu: &[u8]) {
        self.send(ts_us, true, &Self::adu(tid, 1, pdu));
    }

    fn response(&mut self, ts_us: u64, tid: u16, pdu: &[u8]) {
        self.send(ts_us, false, &Self::adu(tid, 1, pdu));
    }
}

struct Outcome {
    kinds: Vec<Kind>,
    stats: Stats,
    tcp: TcpStats,
    baseline: Baseline,
}

fn run(pcap: &Pcap, baseline: Option<Baseline>, thresholds: Thresholds) -> Outcome {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&pcap.bytes).unwrap();
    let mut monitor = Monitor::new(thresholds, baseline).learning();
    let mut reassembler = Reassembler::new(vec![502]);
    let handle = |ev: Event<'_>, m: &mut Monitor| match ev {
        Event::Adu(adu) => m.adu(adu),
        Event::FrameError {
            ts_us,
            flow,
            side,
            error,
        } => m.frame_error(ts_us, flow, side, &error),
        Event::Gap { ts_us, flow, .. } => m.alert(Alert {
            kind: Kind::StreamGap,
            ts_us,
            src: flow.client,
            dst: flow.server,
            unit: None,
            fc: None,
            message: "gap".into(),
        }),
        Event::Closed(flow) => m.flow_closed(flow),
    };
    let summary = read_capture(file.path(), &mut |ts, lt, data| {
        reassembler.frame(ts, lt, data, &mut |ev| handle(ev, &mut monitor));
    })
    .unwrap();
    assert!(summary.truncated.is_none());
    reassembler.finish(&mut |ev| handle(ev, &mut monitor));
    monitor.finish();
    let mut kinds: Vec<Kind> = monitor.alerts.iter().map(|a| a.kind).collect();
    kinds.sort();
    kinds.dedup();
    Outcome {
        kinds,
        stats: monitor.stats().clone(),
        tcp: reassembler.stats().clone(),
        baseline: monitor.learned().unwrap().clone(),
    }
}

/// Normal polling: FC 3 at 0+10 every second, answered; an FC 6 write of 100 to register 5.
fn normal(pcap: &mut Pcap, start_s: u64, n: u16, period_us: u64) {
    for i in 0..n {
        let ts = start_s * 1_000_000 + u64::from(i) * period_us;
        pcap.request(ts, i, &[3, 0, 0, 0, 10]);
        let mut resp = vec![3, 20];
        resp.extend_from_slice(&[0; 20]);
        pcap.response(ts + 2000, i, &resp);
        if i % 5 == 0 {
            pcap.request(ts + 3000, 10_000 + i, &[6, 0, 5, 0, 100]);
            pcap.response(ts + 4000, 10_000 + i, &[6, 0, 5, 0, 100]);
        }
    }
}

fn baseline() -> Baseline {
    let mut p = Pcap::new();
    normal(&mut p, 100, 30, 1_000_000);
    let b = run(&p, None, Thresholds::default()).baseline;
    // Through its JSON form, as `--baseline` reads it.
    Baseline::from_json(&b.to_json()).unwrap()
}

#[test]
fn normal_traffic_is_silent_against_its_own_baseline() {
    let mut p = Pcap::new();
    normal(&mut p, 100, 30, 1_000_000);
    let out = run(&p, Some(baseline()), Thresholds::default());
    assert_eq!(out.kinds, vec![], "{:?}", out.stats.alerts_by_kind);
    assert_eq!(out.stats.requests, 36);
    assert_eq!(out.stats.responses, 36);
    assert_eq!(out.stats.unanswered, 0);
}

#[test]
fn diagnostics_and_reconnaissance_fire() {
    let mut p = Pcap::new();
    normal(&mut p, 100, 2, 1_000_000);
    p.request(110_000_000, 1000, &[8, 0, 4, 0, 0]);
    p.request(111_000_000, 1001, &[8, 0, 1, 0, 0]);
    p.request(112_000_000, 1002, &[8, 0, 0x0a, 0, 0]);
    p.request(113_000_000, 1003, &[8, 0, 0x14, 0, 0]);
    p.request(114_000_000, 1004, &[43, 14, 1, 0]);
    p.request(115_000_000, 1005, &[17]);
    let out = run(&p, None, Thresholds::default());
    for k in [
        Kind::DiagnosticsListenOnly,
        Kind::DiagnosticsRestart,
        Kind::DiagnosticsClearCounters,
        Kind::DeviceIdentification,
        Kind::ReportServerId,
    ] {
        assert!(out.kinds.contains(&k), "{k} missing from {:?}", out.kinds);
    }
    assert_eq!(out.stats.alerts_by_kind["diagnostics_clear_counters"], 2);
}

#[test]
fn function_code_scan_fires_at_three_illegal_function_exceptions() {
    let mut p = Pcap::new();
    for (i, fc) in [65u8, 66, 67].iter().enumerate() {
        let ts = 10_000_000 + i as u64 * 1_000_000;
        p.request(ts, i as u16, &[*fc]);
        p.response(ts + 1000, i as u16, &[fc | 0x80, 1]);
    }
    let out = run(&p, None, Thresholds::default());
    assert_eq!(out.kinds, vec![Kind::FunctionCodeScan]);
    // Two are below the threshold.
    let mut p = Pcap::new();
    for i in 0..2u16 {
        let ts = 10_000_000 + u64::from(i) * 1_000_000;
        p.request(ts, i, &[65]);
        p.response(ts + 1000, i, &[65 | 0x80, 1]);
    }
    assert_eq!(run(&p, None, Thresholds::default()).kinds, vec![]);
}

#[test]
fn address_scan_fires_at_five_illegal_address_exceptions_within_the_window() {
    let scan = |spacing_us: u64| {
        let mut p = Pcap::new();
        for i in 0..5u16 {
            let ts = 10_000_000 + u64::from(i) * spacing_us;
            p.request(ts, i, &[3, (i >> 8) as u8 * 0x10, 0, 0, 1]);
            p.response(ts + 1000, i, &[0x83, 2]);
        }
        run(&p, None, Thresholds::default()).kinds
    };
    assert_eq!(scan(1_000_000), vec![Kind::AddressScan]);
    // Spread over more than 60 s: no scan.
    assert_eq!(scan(20_000_000), vec![]);
}

#[test]
fn baseline_detectors_fire_on_what_the_baseline_never_saw() {
    let b = baseline();
    let mut p = Pcap::new();
    normal(&mut p, 200, 2, 1_000_000);
    p.request(210_000_000, 500, &[6, 0, 9, 0, 1]); // register 9 never written
    p.request(211_000_000, 501, &[6, 0, 5, 0x10, 0]); // register 5, value 4096 > 100
    p.request(212_000_000, 502, &[4, 0, 0, 0, 1]); // FC 4 never used
    let out = run(&p, Some(b), Thresholds::default());
    for k in [
        Kind::WriteOutOfBaseline,
        Kind::ValueOutOfBaseline,
        Kind::NewFunction,
    ] {
        assert!(out.kinds.contains(&k), "{k} missing from {:?}", out.kinds);
    }
    assert!(!out.kinds.contains(&Kind::NewMaster));
}

#[test]
fn poll_rate_change_fires_when_the_period_drops() {
    let mut p = Pcap::new();
    normal(&mut p, 200, 30, 100_000); // 10x faster than the baseline's 1 s
    let out = run(&p, Some(baseline()), Thresholds::default());
    assert!(out.kinds.contains(&Kind::PollRateChange), "{:?}", out.kinds);
}

#[test]
fn request_flood_fires_above_the_rate() {
    let mut p = Pcap::new();
    for i in 0..150u16 {
        p.request(10_000_000 + u64::from(i) * 5000, i, &[3, 0, 0, 0, 1]);
    }
    let out = run(&p, None, Thresholds::default());
    assert_eq!(out.kinds, vec![Kind::RequestFlood]);
    assert_eq!(out.stats.unanswered, 150);
}

#[test]
fn unsolicited_and_mismatched_responses_fire() {
    let mut p = Pcap::new();
    normal(&mut p, 100, 2, 1_000_000);
    p.response(110_000_000, 4242, &[3, 2, 0, 0]); // nothing asked
    p.request(111_000_000, 7, &[3, 0, 0, 0, 2]);
    p.response(111_001_000, 7, &[4, 4, 0, 0, 0, 0]); // FC 4 answers FC 3
    let out = run(&p, None, Thresholds::default());
    assert_eq!(
        out.kinds,
        vec![Kind::UnsolicitedResponse, Kind::MismatchedResponse]
    );
}

#[test]
fn malformed_and_non_modbus_frames_fire_and_the_stream_resynchronises() {
    let mut p = Pcap::new();
    p.request(10_000_000, 1, &[3, 0, 0, 0, 1]);
    // MBAP length 0x8804 (as in the Quickdraw data), then protocol id 0x0010.
    p.send(11_000_000, true, &[0, 2, 0, 0, 0x88, 0x04, 1, 3, 0, 0]);
    // While resynchronising, bytes are skipped without a second alert; a fresh connection
    // that starts with protocol id 0x0010 is reported as not Modbus.
    p.send(11_500_000, true, &[0, 3, 0, 0x10, 0, 6, 1, 3, 0, 0, 0, 1]);
    p.segment(
        12_000_000,
        true,
        40001,
        77,
        0x18,
        &[0, 3, 0, 0x10, 0, 6, 1, 3, 0, 0, 0, 1],
    );
    // The next segment starts a valid ADU again: it is counted.
    p.request(13_000_000, 4, &[3, 0, 0, 0, 1]);
    p.request(14_000_000, 5, &[3, 0, 0, 0]); // PDU too short for FC 3
    let out = run(&p, None, Thresholds::default());
    assert_eq!(
        out.kinds,
        vec![Kind::MalformedFrame, Kind::NonModbusTraffic]
    );
    assert_eq!(out.stats.requests, 3);
    assert_eq!(out.stats.alerts_by_kind["malformed_frame"], 2);
}

#[test]
fn retransmitted_and_out_of_order_segments_count_once() {
    let mut p = Pcap::new();
    let a = Pcap::adu(1, 1, &[3, 0, 0, 0, 1]);
    let b = Pcap::adu(2, 1, &[3, 0, 1, 0, 1]);
    let c = Pcap::adu(3, 1, &[3, 0, 2, 0, 1]);
    let s = 1000u32;
    p.segment(1_000_000, true, 40000, s, 0x18, &a);
    p.segment(1_000_100, true, 40000, s, 0x18, &a); // retransmission
    p.segment(1_000_200, true, 40000, s + 24, 0x18, &c); // ahead of b
    p.segment(1_000_300, true, 40000, s + 12, 0x18, &b);
    p.segment(
        1_000_400,
        true,
        40000,
        s + 6,
        0x18,
        &[a.as_slice(), b.as_slice()].concat()[6..],
    ); // overlap
    let out = run(&p, None, Thresholds::default());
    assert_eq!(out.stats.requests, 3);
    assert_eq!(out.stats.requests_by_function[&3], 3);
    assert_eq!(out.tcp.retransmitted, 2);
    assert_eq!(out.tcp.out_of_order, 1);
    assert_eq!(out.kinds, vec![]);
}

#[test]
fn a_gap_is_reported_and_framing_restarts_after_it() {
    let mut p = Pcap::new();
    let s = 1000u32;
    p.segment(
        1_000_000,
        true,
        40000,
        s,
        0x18,
        &Pcap::adu(1, 1, &[3, 0, 0, 0, 1]),
    );
    // 12 bytes are never captured; more than the hold limit arrive after the hole.
    for i in 0..70u32 {
        p.segment(
            2_000_000 + u64::from(i),
            true,
            40000,
            s + 24 + i * 12,
            0x18,
            &Pcap::adu(10 + i as u16, 1, &[3, 0, 0, 0, 1]),
        );
    }
    let out = run(
        &p,
        None,
        Thresholds {
            request_flood_per_s: 1000,
            ..Thresholds::default()
        },
    );
    assert!(out.kinds.contains(&Kind::StreamGap), "{:?}", out.kinds);
    assert_eq!(out.stats.requests, 71);
    assert_eq!(out.tcp.gaps, 1);
}

#[test]
fn a_truncated_capture_is_reported_not_an_error() {
    let mut p = Pcap::new();
    p.request(1_000_000, 1, &[3, 0, 0, 0, 1]);
    let cut = p.bytes.len() - 5;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&p.bytes[..cut]).unwrap();
    let summary = read_capture(file.path(), &mut |_, _, _| {}).unwrap();
    assert!(summary.truncated.is_some());
    assert_eq!(summary.frames, 0);
    let mut garbage = tempfile::NamedTempFile::new().unwrap();
    garbage.write_all(b"this is not a capture at all").unwrap();
    assert!(read_capture(garbage.path(), &mut |_, _, _| {}).is_err());
}

#[test]
fn new_master_and_new_slave_fire_against_a_baseline() {
    let b = baseline();
    let mut p = Pcap::new();
    normal(&mut p, 200, 1, 1_000_000);
    let out = run(&p, Some(b.clone()), Thresholds::default());
    assert_eq!(out.kinds, vec![]);
    // The same traffic from another unit id: the slave (unit) is new.
    let mut q = Pcap::new();
    q.send(200_000_000, true, &Pcap::adu(1, 9, &[3, 0, 0, 0, 10]));
    let out = run(&q, Some(b), Thresholds::default());
    assert!(out.kinds.contains(&Kind::NewSlave), "{:?}", out.kinds);
    let _: SocketAddr = "10.0.0.1:1".parse().unwrap();
}

/// Regression (modbus_test.pcap): an HMI reuses a transaction id after its request timed out;
/// the late answer to the first request fits the first, not the second, and neither is a
/// mismatch nor unsolicited.
#[test]
fn reused_transaction_id_after_a_timeout_is_not_a_mismatch() {
    let mut p = Pcap::new();
    p.request(10_000_000, 504, &[6, 0, 4, 0, 1]);
    p.request(13_000_000, 504, &[6, 0, 5, 0, 1]);
    p.response(13_100_000, 504, &[6, 0, 4, 0, 1]);
    p.response(13_200_000, 504, &[6, 0, 5, 0, 1]);
    let out = run(&p, None, Thresholds::default());
    assert_eq!(out.kinds, vec![]);
    assert_eq!(out.stats.unanswered, 0);
}

/// Regression (ModbusTCP.pcap): the capture starts while answers to earlier requests are in
/// flight; those are not unsolicited. Later ones are.
#[test]
fn answers_in_flight_when_the_capture_starts_are_not_unsolicited() {
    let mut p = Pcap::new();
    p.request(10_000_000, 1, &[3, 0, 0, 0, 1]);
    p.response(10_000_500, 31998, &[3, 2, 0, 0]);
    p.response(10_001_000, 1, &[3, 2, 0, 0]);
    let out = run(&p, None, Thresholds::default());
    assert_eq!(out.kinds, vec![]);
    assert_eq!(out.stats.answers_before_start, 1);
    p.response(20_000_000, 31999, &[3, 2, 0, 0]);
    assert_eq!(
        run(&p, None, Thresholds::default()).kinds,
        vec![Kind::UnsolicitedResponse]
    );
}
