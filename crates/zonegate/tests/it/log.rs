//! Tests of `zonegate log verify|show|keygen`, run as a user would.
// Tests may unwrap (team rule); helpers outside #[test] functions need it said.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use zonegate_audit::{AuditConfig, AuditLog, Decision, Event, Kind};

use super::util::zonegate;

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("zonegate-it-log-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a log of 2 + n + 1 (+ checkpoints) records.
fn make_log(path: &Path, n: u64, key: Option<PathBuf>) {
    let mut c = AuditConfig::new(path);
    c.gateway = "cli-test".into();
    c.signing_key = key;
    c.checkpoint_every = 5;
    c.min_free_bytes = 0;
    let h = AuditLog::start(c).unwrap();
    for i in 0..n {
        let e = Event {
            conduit: Some("C1".into()),
            src: Some(format!("10.1.1.{i}:40000").into()),
            fc: Some(16),
            function: Some("write_multiple_registers".into()),
            decision: Some(if i == 2 {
                Decision::Deny
            } else {
                Decision::Allow
            }),
            ..Event::new(Kind::Request)
        };
        h.append(e, true).wait().unwrap();
    }
    h.shutdown().wait().unwrap();
}

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn verify_ok_prints_a_summary() {
    let d = Scratch::new("ok");
    make_log(&d.path("a.log"), 6, None);
    let o = zonegate(&["log", "verify", &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let s = out(&o);
    assert!(s.starts_with("OK: 9 records, seq 0 to 8"), "{s}");
}

#[test]
fn verify_names_the_first_bad_record() {
    let d = Scratch::new("bad");
    let log = d.path("a.log");
    make_log(&log, 6, None);
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(4);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let o = zonegate(&["log", "verify", &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let s = out(&o);
    assert!(
        s.contains(&format!("FAILED: {}:5 (seq 5)", log.display())),
        "{s}"
    );

    let o = zonegate(&["log", "verify", "--json", &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["problem"]["line"], 5);
    assert_eq!(v["problem"]["problem"], "gap");
}

#[test]
fn verify_reports_a_torn_line_as_a_warning() {
    let d = Scratch::new("torn");
    let log = d.path("a.log");
    make_log(&log, 2, None);
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("{\"ts\":\"2026");
    std::fs::write(&log, text).unwrap();
    let o = zonegate(&["log", "verify", &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(out(&o).contains("warning: torn last line"), "{}", out(&o));
}

#[test]
fn verify_of_a_missing_file_is_an_input_error() {
    let o = zonegate(&["log", "verify", "/nonexistent/zonegate-audit.log"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/zonegate-audit.log"));
}

#[test]
fn keygen_sign_and_verify_with_key() {
    let d = Scratch::new("key");
    let o = zonegate(&["log", "keygen", "--out", &d.s("audit")]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path("audit.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let o = zonegate(&["log", "keygen", "--out", &d.s("audit")]);
    assert_eq!(o.status.code(), Some(2), "must refuse to overwrite");

    let log = d.path("a.log");
    make_log(&log, 12, Some(d.path("audit.key")));
    let o = zonegate(&["log", "verify", "--key", &d.s("audit.pub"), &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(out(&o).contains("signatures verified"), "{}", out(&o));

    // Cut the tail: only the key can tell.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&log, lines[..lines.len() - 3].join("\n") + "\n").unwrap();
    let o = zonegate(&["log", "verify", &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(0));
    let o = zonegate(&["log", "verify", "--key", &d.s("audit.pub"), &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        out(&o).contains("without a signed checkpoint"),
        "{}",
        out(&o)
    );
    let o = zonegate(&[
        "log",
        "verify",
        "--key",
        &d.s("audit.pub"),
        "--allow-unsigned-tail",
        &d.s("a.log"),
    ]);
    assert_eq!(o.status.code(), Some(0));

    std::fs::write(d.path("bad.pub"), "zz\n").unwrap();
    let o = zonegate(&["log", "verify", "--key", &d.s("bad.pub"), &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn show_filters_and_prints_lines_or_json() {
    let d = Scratch::new("show");
    let log = d.path("a.log");
    make_log(&log, 6, None);
    let o = zonegate(&["log", "show", &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(out(&o).lines().count(), 9);

    let o = zonegate(&["log", "show", "--decision", "deny", &d.s("a.log")]);
    let s = out(&o);
    assert_eq!(s.lines().count(), 1, "{s}");
    assert!(s.contains("10.1.1.2:40000") && s.contains("deny"), "{s}");

    let o = zonegate(&["log", "show", "--json", "--kind", "genesis", &d.s("a.log")]);
    let s = out(&o);
    let file = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        s.trim_end(),
        file.lines().next().unwrap(),
        "JSON lines are the stored lines"
    );

    let o = zonegate(&[
        "log",
        "show",
        "--fc",
        "write_multiple_registers",
        "--src",
        "10.1.1.4",
        "--conduit",
        "C1",
        "--since",
        "2000-01-01",
        &d.s("a.log"),
    ]);
    assert_eq!(out(&o).lines().count(), 1, "{}", out(&o));

    let o = zonegate(&["log", "show", "--seq", "3..4", &d.s("a.log")]);
    assert_eq!(out(&o).lines().count(), 2, "{}", out(&o));
    let o = zonegate(&["log", "show", "--seq", "4..3", &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(2));

    let o = zonegate(&["log", "show", "--decision", "maybe", &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(2));
    let o = zonegate(&["log", "show", "--since", "yesterday", &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn verify_of_the_active_file_includes_rotated_segments() {
    let d = Scratch::new("rotated");
    let log = d.path("a.log");
    let mut c = AuditConfig::new(&log);
    c.rotate_bytes = 1500;
    c.min_free_bytes = 0;
    let h = AuditLog::start(c).unwrap();
    for _ in 0..20 {
        h.append(Event::new(Kind::Request), false).wait().unwrap();
    }
    h.shutdown().wait().unwrap();
    assert!(d.path("a.log.000002").exists());
    let o = zonegate(&["log", "verify", &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(out(&o).starts_with("OK: 23 records"), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("rotated segment"));
}

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn verify_prints_no_rust_range_syntax() {
    let d = Scratch::new("range");
    make_log(&d.path("a.log"), 9, None);
    let o = zonegate(&["log", "verify", &d.s("a.log")]);
    let s = out(&o);
    assert!(!s.contains("..="), "{s}");
    assert!(s.contains("seq 0 to 11"), "{s}");
}

#[test]
fn show_accepts_bad_filters_silently() {
    let d = Scratch::new("badfilter");
    make_log(&d.path("a.log"), 3, None);
    let log = d.s("a.log");
    for (args, says) in [
        (
            &["--fc", "write_multiple_register"][..],
            "did you mean write_multiple_registers?",
        ),
        (&["--fc", "300"][..], "0-255"),
        (
            &["--src", "127.0.10.31:99999"][..],
            "port 99999 is out of range",
        ),
        (&["--src", "127.0.10.0/33"][..], "prefix length"),
        (&["--kind", "requets"][..], "did you mean request?"),
        (
            &["--kind", "segment_remove"][..],
            "did you mean segment_removed?",
        ),
        (&["--decision", "alow"][..], "did you mean allow?"),
    ] {
        let mut argv = vec!["log", "show"];
        argv.extend_from_slice(args);
        argv.push(&log);
        let o = zonegate(&argv);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert!(err(&o).contains(says), "{args:?}: {}", err(&o));
    }
}

#[test]
fn show_src_takes_a_network() {
    let d = Scratch::new("cidr");
    make_log(&d.path("a.log"), 6, None);
    let count = |src: &str| {
        let o = zonegate(&["log", "show", "--src", src, &d.s("a.log")]);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        out(&o).lines().count()
    };
    assert_eq!(count("10.1.1.0/24"), 6);
    assert_eq!(count("10.1.1.4/32"), 1);
    assert_eq!(count("10.1.1.4:40000"), 1);
    assert_eq!(count("10.1.2.0/24"), 0);
    assert_eq!(
        count("::/0"),
        0,
        "an IPv6 network does not hold IPv4 clients"
    );
}

#[test]
fn show_panics_on_a_non_ascii_policy_hash() {
    let d = Scratch::new("nonascii");
    let log = d.path("a.log");
    make_log(&log, 1, None);
    let text = std::fs::read_to_string(&log).unwrap();
    let first = text.lines().next().unwrap();
    let mut e: Event = serde_json::from_str(first).unwrap();
    // Byte 16 falls inside the two bytes of "é": slicing by bytes panicked (exit 101).
    e.policy_hash = Some(format!("{}é{}", "a".repeat(15), "b".repeat(48)));
    let edited = serde_json::to_string(&e).unwrap();
    std::fs::write(&log, text.replacen(first, &edited, 1)).unwrap();
    let o = zonegate(&["log", "show", &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(out(&o).contains("policy="), "{}", out(&o));
    // verify says what is wrong instead.
    let o = zonegate(&["log", "verify", &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
}

#[test]
fn show_prints_outcomes_and_messages_readably() {
    let d = Scratch::new("readable");
    let log = d.path("a.log");
    let mut c = AuditConfig::new(&log);
    c.min_free_bytes = 0;
    let h = AuditLog::start(c).unwrap();
    let req = Event {
        conduit: Some("C1".into()),
        src: Some("10.1.1.1:40000".into()),
        fc: Some(6),
        decision: Some(Decision::Allow),
        ..Event::new(Kind::Request)
    };
    let seq = h.append(req, true).wait().unwrap();
    h.append(Event::outcome(seq, None, 819), false)
        .wait()
        .unwrap();
    h.append(Event::outcome(seq, Some(0x0B), 1_000_000), false)
        .wait()
        .unwrap();
    h.policy_rejected("line 3: bad key\nline 9: bad value")
        .wait()
        .unwrap();
    h.shutdown().wait().unwrap();
    let o = zonegate(&["log", "show", "--kind", "outcome", &d.s("a.log")]);
    let s = out(&o);
    let rows: Vec<&str> = s.lines().collect();
    assert_eq!(rows.len(), 2, "{s}");
    assert!(
        rows[0].contains("done") && rows[0].contains("819 us"),
        "{s}"
    );
    assert!(rows[1].contains("exception 0x0B"), "{s}");
    let o = zonegate(&["log", "show", "--kind", "policy_rejected", &d.s("a.log")]);
    let s = out(&o);
    assert_eq!(s.lines().count(), 1, "{s}");
    assert!(s.contains("line 3: bad key ⏎ line 9: bad value"), "{s}");
    assert!(!s.contains("\\n"), "no literal backslash-n: {s}");
}

#[test]
fn show_names_a_line_that_is_not_utf8() {
    let d = Scratch::new("utf8");
    let log = d.path("a.log");
    make_log(&log, 2, None);
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(b"{\"kind\":\"request\",\"message\":\"\xff\"}\n");
    std::fs::write(&log, bytes).unwrap();
    let o = zonegate(&["log", "show", &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        err(&o).contains(&format!("{}:6", log.display())),
        "{}",
        err(&o)
    );
    let o = zonegate(&["log", "verify", &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("UTF-8"), "{}", out(&o));
}

#[test]
fn verify_and_show_are_not_silent_about_lost_records() {
    let d = Scratch::new("lost");
    let log = d.path("a.log");
    let mut c = AuditConfig::new(&log);
    c.min_free_bytes = 0;
    c.queue = 4;
    // The writer lingers after a batch nobody waits for: the 4-slot queue fills up.
    c.linger = std::time::Duration::from_secs(5);
    let h = AuditLog::start(c).unwrap();
    let mut dropped = 0;
    for _ in 0..20 {
        if h.record(Event::new(Kind::Request), false).is_err() {
            dropped += 1;
        }
    }
    assert!(dropped > 0);
    h.shutdown().wait().unwrap();
    let o = zonegate(&["log", "verify", &d.s("a.log")]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        out(&o).contains(&format!("{dropped} record(s) were lost")),
        "{}",
        out(&o)
    );
    let o = zonegate(&["log", "show", "--kind", "audit_lost", &d.s("a.log")]);
    let s = out(&o);
    assert_eq!(s.lines().count(), 1, "{s}");
    assert!(
        s.contains(&format!("lost={dropped}")) && s.contains(" from "),
        "{s}"
    );
}
