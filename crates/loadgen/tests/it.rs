//! Integration tests of `zonegate-loadgen`: the built binary against a tiny in-test Modbus/TCP
//! server on loopback (port chosen at run time). The server answers FC 3 and FC 16 correctly,
//! or with exception 0x02 for registers at or above 1000, so both paths are seen.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::Duration;

fn serve(mut s: TcpStream, idle_limit: Duration) {
    s.set_read_timeout(Some(idle_limit)).unwrap();
    let mut header = [0u8; 7];
    while s.read_exact(&mut header).is_ok() {
        let len = usize::from(u16::from_be_bytes([header[4], header[5]])) - 1;
        let mut pdu = vec![0u8; len];
        if s.read_exact(&mut pdu).is_err() {
            return;
        }
        let address = u16::from_be_bytes([pdu[1], pdu[2]]);
        let count = u16::from_be_bytes([pdu[3], pdu[4]]);
        let answer: Vec<u8> = if address >= 1000 {
            vec![pdu[0] | 0x80, 2]
        } else if pdu[0] == 3 {
            let mut a = vec![3, (count * 2) as u8];
            a.extend((0..count).flat_map(|i| (address + i).to_be_bytes()));
            a
        } else {
            pdu[..5].to_vec()
        };
        let mut out = header[..4].to_vec();
        out.extend_from_slice(&(answer.len() as u16 + 1).to_be_bytes());
        out.push(header[6]);
        out.extend_from_slice(&answer);
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

fn server() -> String {
    server_closing_after(Duration::from_secs(10))
}

/// A server that closes a connection silent for `idle_limit` (a read timed out), as a gateway's
/// idle timeout does.
fn server_closing_after(idle_limit: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for s in listener.incoming().flatten() {
            thread::spawn(move || serve(s, idle_limit));
        }
    });
    addr
}

fn loadgen(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_zonegate-loadgen"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn reads_and_writes_are_counted_and_checked() {
    let addr = server();
    let r = loadgen(&[
        "--target",
        &addr,
        "-c",
        "3",
        "--duration",
        "300ms",
        "--label",
        "t",
    ]);
    assert_eq!(r["label"], "t");
    assert_eq!(r["connections"], 3);
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["requests"].as_u64().unwrap() > 10, "{r}");
    assert!(r["rps"].as_f64().unwrap() > 0.0);
    assert!(r["p50_us"].as_u64().unwrap() <= r["p99_us"].as_u64().unwrap());
    let w = loadgen(&[
        "--target",
        &addr,
        "--duration",
        "200ms",
        "--write-min",
        "180",
        "--write-max",
        "240",
    ]);
    assert_eq!(w["op"], "write");
    assert_eq!(w["errors"], 0, "{w}");
}

#[test]
fn exceptions_are_errors_and_the_budget_bounds_the_run() {
    let addr = server();
    let r = loadgen(&[
        "--target",
        &addr,
        "--address",
        "1000",
        "--duration",
        "200ms",
    ]);
    assert_eq!(r["requests"], 0, "{r}");
    assert!(r["errors"].as_u64().unwrap() > 0);
    assert!(r["exceptions"]["0x02"].as_u64().unwrap() > 0, "{r}");
    let b = loadgen(&[
        "--target",
        &addr,
        "-c",
        "2",
        "--duration",
        "10s",
        "--max-requests",
        "50",
    ]);
    assert!(b["requests"].as_u64().unwrap() <= 50, "{b}");
    assert!(b["duration_s"].as_f64().unwrap() < 5.0, "{b}");
}

#[test]
fn unreachable_target_reports_errors() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let r = loadgen(&[
        "--target",
        &target,
        "--duration",
        "200ms",
        "--timeout",
        "200ms",
    ]);
    assert_eq!(r["requests"], 0);
    assert!(r["errors"].as_u64().unwrap() > 0);
    assert!(
        r["first_error"].as_str().unwrap().contains("connect"),
        "{r}"
    );
}

#[test]
fn idle_and_hostile_crowd_is_held_and_counted() {
    let addr = server();
    let pid = std::process::id().to_string();
    let r = loadgen(&[
        "--target",
        &addr,
        "--duration",
        "500ms",
        "--idle-conns",
        "20",
        "--idle-request",
        "--hostile-slowloris",
        "3",
        "--slowloris-interval",
        "50ms",
        "--hostile-noread",
        "3",
        "--noread-max-bytes",
        "65536",
        "--rss-pid",
        &pid,
    ]);
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["requests"].as_u64().unwrap() > 0, "{r}");
    let idle = &r["crowd"]["idle"];
    assert_eq!(idle["connected"], 20, "{r}");
    assert_eq!(idle["request_errors"], 0, "{r}");
    assert_eq!(idle["open_at_end"], 20, "{r}");
    let slow = &r["crowd"]["slowloris"];
    assert_eq!(slow["connected"], 3, "{r}");
    // 11 of 12 bytes at most: the frame is never completed.
    assert!(slow["bytes_sent"].as_u64().unwrap() <= 3 * 11, "{r}");
    assert!(slow["bytes_sent"].as_u64().unwrap() >= 3, "{r}");
    let noread = &r["crowd"]["noread"];
    assert_eq!(noread["connected"], 3, "{r}");
    // Bounded by --noread-max-bytes (one write may end past it by less than 6 KiB).
    assert!(
        noread["bytes_sent"].as_u64().unwrap() <= 3 * (65536 + 6144),
        "{r}"
    );
    assert!(noread["bytes_sent"].as_u64().unwrap() > 0, "{r}");
    // The test process is the server: its memory is readable.
    assert!(r["rss"]["before"]["rss_mb"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["rss"]["loaded"]["hwm_mb"].as_f64().unwrap() > 0.0, "{r}");
}

#[test]
fn crowd_closed_by_the_target_is_counted() {
    // The server drops a connection after 200 ms without a byte: the idle ones and the
    // slowloris ones (11 bytes 20 ms apart, then nothing) are all closed during the run.
    let addr = server_closing_after(Duration::from_millis(200));
    let r = loadgen(&[
        "--target",
        &addr,
        "--duration",
        "1500ms",
        "--idle-conns",
        "5",
        "--hostile-slowloris",
        "2",
        "--slowloris-interval",
        "20ms",
    ]);
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["crowd"]["idle"]["closed_by_target"], 5, "{r}");
    assert_eq!(r["crowd"]["idle"]["open_at_end"], 0, "{r}");
    assert_eq!(r["crowd"]["slowloris"]["closed_by_target"], 2, "{r}");
    assert!(
        r["crowd"]["slowloris"]["closed_after_s_median"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{r}"
    );
    assert_eq!(r["rss"], serde_json::Value::Null);
}
