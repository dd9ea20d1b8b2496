//! Devices that answer wrongly or late: a wrong answer is answered to the client at once, a
//! late one is dropped, and a device still busy with a request answered 0x0B is not sent the
//! next one.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use zonegate_audit::Kind;
use zonegate_gateway::sim::{Device, Sim};

use super::util::*;

/// Reads one 12-byte FC 3 request ADU.
async fn read_request(s: &mut TcpStream) -> Option<[u8; 12]> {
    let mut req = [0u8; 12];
    match tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut req)).await {
        Ok(Ok(_)) => Some(req),
        _ => None,
    }
}

/// An FC 3 answer to `req` with `values` (byte count 2·len).
fn answer(req: &[u8; 12], values: &[u16]) -> Vec<u8> {
    let len = u16::try_from(3 + 2 * values.len()).unwrap();
    let mut out = vec![req[0], req[1], 0, 0];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[req[6], 3, u8::try_from(2 * values.len()).unwrap()]);
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

#[tokio::test]
async fn a_reply_with_the_wrong_byte_count_waits_out_request_timeout() {
    // Issue 15: the device answers an FC 3 of 2 registers with 1. The gateway dropped the reply
    // and answered 0x0B a whole request_timeout later; now the client gets 0x04 at once, the
    // reply is reported as `mismatched_response`, and the same connection goes on working.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<Instant>();
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut n = 0u16;
        while let Some(req) = read_request(&mut s).await {
            let quantity = u16::from_be_bytes([req[10], req[11]]);
            // The first request of 2 registers gets 1 value; everything else right answers.
            let values: Vec<u16> = if n == 0 && quantity == 2 {
                vec![0xBAD]
            } else {
                (0..quantity).map(|i| 40 + i).collect()
            };
            n += 1;
            s.write_all(&answer(&req, &values)).await.unwrap();
            sent_tx.send(Instant::now()).unwrap();
        }
    });
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let rig = Rig::start_at(sim, addr, "", None).await;
    let mut c = rig.client(HISTORIAN).await;
    let (tid, bytes) = c.adu(1, &read_holding(100, 2));
    c.send(&bytes).await;
    let (rtid, _, pdu) = c.recv_within(WAIT).await.expect("an answer");
    let got = Instant::now();
    let bad_sent = sent_rx.recv().await.unwrap();
    assert_eq!(rtid, tid);
    assert_eq!(pdu, [0x83, 0x04], "server device failure, at once");
    let after = got.duration_since(bad_sent);
    assert!(
        after < Duration::from_millis(50),
        "answered {after:?} after the bad reply"
    );
    // The next request on the same client connection (and device connection) works.
    assert_eq!(
        registers_of(&c.call(1, &read_holding(100, 2)).await),
        [40, 41]
    );
    // The alert is written when the bad reply arrives, the request record when the answer
    // leaves: wait for both.
    let events = rig
        .events_until(|e| {
            e.iter()
                .any(|e| e.reason.as_deref() == Some("mismatched_response"))
                && e.iter()
                    .any(|e| e.kind == Kind::Request && e.tid == Some(tid))
        })
        .await;
    let alert = events
        .iter()
        .find(|e| e.kind == Kind::Alert)
        .expect("alert record");
    assert_eq!(alert.reason.as_deref(), Some("mismatched_response"));
    let request = events
        .iter()
        .find(|e| e.kind == Kind::Request && e.tid == Some(tid))
        .expect("request record");
    assert_eq!(request.exception, Some(0x04));
    assert_eq!(alert.request_id, request.request_id);
    assert!(
        request
            .message
            .as_deref()
            .is_some_and(|m| m.contains("byte count")),
        "says what was wrong: {request:?}"
    );
    task.abort();
    rig.stop().await;
}

#[tokio::test]
async fn a_reply_from_the_wrong_unit_or_function_is_answered_at_once() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut n = 0;
        while let Some(req) = read_request(&mut s).await {
            let mut reply = answer(&req, &[7]);
            match n {
                0 => reply[6] = req[6].wrapping_add(1), // another unit
                1 => reply[7] = 4,                      // FC 4 answers an FC 3
                _ => {}
            }
            n += 1;
            s.write_all(&reply).await.unwrap();
        }
    });
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let rig = Rig::start_at(sim, addr, "", None).await;
    let mut c = rig.client(HISTORIAN).await;
    for _ in 0..2 {
        let started = Instant::now();
        assert_eq!(c.call(1, &read_holding(100, 1)).await, [0x83, 0x04]);
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    assert_eq!(registers_of(&c.call(1, &read_holding(100, 1)).await), [7]);
    let events = rig
        .events_until(|e| {
            e.iter()
                .filter(|e| e.reason.as_deref() == Some("mismatched_response"))
                .count()
                >= 2
        })
        .await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.reason.as_deref() == Some("mismatched_response"))
            .count(),
        2
    );
    task.abort();
    rig.stop().await;
}

#[tokio::test]
async fn after_0b_the_next_request_goes_to_a_busy_device() {
    // Issue 14.9: the slot was freed at 0x0B and the next request sent at once, to a device
    // still working on the first. This device, like many PLCs and serial gateways, discards
    // what arrives while it is busy: the second request was lost and got a 0x0B of its own.
    // Now the gateway waits for the late answer before sending anything else on that link.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (lost_tx, mut lost_rx) = mpsc::unbounded_channel::<usize>();
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut first = true;
        while let Some(req) = read_request(&mut s).await {
            if first {
                first = false;
                // Busy for 1.3 s (request_timeout is 1 s), then drop whatever came meanwhile.
                tokio::time::sleep(Duration::from_millis(1300)).await;
                let mut junk = [0u8; 256];
                let mut lost = 0;
                while let Ok(n) = s.try_read(&mut junk) {
                    if n == 0 {
                        break;
                    }
                    lost += n;
                }
                lost_tx.send(lost).unwrap();
                s.write_all(&answer(&req, &[1])).await.unwrap();
            } else {
                s.write_all(&answer(&req, &[2])).await.unwrap();
            }
        }
    });
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let rig = Rig::start_at(sim, addr, "", None).await;
    let mut c = rig.client(HISTORIAN).await;
    assert_eq!(c.call(1, &read_holding(100, 1)).await, [0x83, 0x0B]);
    // Sent at once after the 0x0B: the gateway holds it until the device is free.
    let started = Instant::now();
    assert_eq!(registers_of(&c.call(1, &read_holding(100, 1)).await), [2]);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        lost_rx.recv().await,
        Some(0),
        "nothing reached the busy device"
    );
    let events = rig
        .events_until(|e| {
            e.iter()
                .any(|e| e.reason.as_deref() == Some("late_response"))
        })
        .await;
    assert!(events
        .iter()
        .any(|e| e.reason.as_deref() == Some("late_response")));
    task.abort();
    rig.stop().await;
}

#[tokio::test]
async fn a_device_that_never_answers_late_is_used_again_after_a_quiet_period() {
    // The wait for a late answer is bounded: a device that swallowed one request (and answers
    // the rest) costs the next request at most one more request_timeout.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut first = true;
        while let Some(req) = read_request(&mut s).await {
            if first {
                first = false;
                continue;
            }
            s.write_all(&answer(&req, &[3])).await.unwrap();
        }
    });
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let rig = Rig::start_at(sim, addr, "", None).await;
    let mut c = rig.client(HISTORIAN).await;
    assert_eq!(c.call(1, &read_holding(100, 1)).await, [0x83, 0x0B]);
    let started = Instant::now();
    assert_eq!(registers_of(&c.call(1, &read_holding(100, 1)).await), [3]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    task.abort();
    rig.stop().await;
}
