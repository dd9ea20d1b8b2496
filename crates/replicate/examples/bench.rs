//! Replication benchmark (run by `scripts/bench-replicate.sh`): latency from the source read to
//! the replica showing the value, and points per second, at 1, 100 and 10,000 registers per
//! period, against polling the device directly. Everything in one process on loopback:
//! `zonegate sim`'s device, the transmit agent, the receive agent, a Modbus client. Prints one
//! JSON object per size. Never a pass/fail: it prints numbers.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use zonegate_gateway::sim::{Device, Sim};
use zonegate_modbus::{tcp, AddressRange, Request, TcpDeframer, UnitId};
use zonegate_policy::{load_str, ReplicaTable, Upstream};
use zonegate_replicate::{DeviceLink, HmacKey, ReceiveAgent, TagKey, Transmitter};

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

async fn read_one(s: &mut TcpStream, address: u16) -> Option<u16> {
    let [ah, al] = address.to_be_bytes();
    let mut adu = [0u8; 260];
    let n = tcp::encode_adu(1, UnitId::new(1), &[3, ah, al, 0, 1], &mut adu).unwrap();
    s.write_all(&adu[..n]).await.unwrap();
    let mut d = TcpDeframer::new();
    let mut buf = [0u8; 64];
    loop {
        if let Some(a) = d.next_adu().unwrap() {
            return (a.pdu[0] == 3).then(|| u16::from_be_bytes([a.pdu[2], a.pdu[3]]));
        }
        let got = s.read(&mut buf).await.unwrap();
        d.feed(&buf[..got]);
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(n: u16, period_ms: u64, samples: usize) -> serde_json::Value {
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let yaml = format!(
        "replications:\n  - replication_id: BENCH\n    connects: [A, B]\n    source: tcp://{}\n    blocks: [{{unit: 1, table: holding, range: 0-{}, period: {period_ms}ms}}]\n    transmit: {{to: 127.0.0.1:9, key: k, refresh: 30s}}\n    receive: {{bind: 127.0.0.1:0, key: k, serve: 127.0.0.1:0, max_age: 5s}}\n",
        sim.local_addr(),
        n - 1
    );
    let mut r = load_str(&yaml, "bench.yaml")
        .unwrap()
        .replications
        .remove(0);
    let key = TagKey::Hmac(Box::new(HmacKey::new(&[1u8; 32])));
    let audit = zonegate_audit::AuditLog::disabled();
    let agent = ReceiveAgent::bind(r.clone(), key.verify_key(), audit)
        .await
        .unwrap();
    let replica: SocketAddr = agent.serve_addr().unwrap();
    r.transmit.to = agent.udp_addr().unwrap();
    let handle = agent.handle();
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(agent.run(stop.clone()));
    let tx = Transmitter::new(r.clone(), key).await.unwrap();
    let tx_stats = tx.stats();
    tokio::spawn(tx.run(stop));
    let mut client = TcpStream::connect(replica).await.unwrap();
    client.set_nodelay(true).unwrap();
    // Wait for the first image.
    let t = Instant::now();
    while read_one(&mut client, 0).await.is_none() && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut source_to_visible = Vec::new();
    let mut write_to_visible = Vec::new();
    for i in 0..samples {
        let address = ((i as u32 * 7919) % u32::from(n)) as u16;
        let marker = 10_000 + i as u16;
        let written = Instant::now();
        sim.device().set_holding(address, marker);
        let limit = Instant::now() + Duration::from_secs(5);
        while Instant::now() < limit {
            if read_one(&mut client, address).await == Some(marker) {
                let visible_us = now_us();
                let w = written.elapsed().as_secs_f64() * 1000.0;
                if let Some(src) = handle.source_us(1, ReplicaTable::Holding, address) {
                    source_to_visible.push(visible_us.saturating_sub(src) as f64 / 1000.0);
                }
                write_to_visible.push(w);
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    // Delivered points per second over a 3 s window.
    let polls0 = tx_stats.polls.load(std::sync::atomic::Ordering::Relaxed);
    let c0 = handle.counters();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let polls = tx_stats.polls.load(std::sync::atomic::Ordering::Relaxed) - polls0;
    let c1 = handle.counters();
    let elapsed = t0.elapsed().as_secs_f64();
    let replicated_pps = f64::from(n) * polls as f64 / elapsed;
    let _ = stop_tx.send(true);

    // Direct polling of the device: closed loop of full reads of the block.
    let up = Upstream::Tcp {
        host: "127.0.0.1".into(),
        port: sim.local_addr().port(),
    };
    let mut link = DeviceLink::for_upstream(&up).unwrap();
    let mut direct = Vec::new();
    let t0 = Instant::now();
    let mut reads = 0u64;
    while t0.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        let mut at = 0u32;
        while at < u32::from(n) {
            let c = (u32::from(n) - at).min(125) as u16;
            let req = Request::ReadHoldingRegisters(AddressRange::new(at as u16, c).unwrap());
            link.call(UnitId::new(1), &req, Duration::from_secs(2))
                .await
                .unwrap();
            at += u32::from(c);
        }
        direct.push(t.elapsed().as_secs_f64() * 1000.0);
        reads += 1;
    }
    let direct_pps = f64::from(n) * reads as f64 / t0.elapsed().as_secs_f64();
    sim.stop().await;
    serde_json::json!({
        "registers": n,
        "period_ms": period_ms,
        "samples": source_to_visible.len(),
        "source_to_visible_ms": {"p50": pct(&mut source_to_visible, 0.5), "p99": pct(&mut source_to_visible, 0.99)},
        "write_to_visible_ms": {"p50": pct(&mut write_to_visible, 0.5), "p99": pct(&mut write_to_visible, 0.99)},
        "replicated_points_per_s": replicated_pps,
        "datagrams_lost": c1.lost - c0.lost,
        "direct_read_ms": {"p50": pct(&mut direct, 0.5), "p99": pct(&mut direct, 0.99)},
        "direct_points_per_s": direct_pps,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let period: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100);
    let samples: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    for n in [1u16, 100, 10_000] {
        println!("{}", run(n, period, samples).await);
    }
}
