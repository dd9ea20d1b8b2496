//! Allowed traffic goes through, unchanged, and is recorded.

use zonegate_audit::{Decision, Kind};

use super::util::*;

#[tokio::test]
async fn allowed_read_reaches_the_device() {
    let rig = Rig::start("", None).await;
    let mut c = rig.client(HISTORIAN).await;
    let pdu = c.call(1, &read_holding(100, 4)).await;
    assert_eq!(registers_of(&pdu), [200, 180, 220, 210]);
    let pdu = c.call(1, &read_input(0, 2)).await;
    assert_eq!(registers_of(&pdu), [201, 182]);
    let events = rig
        .events_until(|e| e.iter().filter(|e| e.kind == Kind::Request).count() >= 2)
        .await;
    let req: Vec<_> = events.iter().filter(|e| e.kind == Kind::Request).collect();
    assert_eq!(req.len(), 2, "{events:#?}");
    let e = req[0];
    assert_eq!(e.decision, Some(Decision::Allow));
    assert_eq!(e.rule.as_deref(), Some("historian-read"));
    assert_eq!(e.reason.as_deref(), Some("allowed"));
    assert_eq!(e.fc, Some(3));
    assert_eq!(e.function.as_deref(), Some("read_holding_registers"));
    assert_eq!(e.table.as_deref(), Some("holding"));
    assert_eq!((e.address, e.quantity), (Some(100), Some(4)));
    assert_eq!(e.conduit.as_deref(), Some("C1"));
    assert!(e.src.as_deref().unwrap().starts_with("127.0.0.2:"));
    assert_eq!(
        e.dst.as_deref(),
        Some(rig.sim.local_addr().to_string().as_str())
    );
    assert!(e.latency_us.is_some());
    assert_eq!(e.exception, None);
    rig.stop().await;
}

#[tokio::test]
// That the write's record is fsynced before the device sees the write is proved by
// `audit::write_record_is_fsynced_before_the_device_sees_the_write` (timestamped fsyncs and
// arrivals); this test checks the records a forwarded write leaves.
async fn allowed_write_changes_the_device_and_gets_a_request_and_an_outcome_record() {
    let rig = Rig::start("", None).await;
    let mut c = rig.client(EWS).await;
    let pdu = c.call(1, &write_one(100, 215)).await;
    assert_eq!(pdu, [6, 0, 100, 0, 215]);
    assert_eq!(rig.sim.device().holding(100), 215);
    let events = rig
        .events_until(|e| e.iter().any(|e| e.kind == Kind::Outcome))
        .await;
    let req = events
        .iter()
        .find(|e| e.kind == Kind::Request && e.fc == Some(6))
        .expect("request record");
    assert_eq!(req.values.as_deref(), Some(&[215u16][..]));
    assert_eq!(req.decision, Some(Decision::Allow));
    let outcome = events.iter().find(|e| e.kind == Kind::Outcome).unwrap();
    assert_eq!(outcome.ref_seq, req.seq, "outcome names its request");
    assert_eq!(
        outcome.request_id, req.request_id,
        "and shares its request id"
    );
    assert!(req.request_id.is_some());
    assert!(outcome.seq > req.seq);
    assert_eq!(outcome.exception, None);
    rig.stop().await;
}

#[tokio::test]
async fn pipelined_requests_come_back_in_order() {
    let rig = Rig::start("      max_in_flight: 16\n", None).await;
    let mut c = rig.client(HISTORIAN).await;
    let mut batch = Vec::new();
    let mut tids = Vec::new();
    for i in 0..10u16 {
        // Mix allowed reads and a denied one (holding 300 is outside the rule) in one write.
        let req = if i == 4 {
            read_holding(300, 1)
        } else {
            read_holding(100 + i, 1)
        };
        let (tid, bytes) = c.adu(1, &req);
        tids.push(tid);
        batch.extend_from_slice(&bytes);
    }
    c.send(&batch).await;
    for (i, tid) in tids.iter().enumerate() {
        let (rtid, _, pdu) = c.recv_within(WAIT).await.expect("answer");
        assert_eq!(rtid, *tid, "answer {i} out of order");
        if i == 4 {
            assert_eq!(exception_of(&pdu), Some(0x02));
        } else {
            assert_eq!(pdu[0], 3);
        }
    }
    rig.stop().await;
}

#[tokio::test]
async fn client_transaction_ids_may_repeat() {
    // Some masters send every request with transaction id 0; the gateway must still answer each.
    let rig = Rig::start("", None).await;
    let mut c = rig.client(HISTORIAN).await;
    let mut batch = Vec::new();
    for i in 0..3u16 {
        let mut pdu = [0u8; 5];
        let n = read_holding(100 + i, 1).encode(&mut pdu).unwrap();
        let mut adu = [0u8; 260];
        let m = zonegate_modbus::tcp::encode_adu(
            0,
            zonegate_modbus::UnitId::new(1),
            &pdu[..n],
            &mut adu,
        )
        .unwrap();
        batch.extend_from_slice(&adu[..m]);
    }
    c.send(&batch).await;
    let mut values = Vec::new();
    for _ in 0..3 {
        let (tid, _, pdu) = c.recv_within(WAIT).await.expect("answer");
        assert_eq!(tid, 0);
        values.extend(registers_of(&pdu));
    }
    assert_eq!(values, [200, 180, 220]);
    rig.stop().await;
}

#[tokio::test]
async fn two_hundred_concurrent_clients() {
    let rig = Rig::start(
        "      max_connections: 256\n      max_connections_per_source: 256\n",
        None,
    )
    .await;
    let addr = rig.addr;
    let mut tasks = Vec::new();
    for _ in 0..200 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr, HISTORIAN).await;
            let pdu = c.call(1, &read_holding(100, 2)).await;
            registers_of(&pdu)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), [200, 180]);
    }
    rig.stop().await;
}

#[tokio::test]
async fn shutdown_writes_the_stop_record() {
    let rig = Rig::start("", None).await;
    let audit = rig.audit.clone();
    let mut c = rig.client(HISTORIAN).await;
    let _ = c.call(1, &read_holding(100, 1)).await;
    rig.gateway.shutdown().await;
    let events = read_events(&audit);
    assert!(
        events.iter().any(|e| e.kind == Kind::PolicyLoad),
        "{events:#?}"
    );
    assert_eq!(
        events.last().map(|e| e.kind),
        Some(Kind::Stop),
        "{events:#?}"
    );
    rig.sim.stop().await;
    let _ = std::fs::remove_dir_all(&rig.dir);
}

#[tokio::test]
async fn one_listener_per_gateway_conduit() {
    use zonegate_gateway::sim::{Device, Sim};
    use zonegate_gateway::{Gateway, GatewayOptions};
    let a = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    let b = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    let dir = temp_dir();
    let text = format!(
        "facility: two
zones:
  - zone_id: OPS
    networks: [127.0.0.0/8]
  - zone_id: CTRL
    assets: [\"plc a\", \"plc b\"]
  - zone_id: DOC
    assets: [\"no gateway here\"]
conduits:
  - conduit_id: CA
    connects: [OPS, CTRL]
    gateway: {{listen: 127.0.0.1:0, upstream: tcp://{}}}
    rules:
      - {{id: read-a, from: [OPS], functions: [read], holding: 0-199}}
  - conduit_id: CB
    connects: [OPS, CTRL]
    # Two listeners on port 0 of the same address count as a clash for the loader.
    gateway: {{listen: 127.0.0.5:0, upstream: tcp://{}, mode: monitor}}
  - conduit_id: CDOC
    connects: [OPS, DOC]
audit:
  path: {}
",
        a.local_addr(),
        b.local_addr(),
        dir.join("audit.log").display()
    );
    let gw = Gateway::start_text(&text, "two.yaml", GatewayOptions::default())
        .await
        .unwrap();
    let l = gw.listeners().to_vec();
    assert_eq!(l.len(), 2);
    assert_eq!((l[0].conduit.as_str(), l[0].mode), ("CA", "enforce"));
    assert_eq!((l[1].conduit.as_str(), l[1].mode), ("CB", "monitor"));
    let mut ca = Client::connect(l[0].addr, STRANGER).await;
    assert_eq!(
        registers_of(&ca.call(1, &read_holding(100, 1)).await),
        [200]
    );
    assert_eq!(ca.call(1, &write_one(100, 1)).await, [0x86, 0x01]);
    // CB has no rules but is in monitor mode: everything goes through to device b.
    let mut cb = Client::connect(l[1].addr, STRANGER).await;
    assert_eq!(cb.call(1, &write_one(100, 1)).await, [6, 0, 100, 0, 1]);
    assert_eq!(b.device().holding(100), 1);
    assert_eq!(a.device().holding(100), 200);
    gw.shutdown().await;
    a.stop().await;
    b.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_long_pipeline_is_bounded_not_lost() {
    // 500 requests in one burst, far more than max_in_flight: back-pressure, every one answered.
    let rig = Rig::start("", None).await;
    let mut c = rig.client(HISTORIAN).await;
    let mut batch = Vec::new();
    let mut tids = Vec::new();
    for i in 0..500u16 {
        let (tid, bytes) = c.adu(1, &read_holding(100 + (i % 4), 1));
        tids.push(tid);
        batch.extend_from_slice(&bytes);
    }
    c.send(&batch).await;
    for (i, tid) in tids.iter().enumerate() {
        let Some((rtid, _, pdu)) = c.recv_within(WAIT).await else {
            panic!("no answer {i}");
        };
        assert_eq!(rtid, *tid, "answer {i}");
        assert_eq!(pdu[0], 3, "answer {i}: {pdu:02x?}");
    }
    // The same with a mix of answers the gateway makes itself (denied) and the device's.
    for source in [HISTORIAN, EWS] {
        let mut c = rig.client(source).await;
        let mut batch = Vec::new();
        let mut tids = Vec::new();
        for i in 0..500u16 {
            let req = if i % 3 == 0 {
                write_one(100, 200)
            } else {
                read_holding(100, 1)
            };
            let (tid, bytes) = c.adu(1, &req);
            tids.push(tid);
            batch.extend_from_slice(&bytes);
        }
        c.send(&batch).await;
        for (i, tid) in tids.iter().enumerate() {
            let Some((rtid, _, _)) = c.recv_within(WAIT).await else {
                panic!("{source}: no answer {i}");
            };
            assert_eq!(rtid, *tid, "{source}: answer {i}");
        }
    }
    rig.stop().await;
}
