//! The audit trail in the data path: `audit.on_failure` while the log cannot be written, and
//! recovery once it can.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zonegate_audit::{FileStorage, Storage};
use zonegate_gateway::sim::{Device, Sim};
use zonegate_gateway::AuditStorageFactory;

use super::util::*;

/// The real file, with a switch that makes every operation fail like a full disk.
struct Faulty {
    inner: FileStorage,
    failing: Arc<AtomicBool>,
}

impl Faulty {
    fn check(&self) -> io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            Err(io::Error::other("no space left on device (simulated)"))
        } else {
            Ok(())
        }
    }
}

impl Storage for Faulty {
    fn open(&mut self) -> io::Result<u64> {
        self.check()?;
        self.inner.open()
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.write_all(buf)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.check()?;
        self.inner.sync()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
    fn can_rotate(&self) -> bool {
        self.inner.can_rotate()
    }
    fn rotate(&mut self) -> io::Result<()> {
        self.check()?;
        self.inner.rotate()
    }
}

async fn faulty_rig(on_failure: &str) -> (Rig, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(false));
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    let upstream = sim.local_addr();
    // The factory needs the audit path, which the rig picks: take it from a shared cell.
    let path_cell: Arc<std::sync::Mutex<Option<std::path::PathBuf>>> = Arc::default();
    let cell = Arc::clone(&path_cell);
    let flag = Arc::clone(&failing);
    let factory: AuditStorageFactory = Arc::new(move || {
        let path = cell.lock().unwrap().clone().unwrap_or_default();
        Box::new(Faulty {
            inner: FileStorage::new(path),
            failing: Arc::clone(&flag),
        })
    });
    // The rig picks the audit file; the hook tells the factory before the gateway starts.
    let rig = Rig::launch_with_path_hook(
        sim,
        upstream,
        &format!("  on_failure: {on_failure}\n"),
        factory,
        move |audit| *path_cell.lock().unwrap() = Some(audit.to_path_buf()),
    )
    .await;
    (rig, failing)
}

#[tokio::test]
async fn block_writes_refuses_writes_while_the_log_fails_and_recovers() {
    let (rig, failing) = faulty_rig("block_writes").await;
    let mut ews = rig.client(EWS).await;
    let mut hist = rig.client(HISTORIAN).await;
    assert_eq!(ews.call(1, &write_one(100, 210)).await, [6, 0, 100, 0, 210]);

    failing.store(true, Ordering::SeqCst);
    assert_eq!(ews.call(1, &write_one(100, 220)).await, [0x86, 0x04]);
    assert_eq!(rig.sim.device().holding(100), 210, "not forwarded");
    // Reads go on.
    assert_eq!(
        registers_of(&hist.call(1, &read_holding(100, 1)).await),
        [210]
    );
    assert_eq!(ews.call(1, &write_one(100, 221)).await, [0x86, 0x04]);

    failing.store(false, Ordering::SeqCst);
    let mut recovered = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if ews.call(1, &write_one(100, 230)).await == [6, 0, 100, 0, 230] {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "writes pass again once the log can be written");
    assert_eq!(rig.sim.device().holding(100), 230);
    rig.stop().await;
}

#[tokio::test]
async fn block_all_refuses_reads_too() {
    let (rig, failing) = faulty_rig("block_all").await;
    let mut hist = rig.client(HISTORIAN).await;
    assert_eq!(
        registers_of(&hist.call(1, &read_holding(100, 1)).await),
        [200]
    );
    failing.store(true, Ordering::SeqCst);
    // The first read's record fails in the background; from then on everything gets 0x04.
    let mut blocked = false;
    for _ in 0..50 {
        if hist.call(1, &read_holding(100, 1)).await == [0x83, 0x04] {
            blocked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(blocked, "reads are refused under block_all");
    failing.store(false, Ordering::SeqCst);
    rig.stop().await;
}

#[tokio::test]
async fn continue_forwards_while_the_log_fails() {
    let (rig, failing) = faulty_rig("continue").await;
    let mut ews = rig.client(EWS).await;
    failing.store(true, Ordering::SeqCst);
    assert_eq!(ews.call(1, &write_one(100, 215)).await, [6, 0, 100, 0, 215]);
    assert_eq!(rig.sim.device().holding(100), 215);
    failing.store(false, Ordering::SeqCst);
    rig.stop().await;
}
