//! `max_connections` backpressure (issue 9.4): at the limit the listener stops accepting and
//! newcomers wait in the kernel's listen backlog until a slot frees, as with haproxy's
//! `maxconn`, instead of being reset. Also the admin figures these paths update.

use std::time::Duration;

use super::util::*;

/// 100 clients at once against the default `max_connections` 64: every one is served.
/// Regression: the 36 over the limit were reset at accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_100_clients_over_max_connections_64_is_served_late_not_reset() {
    let rig = Rig::start(
        "      max_connections: 64\n      max_connections_per_source: 100\n      max_connections_wait: 20s\n",
        None,
    )
    .await;
    // Phase 1: all 100 connect before any request, so 64 hold a slot and 36 are in the
    // backlog together (connect succeeds: the kernel completes the handshake).
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients.push(rig.client(HISTORIAN).await);
    }
    // Phase 2: each asks once, gets its answer, holds the connection briefly and leaves.
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let (_, bytes) = c.adu(1, &read_holding(100, 1));
                c.send(&bytes).await;
                let answer = c.recv_within(Duration::from_secs(30)).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                drop(c);
                answer.map(|(_, _, pdu)| pdu)
            })
        })
        .collect();
    let mut served = 0;
    for t in tasks {
        if let Ok(Some(pdu)) = t.await {
            assert_eq!(registers_of(&pdu), [200], "{pdu:?}");
            served += 1;
        }
    }
    assert_eq!(served, 100, "every client of the burst is served");
    let text = rig.gateway.metrics().encode();
    let waits = text
        .lines()
        .find(|l| l.starts_with("zonegate_connections_backlog_waits_total{"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        !waits.is_empty() && !waits.ends_with(" 0"),
        "the listener held back: {text}"
    );
    assert!(
        !text.contains("zonegate_connections_refused_total{"),
        "nobody refused: {text}"
    );
    rig.stop().await;
}

/// The counters an operator reads after a denial: requests by decision and reason, the
/// exception sent, the connection counted; readiness follows the listeners.
#[tokio::test]
async fn metrics_count_a_denial_and_readiness_follows_the_listeners() {
    let rig = Rig::start("", None).await;
    let m = rig.gateway.metrics();
    assert!(m.ready(), "listeners up and the audit log writable");
    let mut c = rig.client(HISTORIAN).await;
    // The historian may read but not write.
    let pdu = c.call(1, &write_one(100, 200)).await;
    assert_eq!(exception_of(&pdu), Some(1));
    let text = m.encode();
    assert!(
        text.lines().any(|l| l.starts_with("zonegate_requests_total{conduit=\"C1\",unit=\"1\",function=\"write_single_register\",decision=\"deny\"")),
        "{text}"
    );
    assert!(
        text.contains("zonegate_exceptions_sent_total{conduit=\"C1\",code=\"1\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("zonegate_connections_total{conduit=\"C1\""),
        "{text}"
    );
    assert!(text.contains("zonegate_config_info{hash=\""), "{text}");
    assert!(
        text.contains("# TYPE zonegate_upstream_response_seconds histogram"),
        "{text}"
    );
    let state = m.snapshot();
    assert_eq!(state["recent"][0]["src"], HISTORIAN, "{state}");
    assert_eq!(state["conduits"][0]["id"], "C1", "{state}");
    drop(c);
    let gateway = rig.gateway;
    let m = gateway.metrics();
    gateway.shutdown().await;
    assert!(!m.ready(), "not ready once shutdown began");
    rig.sim.stop().await;
    let _ = std::fs::remove_dir_all(&rig.dir);
}
