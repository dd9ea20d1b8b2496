//! The datagram format and its authentication.

use std::io::Write;

use zonegate_policy::{ReplicaTable, ReplicationAuth};
use zonegate_replicate::datagram::{
    segments, stream_id, Kind, HEADER_LEN, MAX_DATAGRAM_LEN, SEGMENT_REGISTERS,
};
use zonegate_replicate::{Datagram, DecodeError, HmacKey, TagKey, VerifyKey};

use super::common::{hmac_key, replication};

fn sample() -> Datagram {
    Datagram {
        kind: Kind::Values,
        refresh: false,
        stream: *b"ABCDEFGH",
        epoch: 1_700_000_000_000_000,
        seq: 42,
        source_us: 1_700_000_000_123_456,
        block: 3,
        unit: 1,
        table: ReplicaTable::Holding,
        start: 100,
        count: 2,
        payload: vec![0x00, 0xC8, 0x01, 0x2C],
    }
}

#[test]
fn layout_is_as_documented_field_by_field() {
    let key = hmac_key();
    let bytes = sample().encode(&key);
    assert_eq!(&bytes[0..4], b"ZGRD"); // magic
    assert_eq!(bytes[4], 1); // version
    assert_eq!(bytes[5], 1); // HMAC-SHA256
    assert_eq!(bytes[6], 1); // values
    assert_eq!(bytes[7], 0); // flags
    assert_eq!(&bytes[8..16], b"ABCDEFGH"); // stream
    assert_eq!(&bytes[24..32], &42u64.to_be_bytes()); // seq
    assert_eq!(&bytes[40..42], &[0, 3]); // block
    assert_eq!(bytes[42], 1); // unit
    assert_eq!(bytes[43], 3); // table = FC 3
    assert_eq!(&bytes[44..46], &[0, 100]); // start
    assert_eq!(&bytes[46..48], &[0, 2]); // count
    assert_eq!(&bytes[48..50], &[0, 4]); // payload length
    assert_eq!(&bytes[50..54], &[0x00, 0xC8, 0x01, 0x2C]); // values
    assert_eq!(bytes.len(), HEADER_LEN + 4 + 32); // tag
    let back = Datagram::decode(&bytes, &key.verify_key()).unwrap();
    assert_eq!(back, sample());
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let key = hmac_key();
    let bytes = sample().encode(&key);
    let vk = key.verify_key();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            assert!(
                Datagram::decode(&b, &vk).is_err(),
                "flip of bit {bit} of byte {i} accepted"
            );
        }
    }
}

#[test]
fn truncated_extended_and_wrong_key_datagrams_are_rejected() {
    let key = hmac_key();
    let vk = key.verify_key();
    let bytes = sample().encode(&key);
    for n in 0..bytes.len() {
        assert!(Datagram::decode(&bytes[..n], &vk).is_err(), "prefix {n}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(Datagram::decode(&long, &vk), Err(DecodeError::Length));
    let huge = vec![0u8; MAX_DATAGRAM_LEN + 1];
    assert!(matches!(
        Datagram::decode(&huge, &vk),
        Err(DecodeError::Long(_))
    ));
    let other = VerifyKey::Hmac(Box::new(HmacKey::new(&[8u8; 32])));
    assert_eq!(Datagram::decode(&bytes, &other), Err(DecodeError::Tag));
}

#[test]
fn ed25519_tags_verify_with_the_public_key_only() {
    let secret = zonegate_audit::keys::generate().unwrap();
    let key = TagKey::Ed25519(Box::new(secret));
    let bytes = sample().encode(&key);
    assert_eq!(bytes[5], 2);
    assert_eq!(bytes.len(), HEADER_LEN + 4 + 64);
    let vk = key.verify_key();
    assert_eq!(Datagram::decode(&bytes, &vk).unwrap(), sample());
    // An HMAC receiver refuses an Ed25519 datagram before looking at the tag.
    assert_eq!(
        Datagram::decode(&bytes, &hmac_key().verify_key()),
        Err(DecodeError::Auth(2))
    );
    let mut forged = bytes;
    forged[51] ^= 0x10;
    assert_eq!(Datagram::decode(&forged, &vk), Err(DecodeError::Tag));
}

#[test]
fn a_payload_that_does_not_match_the_count_is_rejected_even_with_a_valid_tag() {
    let key = hmac_key();
    let mut d = sample();
    d.payload.push(0);
    d.payload.push(0); // 3 registers' worth for a count of 2
    let bytes = d.encode(&key);
    assert_eq!(
        Datagram::decode(&bytes, &key.verify_key()),
        Err(DecodeError::Length)
    );
}

#[test]
fn blocks_are_cut_into_segments_that_fit_one_datagram() {
    assert_eq!(segments(ReplicaTable::Holding, 0, 99), vec![(0, 100)]);
    let s = segments(ReplicaTable::Holding, 0, 9999);
    assert_eq!(s.len(), 20);
    assert!(s.iter().all(|(_, c)| *c == SEGMENT_REGISTERS));
    assert_eq!(s[19], (9500, 500));
    assert_eq!(
        segments(ReplicaTable::Coils, 65000, 65535),
        vec![(65000, 536)]
    );
    let mut d = sample();
    d.count = SEGMENT_REGISTERS;
    d.payload = vec![0xAB; usize::from(SEGMENT_REGISTERS) * 2];
    let secret = zonegate_audit::keys::generate().unwrap();
    let bytes = d.encode(&TagKey::Ed25519(Box::new(secret)));
    assert!(bytes.len() <= MAX_DATAGRAM_LEN && bytes.len() <= 1472);
}

#[test]
fn the_stream_id_changes_with_the_blocks() {
    let a = replication(
        "      - {unit: 1, table: holding, range: 0-9, period: 1s}",
        "",
    );
    let b = replication(
        "      - {unit: 1, table: holding, range: 0-10, period: 1s}",
        "",
    );
    let c = replication(
        "      - {unit: 1, table: holding, range: 0-9, period: 5s}",
        "",
    );
    assert_ne!(stream_id(&a), stream_id(&b));
    // The period is the transmit side's business: it does not change the stream.
    assert_eq!(stream_id(&a), stream_id(&c));
}

#[test]
fn key_files_are_read_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.key");
    let mut f = std::fs::File::create(&good).unwrap();
    writeln!(f, "# diode key\n{}", "ab".repeat(32)).unwrap();
    assert!(TagKey::load(ReplicationAuth::HmacSha256, &good).is_ok());
    assert!(VerifyKey::load(ReplicationAuth::HmacSha256, &good).is_ok());
    let short = dir.path().join("short.key");
    std::fs::write(&short, "ab".repeat(16)).unwrap();
    let e = TagKey::load(ReplicationAuth::HmacSha256, &short).unwrap_err();
    assert!(e.0.contains("at least 32 bytes"), "{e}");
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "not hex").unwrap();
    assert!(TagKey::load(ReplicationAuth::HmacSha256, &bad)
        .unwrap_err()
        .0
        .contains("hex"));
    let missing = dir.path().join("missing.key");
    assert!(VerifyKey::load(ReplicationAuth::Ed25519, &missing).is_err());
}
