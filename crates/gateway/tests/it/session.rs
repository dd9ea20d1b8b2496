//! The session's side of the hardening work: lock-out by denied requests, request ids shared by
//! `request` and `outcome`, honest outcomes of unanswered writes, `ts` at arrival.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use zonegate_audit::{Decision, Kind};
use zonegate_gateway::sim::{Device, Sim};

use super::util::*;

/// Sends one denied read every `every` until the gateway closes the connection or `limit`
/// passes; returns how long the connection stayed open, `None` if it was never closed.
async fn denied_reads_until_closed(
    c: &mut Client,
    every: Duration,
    limit: Duration,
) -> Option<Duration> {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        // FC 3 at 500: outside every rule. (A source no rule names at all is refused at accept;
        // these tests use the EWS, named by a rule for writes only, as the stranger.)
        let (_, bytes) = c.adu(1, &read_holding(500, 1));
        if c.stream.write_all(&bytes).await.is_err() {
            return Some(started.elapsed());
        }
        match c.recv_within(every).await {
            // The denial's exception, or nothing yet: wait out the rest of the interval.
            Some((_, _, pdu)) => {
                assert!(exception_of(&pdu).is_some(), "{pdu:02x?}");
                tokio::time::sleep(every).await;
            }
            None => {
                if c.closed_within(Duration::from_millis(1)).await {
                    return Some(started.elapsed());
                }
            }
        }
    }
    None
}

#[tokio::test]
async fn denied_requests_refresh_the_idle_timer() {
    // Issue 14.1: one denied read every 100 ms kept a stranger's session open for ever, past
    // `idle_timeout` (each denial refreshed the idle timer).
    let rig = Rig::start("      idle_timeout: 800ms\n", None).await;
    let mut stranger = rig.client(EWS).await;
    let open_for = denied_reads_until_closed(
        &mut stranger,
        Duration::from_millis(100),
        Duration::from_secs(4),
    )
    .await
    .expect("the stranger's session is closed");
    assert!(
        open_for >= Duration::from_millis(700) && open_for < Duration::from_secs(3),
        "{open_for:?}"
    );
    rig.stop().await;
}

#[tokio::test]
async fn denied_requests_hold_slots_past_the_unauthenticated_idle_timeout() {
    // Issue 14.1: a session that made no allowed request is closed after the short timeout
    // however many denied requests it sends, while an operator's session keeps its full idle
    // timeout.
    let rig = Rig::start(
        "      idle_timeout: 10s\n      unauthenticated_idle_timeout: 500ms\n",
        None,
    )
    .await;
    let mut stranger = rig.client(EWS).await;
    let open_for = denied_reads_until_closed(
        &mut stranger,
        Duration::from_millis(100),
        Duration::from_secs(4),
    )
    .await
    .expect("the stranger's session is closed");
    assert!(
        open_for >= Duration::from_millis(400) && open_for < Duration::from_secs(3),
        "{open_for:?}"
    );

    // The historian: one allowed read, then only denied ones (address 500 is outside its
    // rule) for longer than the short timeout: still open, the normal idle timeout applies.
    let mut historian = rig.client(HISTORIAN).await;
    assert_eq!(
        registers_of(&historian.call(1, &read_holding(100, 1)).await),
        [200]
    );
    let still = denied_reads_until_closed(
        &mut historian,
        Duration::from_millis(100),
        Duration::from_millis(1500),
    )
    .await;
    assert_eq!(still, None, "the operator's session stays open");
    assert_eq!(
        registers_of(&historian.call(1, &read_holding(100, 1)).await),
        [200]
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_silent_client_that_never_made_an_allowed_request_is_closed_early() {
    let rig = Rig::start(
        "      idle_timeout: 10s\n      unauthenticated_idle_timeout: 300ms\n",
        None,
    )
    .await;
    let mut idle = rig.client(EWS).await;
    let started = std::time::Instant::now();
    assert!(idle.closed_within(WAIT).await);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // An allowed client silent for as long is not.
    let mut c = rig.client(HISTORIAN).await;
    let _ = c.call(1, &read_holding(100, 1)).await;
    assert!(!c.closed_within(Duration::from_millis(800)).await);
    rig.stop().await;
}

#[tokio::test]
async fn request_and_outcome_share_a_request_id() {
    let rig = Rig::start("", None).await;
    let mut ews = rig.client(EWS).await;
    assert_eq!(ews.call(1, &write_one(100, 201)).await, [6, 0, 100, 0, 201]);
    assert_eq!(ews.call(1, &write_one(101, 202)).await, [6, 0, 101, 0, 202]);
    // A denial gets an id too.
    let _ = ews.call(1, &read_holding(0, 1)).await;
    let events = rig
        .events_until(|e| e.iter().filter(|e| e.kind == Kind::Outcome).count() >= 2)
        .await;
    let writes: Vec<_> = events
        .iter()
        .filter(|e| e.kind == Kind::Request && e.fc == Some(6))
        .collect();
    assert_eq!(writes.len(), 2);
    let ids: Vec<u64> = writes.iter().map(|e| e.request_id.unwrap()).collect();
    assert_ne!(ids[0], ids[1]);
    for w in &writes {
        let outcome = events
            .iter()
            .find(|e| e.kind == Kind::Outcome && e.ref_seq == w.seq)
            .expect("outcome of the write");
        assert_eq!(outcome.request_id, w.request_id);
        assert_eq!(outcome.reason, None, "answered: no `unanswered`");
    }
    let denied = rig
        .events_until(|e| e.iter().any(|e| e.decision == Some(Decision::Deny)))
        .await;
    let denied = denied
        .iter()
        .find(|e| e.decision == Some(Decision::Deny))
        .unwrap();
    assert!(denied.request_id.is_some_and(|id| !ids.contains(&id)));
    rig.stop().await;
}

/// A device that accepts and never answers (at most 4 connections).
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
async fn an_unanswered_write_gets_an_outcome_that_looks_like_success() {
    // Issue 14.5: a durable write the device never answered got an outcome without a word of
    // it. Now the outcome says `unanswered`, with the 0x0B the client got and why.
    let (addr, task) = silent_device().await;
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let rig = Rig::start_at(sim, addr, "", None).await;
    let mut ews = rig.client(EWS).await;
    assert_eq!(ews.call(1, &write_one(100, 201)).await, [0x86, 0x0B]);
    let events = rig
        .events_until(|e| e.iter().any(|e| e.kind == Kind::Outcome))
        .await;
    let request = events
        .iter()
        .find(|e| e.kind == Kind::Request && e.fc == Some(6))
        .expect("durable request record");
    let outcome = events
        .iter()
        .find(|e| e.kind == Kind::Outcome)
        .expect("outcome");
    assert_eq!(outcome.ref_seq, request.seq);
    assert_eq!(outcome.request_id, request.request_id);
    assert_eq!(outcome.exception, Some(0x0B));
    assert_eq!(outcome.reason.as_deref(), Some("unanswered"));
    assert!(
        outcome
            .message
            .as_deref()
            .is_some_and(|m| m.contains("did not answer")),
        "{outcome:?}"
    );
    task.abort();
    rig.stop().await;
}

#[tokio::test]
async fn ts_is_when_the_record_was_queued_not_when_the_request_arrived() {
    // Issue 14.9: `ts` was stamped when the record was queued, after the answer. A device that
    // answers after 400 ms shows the difference.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut req = [0u8; 12];
        s.read_exact(&mut req).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let answer = [req[0], req[1], 0, 0, 0, 5, req[6], 3, 2, 0, 7];
        s.write_all(&answer).await.unwrap();
        let mut rest = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(3), s.read(&mut rest)).await;
    });
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let rig = Rig::start_at(sim, addr, "", None).await;
    let mut c = rig.client(HISTORIAN).await;
    let sent = SystemTime::now();
    assert_eq!(registers_of(&c.call(1, &read_holding(100, 1)).await), [7]);
    let events = rig
        .events_until(|e| e.iter().any(|e| e.kind == Kind::Request))
        .await;
    let request = events.iter().find(|e| e.kind == Kind::Request).unwrap();
    let ts_ns = request.time().expect("ts").unix_timestamp_nanos();
    let sent_ns = sent.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i128;
    // `ts` has microseconds: allow 1 ms of rounding before the send.
    let after_ms = (ts_ns - sent_ns) / 1_000_000;
    assert!(
        (-1..200).contains(&after_ms),
        "ts is {after_ms} ms after the request was sent"
    );
    assert!(request.latency_us.unwrap() >= 390_000);
    task.abort();
    rig.stop().await;
}

#[tokio::test]
async fn a_write_cut_off_by_the_drain_deadline_gets_an_outcome_that_looks_like_success() {
    // Issue 14.5: a durable write still at the device when the drain deadline passed got an
    // outcome with no word of it. Now the outcome says `unanswered` and why.
    let (addr, task) = silent_device().await;
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    // Drain 200 ms, request timeout 1 s: the deadline passes first.
    let rig = Rig::start_draining(sim, addr, Duration::from_millis(200)).await;
    let mut ews = rig.client(EWS).await;
    let (_, bytes) = ews.adu(1, &write_one(100, 201));
    ews.send(&bytes).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let Rig {
        sim,
        gateway,
        dir,
        audit,
        ..
    } = rig;
    let summary = tokio::time::timeout(WAIT, gateway.shutdown())
        .await
        .unwrap();
    assert_eq!(
        summary.sessions_cut, 0,
        "the session ended itself at the deadline"
    );
    let events = read_events(&audit);
    let request = events
        .iter()
        .find(|e| e.kind == Kind::Request && e.fc == Some(6))
        .expect("durable request record");
    let outcome = events
        .iter()
        .find(|e| e.kind == Kind::Outcome)
        .expect("outcome of the cut-off write");
    assert_eq!(outcome.ref_seq, request.seq);
    assert_eq!(outcome.request_id, request.request_id);
    assert_eq!(outcome.reason.as_deref(), Some("unanswered"));
    assert!(
        outcome
            .message
            .as_deref()
            .is_some_and(|m| m.contains("drain deadline")),
        "{outcome:?}"
    );
    task.abort();
    sim.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
