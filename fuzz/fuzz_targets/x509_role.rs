//! Fuzz target: the Modbus/TCP Security role of a client certificate (policy's role.rs).
//!
//! Input: a DER leaf certificate (or anything), and separately the role extension's value.
//! Checks: no panic; a role found is a non-empty UTF-8 string of at most MAX_ROLE_LEN bytes
//! with no control character; a certificate's fingerprint is always 64 hex digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonegate_policy::role::{read_leaf, role_value, MAX_ROLE_LEN};

fn check(role: &Result<String, zonegate_policy::role::NoRole>) {
    match role {
        Ok(r) => {
            assert!(!r.is_empty() && r.len() <= MAX_ROLE_LEN);
            assert!(!r.chars().any(char::is_control));
        }
        Err(why) => assert!(!why.to_string().is_empty() && !why.as_str().is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    let leaf = read_leaf(data);
    assert_eq!(leaf.fingerprint.len(), 64);
    check(&leaf.role);
    let value = role_value(data);
    check(&value);
    if let Ok(r) = &value {
        // Exactly one DER UTF8String and nothing after it.
        assert_eq!(data[0], 0x0C);
        assert!(data.ends_with(r.as_bytes()));
    }
});
