//! Sustained records/s of the audit writer in each sync mode, writing to a temp dir.
//!
//! `cargo bench -p zonegate-audit -- --warm-up-time 1 --measurement-time 5`
//! Scenarios (8 concurrent appenders each):
//! - `every`: every record fsynced before its ticket resolves (appenders wait, group commit);
//! - `writes_100pct_durable`: write-class load, every append durable and awaited;
//! - `writes_0pct_durable`: read-class load, nothing durable, tickets collected and awaited at
//!   the end (as the gateway does for reads: it does not wait);
//! - `batch`: fsync every 200 ms, pipelined like the read load.
#![allow(missing_docs)]

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use zonegate_audit::{AuditConfig, AuditHandle, AuditLog, Decision, Event, Kind, SyncMode};

const APPENDERS: u64 = 8;

fn event(i: u64) -> Event {
    Event {
        conduit: Some("C1-OPS-CTRL".into()),
        src: Some("10.20.3.4:50312".into()),
        dst: Some("10.20.1.10:502".into()),
        unit: Some(1),
        tid: Some((i % 65536) as u16),
        fc: Some(16),
        function: Some("write_multiple_registers".into()),
        access: Some("write".into()),
        table: Some("holding".into()),
        address: Some(100),
        quantity: Some(2),
        decision: Some(Decision::Allow),
        reason: Some("allowed".into()),
        rule: Some("ews-setpoints".into()),
        mode: Some("enforce".into()),
        latency_us: Some(850),
        ..Event::new(Kind::Request)
    }
    .with_values([210, 215])
}

/// Runs `iters` appends split over the appenders; `wait_each` = await every ticket in turn.
fn run(h: &Arc<AuditHandle>, iters: u64, durable: bool, wait_each: bool) -> Duration {
    let per = iters.div_ceil(APPENDERS);
    let start = Instant::now();
    let threads: Vec<_> = (0..APPENDERS)
        .map(|t| {
            let h = Arc::clone(h);
            thread::spawn(move || {
                let mut pending = Vec::new();
                for i in 0..per {
                    let ticket = h.append(event(t * per + i), durable);
                    if wait_each {
                        let _ = ticket.wait();
                    } else {
                        pending.push(ticket);
                    }
                }
                for t in pending {
                    let _ = t.wait();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let _ = h.sync().wait();
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("audit_writer");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    let scenarios: [(&str, SyncMode, bool, bool); 4] = [
        ("every", SyncMode::Every, true, true),
        ("writes_100pct_durable", SyncMode::Writes, true, true),
        ("writes_0pct_durable", SyncMode::Writes, false, false),
        ("batch", SyncMode::Batch, false, false),
    ];
    for (name, mode, durable, wait_each) in scenarios {
        let Ok(dir) = tempfile::tempdir() else { return };
        let mut cfg = AuditConfig::new(dir.path().join("bench.log"));
        cfg.sync = mode;
        cfg.gateway = "bench".into();
        let Ok(h) = AuditLog::start(cfg) else { return };
        let h = Arc::new(h);
        let before = h.stats();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| run(&h, iters, durable, wait_each));
        });
        let after = h.stats();
        let records = after.records - before.records;
        let fsyncs = after.fsyncs - before.fsyncs;
        eprintln!(
            "{name}: {records} records, {fsyncs} fsyncs ({:.1} records per fsync)",
            records as f64 / fsyncs.max(1) as f64
        );
        let _ = h.shutdown().wait();
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
