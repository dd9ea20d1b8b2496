//! `zonegate run` as a service (issue 9): `--check` binds nothing, `READY=1` and `WATCHDOG=1`
//! reach a notify socket the test binds, the admin endpoint answers `/readyz`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::util::{bin, repo_root, zonegate};

/// The cleanroom example on loopback: listener on a free port, the device at 127.0.0.1:1
/// (nothing listens; the start probe stays on loopback), the audit log in `dir`, and `extra`
/// appended (e.g. an `admin:` block).
fn cleanroom(dir: &str, extra: &str) -> (PathBuf, PathBuf) {
    let dir =
        std::env::temp_dir().join(format!("zonegate-it-service-{}-{dir}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(repo_root().join("examples/cleanroom-hvac.yaml")).unwrap();
    let text = text
        .replace("listen: 127.0.0.1:5020", "listen: 127.0.0.1:0")
        .replace(
            "upstream: tcp://10.20.1.10:502",
            "upstream: tcp://127.0.0.1:1",
        )
        .replace("path: zonegate-audit.log", "path: audit.jsonl");
    let path = dir.join("model.yaml");
    std::fs::write(&path, format!("{text}{extra}")).unwrap();
    (path, dir.join("audit.jsonl"))
}

#[test]
fn run_check_summarises_and_opens_nothing() {
    let (model, audit) = cleanroom("check", "admin:\n  listen: 127.0.0.1:0\n");
    let out = zonegate(&["run", "-c", model.to_str().unwrap(), "--check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("conduit C1-SUP-CTRL: listen 127.0.0.1:0"),
        "{stdout}"
    );
    assert!(stdout.contains("admin: http://127.0.0.1:0/"), "{stdout}");
    assert!(stdout.contains("ok: the model would start"), "{stdout}");
    assert!(!audit.exists(), "--check opens no audit log");
}

#[test]
fn run_check_refuses_a_missing_admin_token_file() {
    let (model, _) = cleanroom(
        "token",
        "admin:\n  listen: 127.0.0.2:0\n  token_file: /nonexistent/admin.token\n",
    );
    let out = zonegate(&["run", "-c", model.to_str().unwrap(), "--check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("admin.token_file"), "{stderr}");
}

#[test]
fn run_tells_systemd_it_is_ready_and_pings_the_watchdog() {
    let (model, _) = cleanroom("notify", "admin:\n  listen: 127.0.0.1:0\n");
    let sock = model.with_file_name("notify.sock");
    let listener = UnixDatagram::bind(&sock).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut child = Command::new(bin())
        .args(["run", "-c", model.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &sock)
        .env("WATCHDOG_USEC", "400000")
        .env("JOURNAL_STREAM", "8:1234")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    while started.elapsed() < Duration::from_secs(20)
        && !(got.iter().any(|m: &String| m.starts_with("READY=1"))
            && got.iter().any(|m| m == "WATCHDOG=1"))
    {
        if let Ok(n) = listener.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    // The admin address is printed with the listeners; /readyz answers 200 once READY=1 went.
    let out = BufReader::new(child.stdout.take().unwrap());
    let admin = out.lines().map_while(Result::ok).take(20).find_map(|l| {
        l.strip_prefix("admin on http://")
            .and_then(|r| r.split('/').next())
            .map(str::to_owned)
    });
    let ready = admin.as_deref().map(|addr| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text
    });
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    assert!(
        got.iter().any(|m| m.starts_with("READY=1")),
        "{got:?} {stderr}"
    );
    assert!(got.iter().any(|m| m == "WATCHDOG=1"), "{got:?}");
    let ready = ready.expect("the admin address is printed");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    // Journald-friendly: no ANSI colour codes and no timestamp of our own.
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    assert!(!stderr.contains("Z  INFO"), "{stderr}");
    let _ = std::fs::remove_dir_all(model.parent().unwrap());
}
