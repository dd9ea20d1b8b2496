//! What survives a restart and what the transmit side records: the replay window's position
//! (a datagram captured before a receive-side restart is rejected after it, and recorded), and
//! the transmit side's own audit chain (start, source failures aggregated, recovery, counters,
//! stop) against a device that goes away and comes back.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use zonegate_gateway::sim::{Device, Sim};
use zonegate_policy::{load_str, Replication};
use zonegate_replicate::{ReceiveAgent, ReceiveOptions, Transmitter};

use super::agents::{read_holding, start_audit, wait_for};
use super::common::hmac_key;

fn model(device: SocketAddr) -> Replication {
    let yaml = format!(
        r#"
replications:
  - replication_id: R1-HIST
    connects: [Z3-OPS, Z4-DMZ]
    source: tcp://{device}
    blocks:
      - {{unit: 1, table: holding, range: 0-9, period: 50ms}}
    transmit: {{to: 127.0.0.1:9, key: k, repeat: 2, refresh: 1s, request_timeout: 300ms}}
    receive: {{bind: 127.0.0.1:0, key: k, serve: 127.0.0.1:0, max_age: 2s}}
"#
    );
    load_str(&yaml, "test.yaml").unwrap().replications.remove(0)
}

fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A UDP tap between the agents: forwards while `open`, and keeps every datagram it saw.
async fn tap(
    inbound: UdpSocket,
    to: Arc<Mutex<SocketAddr>>,
    open: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    mut stop: watch::Receiver<bool>,
) {
    let out = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = [0u8; 2048];
    loop {
        let n = tokio::select! {
            r = inbound.recv(&mut buf) => match r { Ok(n) => n, Err(_) => continue },
            _ = stop.changed() => return,
        };
        seen.lock().unwrap().push(buf[..n].to_vec());
        if open.load(Ordering::Relaxed) {
            let dst = *to.lock().unwrap();
            let _ = out.send_to(&buf[..n], dst).await;
        }
    }
}

/// Regression (issue 13): the receive side kept its replay window in memory only, so right
/// after its restart a datagram captured before it was accepted once (real, old data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_captured_before_a_receive_restart_is_replayed_after_it() {
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    sim.device().set_holding(0, 100);
    let r = model(sim.local_addr());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("R1-HIST-receive.state");
    let options = ReceiveOptions {
        tls: None,
        state: Some(state.clone()),
    };
    // First life of the receive side.
    let audit1 = start_audit(&dir.path().join("receive.log"));
    let agent = ReceiveAgent::bind_with(
        r.clone(),
        hmac_key().verify_key(),
        audit1.clone(),
        options.clone(),
    )
    .await
    .unwrap();
    let (replica, udp) = (agent.serve_addr().unwrap(), agent.udp_addr().unwrap());
    let (stop1, stop) = watch::channel(false);
    let first = tokio::spawn(agent.run(stop));
    let tap_in = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tap_addr = tap_in.local_addr().unwrap();
    let to = Arc::new(Mutex::new(udp));
    let open = Arc::new(AtomicBool::new(true));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (stop_tap, tap_stop) = watch::channel(false);
    tokio::spawn(tap(
        tap_in,
        to.clone(),
        open.clone(),
        seen.clone(),
        tap_stop,
    ));
    let mut tr = r.clone();
    tr.transmit.to = tap_addr;
    let tx = Transmitter::new(tr, hmac_key()).await.unwrap();
    let (stop_tx, txs) = watch::channel(false);
    let transmit = tokio::spawn(tx.run(txs));
    let got = wait_for(replica, 0, 1, Duration::from_secs(5), |v| {
        v == &Ok(vec![100])
    })
    .await;
    assert_eq!(got, Ok(vec![100]));
    // The captured datagram: the first one (values 100...), long before the restart.
    let captured = seen.lock().unwrap()[0].clone();
    sim.device().set_holding(0, 200);
    let got = wait_for(replica, 0, 1, Duration::from_secs(5), |v| {
        v == &Ok(vec![200])
    })
    .await;
    assert_eq!(got, Ok(vec![200]));
    // Restart: stop (the position is saved), nothing forwarded meanwhile, start again.
    open.store(false, Ordering::Relaxed);
    stop1.send(true).unwrap();
    first.await.unwrap();
    audit1.shutdown().await.unwrap();
    assert!(state.exists(), "no state file saved at stop");
    let audit_path = dir.path().join("receive.log");
    let audit2 = start_audit(&audit_path);
    let agent =
        ReceiveAgent::bind_with(r.clone(), hmac_key().verify_key(), audit2.clone(), options)
            .await
            .unwrap();
    let (replica2, udp2) = (agent.serve_addr().unwrap(), agent.udp_addr().unwrap());
    let handle = agent.handle();
    let (stop2, stop) = watch::channel(false);
    let second = tokio::spawn(agent.run(stop));
    // The replay: the first datagram the new receive side sees is the old capture.
    let attacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    attacker.send_to(&captured, udp2).await.unwrap();
    let t = Instant::now();
    while handle.counters().rejected == 0 && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let c = handle.counters();
    assert_eq!((c.accepted, c.rejected), (0, 1), "{c:?}");
    assert_eq!(
        read_holding(replica2, 0, 1).await,
        Err(0x0B),
        "old data served"
    );
    // The live stream resumes: newer numbers are accepted.
    *to.lock().unwrap() = udp2;
    open.store(true, Ordering::Relaxed);
    let got = wait_for(replica2, 0, 1, Duration::from_secs(5), |v| {
        v == &Ok(vec![200])
    })
    .await;
    assert_eq!(got, Ok(vec![200]));
    stop_tx.send(true).unwrap();
    transmit.await.unwrap();
    stop_tap.send(true).unwrap();
    stop2.send(true).unwrap();
    second.await.unwrap();
    audit2.shutdown().await.unwrap();
    let recs = records(&audit_path);
    let replayed: Vec<_> = recs.iter().filter(|e| e["reason"] == "replayed").collect();
    assert_eq!(replayed.len(), 1, "{recs:?}");
    assert_eq!(replayed[0]["kind"], "alert");
    assert_eq!(replayed[0]["conduit"], "R1-HIST");
}

/// A TCP relay to `to` that can be cut: while down it closes every connection at once.
async fn cuttable_relay(listener: TcpListener, to: SocketAddr, up: watch::Receiver<bool>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if !*up.borrow() {
            drop(client);
            continue;
        }
        let mut up = up.clone();
        tokio::spawn(async move {
            let Ok(device) = TcpStream::connect(to).await else {
                return;
            };
            let (mut a, mut b) = (client, device);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                _ = up.wait_for(|u| !*u) => {}
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transmit_side_records_start_outage_recovery_counters_and_stop_on_its_own_chain() {
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let (up, up_rx) = watch::channel(true);
    tokio::spawn(cuttable_relay(relay, sim.local_addr(), up_rx));
    let mut r = model(relay_addr);
    let sink = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    r.transmit.to = sink.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("R1-HIST-transmit.log");
    let audit = start_audit(&path);
    let tx = Transmitter::new(r, hmac_key())
        .await
        .unwrap()
        .with_audit(audit.clone())
        .counters_every(Duration::from_millis(400));
    let stats = tx.stats();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(tx.run(stop_rx));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The device goes away for 2.5 s (50 ms period: dozens of failed polls), then returns.
    up.send(false).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    up.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    audit.shutdown().await.unwrap();
    let failures = stats.read_failures.load(Ordering::Relaxed);
    assert!(failures >= 5, "{failures} failed reads");
    let recs = records(&path);
    let mine: Vec<_> = recs.iter().filter(|e| e["conduit"] == "R1-HIST").collect();
    assert_eq!(
        mine.first().map(|e| e["kind"].clone()),
        Some("start".into()),
        "{mine:?}"
    );
    assert!(mine[0]["message"]
        .as_str()
        .unwrap()
        .contains("transmit agent started"));
    assert_eq!(mine[0]["dst"], relay_addr.to_string());
    let last = mine.last().unwrap();
    assert_eq!(last["kind"], "stop", "{mine:?}");
    assert!(
        last["message"].as_str().unwrap().contains("polls="),
        "{last}"
    );
    let failed: Vec<_> = mine
        .iter()
        .filter(|e| e["reason"] == "source_read_failed")
        .collect();
    // Aggregated: the first at once, then one per counters interval (400 ms) at most.
    assert!(
        !failed.is_empty() && (failed.len() as u64) < failures,
        "{failed:?}"
    );
    assert!(failed.len() <= 2500 / 400 + 2, "{} records", failed.len());
    assert_eq!(failed[0]["kind"], "alert");
    assert_eq!(failed[0]["unit"], 1);
    assert_eq!(failed[0]["table"], "holding");
    let recovered: Vec<_> = mine
        .iter()
        .filter(|e| e["reason"] == "source_recovered")
        .collect();
    assert_eq!(recovered.len(), 1, "{mine:?}");
    // Nothing lost from the counts: the recovery counts the whole outage, the failed records
    // what was counted when each was written.
    let counted: u64 = failed
        .iter()
        .map(|e| e["count"].as_u64().unwrap_or(0))
        .sum();
    assert!(counted <= failures, "{failed:?}");
    assert_eq!(recovered[0]["count"].as_u64(), Some(failures));
    assert!(
        mine.iter().filter(|e| e["kind"] == "counters").count() >= 3,
        "{mine:?}"
    );
    let report = zonegate_audit::verify(
        std::slice::from_ref(&path),
        &zonegate_audit::VerifyOptions::default(),
    )
    .unwrap();
    assert!(report.ok, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtu_source_is_accepted_and_opened_on_first_read() {
    let mut r = model("127.0.0.1:1".parse().unwrap());
    r.source = load_str(
        "replications:\n  - replication_id: X\n    connects: [A, B]\n    source: rtu:///dev/ttyUSB0\n    blocks: [{unit: 1, table: holding, range: 0, period: 1s}]\n    transmit: {to: 127.0.0.1:1, key: k}\n    receive: {bind: 127.0.0.1:1, key: k, serve: 127.0.0.1:2}\n",
        "x.yaml",
    )
    .unwrap()
    .replications[0]
        .source
        .clone();
    // Was refused (ZG-C041) before the transmit agent had an RTU link. The line is opened on
    // the first read, so a device path that does not exist yet is no start-up error.
    r.source_runnable().unwrap();
    assert!(Transmitter::new(r, hmac_key()).await.is_ok());
}
