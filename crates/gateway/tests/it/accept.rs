//! The accept side (issue 14.1): a source no rule names is refused at accept, one source
//! cannot take every connection slot, and a slot comes back however its session ends.

use std::time::Duration;

use zonegate_audit::Kind;

use super::util::*;

/// The answer to EWS's allowed `write_one(100, 200)`: the echo.
const WRITE_ECHO: [u8; 5] = [6, 0, 100, 0, 200];

/// Connects from `source` and returns true when the gateway closed the connection.
async fn refused(rig: &Rig, source: &str) -> bool {
    let mut c = rig.client(source).await;
    c.closed_within(WAIT).await
}

/// Regression (14.1): 64 idle connections from a source no rule names filled
/// `max_connections` (64) and the allowed client was refused.
#[tokio::test]
async fn idle_connections_from_an_unnamed_source_lock_out_the_operators() {
    let rig = Rig::start("", None).await;
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(rig.client(STRANGER).await);
    }
    // Accepted after the 64 (the listener takes connections in order), it gets its answer.
    let mut hist = rig.client(HISTORIAN).await;
    assert_eq!(
        registers_of(&hist.call(1, &read_holding(100, 2)).await),
        [200, 180]
    );
    // Each stranger was closed by the gateway at once, so none held a slot.
    let closed = futures_all(idle.iter_mut().map(|c| c.closed_within(WAIT))).await;
    assert!(
        closed.iter().all(|c| *c),
        "every stranger connection refused"
    );
    // Refusals are recorded (the recorder may aggregate them into fewer records).
    let events = rig
        .events_until(|e| {
            e.iter()
                .any(|e| e.reason.as_deref() == Some("no_rule_for_source"))
        })
        .await;
    let refusals: Vec<_> = events
        .iter()
        .filter(|e| e.kind == Kind::Connection && e.reason.as_deref() == Some("no_rule_for_source"))
        .collect();
    assert!(!refusals.is_empty(), "refusals recorded: {events:#?}");
    assert!(refusals.len() <= 64);
    for e in refusals {
        assert_eq!(e.src.as_deref(), Some(STRANGER), "src without the port");
        assert_eq!(e.conduit.as_deref(), Some("C1"));
    }
    rig.stop().await;
}

#[tokio::test]
async fn one_named_source_cannot_take_every_connection_slot() {
    let rig = Rig::start(
        "      max_connections: 8\n      max_connections_per_source: 3\n",
        None,
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = rig.client(HISTORIAN).await;
        assert_eq!(c.call(1, &read_holding(100, 1)).await[0], 3);
        held.push(c);
    }
    assert!(refused(&rig, HISTORIAN).await, "a 4th from the same source");
    // Another source still gets in.
    let mut ews = rig.client(EWS).await;
    assert_eq!(ews.call(1, &write_one(100, 200)).await, WRITE_ECHO);
    // Closing one gives its slot back (bounded retries: the session sees the EOF first).
    drop(held.pop());
    let mut admitted = false;
    for _ in 0..100 {
        let mut c = rig.client(HISTORIAN).await;
        let (_, bytes) = c.adu(1, &read_holding(100, 1));
        c.send(&bytes).await;
        if c.recv_within(Duration::from_millis(500)).await.is_some() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "the freed slot is given back");
    let events = rig
        .events_until(|e| {
            e.iter()
                .any(|e| e.reason.as_deref() == Some("max_connections_per_source"))
        })
        .await;
    let e = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("max_connections_per_source"))
        .expect("refusal recorded");
    assert_eq!(e.kind, Kind::Connection);
    assert_eq!(e.src.as_deref(), Some(HISTORIAN));
    rig.stop().await;
}

/// A client from `source` that got an answer to an allowed read: retried (bounded) until
/// the slot an earlier session held is given back.
async fn admitted(rig: &Rig, source: &str) -> Option<Client> {
    for _ in 0..100 {
        let mut c = rig.client(source).await;
        let (_, bytes) = c.adu(1, &read_holding(100, 1));
        c.send(&bytes).await;
        if c.recv_within(Duration::from_millis(300)).await.is_some() {
            return Some(c);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn a_session_gives_its_slot_back_however_it_ends() {
    // One connection per source: each way of ending must free it for the next.
    let rig = Rig::start(
        "      max_connections_per_source: 1\n      idle_timeout: 300ms\n      deny: close\n",
        None,
    )
    .await;
    // The client closes.
    drop(admitted(&rig, HISTORIAN).await.expect("first"));
    // The gateway closes an idle session.
    let mut c = admitted(&rig, HISTORIAN)
        .await
        .expect("after the client closed");
    assert!(c.closed_within(WAIT).await, "closed by the idle timeout");
    // The gateway closes on a denied request (`deny: close`).
    let mut c = admitted(&rig, HISTORIAN)
        .await
        .expect("after the idle timeout");
    let (_, bytes) = c.adu(1, &write_one(100, 200));
    c.send(&bytes).await;
    assert!(c.closed_within(WAIT).await, "closed on the denied write");
    // A broken frame ends the session too.
    let mut c = admitted(&rig, HISTORIAN).await.expect("after deny: close");
    // | tid 00 01 | protocol id 00 01 (not Modbus) | length 00 06 | unit 01 | fc 06 ... |
    c.send(&[0, 1, 0, 1, 0, 6, 1, 6, 0, 100, 0, 200]).await;
    assert!(c.closed_within(WAIT).await, "closed on the broken frame");
    assert!(
        admitted(&rig, HISTORIAN).await.is_some(),
        "after a broken frame"
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_reload_that_names_a_source_lets_it_connect() {
    let rig = Rig::start("", None).await;
    assert!(refused(&rig, STRANGER).await);
    let rules = "      - id: stranger-read
        from: [127.0.0.9/32]
        functions: [read_holding_registers]
        holding: 100-109
";
    let text = model(rig.sim.local_addr(), &rig.audit, "", Some(rules));
    rig.gateway.reload_text(&text, "model.yaml").unwrap();
    let mut c = rig.client(STRANGER).await;
    assert_eq!(registers_of(&c.call(1, &read_holding(100, 1)).await), [200]);
    // And the historian, no longer named, is now refused.
    assert!(refused(&rig, HISTORIAN).await);
    rig.stop().await;
}

/// Polls every future to completion, in order (the futures run concurrently: each is a
/// bounded wait on its own socket).
async fn futures_all<F: std::future::Future<Output = bool>>(
    futures: impl Iterator<Item = F>,
) -> Vec<bool> {
    let mut out = Vec::new();
    let futures: Vec<_> = futures.map(Box::pin).collect();
    for f in futures {
        out.push(f.await);
    }
    out
}
