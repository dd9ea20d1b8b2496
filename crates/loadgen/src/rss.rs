//! Memory of the process under test, read from Linux's `/proc/PID/status` (`--rss-pid`).
//!
//! `VmRSS` is the resident set now, `VmHWM` its peak since the process started or since the peak
//! was last reset by writing `5` to `/proc/PID/clear_refs` (Linux >= 4.0; needs the right to
//! write there, i.e. the same user or root). The loadgen resets it at the start of a run so the
//! peak belongs to this run, and says whether the reset worked.

use std::time::Duration;

use tokio::sync::watch;

use crate::crowd::stopped;

/// One reading of `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// `VmRSS`: resident now.
    pub(crate) rss_kib: u64,
    /// `VmHWM`: the peak resident set.
    pub(crate) hwm_kib: u64,
}

/// Parses the `VmRSS:` and `VmHWM:` lines of a `/proc/PID/status` text; `None` if either is
/// missing or malformed (a kernel thread, a process that exited).
pub(crate) fn parse_status(text: &str) -> Option<Sample> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let mut words = line[name.len()..].split_whitespace();
        let value = words.next()?.parse().ok()?;
        // The kernel always writes "kB" (meaning KiB); anything else is not a status file.
        (words.next()? == "kB").then_some(value)
    };
    Some(Sample {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// Reads the memory of `pid` now.
pub(crate) fn sample(pid: u32) -> Option<Sample> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .as_deref()
        .and_then(parse_status)
}

/// Resets the peak (`VmHWM`) of `pid` to its current RSS; false if the kernel refused.
pub(crate) fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), b"5").is_ok()
}

/// Samples `pid` every `every` until `stop` turns true (or its sender is gone) and returns the
/// largest `VmRSS` seen, in KiB: a check on `VmHWM` where the reset is not allowed.
pub(crate) async fn max_while(pid: u32, every: Duration, mut stop: watch::Receiver<bool>) -> u64 {
    let mut max = 0;
    loop {
        if let Some(s) = sample(pid) {
            max = max.max(s.rss_kib);
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stopped(&mut stop) => break,
        }
    }
    max
}

/// The JSON of a sample, in MiB with one decimal.
pub(crate) fn json(s: Option<Sample>) -> serde_json::Value {
    match s {
        None => serde_json::Value::Null,
        Some(s) => serde_json::json!({
            "rss_mb": mib(s.rss_kib),
            "hwm_mb": mib(s.hwm_kib),
        }),
    }
}

/// KiB to MiB, rounded to one decimal.
pub(crate) fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_parsed_in_kib() {
        // An excerpt of a real /proc/self/status.
        let text =
            "Name:\tzonegate\nVmPeak:\t  123456 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(
            parse_status(text),
            Some(Sample {
                rss_kib: 10240,
                hwm_kib: 20480
            })
        );
        assert_eq!(mib(10240), 10.0);
    }

    #[test]
    fn missing_or_odd_fields_are_none() {
        assert_eq!(parse_status("Name:\tkthreadd\n"), None);
        assert_eq!(parse_status("VmRSS:\t10 MB\nVmHWM:\t20 kB\n"), None);
        assert_eq!(parse_status("VmRSS:\tx kB\nVmHWM:\t20 kB\n"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let s = sample(std::process::id()).expect("own status");
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib / 2);
    }
}
