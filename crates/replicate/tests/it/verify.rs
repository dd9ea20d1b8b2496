//! The receive side's state machine and the replica image.

use std::time::{Duration, Instant};

use zonegate_modbus::ExceptionCode;
use zonegate_policy::{ReplicaTable, Replication};
use zonegate_replicate::datagram::{digest, stream_id, Kind};
use zonegate_replicate::{Applied, Datagram, Image, Outcome, Receiver, Rejection, TagKey};

use super::common::{hmac_key, replication};

const EPOCH: u64 = 1_000;

fn setup() -> (Replication, TagKey, Receiver) {
    let r = replication(
        "      - {unit: 1, table: holding, range: 0-9, period: 1s}\n      - {unit: 1, table: coils, range: 0-11, period: 1s}",
        ", max_age: 2s",
    );
    let key = hmac_key();
    let rx = Receiver::new(
        key.verify_key(),
        stream_id(&r),
        Image::new(&r),
        r.blocks.len(),
    );
    (r, key, rx)
}

fn regs(r: &Replication, epoch: u64, seq: u64, values: &[u16]) -> Datagram {
    Datagram {
        kind: Kind::Values,
        refresh: false,
        stream: stream_id(r),
        epoch,
        seq,
        source_us: 5,
        block: 0,
        unit: 1,
        table: ReplicaTable::Holding,
        start: 0,
        count: 10,
        payload: values.iter().flat_map(|v| v.to_be_bytes()).collect(),
    }
}

fn ten(v: u16) -> Vec<u16> {
    (0..10).map(|i| v + i).collect()
}

fn read(rx: &Receiver, start: u16, count: u16, now: Instant) -> Result<Vec<u16>, ExceptionCode> {
    rx.image()
        .read_registers(1, ReplicaTable::Holding, start, count, now)
        .map(|b| {
            b.chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect()
        })
}

#[test]
fn values_are_served_and_repeats_are_duplicates() {
    let (r, key, mut rx) = setup();
    let t = Instant::now();
    assert_eq!(
        read(&rx, 0, 10, t),
        Err(ExceptionCode::GatewayTargetFailedToRespond)
    );
    let bytes = regs(&r, EPOCH, 0, &ten(100)).encode(&key);
    assert!(matches!(
        rx.receive(&bytes, t),
        Outcome::Accepted {
            applied: Applied::Updated,
            lost: 0,
            restarted: false,
            ..
        }
    ));
    assert_eq!(rx.receive(&bytes, t), Outcome::Duplicate);
    assert_eq!(read(&rx, 2, 3, t).unwrap(), vec![102, 103, 104]);
    assert_eq!(rx.counters().duplicates, 1);
}

#[test]
fn a_read_outside_the_blocks_is_02_and_an_unknown_unit_is_0a() {
    let (r, key, mut rx) = setup();
    let t = Instant::now();
    rx.receive(&regs(&r, EPOCH, 0, &ten(1)).encode(&key), t);
    assert_eq!(read(&rx, 9, 2, t), Err(ExceptionCode::IllegalDataAddress));
    assert_eq!(
        rx.image().read_registers(1, ReplicaTable::Input, 0, 1, t),
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(
        rx.image().read_registers(2, ReplicaTable::Holding, 0, 1, t),
        Err(ExceptionCode::GatewayPathUnavailable)
    );
}

#[test]
fn a_block_older_than_max_age_answers_0b_and_is_reported_stale_once() {
    let (r, key, mut rx) = setup();
    let t = Instant::now();
    rx.receive(&regs(&r, EPOCH, 0, &ten(1)).encode(&key), t);
    assert!(read(&rx, 0, 1, t + Duration::from_secs(2)).is_ok());
    let late = t + Duration::from_millis(2001);
    assert_eq!(
        read(&rx, 0, 1, late),
        Err(ExceptionCode::GatewayTargetFailedToRespond)
    );
    // Block 1 (coils) never arrived; block 0 went stale.
    let changes = rx.stale_changes(late, true);
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|c| c.stale));
    assert!(rx.stale_changes(late, true).is_empty(), "reported twice");
    rx.receive(&regs(&r, EPOCH, 1, &ten(1)).encode(&key), late);
    let again = rx.stale_changes(late, true);
    assert_eq!(again.len(), 1);
    assert!(!again[0].stale && again[0].block == 0);
}

#[test]
fn an_unchanged_datagram_confirms_only_the_values_it_names() {
    let (r, key, mut rx) = setup();
    let t = Instant::now();
    let values = regs(&r, EPOCH, 0, &ten(7));
    rx.receive(&values.encode(&key), t);
    let mut same = values.clone();
    same.seq = 1;
    same.kind = Kind::Unchanged;
    same.payload = digest(&values.payload).to_vec();
    let later = t + Duration::from_millis(1500);
    assert!(matches!(
        rx.receive(&same.encode(&key), later),
        Outcome::Accepted {
            applied: Applied::Confirmed,
            ..
        }
    ));
    assert!(read(&rx, 0, 1, t + Duration::from_millis(3000)).is_ok());
    // The change at seq 2 was lost; seq 3 says "unchanged since" other values: diverged,
    // the old values keep ageing and go stale rather than being confirmed.
    let mut other = same;
    other.seq = 3;
    other.payload = digest(&[0u8; 20]).to_vec();
    assert!(matches!(
        rx.receive(&other.encode(&key), t + Duration::from_millis(3000)),
        Outcome::Accepted {
            applied: Applied::Diverged,
            ..
        }
    ));
    assert_eq!(
        read(&rx, 0, 1, t + Duration::from_millis(3600)),
        Err(ExceptionCode::GatewayTargetFailedToRespond)
    );
}

#[test]
fn an_older_datagram_never_overwrites_a_newer_one() {
    let (r, key, mut rx) = setup();
    let t = Instant::now();
    rx.receive(&regs(&r, EPOCH, 5, &ten(500)).encode(&key), t);
    assert_eq!(
        rx.receive(&regs(&r, EPOCH, 4, &ten(400)).encode(&key), t),
        Outcome::Rejected(Rejection::Reordered { seq: 4 })
    );
    assert_eq!(read(&rx, 0, 1, t).unwrap(), vec![500]);
}

#[test]
fn sequence_numbers_below_the_window_and_older_epochs_are_replays() {
    let (r, key, mut rx) = setup();
    let t = Instant::now();
    let old = regs(&r, EPOCH, 0, &ten(1)).encode(&key);
    rx.receive(&old, t);
    rx.receive(&regs(&r, EPOCH, 1000, &ten(2)).encode(&key), t);
    assert_eq!(
        rx.receive(&old, t),
        Outcome::Rejected(Rejection::Replayed {
            epoch: EPOCH,
            seq: 0
        })
    );
    // A restart: a newer epoch is accepted and flagged; the old epoch is a replay from then on.
    let restarted = rx.receive(&regs(&r, EPOCH + 1, 0, &ten(3)).encode(&key), t);
    assert!(matches!(
        restarted,
        Outcome::Accepted {
            restarted: true,
            ..
        }
    ));
    assert_eq!(
        rx.receive(&regs(&r, EPOCH, 1001, &ten(9)).encode(&key), t),
        Outcome::Rejected(Rejection::Replayed {
            epoch: EPOCH,
            seq: 1001
        })
    );
    assert_eq!(read(&rx, 0, 1, t).unwrap(), vec![3]);
}

#[test]
fn lost_sequence_numbers_are_counted_once_as_a_gap() {
    let (r, key, mut rx) = setup();
    let t = Instant::now();
    rx.receive(&regs(&r, EPOCH, 0, &ten(1)).encode(&key), t);
    // 1..=3 never arrive; 4 arrives; the window still waits for them.
    assert!(matches!(
        rx.receive(&regs(&r, EPOCH, 4, &ten(1)).encode(&key), t),
        Outcome::Accepted { lost: 0, .. }
    ));
    // 2 arrives late (reordered, but for the same segment: discarded, not lost).
    assert_eq!(
        rx.receive(&regs(&r, EPOCH, 2, &ten(1)).encode(&key), t),
        Outcome::Rejected(Rejection::Reordered { seq: 2 })
    );
    // Jump to 204: 1 and 3 leave the window unseen, and 5..=76 are skipped past it; 77..=203
    // are still in the window (they may yet arrive).
    match rx.receive(&regs(&r, EPOCH, 204, &ten(1)).encode(&key), t) {
        Outcome::Accepted { lost, .. } => assert_eq!(lost, 2 + 72),
        other => panic!("{other:?}"),
    }
    // 150 arrives late: no longer lost.
    rx.receive(&regs(&r, EPOCH, 150, &ten(1)).encode(&key), t);
    // A full window later, 77..=203 but 150 have left it unseen.
    match rx.receive(&regs(&r, EPOCH, 204 + 128, &ten(1)).encode(&key), t) {
        Outcome::Accepted { lost, .. } => assert_eq!(lost, 126),
        other => panic!("{other:?}"),
    }
    assert_eq!(rx.counters().lost, 200);
}

#[test]
fn a_datagram_of_another_replication_is_foreign_even_with_the_right_key() {
    let (_, key, mut rx) = setup();
    let other = replication(
        "      - {unit: 1, table: holding, range: 0-9, period: 1s}",
        "",
    );
    let d = regs(&other, EPOCH, 0, &ten(1));
    assert_eq!(
        rx.receive(&d.encode(&key), Instant::now()),
        Outcome::Rejected(Rejection::Foreign)
    );
}

#[test]
fn a_datagram_naming_no_configured_segment_is_rejected() {
    let (r, key, mut rx) = setup();
    let mut d = regs(&r, EPOCH, 0, &ten(1));
    d.start = 1;
    assert_eq!(
        rx.receive(&d.encode(&key), Instant::now()),
        Outcome::Rejected(Rejection::UnknownSegment { block: 0 })
    );
}

#[test]
fn coils_are_served_packed_in_modbus_order() {
    let (r, key, mut rx) = setup();
    let t = Instant::now();
    let d = Datagram {
        kind: Kind::Values,
        refresh: true,
        stream: stream_id(&r),
        epoch: EPOCH,
        seq: 0,
        source_us: 1,
        block: 1,
        unit: 1,
        table: ReplicaTable::Coils,
        start: 0,
        count: 12,
        payload: vec![0b1010_0101, 0b0000_1001],
    };
    rx.receive(&d.encode(&key), t);
    // Coils 3..=10: bits 3,4,5,6,7 of byte 0 then 0,1,2 of byte 1: 0 0 1 0 1 | 1 0 0
    assert_eq!(
        rx.image()
            .read_bits(1, ReplicaTable::Coils, 3, 8, t)
            .unwrap(),
        vec![0b0011_0100]
    );
}

/// Regression (issue 13): the window was kept in memory only, so right after a restart of
/// the receive side a datagram captured before it was accepted once. A restored position
/// rejects every number up to it, inside the old window too, and keeps counting gaps.
#[test]
fn a_restored_position_rejects_what_was_accepted_before_the_restart() {
    let (r, key, mut rx) = setup();
    let t = Instant::now();
    let captured = regs(&r, EPOCH, 5, &ten(1)).encode(&key);
    rx.receive(&captured, t);
    rx.receive(&regs(&r, EPOCH, 6, &ten(2)).encode(&key), t);
    let (epoch, seq) = rx.position().unwrap();
    assert_eq!((epoch, seq), (EPOCH, 6));
    // The restart: a new receiver with the saved position.
    let (_, _, mut fresh) = setup();
    fresh.restore(epoch, seq);
    for (bytes, s) in [
        (captured.clone(), 5),
        (regs(&r, EPOCH, 6, &ten(2)).encode(&key), 6),
    ] {
        assert_eq!(
            fresh.receive(&bytes, t),
            Outcome::Rejected(Rejection::Replayed {
                epoch: EPOCH,
                seq: s
            }),
            "seq {s}"
        );
    }
    // An older epoch too.
    assert!(matches!(
        fresh.receive(&regs(&r, EPOCH - 1, 900, &ten(8)).encode(&key), t),
        Outcome::Rejected(Rejection::Replayed { .. })
    ));
    // The next number is new (the two skipped while it was down count as lost once they
    // leave the window unseen, as always).
    let next = fresh.receive(&regs(&r, EPOCH, 9, &ten(4)).encode(&key), t);
    assert!(matches!(next, Outcome::Accepted { .. }), "{next:?}");
    let later = fresh.receive(&regs(&r, EPOCH, 9 + 200, &ten(6)).encode(&key), t);
    assert!(
        // 7, 8 leave the window unseen, and 10..=81 are below the new one: 2 + 72 (the 127
        // numbers still in the window count once they leave it).
        matches!(later, Outcome::Accepted { lost: 74, .. }),
        "{later:?}"
    );
    assert_eq!(read(&fresh, 0, 1, t).unwrap(), vec![6]);
    // A new epoch (the transmit side restarted too) starts a new window.
    let restarted = fresh.receive(&regs(&r, EPOCH + 1, 0, &ten(5)).encode(&key), t);
    assert!(matches!(
        restarted,
        Outcome::Accepted {
            restarted: true,
            ..
        }
    ));
}

#[test]
fn the_state_file_round_trips_and_refuses_what_does_not_parse() {
    use zonegate_replicate::ReplayState;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.state");
    let stream = [1, 2, 3, 4, 5, 6, 7, 8];
    assert!(
        ReplayState::load(&path, stream).unwrap().is_none(),
        "missing: first start"
    );
    let st = ReplayState {
        stream,
        epoch: 1_764_700_000_000_000,
        seq: 4711,
    };
    st.save(&path).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "zonegate-replicate-state 1 stream=0102030405060708 epoch=1764700000000000 seq=4711\n"
    );
    assert_eq!(ReplayState::load(&path, stream).unwrap(), Some(st));
    // Another stream (the blocks changed): ignored, not an error.
    assert!(ReplayState::load(&path, [0; 8]).unwrap().is_none());
    for bad in [
        "",
        "zonegate-replicate-state 2 stream=0102030405060708 epoch=1 seq=1\n",
        "zonegate-replicate-state 1 stream=01020304 epoch=1 seq=1\n",
        "zonegate-replicate-state 1 stream=0102030405060708 epoch=-1 seq=1\n",
        "zonegate-replicate-state 1 stream=0102030405060708 seq=1 epoch=1\n",
        "zonegate-replicate-state 1 stream=0102030405060708 epoch=1 seq=1 more\n",
    ] {
        std::fs::write(&path, bad).unwrap();
        let e = ReplayState::load(&path, stream).unwrap_err();
        assert!(e.to_string().contains("delete it"), "{bad:?}: {e}");
    }
    std::fs::write(&path, vec![b'x'; 1000]).unwrap();
    assert!(ReplayState::load(&path, stream).is_err(), "oversize");
}
