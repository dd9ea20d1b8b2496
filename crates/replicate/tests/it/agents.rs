//! Both agents on loopback against the simulated device: replica reads, writes refused,
//! staleness when the transmit side stops, and a lossy relay that drops, reorders, duplicates,
//! corrupts and replays datagrams.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use zonegate_audit::{AuditConfig, AuditHandle, AuditLog};
use zonegate_gateway::sim::{Device, Sim};
use zonegate_modbus::{tcp, TcpDeframer, UnitId};
use zonegate_policy::{load_str, Replication};
use zonegate_replicate::{ReceiveAgent, ReceiveHandle, TagKey, Transmitter};

use super::common::hmac_key;

/// Sends one request PDU to unit 1 and returns the response PDU.
pub(crate) async fn call(addr: SocketAddr, pdu: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut adu = [0u8; 260];
    let n = tcp::encode_adu(7, UnitId::new(1), pdu, &mut adu).unwrap();
    s.write_all(&adu[..n]).await.unwrap();
    let mut d = TcpDeframer::new();
    let mut buf = [0u8; 300];
    loop {
        if let Some(a) = d.next_adu().unwrap() {
            assert_eq!(a.transaction_id(), 7);
            return a.pdu.to_vec();
        }
        let got = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(got > 0, "replica closed the connection");
        d.feed(&buf[..got]);
    }
}

/// FC 3 from the replica: the registers, or the exception code.
pub(crate) async fn read_holding(addr: SocketAddr, start: u16, count: u16) -> Result<Vec<u16>, u8> {
    let [sh, sl] = start.to_be_bytes();
    let [ch, cl] = count.to_be_bytes();
    let r = call(addr, &[3, sh, sl, ch, cl]).await;
    if r[0] == 0x83 {
        return Err(r[1]);
    }
    assert_eq!(r[0], 3);
    assert_eq!(usize::from(r[1]), usize::from(count) * 2);
    Ok(r[2..]
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect())
}

pub(crate) struct Pair {
    pub(crate) sim: Sim,
    pub(crate) replica: SocketAddr,
    pub(crate) udp: SocketAddr,
    pub(crate) handle: ReceiveHandle,
    pub(crate) replication: Replication,
    pub(crate) audit: AuditHandle,
    pub(crate) audit_path: PathBuf,
    pub(crate) stop_rx: watch::Sender<bool>,
    pub(crate) _dir: tempfile::TempDir,
}

fn model(device: SocketAddr, max_age: &str, period: &str) -> Replication {
    let yaml = format!(
        r#"
replications:
  - replication_id: R1-HIST
    connects: [Z3-OPS, Z4-DMZ]
    source: tcp://{device}
    blocks:
      - {{unit: 1, table: holding, range: 0-199, period: {period}}}
      - {{unit: 1, table: coils, range: 0-15, period: {period}}}
    transmit: {{to: 127.0.0.1:9, key: k, repeat: 2, refresh: 1s, request_timeout: 500ms}}
    receive: {{bind: 127.0.0.1:0, key: k, serve: 127.0.0.1:0, max_age: {max_age}}}
"#
    );
    load_str(&yaml, "test.yaml").unwrap().replications.remove(0)
}

pub(crate) fn start_audit(path: &Path) -> AuditHandle {
    let mut c = AuditConfig::new(path);
    c.min_free_bytes = 0;
    c.gateway = "replica-test".into();
    AuditLog::start(c).unwrap()
}

/// The receive agent and a simulated device; the transmit side is started by the test.
pub(crate) async fn receive_side(max_age: &str) -> Pair {
    receive_side_every(max_age, "100ms").await
}

/// The same, with the blocks read every `period`.
pub(crate) async fn receive_side_every(max_age: &str, period: &str) -> Pair {
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let replication = model(sim.local_addr(), max_age, period);
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("receive.log");
    let audit = start_audit(&audit_path);
    let agent = ReceiveAgent::bind(replication.clone(), hmac_key().verify_key(), audit.clone())
        .await
        .unwrap();
    let replica = agent.serve_addr().unwrap();
    let udp = agent.udp_addr().unwrap();
    let handle = agent.handle();
    let (stop_rx, stop) = watch::channel(false);
    tokio::spawn(agent.run(stop));
    Pair {
        sim,
        replica,
        udp,
        handle,
        replication,
        audit,
        audit_path,
        stop_rx,
        _dir: dir,
    }
}

/// Starts a transmit agent sending to `to`; returns its stop switch.
pub(crate) async fn transmit(r: &Replication, to: SocketAddr, key: TagKey) -> watch::Sender<bool> {
    let mut r = r.clone();
    r.transmit.to = to;
    let tx = Transmitter::new(r, key).await.unwrap();
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(tx.run(stop));
    stop_tx
}

/// Polls the replica until `f` holds for a read of `start..start+count`, at most `limit`.
pub(crate) async fn wait_for(
    replica: SocketAddr,
    start: u16,
    count: u16,
    limit: Duration,
    f: impl Fn(&Result<Vec<u16>, u8>) -> bool,
) -> Result<Vec<u16>, u8> {
    let t = Instant::now();
    loop {
        let r = read_holding(replica, start, count).await;
        if f(&r) || t.elapsed() > limit {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn audit_reasons(p: &Pair) -> Vec<serde_json::Value> {
    p.audit.sync().await.unwrap();
    std::fs::read_to_string(&p.audit_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn has_reason(records: &[serde_json::Value], reason: &str) -> bool {
    records.iter().any(|r| r["reason"] == reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_shows_the_device_and_follows_changes() {
    let p = receive_side("1s").await;
    p.sim.device().set_holding(10, 1234);
    let _tx = transmit(&p.replication, p.udp, hmac_key()).await;
    let got = wait_for(p.replica, 10, 1, Duration::from_secs(5), |r| {
        r.as_ref().is_ok_and(|v| v == &[1234])
    })
    .await;
    assert_eq!(got, Ok(vec![1234]));
    p.sim.device().set_holding(10, 4321);
    let got = wait_for(p.replica, 10, 1, Duration::from_secs(5), |r| {
        r.as_ref().is_ok_and(|v| v == &[4321])
    })
    .await;
    assert_eq!(got, Ok(vec![4321]));
    // A read across the whole block, and one past it.
    assert_eq!(
        read_holding(p.replica, 0, 125).await.map(|v| v.len()),
        Ok(125)
    );
    assert_eq!(read_holding(p.replica, 199, 2).await, Err(0x02));
    let c = p.handle.counters();
    assert!(c.accepted > 0 && c.duplicates > 0, "{c:?}");
    assert_eq!(c.rejected, 0, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_diagnostics_on_the_replica_get_01_and_are_recorded() {
    let p = receive_side("1s").await;
    let _tx = transmit(&p.replication, p.udp, hmac_key()).await;
    wait_for(p.replica, 0, 1, Duration::from_secs(5), Result::is_ok)
        .await
        .unwrap();
    for (pdu, fc) in [
        (vec![6, 0, 10, 0, 1], 6),                        // write single register
        (vec![16, 0, 10, 0, 1, 2, 0, 1], 16),             // write multiple registers
        (vec![5, 0, 0, 0xFF, 0], 5),                      // write single coil
        (vec![15, 0, 0, 0, 1, 1, 1], 15),                 // write multiple coils
        (vec![8, 0, 0, 0x12, 0x34], 8),                   // diagnostics: return query data
        (vec![23, 0, 0, 0, 1, 0, 10, 0, 1, 2, 0, 1], 23), // read/write multiple
        (vec![43, 14, 1, 0], 43),                         // read device identification
    ] {
        assert_eq!(
            call(p.replica, &pdu).await,
            vec![fc | 0x80, 0x01],
            "FC {fc}"
        );
    }
    assert_eq!(p.sim.device().holding(10), 0, "a write reached the device");
    let records = audit_reasons(&p).await;
    let denied = records
        .iter()
        .filter(|r| r["reason"] == "replica_is_read_only" && r["decision"] == "deny")
        .count();
    assert_eq!(denied, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_answers_0b_once_the_transmit_side_stops() {
    let p = receive_side("600ms").await;
    p.sim.device().set_holding(3, 33);
    let tx = transmit(&p.replication, p.udp, hmac_key()).await;
    wait_for(p.replica, 3, 1, Duration::from_secs(5), |r| {
        r == &Ok(vec![33])
    })
    .await
    .unwrap();
    tx.send(true).unwrap();
    let stopped = Instant::now();
    let r = wait_for(p.replica, 3, 1, Duration::from_secs(5), |r| r == &Err(0x0B)).await;
    assert_eq!(r, Err(0x0B));
    // Not before max_age (600 ms) minus the last period, within max_age plus slack.
    let after = stopped.elapsed();
    assert!(after >= Duration::from_millis(400), "stale after {after:?}");
    assert!(
        after <= Duration::from_millis(600 + 1000),
        "stale after {after:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let records = audit_reasons(&p).await;
    assert!(has_reason(&records, "stale"), "no stale alert: {records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_is_0b_when_the_device_is_gone_even_though_the_transmit_side_runs() {
    let p = receive_side("600ms").await;
    p.sim.device().set_holding(3, 33);
    let _tx = transmit(&p.replication, p.udp, hmac_key()).await;
    wait_for(p.replica, 3, 1, Duration::from_secs(5), |r| {
        r == &Ok(vec![33])
    })
    .await
    .unwrap();
    let Pair { sim, replica, .. } = p;
    sim.stop().await;
    let r = wait_for(replica, 3, 1, Duration::from_secs(5), |r| r == &Err(0x0B)).await;
    assert_eq!(r, Err(0x0B));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_datagrams_from_another_key_are_alerts_and_change_nothing() {
    let p = receive_side("1s").await;
    p.sim.device().set_holding(0, 11);
    let _tx = transmit(&p.replication, p.udp, hmac_key()).await;
    wait_for(p.replica, 0, 1, Duration::from_secs(5), |r| {
        r == &Ok(vec![11])
    })
    .await
    .unwrap();
    // A forger with the wrong key, and with Ed25519 against an HMAC receiver.
    let mut sim2 = Device::new();
    sim2 = sim2.with_unit(None);
    sim2.set_holding(0, 6666);
    let forger = Sim::start("127.0.0.1:0".parse().unwrap(), sim2)
        .await
        .unwrap();
    let mut forged = p.replication.clone();
    forged.source = zonegate_policy::load_str(
        &format!(
            "replications:\n  - replication_id: X\n    connects: [A, B]\n    source: tcp://{}\n    blocks: [{{unit: 1, table: holding, range: 0, period: 1s}}]\n    transmit: {{to: 127.0.0.1:1, key: k}}\n    receive: {{bind: 127.0.0.1:1, key: k, serve: 127.0.0.1:2}}\n",
            forger.local_addr()
        ),
        "x.yaml",
    )
    .unwrap()
    .replications[0]
        .source
        .clone();
    let wrong = TagKey::Hmac(Box::new(zonegate_replicate::HmacKey::new(&[9u8; 32])));
    let stop = transmit(&forged, p.udp, wrong).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.send(true).unwrap();
    assert_eq!(read_holding(p.replica, 0, 1).await, Ok(vec![11]));
    let c = p.handle.counters();
    assert!(c.rejected > 0, "{c:?}");
    let records = audit_reasons(&p).await;
    assert!(has_reason(&records, "bad_tag"), "{records:?}");
    // Aggregated: far fewer records than rejected datagrams, with a count on the later ones.
    let n = records.iter().filter(|r| r["reason"] == "bad_tag").count() as u64;
    assert!(n < c.rejected, "{n} records for {} rejections", c.rejected);
}

/// A deterministic lossy link: drops 20%, duplicates, corrupts, holds back (reorders) and
/// replays datagrams seen more than two seconds ago (older than the receive window).
async fn lossy_relay(inbound: UdpSocket, to: SocketAddr, mut stop: watch::Receiver<bool>) {
    let out = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % 100
    };
    let mut held: Option<Vec<u8>> = None;
    let mut history: Vec<(Instant, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        let n = tokio::select! {
            r = inbound.recv(&mut buf) => r.unwrap(),
            _ = stop.changed() => return,
        };
        let d = buf[..n].to_vec();
        history.push((Instant::now(), d.clone()));
        if history.len() > 5000 {
            history.drain(..1000);
        }
        let roll = next();
        match roll {
            0..=19 => {} // dropped
            20..=29 => {
                out.send_to(&d, to).await.unwrap();
                out.send_to(&d, to).await.unwrap();
            }
            30..=39 => {
                let mut c = d.clone();
                let i = (next() as usize * 7) % c.len();
                c[i] ^= 0x5A;
                out.send_to(&c, to).await.unwrap();
            }
            40..=49 => {
                // Hold back; it goes out after the next one (reordered).
                if let Some(h) = held.replace(d) {
                    out.send_to(&h, to).await.unwrap();
                }
                continue;
            }
            _ => {
                out.send_to(&d, to).await.unwrap();
            }
        }
        if let Some(h) = held.take() {
            out.send_to(&h, to).await.unwrap();
        }
        if next() < 10 {
            let cutoff = Instant::now() - Duration::from_secs(2);
            if let Some((_, old)) = history.iter().rev().find(|(t, _)| *t < cutoff) {
                out.send_to(old, to).await.unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_lossy_relay_the_replica_converges_and_never_shows_wrong_values() {
    // 20 ms periods: ~100 sequence numbers a second, so replays from 2 s ago are below the
    // 128-number window (older ones inside it are harmless duplicates).
    let p = receive_side_every("2s", "20ms").await;
    let relay = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let (stop_relay, relay_stop) = watch::channel(false);
    tokio::spawn(lossy_relay(relay, p.udp, relay_stop));
    let _tx = transmit(&p.replication, relay_addr, hmac_key()).await;
    // Values change every 150 ms, always as a whole block of one generation: a replica read
    // must show one generation per register, and never a value the device never held.
    let device = p.sim.device().clone();
    let writer = tokio::spawn(async move {
        for generation in 1..=30u16 {
            for a in 0..200 {
                device.set_holding(a, generation * 1000 + a);
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    let t = Instant::now();
    let mut reads = 0;
    while !writer.is_finished() && t.elapsed() < Duration::from_secs(20) {
        if let Ok(v) = read_holding(p.replica, 0, 100).await {
            for (a, x) in v.iter().enumerate() {
                let generation = x / 1000;
                assert!(
                    x % 1000 == a as u16 && generation <= 30,
                    "register {a} = {x}"
                );
            }
            reads += 1;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(reads > 10, "only {reads} successful reads");
    let last = wait_for(p.replica, 100, 100, Duration::from_secs(5), |r| {
        r.as_ref()
            .is_ok_and(|v| v.iter().enumerate().all(|(a, x)| *x == 30_100 + a as u16))
    })
    .await;
    assert!(
        last.as_ref().is_ok_and(|v| v[99] == 30_199),
        "{last:?} {:?}",
        p.handle.counters()
    );
    stop_relay.send(true).unwrap();
    let c = p.handle.counters();
    assert!(c.rejected > 0 && c.duplicates > 0, "{c:?}");
    let records = audit_reasons(&p).await;
    for reason in ["bad_tag", "replayed"] {
        assert!(
            has_reason(&records, reason),
            "no {reason} alert in {records:?}"
        );
    }
    // The receive side's own chain verifies.
    let report = zonegate_audit::verify(
        std::slice::from_ref(&p.audit_path),
        &zonegate_audit::VerifyOptions::default(),
    )
    .unwrap();
    assert!(report.ok, "{report:?}");
    let _ = p.stop_rx.send(true);
}

/// Regression: the full-image refresh was one schedule for the whole replication, consumed by
/// whichever block was polled first after it fell due, so a block read less often than another
/// could go many refresh intervals without one (a lost change stayed lost that long).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_block_gets_its_full_refresh_even_beside_a_fast_one() {
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let yaml = format!(
        r#"
replications:
  - replication_id: R-REFRESH
    connects: [A, B]
    source: tcp://{}
    blocks:
      - {{unit: 1, table: holding, range: 0-9, period: 50ms}}
      - {{unit: 1, table: holding, range: 100-109, period: 700ms}}
    transmit: {{to: 127.0.0.1:9, key: k, repeat: 1, refresh: 1s}}
    receive: {{bind: 127.0.0.1:0, key: k, serve: 127.0.0.1:0}}
"#,
        sim.local_addr()
    );
    let r = load_str(&yaml, "t.yaml").unwrap().replications.remove(0);
    // A plain socket stands in for the receive side and decodes what arrives.
    let capture = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let key = hmac_key();
    let vk = key.verify_key();
    let stop = transmit(&r, capture.local_addr().unwrap(), key).await;
    let mut slow_refreshes = 0;
    let mut buf = [0u8; 2048];
    let until = Instant::now() + Duration::from_millis(3300);
    while Instant::now() < until {
        let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), capture.recv(&mut buf)).await
        else {
            continue;
        };
        let d = zonegate_replicate::Datagram::decode(&buf[..n], &vk).unwrap();
        if d.block == 1 && d.refresh {
            slow_refreshes += 1;
        }
    }
    stop.send(true).unwrap();
    // In 3.3 s with refresh 1 s the slow block (polled at 0, 0.7, 1.4, 2.1, 2.8 s) is due a
    // refresh at 1.4 s and 2.8 s.
    assert!(
        slow_refreshes >= 2,
        "slow block refreshed {slow_refreshes} times"
    );
}
