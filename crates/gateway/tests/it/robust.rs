//! Malformed input, broken devices and timeouts: the client is never left hanging and nothing
//! invalid reaches the device.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use zonegate_audit::Kind;
use zonegate_gateway::sim::{Device, Sim};

use super::util::*;

#[tokio::test]
async fn broken_frame_closes_and_is_not_forwarded() {
    let rig = Rig::start("", None).await;
    let before = rig.sim.device().holding_range(0, 200);
    let mut c = rig.client(EWS).await;
    // | tid 00 01 | protocol id 00 01 (not Modbus) | length 00 06 | unit 01 | fc 06 addr 0064 value 00C8 |
    c.send(&[0, 1, 0, 1, 0, 6, 1, 6, 0, 100, 0, 200]).await;
    assert!(c.closed_within(WAIT).await);
    let mut c = rig.client(EWS).await;
    // | tid 00 02 | protocol 00 00 | length 01 00 (256 > 254) | ...
    c.send(&[0, 2, 0, 0, 1, 0, 1, 6, 0, 100, 0, 200]).await;
    assert!(c.closed_within(WAIT).await);
    assert_eq!(rig.sim.device().holding_range(0, 200), before);
    rig.stop().await;
}

#[tokio::test]
async fn invalid_pdu_gets_its_exception_and_is_not_forwarded() {
    let rig = Rig::start("      mode: monitor\n", None).await;
    let before = rig.sim.device().holding_range(0, 200);
    let mut c = rig.client(EWS).await;
    // FC 16, address 100, quantity 2, byte count 3 (must be 4): 03, even in monitor mode.
    let pdu = c.call_raw(1, &[0x10, 0, 100, 0, 2, 3, 0, 200, 0]).await;
    assert_eq!(pdu, [0x90, 0x03]);
    // FC 3 quantity 0: 03.
    assert_eq!(c.call_raw(1, &[0x03, 0, 0, 0, 0]).await, [0x83, 0x03]);
    // Unknown function 0x5A (UMAS): 01.
    assert_eq!(c.call_raw(1, &[0x5A, 0, 1]).await[1], 0x01);
    // FC 5 with a value other than 0xFF00/0x0000: 03.
    assert_eq!(c.call_raw(1, &[0x05, 0, 1, 0x12, 0x34]).await, [0x85, 0x03]);
    assert_eq!(rig.sim.device().holding_range(0, 200), before);
    let events = rig
        .events_until(|e| {
            e.iter()
                .filter(|e| e.reason.as_deref() == Some("invalid_pdu"))
                .count()
                >= 3
        })
        .await;
    assert!(events
        .iter()
        .any(|e| e.reason.as_deref() == Some("illegal_function")));
    rig.stop().await;
}

#[tokio::test]
async fn device_down_answers_0a() {
    // A port that was just free: nothing listens there.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead: SocketAddr = l.local_addr().unwrap();
    drop(l);
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let rig = Rig::start_at(sim, dead, "", None).await;
    let mut c = rig.client(HISTORIAN).await;
    assert_eq!(c.call(1, &read_holding(100, 1)).await, [0x83, 0x0A]);
    assert_eq!(c.call(1, &read_holding(100, 1)).await, [0x83, 0x0A]);
    rig.stop().await;
}

/// A device that accepts and never answers.
async fn silent_device() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..4 {
            if let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        }
    });
    (addr, task)
}

#[tokio::test]
async fn silent_device_answers_0b_after_request_timeout() {
    let (addr, task) = silent_device().await;
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let rig = Rig::start_at(sim, addr, "", None).await;
    let mut c = rig.client(HISTORIAN).await;
    let started = std::time::Instant::now();
    assert_eq!(c.call(1, &read_holding(100, 1)).await, [0x83, 0x0B]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let events = rig
        .events_until(|e| e.iter().any(|e| e.exception == Some(0x0B)))
        .await;
    assert!(events
        .iter()
        .any(|e| e.kind == Kind::Request && e.exception == Some(0x0B)));
    task.abort();
    rig.stop().await;
}

#[tokio::test]
async fn unsolicited_response_is_dropped_and_reported() {
    // A device that first sends an answer nobody asked for, then the real one.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut req = [0u8; 12];
        s.read_exact(&mut req).await.unwrap();
        // | tid 77 77 | proto 0 | len 5 | unit 1 | fc 3 bc 2 value 0x0BAD |
        let forged = [0x77, 0x77, 0, 0, 0, 5, 1, 3, 2, 0x0B, 0xAD];
        // The real answer: same tid and unit as the request, value 42.
        let real = [req[0], req[1], 0, 0, 0, 5, req[6], 3, 2, 0, 42];
        s.write_all(&forged).await.unwrap();
        s.write_all(&real).await.unwrap();
        let mut rest = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(3), s.read(&mut rest)).await;
    });
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let rig = Rig::start_at(sim, addr, "", None).await;
    let mut c = rig.client(HISTORIAN).await;
    let pdu = c.call(1, &read_holding(100, 1)).await;
    assert_eq!(registers_of(&pdu), [42]);
    assert!(
        c.recv_within(Duration::from_millis(200)).await.is_none(),
        "nothing else arrives"
    );
    let events = rig
        .events_until(|e| e.iter().any(|e| e.kind == Kind::Alert))
        .await;
    let alert = events
        .iter()
        .find(|e| e.kind == Kind::Alert)
        .expect("alert record");
    assert_eq!(alert.reason.as_deref(), Some("unsolicited_response"));
    task.abort();
    rig.stop().await;
}

#[tokio::test]
async fn idle_client_is_disconnected() {
    let rig = Rig::start("      idle_timeout: 300ms\n", None).await;
    let mut c = rig.client(HISTORIAN).await;
    let _ = c.call(1, &read_holding(100, 1)).await;
    let started = std::time::Instant::now();
    assert!(c.closed_within(WAIT).await, "idle connection closed");
    assert!(started.elapsed() >= Duration::from_millis(250));
    rig.stop().await;
}

#[tokio::test]
async fn device_restart_is_survived() {
    let rig = Rig::start("", None).await;
    let device_addr = rig.sim.local_addr();
    let mut c = rig.client(HISTORIAN).await;
    assert_eq!(registers_of(&c.call(1, &read_holding(100, 1)).await), [200]);
    let Rig {
        sim,
        gateway,
        dir,
        addr,
        ..
    } = rig;
    sim.stop().await;
    // The device is gone: the session's device connection breaks, the client gets 0x0B/0x0A.
    let pdu = c.call(1, &read_holding(100, 1)).await;
    assert!(
        matches!(exception_of(&pdu), Some(0x0A | 0x0B)),
        "{pdu:02x?}"
    );
    // The device comes back on the same address: the same client session works again.
    let sim = Sim::start(device_addr, Device::hvac()).await.unwrap();
    let mut back = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if c.call(1, &read_holding(100, 1)).await[0] == 3 {
            back = true;
            break;
        }
    }
    assert!(back, "requests reach the restarted device");
    let _ = addr;
    gateway.shutdown().await;
    sim.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn shutdown_answers_requests_in_flight() {
    // A slow device: answers each request after 300 ms.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut req = [0u8; 12];
        s.read_exact(&mut req).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let real = [req[0], req[1], 0, 0, 0, 5, req[6], 3, 2, 0, 7];
        s.write_all(&real).await.unwrap();
        let mut rest = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(3), s.read(&mut rest)).await;
    });
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let rig = Rig::start_at(sim, addr, "", None).await;
    let mut c = rig.client(HISTORIAN).await;
    let (tid, bytes) = c.adu(1, &read_holding(100, 1));
    c.send(&bytes).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let Rig {
        sim,
        gateway,
        dir,
        audit,
        ..
    } = rig;
    let stopping = tokio::spawn(gateway.shutdown());
    let (rtid, _, pdu) = c.recv_within(WAIT).await.expect("answer during the drain");
    assert_eq!(rtid, tid);
    assert_eq!(registers_of(&pdu), [7]);
    let summary = tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
    assert_eq!(summary.sessions_cut, 0);
    assert!(
        c.closed_within(WAIT).await,
        "session closed after the drain"
    );
    let events = read_events(&audit);
    assert_eq!(events.last().map(|e| e.kind), Some(Kind::Stop));
    task.abort();
    sim.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn late_answer_after_0b_is_dropped_and_reported() {
    // The device answers 1.3 s after the request; the gateway's request timeout is 1 s.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut req = [0u8; 12];
        s.read_exact(&mut req).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let late = [req[0], req[1], 0, 0, 0, 5, req[6], 3, 2, 0, 9];
        s.write_all(&late).await.unwrap();
        let mut rest = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(3), s.read(&mut rest)).await;
    });
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let rig = Rig::start_at(sim, addr, "", None).await;
    let mut c = rig.client(HISTORIAN).await;
    assert_eq!(c.call(1, &read_holding(100, 1)).await, [0x83, 0x0B]);
    assert!(
        c.recv_within(Duration::from_millis(800)).await.is_none(),
        "the late answer is not passed on"
    );
    let events = rig
        .events_until(|e| e.iter().any(|e| e.kind == Kind::Alert))
        .await;
    let alert = events
        .iter()
        .find(|e| e.kind == Kind::Alert)
        .expect("alert");
    assert_eq!(alert.reason.as_deref(), Some("late_response"));
    task.abort();
    rig.stop().await;
}

#[tokio::test]
async fn a_frame_trickled_byte_by_byte_is_cut_off() {
    // request_timeout is 1 s in the test model: a frame must be complete by then.
    let rig = Rig::start("      idle_timeout: 10s\n", None).await;
    let mut c = rig.client(HISTORIAN).await;
    let (_, bytes) = c.adu(1, &read_holding(100, 1));
    let started = std::time::Instant::now();
    let mut closed = false;
    for b in &bytes[..bytes.len() - 1] {
        if c.stream.write_all(std::slice::from_ref(b)).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(closed || c.closed_within(WAIT).await, "connection cut");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "{took:?}");
    let events = rig
        .events_until(|e| {
            e.iter()
                .any(|e| e.reason.as_deref() == Some("incomplete_frame"))
        })
        .await;
    assert!(events
        .iter()
        .any(|e| e.reason.as_deref() == Some("incomplete_frame")));
    // A steady pipelined stream whose every write ends mid-frame (so the gateway always holds a
    // partial frame, but a different one each time) is not cut off.
    let mut c = rig.client(HISTORIAN).await;
    let mut carry: Vec<u8> = Vec::new();
    let mut expect = Vec::new();
    for round in 0..12u16 {
        let (tid, a) = c.adu(1, &read_holding(100 + round % 4, 1));
        expect.push(tid);
        let mut chunk = std::mem::take(&mut carry);
        chunk.extend_from_slice(&a[..a.len() - 3]);
        carry.extend_from_slice(&a[a.len() - 3..]);
        c.send(&chunk).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        if round > 0 {
            let want = expect[usize::from(round) - 1];
            assert_eq!(
                c.recv_within(WAIT).await.map(|r| r.0),
                Some(want),
                "round {round}"
            );
        }
    }
    c.send(&carry).await;
    assert_eq!(
        c.recv_within(WAIT).await.map(|r| r.0),
        expect.last().copied()
    );
    rig.stop().await;
}
