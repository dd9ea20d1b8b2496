//! Modbus RTU upstreams (issue 11): the gateway as bus master on a socat pty pair, the
//! simulated device as RTU slaves on the other end, a relay between two pty pairs that
//! corrupts answers, an RTU-over-TCP device. No timing is a pass/fail assertion; every wait
//! is bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zonegate_audit::{Event, Kind};
use zonegate_gateway::sim::{Device, RtuLine, RtuSim};
use zonegate_gateway::{Gateway, GatewayOptions};
use zonegate_modbus::{rtu, UnitId};

use super::util::{
    exception_of, read_events, read_holding, registers_of, temp_dir, write_one, Client, EWS,
    HISTORIAN, STRANGER, WAIT,
};

/// A socat pty pair: `a` for the gateway, `b` for the device.
struct PtyPair {
    child: Child,
    a: PathBuf,
    b: PathBuf,
}

impl PtyPair {
    fn start(dir: &Path, name: &str) -> Self {
        let a = dir.join(format!("{name}-a"));
        let b = dir.join(format!("{name}-b"));
        Self::start_at(a, b)
    }

    fn start_at(a: PathBuf, b: PathBuf) -> Self {
        let _ = std::fs::remove_file(&a);
        let _ = std::fs::remove_file(&b);
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

    /// Ends socat (SIGTERM via kill of this child only), the line disappears.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..200 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.a);
        let _ = std::fs::remove_file(&self.b);
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const RULES: &str = "      - id: historian-read
        from: [HIST]
        unit_ids: [1, 2, 3]
        functions: [read]
        holding: 0-199
      - id: ews-write-unit-2
        from: [EWS]
        unit_ids: [2]
        functions: [write_single_register]
        holding: 100-109
      - id: ews-broadcast
        from: [EWS]
        unit_ids: [0]
        functions: [write_single_register]
        holding: 100-109
";

fn model(upstream: &str, audit: &Path, gateway: &str, rules: &str) -> String {
    format!(
        "facility: test
zones:
  - zone_id: OPS
    assets:
      - id: HIST
        address: {HISTORIAN}
      - id: EWS
        address: {EWS}
  - zone_id: FIELD
    assets: [\"bus devices\"]
conduits:
  - conduit_id: C1
    connects: [OPS, FIELD]
    gateway:
      listen: 127.0.0.1:0
      upstream: {upstream}
      request_timeout: 500ms
      max_connections_per_source: 32
{gateway}    rules:
{rules}audit:
  path: {audit}
  sync: batch
",
        audit = audit.display()
    )
}

struct Rig {
    gateway: Gateway,
    addr: std::net::SocketAddr,
    dir: PathBuf,
    model_path: PathBuf,
    audit: PathBuf,
}

impl Rig {
    async fn start(dir: PathBuf, upstream: &str, gateway_lines: &str) -> Self {
        Self::start_rules(dir, upstream, gateway_lines, RULES).await
    }

    async fn start_rules(dir: PathBuf, upstream: &str, gateway_lines: &str, rules: &str) -> Self {
        let audit = dir.join("audit.log");
        let model_path = dir.join("model.yaml");
        std::fs::write(&model_path, model(upstream, &audit, gateway_lines, rules)).unwrap();
        let options = GatewayOptions {
            watch_interval: Duration::from_millis(50),
            drain_timeout: Duration::from_secs(2),
            ..GatewayOptions::default()
        };
        let gateway = match Gateway::start_file(&model_path, options).await {
            Ok(g) => g,
            Err(e) => panic!("gateway did not start: {e}"),
        };
        let addr = gateway.listeners()[0].addr;
        Self {
            gateway,
            addr,
            dir,
            model_path,
            audit,
        }
    }

    async fn client(&self, source: &str) -> Client {
        Client::connect(self.addr, source).await
    }

    async fn events_until(&self, pred: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let mut last = Vec::new();
        for _ in 0..100 {
            last = read_events(&self.audit);
            if pred(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        last
    }

    async fn stop(self) {
        self.gateway.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn upstream_of(path: &Path) -> String {
    format!("rtu://{}?baud=19200&parity=none", path.display())
}

fn alerts<'a>(events: &'a [Event], reason: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.kind == Kind::Alert && e.reason.as_deref() == Some(reason))
        .collect()
}

/// A device with distinct values per unit would need one memory per unit; the sim serves
/// one memory for all its units, so answers are checked against it.
fn hvac_on(pty: &PtyPair, units: &[u8]) -> RtuSim {
    RtuSim::start(&pty.b, RtuLine::default(), Device::hvac(), units).unwrap()
}

#[tokio::test]
async fn allowed_and_denied_reads_and_writes_on_several_units() {
    let dir = temp_dir();
    let pty = PtyPair::start(&dir, "line");
    let sim = hvac_on(&pty, &[1, 2]);
    let rig = Rig::start(dir, &upstream_of(&pty.a), "").await;

    let mut hist = rig.client(HISTORIAN).await;
    for unit in [1, 2] {
        let pdu = hist.call(unit, &read_holding(100, 4)).await;
        assert_eq!(registers_of(&pdu), vec![200, 180, 220, 210], "unit {unit}");
    }
    let mut ews = rig.client(EWS).await;
    // Unit 1: no rule lets EWS write there: 0x01, never on the bus.
    let pdu = ews.call(1, &write_one(100, 199)).await;
    assert_eq!(exception_of(&pdu), Some(0x01));
    assert_eq!(
        sim.device().holding(100),
        200,
        "the denied write reached the bus"
    );
    // Unit 2: allowed.
    let pdu = ews.call(2, &write_one(101, 190)).await;
    assert_eq!(pdu, vec![6, 0, 101, 0, 190]);
    assert_eq!(sim.device().holding(101), 190);
    // A stranger gets nothing through.
    let mut rogue = rig.client(STRANGER).await;
    let (tid, bytes) = rogue.adu(1, &read_holding(0, 1));
    rogue.send(&bytes).await;
    if let Some((t, _, pdu)) = rogue.recv_within(Duration::from_secs(2)).await {
        assert_eq!(t, tid);
        assert!(exception_of(&pdu).is_some(), "{pdu:02x?}");
    }

    // A silent unit (3: allowed by the rules, nobody on the bus answers it): 0x0B within
    // request_timeout, and the bus works right after.
    let pdu = hist.call(3, &read_holding(0, 1)).await;
    assert_eq!(exception_of(&pdu), Some(0x0B));
    let pdu = hist.call(1, &read_holding(0, 2)).await;
    assert_eq!(registers_of(&pdu), vec![1, 30]);
    rig.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn sixteen_clients_share_one_bus_and_none_is_starved() {
    let dir = temp_dir();
    let pty = PtyPair::start(&dir, "line");
    let sim = hvac_on(&pty, &[1, 2]);
    for a in 0..16u16 {
        sim.device().set_holding(a, 1000 + a);
    }
    let rig = Rig::start(dir, &upstream_of(&pty.a), "").await;
    let addr = rig.addr;
    const ROUNDS: usize = 25;
    let mut tasks = Vec::new();
    for c in 0..16u16 {
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr, HISTORIAN).await;
            let mut right = 0usize;
            for round in 0..ROUNDS {
                let unit = 1 + u8::try_from(round % 2).unwrap();
                let pdu = client.call(unit, &read_holding(c, 1)).await;
                if registers_of(&pdu) == vec![1000 + c] {
                    right += 1;
                }
            }
            right
        }));
    }
    for (c, t) in tasks.into_iter().enumerate() {
        let right = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("a client was starved")
            .unwrap();
        assert_eq!(right, ROUNDS, "client {c}: every answer right");
    }
    rig.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn a_full_client_queue_answers_0x06_and_a_long_wait_0x0b() {
    let dir = temp_dir();
    let pty = PtyPair::start(&dir, "line");
    let sim = hvac_on(&pty, &[1]);
    let rig = Rig::start(
        dir,
        &upstream_of(&pty.a),
        "      max_in_flight: 4\n      serial:\n        max_queue_per_client: 1\n        queue_timeout: 200ms\n",
    )
    .await;
    // Four pipelined requests of one client: the first is queued, the others find the
    // client's queue full (the port queues them in one write, before the bus takes any).
    let mut hist = rig.client(HISTORIAN).await;
    let mut wire = Vec::new();
    let mut tids = Vec::new();
    for a in 0..4 {
        let (tid, bytes) = hist.adu(1, &read_holding(a, 1));
        tids.push(tid);
        wire.extend_from_slice(&bytes);
    }
    hist.send(&wire).await;
    let mut busy = 0;
    let mut good = 0;
    for tid in &tids {
        let (t, _, pdu) = hist.recv_within(WAIT).await.expect("an answer");
        assert_eq!(t, *tid, "answers in request order");
        match exception_of(&pdu) {
            Some(0x06) => busy += 1,
            None => good += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(good >= 1 && busy >= 1, "good {good}, busy {busy}");

    // The silent unit 3 holds the bus for request_timeout (500 ms); a request of another
    // client waits behind it longer than queue_timeout (200 ms): 0x0B, never sent.
    let mut other = rig.client(HISTORIAN).await;
    let (_, bytes) = hist.adu(3, &read_holding(0, 1));
    hist.send(&bytes).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let pdu = other.call(1, &read_holding(0, 1)).await;
    assert_eq!(exception_of(&pdu), Some(0x0B));
    let (_, _, pdu) = hist
        .recv_within(WAIT)
        .await
        .expect("the silent unit's answer");
    assert_eq!(exception_of(&pdu), Some(0x0B));
    let events = rig
        .events_until(|e| !alerts(e, "rtu_queue_timeout").is_empty())
        .await;
    assert!(!alerts(&events, "rtu_queue_timeout").is_empty());
    rig.stop().await;
    sim.stop().await;
}

/// How the relay between the two pty pairs spoils the next answer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Spoil {
    Crc,
    DropByte,
    OtherUnit,
    Noise,
    Pass,
}

/// Relays the gateway's pty (`gw`) to the device's (`dev`); the first answer is spoiled by
/// each mode of `modes` in turn, one answer per mode, then everything passes.
fn corrupting_relay(gw: PathBuf, dev: PathBuf, modes: Vec<Spoil>) -> tokio::task::JoinHandle<()> {
    relay(gw, dev, modes, false)
}

/// The relay; `echo`: every request is also sent back to the gateway first, as a 2-wire
/// RS-485 adapter that hears its own transmitter does.
fn relay(gw: PathBuf, dev: PathBuf, modes: Vec<Spoil>, echo: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let open = |p: &Path| {
            serial2_tokio::SerialPort::open(p, |mut s: serial2_tokio::Settings| {
                s.set_raw();
                Ok(s)
            })
            .unwrap()
        };
        let (g, d) = (Arc::new(open(&gw)), Arc::new(open(&dev)));
        let (g2, d2) = (Arc::clone(&g), Arc::clone(&d));
        // Requests pass untouched.
        tokio::spawn(async move {
            let mut b = [0u8; 512];
            while let Ok(n) = g2.read(&mut b).await {
                if n == 0 || (echo && g2.write_all(&b[..n]).await.is_err()) {
                    return;
                }
                if d2.write_all(&b[..n]).await.is_err() {
                    return;
                }
            }
        });
        // Answers: collect one whole frame (the sim writes each in one write), spoil it.
        let mut modes = modes.into_iter();
        let mut b = [0u8; 512];
        let mut frame: Vec<u8> = Vec::new();
        loop {
            let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(30), d.read(&mut b)).await
            else {
                return;
            };
            if n == 0 {
                return;
            }
            frame.extend_from_slice(&b[..n]);
            let whole = matches!(
                rtu::decode_adu(&frame, rtu::Direction::Response),
                Ok(Some(_))
            );
            if !whole {
                continue;
            }
            let mut out = std::mem::take(&mut frame);
            match modes.next() {
                Some(Spoil::Crc) => {
                    let last = out.len() - 1;
                    out[last] ^= 0xFF;
                }
                Some(Spoil::DropByte) => {
                    out.remove(3);
                }
                Some(Spoil::OtherUnit) => {
                    out[0] = 9;
                    let body = out.len() - 2;
                    let crc = rtu::crc16(&out[..body]).to_le_bytes();
                    out[body..].copy_from_slice(&crc);
                }
                Some(Spoil::Noise) => {
                    let mut noisy = vec![0xFF, 0x00, 0x55];
                    noisy.extend_from_slice(&out);
                    out = noisy;
                }
                Some(Spoil::Pass) | None => {}
            }
            if g.write_all(&out).await.is_err() {
                return;
            }
        }
    })
}

#[tokio::test]
async fn a_corrupting_relay_never_gets_a_bad_answer_through() {
    let dir = temp_dir();
    let near = PtyPair::start(&dir, "near");
    let far = PtyPair::start(&dir, "far");
    let sim = hvac_on(&far, &[1]);
    let relay = corrupting_relay(
        near.b.clone(),
        far.a.clone(),
        vec![Spoil::Crc, Spoil::DropByte, Spoil::OtherUnit, Spoil::Noise],
    );
    let rig = Rig::start(dir, &upstream_of(&near.a), "").await;
    let mut hist = rig.client(HISTORIAN).await;
    // CRC error, dropped byte (a torn frame), an answer from unit 9: each 0x0B (retries 0),
    // recorded as an alert, never forwarded.
    for what in ["crc", "torn", "other unit"] {
        let pdu = hist.call(1, &read_holding(0, 2)).await;
        assert_eq!(exception_of(&pdu), Some(0x0B), "{what}: {pdu:02x?}");
    }
    // Noise before a good frame is skipped: the answer gets through.
    let pdu = hist.call(1, &read_holding(0, 2)).await;
    assert_eq!(registers_of(&pdu), vec![1, 30]);
    // And the bus is fine after.
    let pdu = hist.call(1, &read_holding(100, 1)).await;
    assert_eq!(registers_of(&pdu), vec![200]);
    let events = rig
        .events_until(|e| {
            !alerts(e, "rtu_crc_error").is_empty()
                && !alerts(e, "rtu_torn_frame").is_empty()
                && !alerts(e, "rtu_wrong_unit").is_empty()
                && !alerts(e, "rtu_noise").is_empty()
        })
        .await;
    for reason in [
        "rtu_crc_error",
        "rtu_torn_frame",
        "rtu_wrong_unit",
        "rtu_noise",
    ] {
        assert!(!alerts(&events, reason).is_empty(), "no {reason} alert");
    }
    rig.stop().await;
    relay.abort();
    sim.stop().await;
}

#[tokio::test]
async fn retries_resend_a_read_but_never_a_write() {
    let dir = temp_dir();
    let near = PtyPair::start(&dir, "near");
    let far = PtyPair::start(&dir, "far");
    let sim = hvac_on(&far, &[2]);
    // The first answer is spoiled: a read is resent and answered; then the answer to a write
    // is spoiled: the write is not resent (it was executed), the client gets 0x0B.
    let relay = corrupting_relay(
        near.b.clone(),
        far.a.clone(),
        vec![Spoil::Crc, Spoil::Pass, Spoil::Crc],
    );
    let rig = Rig::start(
        dir,
        &upstream_of(&near.a),
        "      serial:\n        retries: 2\n",
    )
    .await;
    let mut hist = rig.client(HISTORIAN).await;
    let pdu = hist.call(2, &read_holding(0, 2)).await;
    assert_eq!(registers_of(&pdu), vec![1, 30], "the retried read");
    let mut ews = rig.client(EWS).await;
    let pdu = ews.call(2, &write_one(102, 230)).await;
    assert_eq!(exception_of(&pdu), Some(0x0B));
    assert_eq!(
        sim.device().holding(102),
        230,
        "executed once by the device"
    );
    rig.stop().await;
    relay.abort();
    sim.stop().await;
}

#[tokio::test]
async fn echo_true_drops_the_adapters_echo_of_each_frame() {
    let dir = temp_dir();
    let near = PtyPair::start(&dir, "near");
    let far = PtyPair::start(&dir, "far");
    let sim = hvac_on(&far, &[1, 2]);
    let relay = relay(near.b.clone(), far.a.clone(), Vec::new(), true);
    let rig = Rig::start(
        dir,
        &upstream_of(&near.a),
        "      serial:\n        echo: true\n",
    )
    .await;
    let mut hist = rig.client(HISTORIAN).await;
    for round in 0..5u16 {
        let pdu = hist
            .call(1 + (round % 2) as u8, &read_holding(100 + round % 4, 1))
            .await;
        assert_eq!(registers_of(&pdu).len(), 1, "round {round}: {pdu:02x?}");
    }
    let mut ews = rig.client(EWS).await;
    assert_eq!(
        ews.call(2, &write_one(105, 200)).await,
        vec![6, 0, 105, 0, 200]
    );
    let events = read_events(&rig.audit);
    assert!(alerts(&events, "rtu_echo_mismatch").is_empty());
    rig.stop().await;
    relay.abort();
    sim.stop().await;
}

#[tokio::test]
async fn a_broadcast_is_sent_once_and_answered_with_the_normal_response() {
    let dir = temp_dir();
    let pty = PtyPair::start(&dir, "line");
    let sim = hvac_on(&pty, &[1, 2]);
    let rig = Rig::start(
        dir,
        &upstream_of(&pty.a),
        "      serial:\n        turnaround: 50ms\n",
    )
    .await;
    let mut ews = rig.client(EWS).await;
    let pdu = ews.call(0, &write_one(103, 205)).await;
    assert_eq!(
        pdu,
        vec![6, 0, 103, 0, 205],
        "what a TCP client gets for a broadcast"
    );
    for _ in 0..100 {
        if sim.device().holding(103) == 205 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sim.device().holding(103), 205, "executed by the slaves");
    // A broadcast read is no broadcast: the policy denies it (no rule for unit 0 reads).
    let mut hist = rig.client(HISTORIAN).await;
    let pdu = hist.call(0, &read_holding(0, 1)).await;
    assert_eq!(exception_of(&pdu), Some(0x01));
    // The next frame after the turnaround is answered.
    let pdu = hist.call(1, &read_holding(103, 1)).await;
    assert_eq!(registers_of(&pdu), vec![205]);
    rig.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn a_reload_while_requests_are_queued_answers_every_one() {
    let dir = temp_dir();
    let pty = PtyPair::start(&dir, "line");
    let sim = hvac_on(&pty, &[1, 2]);
    let upstream = upstream_of(&pty.a);
    let rig = Rig::start(dir, &upstream, "").await;
    let addr = rig.addr;
    // 8 clients keep the queue busy (unit 3 is silent: each of its requests holds the bus
    // for request_timeout) while the model changes.
    let mut tasks = Vec::new();
    for c in 0..8u16 {
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr, HISTORIAN).await;
            let mut answered = 0;
            for round in 0..6u16 {
                let unit = if round == 0 && c < 2 { 3 } else { 1 };
                let pdu = client.call(unit, &read_holding(c, 1)).await;
                assert!(pdu[0] == 3 || exception_of(&pdu).is_some(), "{pdu:02x?}");
                answered += 1;
            }
            answered
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The new model also lets EWS write unit 1.
    let new_rules = RULES.replace("unit_ids: [2]", "unit_ids: [1, 2]");
    std::fs::write(
        &rig.model_path,
        model(&upstream, &rig.audit, "", &new_rules),
    )
    .unwrap();
    let outcome = rig.gateway.reload();
    assert!(outcome.is_ok(), "reload: {outcome:?}");
    for t in tasks {
        let n = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("a queued request was lost")
            .unwrap();
        assert_eq!(n, 6);
    }
    let mut ews = rig.client(EWS).await;
    let pdu = ews.call(1, &write_one(104, 222)).await;
    assert_eq!(pdu, vec![6, 0, 104, 0, 222], "the new policy applies");
    rig.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn the_line_disappears_and_comes_back() {
    let dir = temp_dir();
    let mut pty = PtyPair::start(&dir, "usb");
    let (a, b) = (pty.a.clone(), pty.b.clone());
    let mut sim = hvac_on(&pty, &[1]);
    let rig = Rig::start(dir, &upstream_of(&a), "").await;
    let mut hist = rig.client(HISTORIAN).await;
    assert_eq!(
        registers_of(&hist.call(1, &read_holding(0, 1)).await),
        vec![1]
    );

    // Unplugged: socat goes, the pty with it.
    pty.stop();
    tokio::time::timeout(WAIT, sim.finished()).await.ok();
    let pdu = hist.call(1, &read_holding(0, 1)).await;
    assert!(
        matches!(exception_of(&pdu), Some(0x0A | 0x0B)),
        "{pdu:02x?}"
    );
    // Plugged back in (same names).
    let pty2 = PtyPair::start_at(a, b);
    let sim2 = RtuSim::start(&pty2.b, RtuLine::default(), Device::hvac(), &[1]).unwrap();
    let mut back = false;
    for _ in 0..50 {
        let pdu = hist.call(1, &read_holding(1, 1)).await;
        if exception_of(&pdu).is_none() {
            assert_eq!(registers_of(&pdu), vec![30]);
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the bus never came back");
    let events = rig
        .events_until(|e| {
            e.iter()
                .any(|e| e.reason.as_deref() == Some("bus_line_lost"))
                && e.iter()
                    .any(|e| e.reason.as_deref() == Some("bus_line_restored"))
        })
        .await;
    assert!(events
        .iter()
        .any(|e| e.reason.as_deref() == Some("bus_line_lost")));
    let restored = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("bus_line_restored"))
        .expect("the outage's end is recorded");
    assert!(restored.message.as_deref().unwrap_or("").contains("outage"));
    rig.stop().await;
    sim.stop().await;
    sim2.stop().await;
    drop(pty2);
}

/// An RTU-over-TCP device: raw RTU frames with CRC in a TCP stream (one connection).
async fn rtu_over_tcp_device(device: Arc<Device>) -> std::net::SocketAddr {
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
                for _ in 0..10_000 {
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

#[tokio::test]
async fn rtu_over_tcp_is_one_bus_with_the_same_rules() {
    let dir = temp_dir();
    let device = Arc::new(Device::hvac());
    let addr = rtu_over_tcp_device(Arc::clone(&device)).await;
    let rig = Rig::start(dir, &format!("rtu+tcp://{addr}"), "").await;
    let mut hist = rig.client(HISTORIAN).await;
    assert_eq!(
        registers_of(&hist.call(2, &read_holding(100, 2)).await),
        vec![200, 180]
    );
    let mut ews = rig.client(EWS).await;
    assert_eq!(
        exception_of(&ews.call(1, &write_one(100, 190)).await),
        Some(0x01)
    );
    assert_eq!(device.holding(100), 200);
    assert_eq!(
        ews.call(2, &write_one(100, 190)).await,
        vec![6, 0, 100, 0, 190]
    );
    assert_eq!(device.holding(100), 190);
    let _ = UnitId::new(1);
    rig.stop().await;
}
