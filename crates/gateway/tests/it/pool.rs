//! The upstream pool: many client sessions share at most `max_upstream_connections` device
//! connections.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use zonegate_gateway::sim::{Device, Sim};

use super::util::*;

/// 32 clients from one address, each reading its own register `calls` times through a gateway
/// with `extra` keys and a counting proxy in front of `zonegate sim`: every answer must be the
/// client's own value (a mixed-up transaction id would show). `threads` > 0 runs the sessions
/// on that many session threads (workers.rs) instead of the test's runtime. Returns the most
/// device connections open at once and how many were accepted in all.
async fn thirty_two_clients(extra: &str, calls: usize, threads: usize) -> (usize, usize) {
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    for i in 0..32u16 {
        sim.device().set_holding(i, 1000 + i);
    }
    let proxy = CountingProxy::start(sim.local_addr(), 64).await;
    let keys = format!("{extra}      max_connections_per_source: 32\n");
    let rig = if threads == 0 {
        Rig::start_at(sim, proxy.addr, &keys, None).await
    } else {
        Rig::start_at_threads(sim, proxy.addr, &keys, threads).await
    };
    let mut tasks = Vec::new();
    for i in 0..32u16 {
        let mut c = rig.client(HISTORIAN).await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..calls {
                let pdu = c.call(1, &read_holding(i, 1)).await;
                assert_eq!(registers_of(&pdu), [1000 + i], "client {i}");
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("clients finish")
            .unwrap();
    }
    let counts = (
        proxy.most.load(Ordering::SeqCst),
        proxy.accepted.load(Ordering::SeqCst),
    );
    rig.stop().await;
    proxy.stop();
    counts
}

/// Asserts what [`thirty_two_clients`] counted: the most connections open at once within
/// `limit`, and no more accepted in all than its end (kept or reused, never re-opened).
fn device_saw((most, accepted): (usize, usize), limit: std::ops::RangeInclusive<usize>) {
    assert!(
        limit.contains(&most),
        "the device saw {most} connections at once"
    );
    assert!(
        accepted <= *limit.end(),
        "{accepted} connections opened: they are kept or reused, not re-opened"
    );
}

#[tokio::test]
async fn every_session_opens_its_own_device_connection_with_no_cap() {
    // Issue 14.9: 32 clients opened 32 device connections (many PLCs take 4-16). Through a pool
    // of 2, all 32 get right answers and the device never sees more than 2 connections.
    device_saw(
        thirty_two_clients("      max_upstream_connections: 2\n", 10, 0).await,
        1..=2,
    );
}

#[tokio::test]
async fn a_client_waits_for_a_busy_pool_then_gets_0b() {
    // Pool of 1, a device that holds its one connection's request for ever: the second
    // client waits request_timeout (1 s) for a connection, then gets 0x0B, and the device never
    // sees a second connection.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..4 {
            if let Ok((mut s, _)) = l.accept().await {
                let mut req = [0u8; 12];
                let _ = s.read_exact(&mut req).await;
                held.push(s);
            }
        }
    });
    let proxy = CountingProxy::start(addr, 8).await;
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let rig = Rig::start_at(sim, proxy.addr, "      max_upstream_connections: 1\n", None).await;
    let mut first = rig.client(HISTORIAN).await;
    let (_, bytes) = first.adu(1, &read_holding(100, 1));
    first.send(&bytes).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = rig.client(HISTORIAN).await;
    let started = std::time::Instant::now();
    assert_eq!(second.call(1, &read_holding(100, 1)).await, [0x83, 0x0B]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(proxy.most.load(Ordering::SeqCst), 1);
    task.abort();
    rig.stop().await;
    proxy.stop();
}

/// A device that answers one read per connection (register value 5) and closes it: three
/// requests of one client through a gateway with `extra` keys must all be answered, each on a
/// new device connection, never failed.
async fn three_reads_from_a_device_that_closes_after_each_answer(extra: &str) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut req = [0u8; 12];
            if s.read_exact(&mut req).await.is_ok() {
                let reply = [req[0], req[1], 0, 0, 0, 5, req[6], 3, 2, 0, 5];
                let _ = tokio::io::AsyncWriteExt::write_all(&mut s, &reply).await;
            }
            drop(s);
        }
    });
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let rig = Rig::start_at(sim, addr, extra, None).await;
    let mut c = rig.client(HISTORIAN).await;
    for _ in 0..3 {
        assert_eq!(registers_of(&c.call(1, &read_holding(100, 1)).await), [5]);
        // Let the FIN arrive while the connection is idle.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    rig.stop().await;
}

#[tokio::test]
async fn a_broken_pooled_connection_is_replaced() {
    // The next borrow notices the closed idle connection and opens a new one instead of
    // failing the request.
    three_reads_from_a_device_that_closes_after_each_answer("      max_upstream_connections: 1\n")
        .await;
}

#[tokio::test]
async fn sessions_share_a_device_connection_with_requests_in_flight_together() {
    // max_upstream_in_flight 8, at most 2 connections: 32 clients get right answers while
    // their requests share the connections, and the device sees at most 2 connections.
    device_saw(
        thirty_two_clients(
            "      max_upstream_connections: 2\n      max_upstream_in_flight: 8\n",
            20,
            0,
        )
        .await,
        1..=2,
    );
}

#[tokio::test]
async fn sessions_on_two_session_threads_get_their_own_answers_through_two_lent_connections() {
    // Session threads (workers.rs): a connection opened on one thread is lent to a session
    // of the other when it is the only one free, and the limit holds across threads.
    device_saw(
        thirty_two_clients("      max_upstream_connections: 2\n", 10, 2).await,
        1..=2,
    );
}

#[tokio::test]
async fn sessions_on_two_session_threads_share_connections_of_their_own_thread() {
    // Each thread shares its own device connections among its sessions (4 ports each at most
    // with in-flight 4: 16 sessions per thread need 4); the limit of 8 holds in all.
    device_saw(
        thirty_two_clients(
            "      max_upstream_connections: 8\n      max_upstream_in_flight: 4\n",
            20,
            2,
        )
        .await,
        2..=8,
    );
}

#[tokio::test]
async fn at_the_limit_a_session_thread_shares_the_other_threads_connection() {
    // One device connection for two session threads: the sessions of the thread that did not
    // open it share it too (cross-thread), rather than waiting or opening a second one.
    let (most, accepted) = thirty_two_clients(
        "      max_upstream_connections: 1\n      max_upstream_in_flight: 16\n",
        20,
        2,
    )
    .await;
    assert_eq!(most, 1, "the device saw {most} connections at once");
    assert_eq!(accepted, 1, "the one connection is kept");
}

#[tokio::test]
async fn a_shared_connection_the_device_drops_is_reopened() {
    // The session reads the end of its port, and its next request opens a new shared
    // connection instead of failing.
    three_reads_from_a_device_that_closes_after_each_answer("      max_upstream_in_flight: 4\n")
        .await;
}

#[tokio::test]
async fn a_shared_device_that_never_answers_gets_0b() {
    // A device that reads and never answers: the client hears 0x0B after request_timeout (1 s
    // in the rig), as on an unshared connection.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        let mut sink = [0u8; 256];
        while let Ok(n) = s.read(&mut sink).await {
            if n == 0 {
                return;
            }
        }
    });
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let rig = Rig::start_at(sim, addr, "      max_upstream_in_flight: 4\n", None).await;
    let mut c = rig.client(HISTORIAN).await;
    let started = std::time::Instant::now();
    assert_eq!(c.call(1, &read_holding(100, 1)).await, [0x83, 0x0B]);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    task.abort();
    rig.stop().await;
}

#[tokio::test]
async fn a_reload_that_stops_sharing_moves_the_session_off_the_shared_connection() {
    // A session on a shared device connection, then a reload to the default (unshared): the
    // same client connection is answered, now on a connection lent to it alone, and the
    // shared one closes once its last port is gone.
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    sim.device().set_holding(5, 4242);
    let proxy = CountingProxy::start(sim.local_addr(), 8).await;
    let rig = Rig::start_at(sim, proxy.addr, "      max_upstream_in_flight: 4\n", None).await;
    let mut c = rig.client(HISTORIAN).await;
    assert_eq!(registers_of(&c.call(1, &read_holding(5, 1)).await), [4242]);
    let accepted = proxy.accepted.load(Ordering::SeqCst);
    std::fs::write(&rig.model_path, model(proxy.addr, &rig.audit, "", None)).unwrap();
    match rig.gateway.reload() {
        Ok(zonegate_gateway::ReloadOutcome::Applied { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(registers_of(&c.call(1, &read_holding(5, 1)).await), [4242]);
    assert_eq!(
        proxy.accepted.load(Ordering::SeqCst),
        accepted + 1,
        "the unshared request went on a new device connection"
    );
    rig.stop().await;
    proxy.stop();
}

#[tokio::test]
async fn a_reload_to_another_device_reaches_sessions_on_every_session_thread() {
    // Each session keeps its own copy of the device's name for its records (conn.rs,
    // `Labels`): after a reload that points the conduit at another device, the sessions on
    // both session threads are answered by the new device and their records name it.
    let old = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    old.device().set_holding(5, 1111);
    let new = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    new.device().set_holding(5, 2222);
    let old_addr = old.local_addr();
    let rig = Rig::start_at_threads(old, old_addr, "      max_upstream_in_flight: 4\n", 2).await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut c = rig.client(HISTORIAN).await;
        assert_eq!(registers_of(&c.call(1, &read_holding(5, 1)).await), [1111]);
        clients.push(c);
    }
    let lines = "      max_upstream_in_flight: 4\n";
    std::fs::write(
        &rig.model_path,
        model(new.local_addr(), &rig.audit, lines, None),
    )
    .unwrap();
    match rig.gateway.reload() {
        Ok(zonegate_gateway::ReloadOutcome::Applied { .. }) => {}
        other => panic!("{other:?}"),
    }
    for c in &mut clients {
        assert_eq!(registers_of(&c.call(1, &read_holding(5, 1)).await), [2222]);
    }
    let new_label = new.local_addr().to_string();
    let events = rig
        .events_until(|e| {
            e.iter()
                .filter(|e| e.dst.as_deref() == Some(new_label.as_str()))
                .count()
                >= 4
        })
        .await;
    let to_new: Vec<_> = events
        .iter()
        .filter(|e| e.dst.as_deref() == Some(new_label.as_str()))
        .collect();
    assert_eq!(
        to_new.len(),
        4,
        "one record per client names the new device"
    );
    let sources: std::collections::HashSet<_> = to_new.iter().map(|e| e.src.clone()).collect();
    assert_eq!(sources.len(), 4, "every session's record: {sources:?}");
    rig.stop().await;
    new.stop().await;
}
