//! The simulated device on its own: function codes, exceptions, identification, pipelining.

use std::net::SocketAddr;

use zonegate_gateway::sim::{Device, Sim};

use super::util::*;

async fn sim() -> (Sim, SocketAddr) {
    let s = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    let a = s.local_addr();
    (s, a)
}

#[tokio::test]
async fn serves_every_supported_function() {
    let (s, addr) = sim().await;
    let mut c = Client::connect(addr, "127.0.0.1").await;
    assert_eq!(
        registers_of(&c.call_raw(1, &[3, 0, 100, 0, 2]).await),
        [200, 180]
    );
    assert_eq!(registers_of(&c.call_raw(1, &[4, 0, 0, 0, 1]).await), [201]);
    assert_eq!(c.call_raw(1, &[1, 0, 0, 0, 4]).await, [1, 1, 0b0011]);
    assert_eq!(c.call_raw(1, &[2, 0, 0, 0, 4]).await, [2, 1, 0b1000]);
    assert_eq!(c.call_raw(1, &[5, 0, 2, 0xFF, 0]).await, [5, 0, 2, 0xFF, 0]);
    assert!(s.device().coil(2));
    assert_eq!(c.call_raw(1, &[6, 0, 5, 0, 9]).await, [6, 0, 5, 0, 9]);
    assert_eq!(
        c.call_raw(1, &[15, 0, 8, 0, 3, 1, 0b101]).await,
        [15, 0, 8, 0, 3]
    );
    assert!(s.device().coil(8) && !s.device().coil(9) && s.device().coil(10));
    assert_eq!(
        c.call_raw(1, &[16, 0, 10, 0, 2, 4, 0, 1, 0, 2]).await,
        [16, 0, 10, 0, 2]
    );
    assert_eq!(s.device().holding_range(10, 2), [1, 2]);
    // FC 22: (0x00F0 AND 0x0F0F) OR (0x1234 AND NOT 0x0F0F)
    s.device().set_holding(20, 0x00F0);
    assert_eq!(
        c.call_raw(1, &[22, 0, 20, 0x0F, 0x0F, 0x12, 0x34])
            .await
            .len(),
        7
    );
    let (cur, and, or) = (0x00F0u16, 0x0F0Fu16, 0x1234u16);
    assert_eq!(s.device().holding(20), (cur & and) | (or & !and));
    // FC 23 writes first, then reads.
    let pdu = c
        .call_raw(1, &[23, 0, 30, 0, 1, 0, 30, 0, 1, 2, 0, 77])
        .await;
    assert_eq!(pdu, [23, 2, 0, 77]);
    // FC 43/14 basic identification: vendor, product code, revision.
    let pdu = c.call_raw(1, &[0x2B, 0x0E, 1, 0]).await;
    assert_eq!(&pdu[..2], &[0x2B, 0x0E]);
    assert_eq!(pdu[6], 3, "three objects");
    assert!(pdu.windows(8).any(|w| w == b"zonegate"));
    // Unsupported function: 01. FC 8 is serial-line only here.
    assert_eq!(c.call_raw(1, &[8, 0, 0, 0x12, 0x34]).await, [0x88, 0x01]);
    // Malformed: 03.
    assert_eq!(c.call_raw(1, &[3, 0, 0, 0, 126]).await, [0x83, 0x03]);
    s.stop().await;
}

#[tokio::test]
async fn answers_pipelined_requests_in_one_go() {
    let (s, addr) = sim().await;
    let mut c = Client::connect(addr, "127.0.0.1").await;
    let mut batch = Vec::new();
    let mut tids = Vec::new();
    for i in 0..10 {
        let (tid, b) = c.adu(1, &read_holding(100 + i, 1));
        tids.push(tid);
        batch.extend(b);
    }
    c.send(&batch).await;
    for tid in tids {
        assert_eq!(c.recv_within(WAIT).await.unwrap().0, tid);
    }
    s.stop().await;
}

#[tokio::test]
async fn unit_filter_ignores_other_units() {
    let s = Sim::start(
        "127.0.0.1:0".parse().unwrap(),
        Device::hvac().with_unit(Some(7)),
    )
    .await
    .unwrap();
    let mut c = Client::connect(s.local_addr(), "127.0.0.1").await;
    assert_eq!(registers_of(&c.call(7, &read_holding(100, 1)).await), [200]);
    let (_, b) = c.adu(8, &read_holding(100, 1));
    c.send(&b).await;
    assert!(c
        .recv_within(std::time::Duration::from_millis(200))
        .await
        .is_none());
    s.stop().await;
}
