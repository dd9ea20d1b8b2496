//! Write class for the audit trail: everything that is not a read is made durable before it is
//! forwarded and refused under `block_writes` while the log fails (FC 8 restart, listen-only,
//! clear counters, user-defined codes included).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use zonegate_audit::{FileStorage, Kind};
use zonegate_gateway::sim::{Device, Sim};
use zonegate_gateway::AuditStorageFactory;

use super::util::*;

/// The EWS may use diagnostics (FC 8) and a user-defined code; the historian reads.
const RULES: &str = "      - id: historian-read
        from: [HIST]
        functions: [read]
        holding: 0-199
      - id: ews-diagnostics
        from: [EWS]
        functions: [diagnostics, 65]
";

async fn rig_with_switch() -> (Rig, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(false));
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    let upstream = sim.local_addr();
    let cell: Arc<Mutex<Option<PathBuf>>> = Arc::default();
    let (c, flag) = (Arc::clone(&cell), Arc::clone(&failing));
    let factory: AuditStorageFactory = Arc::new(move || {
        Box::new(Faulty {
            inner: FileStorage::new(c.lock().unwrap().clone().unwrap_or_default()),
            failing: Arc::clone(&flag),
        })
    });
    let rig = Rig::launch_inner(
        sim,
        upstream,
        "",
        Some(RULES),
        "  on_failure: block_writes\n",
        Some(factory),
        move |audit| *cell.lock().unwrap() = Some(audit.to_path_buf()),
    )
    .await;
    (rig, failing)
}

#[tokio::test]
async fn fc8_restart_and_user_defined_codes_are_treated_as_reads() {
    let (rig, failing) = rig_with_switch().await;
    let mut ews = rig.client(EWS).await;
    // FC 8 / 0x0001 Restart Communications Option (the sim answers 01: it does not do FC 8).
    assert_eq!(ews.call_raw(1, &[0x08, 0, 1, 0, 0]).await, [0x88, 0x01]);
    // FC 8 / 0x0000 Return Query Data is a read: no durable record first.
    assert_eq!(
        ews.call_raw(1, &[0x08, 0, 0, 0x12, 0x34]).await,
        [0x88, 0x01]
    );
    let events = rig
        .events_until(|e| e.iter().filter(|e| e.fc == Some(8)).count() >= 3)
        .await;
    let restart = events
        .iter()
        .find(|e| e.kind == Kind::Request && e.fc == Some(8))
        .expect("request record of the restart");
    assert!(
        events
            .iter()
            .any(|e| e.kind == Kind::Outcome && e.ref_seq == restart.seq),
        "the restart was made durable before it was forwarded (an outcome follows)"
    );
    let outcomes = events.iter().filter(|e| e.kind == Kind::Outcome).count();
    assert_eq!(outcomes, 1, "the echo is a read: one plain request record");

    // While the log fails, `block_writes` refuses FC 8 restart, listen-only and clear
    // counters, and the user-defined FC 65, with 0x04; reads still pass.
    failing.store(true, Ordering::SeqCst);
    for pdu in [
        &[0x08, 0, 1, 0, 0][..],
        &[0x08, 0, 4, 0, 0],
        &[0x08, 0, 0x0A, 0, 0],
        &[0x41, 1, 2],
    ] {
        let answer = ews.call_raw(1, pdu).await;
        assert_eq!(answer, [pdu[0] | 0x80, 0x04], "{pdu:02x?}");
    }
    let mut historian = rig.client(HISTORIAN).await;
    assert_eq!(
        registers_of(&historian.call(1, &read_holding(100, 1)).await),
        [200]
    );
    failing.store(false, Ordering::SeqCst);
    rig.stop().await;
}
