//! The upstream pool: many client sessions share at most `max_upstream_connections` device
//! connections.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use zonegate_gateway::sim::{Device, Sim};

use super::util::*;

#[tokio::test]
async fn every_session_opens_its_own_device_connection_with_no_cap() {
    // Issue 14.9: 32 clients opened 32 device connections (many PLCs take 4-16). Through a pool
    // of 2, all 32 get right answers and the device never sees more than 2 connections.
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    for i in 0..32u16 {
        sim.device().set_holding(i, 1000 + i);
    }
    let proxy = CountingProxy::start(sim.local_addr(), 64).await;
    let rig = Rig::start_at(
        sim,
        proxy.addr,
        "      max_upstream_connections: 2\n      max_connections_per_source: 32\n",
        None,
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..32u16 {
        let mut c = rig.client(HISTORIAN).await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
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
    let most = proxy.most.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&most),
        "the device saw {most} connections at once"
    );
    assert!(
        proxy.accepted.load(Ordering::SeqCst) <= 2,
        "connections are reused, not re-opened"
    );
    rig.stop().await;
    proxy.stop();
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

#[tokio::test]
async fn a_broken_pooled_connection_is_replaced() {
    // The device closes the connection after each answer: the next borrow notices the closed
    // idle connection and opens a new one instead of failing the request.
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
    let rig = Rig::start_at(sim, addr, "      max_upstream_connections: 1\n", None).await;
    let mut c = rig.client(HISTORIAN).await;
    for _ in 0..3 {
        assert_eq!(registers_of(&c.call(1, &read_holding(100, 1)).await), [5]);
        // Let the FIN arrive while the connection is idle in the pool.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    rig.stop().await;
}
