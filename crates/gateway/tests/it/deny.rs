//! Denied requests: the exception docs/DESIGN.md names, or nothing (drop), or a closed connection;
//! never the device. Monitor mode forwards and records `would_deny`.

use std::time::Duration;

use zonegate_audit::{Decision, Kind};
use zonegate_modbus::{AddressRange, RegisterValues, Request};

use super::util::*;

#[tokio::test]
async fn each_denial_reason_has_its_exception() {
    let rig = Rig::start("", None).await;

    // A source no rule names is refused at accept (accept.rs has the details).
    let mut stranger = rig.client(STRANGER).await;
    assert!(stranger.closed_within(WAIT).await, "stranger refused");

    // 01: no rule allows this function for this source.
    let values = [0x01u8, 0x2C, 0x01, 0x2C];
    let fc16 = Request::WriteMultipleRegisters {
        range: AddressRange::new(100, 2).unwrap(),
        values: RegisterValues::new(&values).unwrap(),
    };
    let mut hist = rig.client(HISTORIAN).await;
    assert_eq!(hist.call(1, &fc16).await, [0x90, 0x01]);
    assert_eq!(hist.call(1, &write_one(100, 200)).await, [0x86, 0x01]);

    // 02: the function is allowed, the address is not.
    assert_eq!(hist.call(1, &read_holding(199, 2)).await, [0x83, 0x02]);
    assert_eq!(hist.call(1, &read_input(100, 1)).await, [0x84, 0x02]);

    // 03: a written value is out of bounds.
    let mut ews = rig.client(EWS).await;
    assert_eq!(ews.call(1, &write_one(100, 300)).await, [0x86, 0x03]);
    assert_eq!(ews.call(1, &write_one(100, 179)).await, [0x86, 0x03]);
    assert_eq!(
        rig.sim.device().holding(100),
        200,
        "denied writes never reach the device"
    );

    // 06: rate limit (5/s): a burst of writes runs out of tokens.
    let mut codes = Vec::new();
    for _ in 0..12 {
        let pdu = ews.call(1, &write_one(101, 190)).await;
        codes.push(exception_of(&pdu));
    }
    assert!(codes.contains(&None), "some writes pass: {codes:?}");
    assert!(
        codes.contains(&Some(0x06)),
        "the burst is limited: {codes:?}"
    );

    let events = rig
        .events_until(|e| {
            e.iter()
                .any(|e| e.reason.as_deref() == Some("rate_limited"))
        })
        .await;
    let reasons: Vec<_> = events
        .iter()
        .filter(|e| e.kind == Kind::Request && e.decision == Some(Decision::Deny))
        .filter_map(|e| e.reason.clone())
        .collect();
    for r in [
        "no_rule_for_function",
        "address_out_of_range",
        "value_out_of_bounds",
        "rate_limited",
    ] {
        assert!(
            reasons.iter().any(|x| x == r),
            "{r} missing from {reasons:?}"
        );
    }
    let denied = events
        .iter()
        .find(|e| e.decision == Some(Decision::Deny) && e.fc == Some(16))
        .unwrap();
    assert_eq!(denied.exception, Some(1));
    assert_eq!(denied.values.as_deref(), Some(&[300u16, 300][..]));
    rig.stop().await;
}

#[tokio::test]
async fn deny_drop_sends_nothing_and_keeps_the_connection() {
    let rig = Rig::start("      deny: drop\n", None).await;
    let mut c = rig.client(HISTORIAN).await;
    let (_, bytes) = c.adu(1, &write_one(100, 200));
    c.send(&bytes).await;
    assert!(
        c.recv_within(Duration::from_millis(300)).await.is_none(),
        "no answer"
    );
    let pdu = c.call(1, &read_holding(100, 1)).await;
    assert_eq!(registers_of(&pdu), [200]);
    rig.stop().await;
}

#[tokio::test]
async fn deny_close_closes_the_connection() {
    let rig = Rig::start("      deny: close\n", None).await;
    let mut c = rig.client(HISTORIAN).await;
    let (_, bytes) = c.adu(1, &write_one(100, 200));
    c.send(&bytes).await;
    assert!(c.closed_within(WAIT).await, "connection closed");
    rig.stop().await;
}

#[tokio::test]
async fn monitor_mode_forwards_and_records_would_deny() {
    let rig = Rig::start("      mode: monitor\n", None).await;
    let mut c = rig.client(STRANGER).await;
    let pdu = c.call(1, &write_one(100, 230)).await;
    assert_eq!(pdu, [6, 0, 100, 0, 230]);
    assert_eq!(rig.sim.device().holding(100), 230);
    let events = rig
        .events_until(|e| e.iter().any(|e| e.decision == Some(Decision::WouldDeny)))
        .await;
    let e = events
        .iter()
        .find(|e| e.decision == Some(Decision::WouldDeny))
        .expect("would_deny record");
    assert_eq!(e.reason.as_deref(), Some("no_rule_for_source"));
    assert_eq!(e.exception, None, "the device answered");
    assert_eq!(e.mode.as_deref(), Some("monitor"));
    rig.stop().await;
}

#[tokio::test]
async fn max_connections_refuses_the_extra_client() {
    // Past max_connections_wait in the listen backlog, the newcomer is refused.
    let rig = Rig::start(
        "      max_connections: 2\n      max_connections_wait: 200ms\n",
        None,
    )
    .await;
    let mut a = rig.client(HISTORIAN).await;
    let mut b = rig.client(HISTORIAN).await;
    let _ = a.call(1, &read_holding(100, 1)).await;
    let _ = b.call(1, &read_holding(100, 1)).await;
    let mut c = rig.client(HISTORIAN).await;
    assert!(c.closed_within(WAIT).await, "third connection refused");
    drop(a);
    // A slot frees up once the first session has ended.
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut d = rig.client(HISTORIAN).await;
        let (_, bytes) = d.adu(1, &read_holding(100, 1));
        d.send(&bytes).await;
        if d.recv_within(Duration::from_millis(500)).await.is_some() {
            ok = true;
            break;
        }
    }
    assert!(ok, "a new client is served after one left");
    rig.stop().await;
}
