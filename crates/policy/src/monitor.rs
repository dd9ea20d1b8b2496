//! The model's `monitor:` section: the live monitor of the gateway (issue 12) and the
//! thresholds of its detectors.
//!
//! ```yaml
//! monitor:
//!   enabled: true                 # default true when the section is present
//!   baseline: baseline.json       # from `zonegate analyze --write-baseline`; relative to the model
//!   queue: 8192                   # transactions waiting for the monitor; when full: dropped, counted
//!   detectors: {poll_rate_change: off, request_flood: on}    # on/off per detector kind
//!   thresholds:
//!     function_code_scan_count: 3     # illegal-function exceptions to one master ...
//!     function_code_scan_window_s: 60 # ... within this many seconds
//!     address_scan_count: 5
//!     address_scan_window_s: 60
//!     request_flood_per_s: 100
//!     poll_rate_factor: 3.0
//!     poll_min_samples: 10
//!     poll_max_jitter_ratio: 0.5
//!     suppress_s: 60
//! ```
//!
//! The detector names are a contract shared with `zonegate-monitor` ([`DETECTOR_KINDS`]; that
//! crate's tests check both lists are the same). Thresholds left out keep the detector's
//! default; the monitor crate turns the section into its `Thresholds`.

use std::path::PathBuf;

use crate::decode::{parsed, text, uint, Cx, Fields};
use crate::model::{KeyLines, Spanned};
use crate::yaml::{Node, Value};

/// Every detector kind an alert can have (`zonegate analyze --list-detectors` prints them with
/// their defaults), in the monitor crate's order.
pub const DETECTOR_KINDS: &[&str] = &[
    "new_master",
    "new_slave",
    "new_function",
    "diagnostics_listen_only",
    "diagnostics_restart",
    "diagnostics_clear_counters",
    "device_identification",
    "report_server_id",
    "function_code_scan",
    "address_scan",
    "write_out_of_baseline",
    "value_out_of_baseline",
    "poll_rate_change",
    "request_flood",
    "unsolicited_response",
    "mismatched_response",
    "malformed_frame",
    "non_modbus_traffic",
    "stream_gap",
    "truncated_capture",
];

/// Default `monitor.queue`.
pub const DEFAULT_MONITOR_QUEUE: usize = 8192;
/// Largest `monitor.queue` accepted.
pub const MAX_MONITOR_QUEUE: u64 = 1 << 20;

/// `monitor.thresholds`: each `None` keeps the detector's default.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct MonitorThresholds {
    /// `function_code_scan_count` (at least 1).
    pub function_code_scan_count: Option<u32>,
    /// `function_code_scan_window_s` (at least 1).
    pub function_code_scan_window_s: Option<u64>,
    /// `address_scan_count` (at least 1).
    pub address_scan_count: Option<u32>,
    /// `address_scan_window_s` (at least 1).
    pub address_scan_window_s: Option<u64>,
    /// `request_flood_per_s`.
    pub request_flood_per_s: Option<u32>,
    /// `poll_rate_factor` (above 1).
    pub poll_rate_factor: Option<f64>,
    /// `poll_min_samples`.
    pub poll_min_samples: Option<u64>,
    /// `poll_max_jitter_ratio` (0 or more).
    pub poll_max_jitter_ratio: Option<f64>,
    /// `suppress_s`.
    pub suppress_s: Option<u64>,
}

/// The `monitor:` section.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MonitorSection {
    /// `enabled` (default true): the gateway runs the live monitor.
    pub enabled: bool,
    /// `baseline`: the baseline JSON file, resolved against the model file's folder by
    /// [`crate::Model::resolve`].
    pub baseline: Option<Spanned<PathBuf>>,
    /// `queue`: transactions that may wait for the monitor (default [`DEFAULT_MONITOR_QUEUE`]).
    pub queue: usize,
    /// `detectors`: kinds switched off (`kind: off`), in file order.
    pub disabled: Vec<String>,
    /// `thresholds`.
    pub thresholds: MonitorThresholds,
    /// 1-based line of the section.
    pub line: u32,
    /// Lines of its keys.
    pub keys: KeyLines,
}

impl Default for MonitorSection {
    fn default() -> Self {
        Self {
            enabled: true,
            baseline: None,
            queue: DEFAULT_MONITOR_QUEUE,
            disabled: Vec::new(),
            thresholds: MonitorThresholds::default(),
            line: 0,
            keys: KeyLines::default(),
        }
    }
}

/// `true`/`false`, `on`/`off`, `yes`/`no`.
fn switch(cx: &mut Cx, n: &Node, p: &str) -> Option<bool> {
    parsed(cx, n, p, |s| match s.trim() {
        "true" | "on" | "yes" => Ok(true),
        "false" | "off" | "no" => Ok(false),
        other => Err(format!(
            "expected on | off (or true | false), found `{other}`"
        )),
    })
}

fn float(cx: &mut Cx, n: &Node, p: &str, min_exclusive: Option<f64>) -> Option<f64> {
    parsed(cx, n, p, |s| {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not a number", s.trim()))?;
        if !v.is_finite() || v < 0.0 {
            return Err(format!("{v} must be a finite number, 0 or more"));
        }
        match min_exclusive {
            Some(m) if v <= m => Err(format!("{v} must be above {m}")),
            _ => Ok(v),
        }
    })
}

/// A count or window that must be at least 1.
fn positive(cx: &mut Cx, n: &Node, p: &str, max: u64) -> Option<u64> {
    let v = uint(cx, n, p, max)?;
    if v == 0 {
        cx.error(n, p, "must be at least 1");
        return None;
    }
    Some(v)
}

fn u32_of(v: u64) -> Option<u32> {
    u32::try_from(v).ok()
}

fn decode_thresholds(cx: &mut Cx, n: &Node, p: &str) -> Option<MonitorThresholds> {
    let mut f = Fields::open(cx, n, p, "the detector thresholds")?;
    let max32 = u64::from(u32::MAX);
    let day = 86_400 * 365;
    let t = MonitorThresholds {
        function_code_scan_count: f
            .opt(cx, "function_code_scan_count", |cx, n, p| {
                positive(cx, n, p, max32)
            })
            .and_then(u32_of),
        function_code_scan_window_s: f.opt(cx, "function_code_scan_window_s", |cx, n, p| {
            positive(cx, n, p, day)
        }),
        address_scan_count: f
            .opt(cx, "address_scan_count", |cx, n, p| {
                positive(cx, n, p, max32)
            })
            .and_then(u32_of),
        address_scan_window_s: f.opt(cx, "address_scan_window_s", |cx, n, p| {
            positive(cx, n, p, day)
        }),
        request_flood_per_s: f
            .opt(cx, "request_flood_per_s", |cx, n, p| {
                positive(cx, n, p, max32)
            })
            .and_then(u32_of),
        poll_rate_factor: f.opt(cx, "poll_rate_factor", |cx, n, p| {
            float(cx, n, p, Some(1.0))
        }),
        poll_min_samples: f.opt(cx, "poll_min_samples", |cx, n, p| {
            positive(cx, n, p, 1_000_000)
        }),
        poll_max_jitter_ratio: f.opt(cx, "poll_max_jitter_ratio", |cx, n, p| {
            float(cx, n, p, None)
        }),
        suppress_s: f.opt(cx, "suppress_s", |cx, n, p| uint(cx, n, p, day)),
    };
    f.finish(cx);
    Some(t)
}

fn decode_detectors(cx: &mut Cx, n: &Node, p: &str) -> Option<Vec<String>> {
    let Value::Map(pairs) = &n.value else {
        cx.error(
            n,
            p,
            format!(
                "expected a mapping of detector kind to on | off, found {}",
                n.kind()
            ),
        );
        return None;
    };
    let mut disabled = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in pairs {
        let Some(name) = k.scalar() else {
            cx.error(k, p, "a detector kind must be a plain string");
            continue;
        };
        let path = crate::decode::join(p, name);
        if !DETECTOR_KINDS.contains(&name) {
            cx.error(
                k,
                &path,
                format!(
                    "unknown detector `{name}`; the detectors are: {}",
                    DETECTOR_KINDS.join(", ")
                ),
            );
            continue;
        }
        if seen.contains(&name) {
            cx.error(k, &path, format!("detector `{name}` is named twice"));
            continue;
        }
        seen.push(name);
        if switch(cx, v, &path) == Some(false) {
            disabled.push(name.to_owned());
        }
    }
    Some(disabled)
}

/// Decodes the `monitor:` section.
pub(crate) fn decode_monitor(cx: &mut Cx, n: &Node, p: &str) -> Option<MonitorSection> {
    let mut f = Fields::open(cx, n, p, "the monitor section")?;
    let enabled = f.opt(cx, "enabled", switch).unwrap_or(true);
    let baseline = f.opt(cx, "baseline", |cx, n, p| {
        let t = text(cx, n, p)?;
        if t.trim().is_empty() {
            cx.error(n, p, "the baseline path is empty");
            return None;
        }
        Some(Spanned {
            value: PathBuf::from(t.trim()),
            line: n.line,
            column: n.column,
        })
    });
    let queue = f
        .opt(cx, "queue", |cx, n, p| {
            positive(cx, n, p, MAX_MONITOR_QUEUE)
        })
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or(DEFAULT_MONITOR_QUEUE);
    let disabled = f.opt(cx, "detectors", decode_detectors).unwrap_or_default();
    let thresholds = f
        .opt(cx, "thresholds", decode_thresholds)
        .unwrap_or_default();
    let keys = f.finish(cx);
    Some(MonitorSection {
        enabled,
        baseline,
        queue,
        disabled,
        thresholds,
        line: n.line,
        keys,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::load_str;

    fn model(monitor: &str) -> String {
        format!("zones: []\nmonitor:\n{monitor}")
    }

    #[test]
    fn a_full_section_decodes() {
        let m = load_str(
            &model(
                "  baseline: b.json\n  queue: 16\n  detectors: {request_flood: off, new_master: on}\n  thresholds:\n    address_scan_count: 2\n    poll_rate_factor: 2.5\n    suppress_s: 0\n",
            ),
            "m.yaml",
        )
        .unwrap();
        let s = m.monitor.unwrap();
        assert!(s.enabled);
        assert_eq!(s.queue, 16);
        assert_eq!(s.disabled, vec!["request_flood".to_owned()]);
        assert_eq!(s.thresholds.address_scan_count, Some(2));
        assert_eq!(s.thresholds.poll_rate_factor, Some(2.5));
        assert_eq!(s.thresholds.suppress_s, Some(0));
        assert_eq!(s.thresholds.function_code_scan_count, None);
        assert_eq!(
            s.baseline.map(|b| b.value),
            Some(std::path::PathBuf::from("b.json"))
        );
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = load_str(
            &model(
                "  queue: 0\n  detectors: {no_such: off}\n  thresholds:\n    poll_rate_factor: 1\n    adress_scan_count: 2\n  enabled: maybe\n",
            ),
            "m.yaml",
        )
        .unwrap_err();
        let text = e.to_string();
        for (path, line) in [
            ("monitor.queue", 3),
            ("monitor.detectors.no_such", 4),
            ("monitor.thresholds.poll_rate_factor", 6),
            ("monitor.thresholds.adress_scan_count", 7),
            ("monitor.enabled", 8),
        ] {
            assert!(
                e.iter().any(|x| x.path == path && x.line == line),
                "{path} at line {line}: {text}"
            );
        }
        assert!(text.contains("did you mean `address_scan_count`"), "{text}");
    }
}
