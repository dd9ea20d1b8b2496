//! Replication from a Modbus RTU source (issue 13): the transmit agent as bus master through
//! the gateway's RTU master, on a socat pty pair with the gateway's RTU sim on the other end
//! (`rtu://`), and against an RTU-over-TCP device (`rtu+tcp://`). Every wait is bounded; no
//! timing is a pass/fail assertion.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use zonegate_gateway::sim::{Device, RtuLine, RtuSim};
use zonegate_modbus::rtu;
use zonegate_policy::{load_str, Replication};
use zonegate_replicate::{ReceiveAgent, Transmitter};

use super::agents::{start_audit, wait_for};
use super::common::hmac_key;

/// A socat pty pair: `a` for the transmit agent, `b` for the device (as in the gateway's
/// tests/it/rtu.rs).
struct PtyPair {
    child: Child,
    a: PathBuf,
    b: PathBuf,
}

impl PtyPair {
    fn start(dir: &Path) -> Self {
        let a = dir.join("line-a");
        let b = dir.join("line-b");
        let mut child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "socat (Debian package socat, in the Makefile's APT_PACKAGES) must be installed",
            );
        for _ in 0..200 {
            if a.exists() && b.exists() {
                return Self { child, a, b };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("socat did not create {} and {}", a.display(), b.display());
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        // This child only, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn model(source: &str) -> Replication {
    model_with(source, "")
}

/// `extra`: more keys of the replication (e.g. its `serial:` block), indented by 4.
fn model_with(source: &str, extra: &str) -> Replication {
    let yaml = format!(
        r#"
replications:
  - replication_id: R1-RTU
    connects: [Z3-OPS, Z4-DMZ]
    source: "{source}"
{extra}    blocks:
      - {{unit: 1, table: holding, range: 0-19, period: 200ms}}
      - {{unit: 1, table: coils, range: 0-15, period: 200ms}}
    transmit: {{to: 127.0.0.1:9, key: k, repeat: 2, refresh: 1s, request_timeout: 500ms}}
    receive: {{bind: 127.0.0.1:0, key: k, serve: 127.0.0.1:0, max_age: 3s}}
"#
    );
    load_str(&yaml, "test.yaml").unwrap().replications.remove(0)
}

/// Runs both agents for `source`, sets holding 10 on `device` and waits for the replica to
/// show it, then a change of it. Returns the transmit side's audit records.
async fn replicate_from(r: Replication, device: &Device, dir: &Path) -> Vec<serde_json::Value> {
    let source = r.source.to_string();
    r.source_runnable().unwrap();
    let rx_audit = start_audit(&dir.join("receive.log"));
    let agent = ReceiveAgent::bind(r.clone(), hmac_key().verify_key(), rx_audit)
        .await
        .unwrap();
    let replica = agent.serve_addr().unwrap();
    let mut tr = r.clone();
    tr.transmit.to = agent.udp_addr().unwrap();
    let (stop_rx, stop) = watch::channel(false);
    tokio::spawn(agent.run(stop));
    let tx_path = dir.join("transmit.log");
    let tx_audit = start_audit(&tx_path);
    let tx = Transmitter::new(tr, hmac_key())
        .await
        .unwrap()
        .with_audit(tx_audit.clone());
    let (stop_tx, stop) = watch::channel(false);
    let running = tokio::spawn(tx.run(stop));

    device.set_holding(10, 1234);
    let got = wait_for(replica, 10, 1, Duration::from_secs(10), |r| {
        r.as_ref().is_ok_and(|v| v == &[1234])
    })
    .await;
    assert_eq!(got, Ok(vec![1234]), "{source}");
    device.set_holding(10, 4321);
    let got = wait_for(replica, 10, 1, Duration::from_secs(10), |r| {
        r.as_ref().is_ok_and(|v| v == &[4321])
    })
    .await;
    assert_eq!(got, Ok(vec![4321]), "{source}");

    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), running).await;
    let _ = stop_rx.send(true);
    tx_audit.sync().await.unwrap();
    std::fs::read_to_string(&tx_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicates_from_an_rtu_serial_line() {
    let dir = tempfile::tempdir().unwrap();
    let pty = PtyPair::start(dir.path());
    // The sim's default line: 19200 baud, no parity, as the URL says.
    let sim = RtuSim::start(&pty.b, RtuLine::default(), Device::new(), &[1]).unwrap();
    let source = format!("rtu://{}?baud=19200&parity=none", pty.a.display());
    // The bus options of the replication's `serial:` block reach the bus.
    let r = model_with(&source, "    serial: {retries: 1, turnaround: 20ms}\n");
    assert_eq!(r.serial.as_ref().map(|s| s.retries), Some(1));
    let records = replicate_from(r, sim.device(), dir.path()).await;
    // The transmit chain names the bus as the device.
    assert!(
        records
            .iter()
            .any(|r| r["dst"].as_str().is_some_and(|d| d.starts_with("rtu://"))),
        "{records:?}"
    );
    sim.stop().await;
    drop(pty);
}

/// An RTU-over-TCP device: raw RTU frames with CRC in a TCP stream (as the gateway's tests).
async fn rtu_over_tcp_device(device: Arc<Device>) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let device = Arc::clone(&device);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut b = [0u8; 512];
                let mut resp = [0u8; 253];
                let mut out = [0u8; 256];
                for _ in 0..100_000 {
                    let Ok(n) = s.read(&mut b).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&b[..n]);
                    while let Ok(Some(adu)) = rtu::decode_adu(&buf, rtu::Direction::Request) {
                        let (unit, pdu, wire) = (adu.address, adu.pdu.to_vec(), adu.wire_len());
                        buf.drain(..wire);
                        let m = device.handle(&pdu, &mut resp);
                        let k = rtu::encode_adu(unit, &resp[..m], &mut out).unwrap();
                        if s.write_all(&out[..k]).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicates_from_an_rtu_over_tcp_converter() {
    let dir = tempfile::tempdir().unwrap();
    let device = Arc::new(Device::new());
    let addr = rtu_over_tcp_device(Arc::clone(&device)).await;
    let records = replicate_from(model(&format!("rtu+tcp://{addr}")), &device, dir.path()).await;
    assert!(!records.is_empty());
}

/// A converter that is not there: the bus answers 0x0A (line down) itself, the transmit
/// agent counts a failed read, and the bus's outage is an alert on the transmit chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_rtu_over_tcp_converter_is_recorded_on_the_transmit_chain() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut r = model(&format!("rtu+tcp://127.0.0.1:{port}"));
    r.transmit.to = "127.0.0.1:9".parse().unwrap();
    let path = dir.path().join("transmit.log");
    let audit = start_audit(&path);
    let tx = Transmitter::new(r, hmac_key())
        .await
        .unwrap()
        .with_audit(audit.clone());
    let (stop_tx, stop) = watch::channel(false);
    let running = tokio::spawn(tx.run(stop));
    let mut lost = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        audit.sync().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains("bus_line_lost") {
            lost = true;
            break;
        }
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), running).await;
    assert!(lost, "no bus_line_lost on the transmit chain");
}
