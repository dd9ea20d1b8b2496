//! Tests of `zonegate decode`: one JSON object per frame, exit 0 valid / 1 invalid / 2 bad hex.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

use serde_json::Value;

use super::util::zonegate;

/// Runs `zonegate decode ARGS`, returns (exit code, parsed stdout JSON).
fn decode(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["decode"];
    all.extend_from_slice(args);
    let out = zonegate(&all);
    let code = out.status.code().expect("exit code");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {stdout:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(stdout.trim().lines().count(), 1, "one line: {stdout}");
    (code, json)
}

#[test]
fn fc3_request_over_tcp() {
    // | tid | proto | len | unit | fc | addr | qty |
    let (code, j) = decode(&["00 01 00 00 00 06 11 03 00 6B 00 03"]);
    assert_eq!(code, 0);
    assert_eq!(j["valid"], true);
    assert_eq!(j["tid"], 1);
    assert_eq!(j["unit"], 17);
    assert_eq!(j["fc"], 3);
    assert_eq!(j["function"], "read_holding_registers");
    assert_eq!(j["access"], "read");
    assert_eq!(j["table"], "holding");
    assert_eq!(j["address"], 107);
    assert_eq!(j["quantity"], 3);
    assert!(j.get("values").is_none());
}

#[test]
fn hex_may_be_split_over_arguments_and_unspaced() {
    let (code, j) = decode(&["000100000006", "110300", "6B0003"]);
    assert_eq!((code, &j["address"]), (0, &Value::from(107)));
}

#[test]
fn fc16_write_shows_values() {
    // | tid | proto | len | unit | fc | addr | qty | bc | values |
    let (code, j) = decode(&["00 02 00 00 00 0B 01 10 00 01 00 02 04 00 0A 01 02"]);
    assert_eq!(code, 0);
    assert_eq!(j["function"], "write_multiple_registers");
    assert_eq!(j["access"], "write");
    assert_eq!(j["values"], serde_json::json!([10, 258]));
}

#[test]
fn fc5_and_fc15_values_are_bits() {
    let (_, j) = decode(&["00 03 00 00 00 06 01 05 00 AC FF 00"]);
    assert_eq!(
        (j["table"].as_str(), &j["values"]),
        (Some("coils"), &serde_json::json!([1]))
    );
    let (_, j) = decode(&["00 04 00 00 00 09 01 0F 00 13 00 0A 02 CD 01"]);
    assert_eq!(
        j["values"],
        serde_json::json!([1, 0, 1, 1, 0, 0, 1, 1, 1, 0])
    );
}

#[test]
fn fc23_has_read_and_write_ranges() {
    // | tid | proto | len | unit | fc | r addr | r qty | w addr | w qty | bc | values |
    let (code, j) =
        decode(&["00 05 00 00 00 11 01 17 00 03 00 06 00 0E 00 03 06 00 FF 00 FF 00 FF"]);
    assert_eq!(code, 0);
    assert_eq!(j["access"], "write");
    assert_eq!(
        (&j["address"], &j["quantity"]),
        (&Value::from(3), &Value::from(6))
    );
    assert_eq!(
        (&j["write_address"], &j["write_quantity"]),
        (&Value::from(14), &Value::from(3))
    );
    assert_eq!(j["values"], serde_json::json!([255, 255, 255]));
}

#[test]
fn diagnostics_sub_function() {
    // FC 8 sub-function 4: force listen only
    let (code, j) = decode(&["00 06 00 00 00 06 01 08 00 04 00 00"]);
    assert_eq!(code, 0);
    assert_eq!(
        (j["access"].as_str(), &j["sub_function"]),
        (Some("diagnostics"), &Value::from(4))
    );
}

#[test]
fn exception_response_gives_the_function_it_answers() {
    let (code, j) = decode(&["--response", "00 01 00 00 00 03 01 83 02"]);
    assert_eq!(code, 0);
    assert_eq!(j["valid"], true);
    assert_eq!(j["fc"], 3);
    assert_eq!(j["exception"], 2);
}

#[test]
fn read_response_shows_values() {
    let (code, j) = decode(&["--response", "00 01 00 00 00 09 01 03 06 02 2B 00 00 00 64"]);
    assert_eq!(code, 0);
    assert_eq!(j["values"], serde_json::json!([555, 0, 100]));
}

#[test]
fn invalid_quantity_names_the_reason_and_exception_03() {
    let (code, j) = decode(&["00 01 00 00 00 06 01 03 00 00 00 7E"]);
    assert_eq!(code, 1);
    assert_eq!(j["valid"], false);
    assert_eq!(j["exception"], 3);
    let error = j["error"].as_str().unwrap();
    assert!(error.contains("126") && error.contains("125"), "{error}");
}

#[test]
fn unknown_function_gets_exception_01() {
    let (code, j) = decode(&["00 01 00 00 00 03 01 5A 00"]);
    assert_eq!(
        (code, &j["exception"], &j["fc"]),
        (1, &Value::from(1), &Value::from(90))
    );
}

#[test]
fn address_overflow_gets_exception_02() {
    let (code, j) = decode(&["00 01 00 00 00 06 01 03 FF FF 00 02"]);
    assert_eq!((code, &j["exception"]), (1, &Value::from(2)));
}

#[test]
fn broken_frame_has_no_exception() {
    // protocol id 1
    let (code, j) = decode(&["00 01 00 01 00 06 01 03 00 00 00 01"]);
    assert_eq!(code, 1);
    assert!(j.get("exception").is_none());
    assert!(j["error"].as_str().unwrap().contains("protocol id"));
    // incomplete and over-long input
    let (code, j) = decode(&["00 01 00 00 00 06 01 03 00"]);
    assert_eq!(code, 1);
    assert!(j["error"].as_str().unwrap().contains("incomplete"));
    let (code, j) = decode(&["00 01 00 00 00 06 01 03 00 00 00 01 FF"]);
    assert_eq!(code, 1);
    assert_eq!(j["error_kind"], "trailing_bytes");
}

#[test]
fn rtu_frames() {
    // | addr | fc | addr | qty | crc |
    let (code, j) = decode(&["--rtu", "01 03 00 00 00 01 84 0A"]);
    assert_eq!(code, 0);
    assert_eq!(
        (&j["unit"], &j["quantity"]),
        (&Value::from(1), &Value::from(1))
    );
    assert!(j.get("tid").is_none());
    let (code, j) = decode(&["--rtu", "01 03 00 00 00 01 84 0B"]);
    assert_eq!(code, 1);
    assert_eq!(j["error_kind"], "crc");
    // | addr | fc | bc | data | crc |  (CRC vector from the spec notes)
    let (code, j) = decode(&["--rtu", "--response", "01 03 02 00 2A 39 9B"]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["values"], serde_json::json!([42]));
}

#[test]
fn bad_hex_is_a_usage_error() {
    for bad in ["zz", "012", ""] {
        let out = zonegate(&["decode", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn help_has_examples() {
    let out = zonegate(&["decode", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Examples") && text.contains("--rtu") && text.contains("Exit status"));
}

#[test]
fn decode_says_the_header_needs_12() {
    // 9 bytes of an ADU whose length field says 6: the ADU is 12 bytes, the header 7.
    let (code, j) = decode(&["00 01 00 00 00 06 01 03 00"]);
    assert_eq!(code, 1);
    let error = j["error"].as_str().unwrap();
    assert_eq!(
        error,
        "incomplete ADU: 9 bytes given, the MBAP length field (6) asks for 12 bytes (6 + 6)"
    );
    assert!(!error.contains("header needs"), "{error}");
    // Too short to hold the length field: the header's own size.
    let (_, j) = decode(&["00 01 00"]);
    assert_eq!(
        j["error"],
        "incomplete ADU: 3 bytes given, the MBAP header alone is 7 bytes"
    );
}
