//! Shared helpers: a replication from YAML, keys.

use zonegate_policy::{load_str, Replication};
use zonegate_replicate::{HmacKey, TagKey};

/// A replication of the given blocks, with loopback addresses that the tests override.
pub(crate) fn replication(blocks: &str, extra_receive: &str) -> Replication {
    let yaml = format!(
        r#"
replications:
  - replication_id: R1-HIST
    connects: [Z3-OPS, Z4-DMZ]
    source: tcp://127.0.0.1:1
    blocks:
{blocks}
    transmit: {{to: 127.0.0.1:9, key: k, repeat: 2, refresh: 1s}}
    receive: {{bind: 127.0.0.1:0, key: k, serve: 127.0.0.1:0{extra_receive}}}
"#
    );
    load_str(&yaml, "test.yaml").unwrap().replications.remove(0)
}

pub(crate) fn hmac_key() -> TagKey {
    TagKey::Hmac(Box::new(HmacKey::new(&[7u8; 32])))
}
