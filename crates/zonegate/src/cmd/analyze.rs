//! `zonegate analyze CAPTURE... [--model M] [--baseline B] [--format text|json] [--eve FILE]`:
//! offline analysis of pcap/pcapng captures with the monitor's detectors, the passive
//! inventory and, with `--model`, a replay of the model's policy (what enforce would block).
//!
//! Exit status: 0 no alert, 1 alerts, 2 input error (a capture, model or baseline that cannot
//! be read). A capture that ends inside a record is an alert (`truncated_capture`), not an error.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};
use zonegate_capture::{read_capture, Event, Reassembler, Summary, TcpStats};
use zonegate_monitor::replay::Replay;
use zonegate_monitor::{
    time::rfc3339, Alert, Baseline, Kind, Monitor, Side, Thresholds, Transaction, DETECTORS,
};
use zonegate_toolkit::cli::EXIT_INPUT;

/// Output format of `zonegate analyze`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    /// A summary for a person.
    Text,
    /// One JSON object.
    Json,
}

/// Arguments of `zonegate analyze`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// pcap or pcapng files, read in order as one stream.
    #[arg(required_unless_present_any = ["list_detectors", "events"])]
    pub(crate) captures: Vec<PathBuf>,
    /// Read the request records of zonegate audit logs instead of captures (replay a model
    /// on what the gateway saw). Repeatable.
    #[arg(long, value_name = "AUDIT_LOG", num_args = 1..)]
    pub(crate) events: Vec<PathBuf>,
    /// Replay this model's policy on every request (adds `policy` to the output); its
    /// `monitor:` section gives the thresholds (and the baseline, unless --baseline names one).
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// Compare against this baseline (JSON, from `--write-baseline`): enables the baseline
    /// detectors (new_master, new_function, write_out_of_baseline, ...).
    #[arg(long)]
    pub(crate) baseline: Option<PathBuf>,
    /// Write the baseline learned from these captures to FILE (JSON).
    #[arg(long, value_name = "FILE")]
    pub(crate) write_baseline: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
    /// Write one JSON line per transaction (Suricata EVE `modbus` style) to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) eve: Option<PathBuf>,
    /// More TCP ports that carry Modbus/TCP (502 always does). Repeatable.
    #[arg(long = "port", value_name = "PORT")]
    pub(crate) ports: Vec<u16>,
    /// Print every detector (kind, needs baseline, severity, description) and the thresholds.
    #[arg(long)]
    pub(crate) list_detectors: bool,
}

/// At most this many alerts are listed; the counts per kind stay complete.
const MAX_LISTED_ALERTS: usize = 10_000;

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(args: Args) -> u8 {
    if args.list_detectors {
        list_detectors();
        return 0;
    }
    // The model's `monitor:` section: thresholds, and its baseline unless one is given.
    let section = match &args.model {
        Some(path) => match zonegate_policy::load_file(path) {
            Ok(m) => m.monitor.clone().map(|s| (s, m)),
            Err(e) => {
                eprintln!("{e}");
                return EXIT_INPUT;
            }
        },
        None => None,
    };
    let thresholds = section
        .as_ref()
        .map_or_else(Thresholds::default, |(s, _)| Thresholds::from_section(s));
    let model_baseline = section
        .as_ref()
        .and_then(|(s, m)| s.baseline.as_ref().map(|b| m.resolve(&b.value)));
    let baseline = match args.baseline.as_ref().or(model_baseline.as_ref()) {
        Some(path) => match Baseline::read_file(path) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("zonegate analyze: baseline {}: {e}", path.display());
                return EXIT_INPUT;
            }
        },
        None => None,
    };
    let mut replay = match &args.model {
        Some(path) => match load_replay(path) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("zonegate analyze: {e}");
                return EXIT_INPUT;
            }
        },
        None => None,
    };
    let mut eve = match &args.eve {
        Some(path) => match File::create(path) {
            Ok(f) => Some(BufWriter::new(f)),
            Err(e) => {
                eprintln!("zonegate analyze: cannot write {}: {e}", path.display());
                return EXIT_INPUT;
            }
        },
        None => None,
    };
    let mut monitor = Monitor::new(thresholds, baseline);
    if eve.is_some() {
        monitor = monitor.recording_transactions();
    }
    if args.write_baseline.is_some() {
        monitor = monitor.learning();
    }
    let mut ports = vec![502];
    ports.extend(args.ports.iter().copied());
    let run = if args.events.is_empty() {
        match analyze(
            &args.captures,
            ports,
            &mut monitor,
            replay.as_mut(),
            eve.as_mut(),
        ) {
            Ok(run) => run,
            Err(code) => return code,
        }
    } else {
        if let Err(e) = super::learn::feed_events(&args.events, &mut monitor, replay.as_mut()) {
            eprintln!("zonegate analyze: {e}");
            return EXIT_INPUT;
        }
        monitor.finish();
        Run {
            files: Vec::new(),
            tcp: TcpStats::default(),
            alerts: monitor.alerts.drain(..).collect(),
        }
    };
    if let Some(w) = eve.as_mut() {
        if let Err(e) = w.flush() {
            eprintln!("zonegate analyze: cannot write the EVE file: {e}");
            return EXIT_INPUT;
        }
    }
    if let (Some(path), Some(learned)) = (&args.write_baseline, monitor.learned()) {
        if let Err(e) = std::fs::write(path, learned.to_json()) {
            eprintln!("zonegate analyze: cannot write {}: {e}", path.display());
            return EXIT_INPUT;
        }
    }
    let report = report(&run, &monitor, replay.as_ref());
    match args.format {
        Format::Json => match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("zonegate analyze: {e}");
                return EXIT_INPUT;
            }
        },
        Format::Text => print!("{}", render_text(&report)),
    }
    u8::from(!monitor.stats().alerts_by_kind.is_empty())
}

/// Compiles a model for replay.
pub(crate) fn load_replay(path: &Path) -> Result<Replay, String> {
    let model = zonegate_policy::load_file(path).map_err(|e| e.to_string())?;
    Replay::new(&model, Instant::now()).map_err(|e| format!("{}: {e}", path.display()))
}

/// What reading the captures gave, besides the monitor's own state.
pub(crate) struct Run {
    pub(crate) files: Vec<(PathBuf, Summary)>,
    pub(crate) tcp: TcpStats,
    pub(crate) alerts: Vec<Alert>,
}

fn unspecified() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
}

/// Reads every capture into the monitor (and the replay and EVE file when given).
pub(crate) fn analyze(
    captures: &[PathBuf],
    ports: Vec<u16>,
    monitor: &mut Monitor,
    mut replay: Option<&mut Replay>,
    mut eve: Option<&mut BufWriter<File>>,
) -> Result<Run, u8> {
    let mut reassembler = Reassembler::new(ports);
    let mut files = Vec::new();
    let mut alerts = Vec::new();
    let mut eve_error = None;
    let mut handle = |event: Event<'_>, monitor: &mut Monitor| match event {
        Event::Adu(adu) => {
            if let (Side::ToServer, Some(r)) = (adu.side, replay.as_deref_mut()) {
                r.request(
                    adu.ts_us,
                    adu.flow.client.ip(),
                    adu.flow.server.ip(),
                    adu.unit,
                    adu.pdu,
                );
            }
            monitor.adu(adu);
        }
        Event::FrameError {
            ts_us,
            flow,
            side,
            error,
        } => monitor.frame_error(ts_us, flow, side, &error),
        Event::Gap {
            ts_us,
            flow,
            side,
            missing,
        } => {
            let (src, dst) = match side {
                Side::ToServer => (flow.client, flow.server),
                Side::ToClient => (flow.server, flow.client),
            };
            monitor.alert(Alert {
                kind: Kind::StreamGap,
                ts_us,
                src,
                dst,
                unit: None,
                fc: None,
                message: format!(
                    "{missing} bytes missing from the capture; framing restarts after them"
                ),
            });
        }
        Event::Closed(flow) => monitor.flow_closed(flow),
    };
    let mut drain =
        |monitor: &mut Monitor, alerts: &mut Vec<Alert>, eve: &mut Option<&mut BufWriter<File>>| {
            for tx in monitor.transactions.drain(..) {
                if let Some(w) = eve.as_deref_mut() {
                    if let Err(e) = writeln!(w, "{}", eve_line(&tx)) {
                        eve_error.get_or_insert(e);
                    }
                }
            }
            for a in monitor.alerts.drain(..) {
                if alerts.len() < MAX_LISTED_ALERTS {
                    alerts.push(a);
                }
            }
        };
    for path in captures {
        let summary = read_capture(path, &mut |ts, linktype, data| {
            reassembler.frame(ts, linktype, data, &mut |ev| handle(ev, monitor));
            drain(monitor, &mut alerts, &mut eve);
        });
        match summary {
            Ok(summary) => {
                if let Some(why) = &summary.truncated {
                    monitor.alert(Alert {
                        kind: Kind::TruncatedCapture,
                        ts_us: summary.last_ts_us,
                        src: unspecified(),
                        dst: unspecified(),
                        unit: None,
                        fc: None,
                        message: format!("{}: {why}", path.display()),
                    });
                }
                files.push((path.clone(), summary));
            }
            Err(e) => {
                eprintln!("zonegate analyze: {e}");
                return Err(EXIT_INPUT);
            }
        }
    }
    reassembler.finish(&mut |ev| handle(ev, monitor));
    monitor.finish();
    drain(monitor, &mut alerts, &mut eve);
    if let Some(e) = eve_error {
        eprintln!("zonegate analyze: cannot write the EVE file: {e}");
        return Err(EXIT_INPUT);
    }
    Ok(Run {
        files,
        tcp: reassembler.stats().clone(),
        alerts,
    })
}

fn function_name(fc: u8) -> String {
    zonegate_modbus::FunctionCode::new(fc)
        .name()
        .map_or_else(|| format!("fc{fc}"), str::to_string)
}

/// One EVE-style line (Suricata `modbus` record, fields as its rust/src/modbus/log.rs).
fn eve_line(tx: &Transaction) -> Value {
    let ts = tx
        .request_ts_us
        .or(tx.answer.as_ref().map(|a| a.ts_us))
        .unwrap_or(0);
    let mut modbus = serde_json::Map::new();
    if tx.request_ts_us.is_some() {
        let mut request = json!({
            "transaction_id": tx.transaction_id,
            "protocol_id": 0,
            "unit_id": tx.unit,
            "function_raw": tx.function,
            "function_code": function_name(tx.function),
            "access_type": tx.access,
        });
        if let Some(sub) = tx.sub_function {
            request["sub_function"] = json!(sub);
        }
        if let Some((table, address, quantity)) = tx.range {
            request["table"] = json!(table);
            request["address"] = json!(address);
            request["quantity"] = json!(quantity);
        }
        modbus.insert("request".into(), request);
    }
    if let Some(a) = &tx.answer {
        let mut response = json!({
            "transaction_id": tx.transaction_id,
            "protocol_id": 0,
            "unit_id": a.unit,
            "function_raw": a.function_raw,
            "function_code": function_name(a.function_raw & 0x7f),
        });
        if let Some(code) = a.exception {
            response["exception"] = json!({
                "raw": code,
                "code": zonegate_modbus::ExceptionCode::from_u8(code).as_str(),
            });
        }
        modbus.insert("response".into(), response);
    }
    json!({
        "timestamp": rfc3339(ts),
        "event_type": "modbus",
        "src_ip": tx.flow.client.ip(),
        "src_port": tx.flow.client.port(),
        "dest_ip": tx.flow.server.ip(),
        "dest_port": tx.flow.server.port(),
        "proto": "TCP",
        "modbus": modbus,
    })
}

fn keyed<K: ToString, V: Into<Value> + Copy>(m: &std::collections::BTreeMap<K, V>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.to_string(), (*v).into()))
            .collect(),
    )
}

/// The JSON report.
pub(crate) fn report(run: &Run, monitor: &Monitor, replay: Option<&Replay>) -> Value {
    let stats = monitor.stats();
    let frames: u64 = run.files.iter().map(|(_, s)| s.frames).sum();
    let bytes: u64 = run.files.iter().map(|(_, s)| s.bytes).sum();
    let alerts: Vec<Value> = run
        .alerts
        .iter()
        .map(|a| {
            json!({
                "kind": a.kind.as_str(),
                "ts": rfc3339(a.ts_us),
                "src": a.src.to_string(),
                "dst": a.dst.to_string(),
                "unit": a.unit,
                "fc": a.fc,
                "message": a.message,
            })
        })
        .collect();
    let mut out = json!({
        "files": run.files.iter().map(|(p, s)| json!({"path": p.display().to_string(), "frames": s.frames, "bytes": s.bytes, "truncated": s.truncated})).collect::<Vec<_>>(),
        "frames": frames,
        "bytes": bytes,
        "flows": run.tcp.flows,
        "tcp": {
            "segments": run.tcp.segments,
            "retransmitted": run.tcp.retransmitted,
            "out_of_order": run.tcp.out_of_order,
            "gaps": run.tcp.gaps,
            "resync_skipped_bytes": run.tcp.resync_skipped_bytes,
        },
        "requests": stats.requests,
        "responses": stats.responses,
        "unanswered": stats.unanswered,
        "requests_by_function": keyed(&stats.requests_by_function),
        "exceptions_by_code": keyed(&stats.exceptions_by_code),
        "alerts_by_kind": keyed(&stats.alerts_by_kind),
        "alerts_suppressed": stats.alerts_suppressed,
        "alerts": alerts,
        "assets": serde_json::to_value(monitor.inventory().assets()).unwrap_or(Value::Null),
    });
    if let Some(r) = replay {
        out["policy"] = serde_json::to_value(r.summary()).unwrap_or(Value::Null);
    }
    out
}

fn render_text(r: &Value) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let _ = writeln!(
        s,
        "{} frames, {} bytes, {} flows",
        n(&r["frames"]),
        n(&r["bytes"]),
        n(&r["flows"])
    );
    let _ = writeln!(
        s,
        "{} requests, {} responses, {} unanswered",
        n(&r["requests"]),
        n(&r["responses"]),
        n(&r["unanswered"])
    );
    let t = &r["tcp"];
    let _ = writeln!(
        s,
        "tcp: {} segments, {} retransmitted, {} out of order, {} gaps",
        n(&t["segments"]),
        n(&t["retransmitted"]),
        n(&t["out_of_order"]),
        n(&t["gaps"])
    );
    let join = |v: &Value| {
        v.as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let _ = writeln!(
        s,
        "requests by function: {}",
        join(&r["requests_by_function"])
    );
    let _ = writeln!(s, "exceptions by code: {}", join(&r["exceptions_by_code"]));
    let _ = writeln!(s, "alerts by kind: {}", join(&r["alerts_by_kind"]));
    for a in r["alerts"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "  {} {} {} -> {} unit {} fc {}: {}",
            a["ts"].as_str().unwrap_or(""),
            a["kind"].as_str().unwrap_or(""),
            a["src"].as_str().unwrap_or(""),
            a["dst"].as_str().unwrap_or(""),
            a["unit"],
            a["fc"],
            a["message"].as_str().unwrap_or("")
        );
    }
    let _ = writeln!(s, "assets:");
    for a in r["assets"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "  {} {} units {} functions {}",
            a["address"].as_str().unwrap_or(""),
            a["role"].as_str().unwrap_or(""),
            a["unit_ids"],
            a["functions"]
        );
    }
    if let Some(p) = r.get("policy") {
        let _ = writeln!(
            s,
            "policy: {} allowed, {} would deny",
            n(&p["allowed"]),
            n(&p["would_deny"])
        );
        let _ = writeln!(s, "  by reason: {}", join(&p["by_reason"]));
        for e in p["examples"].as_array().into_iter().flatten() {
            let _ = writeln!(
                s,
                "  e.g. {} {} -> {} unit {} fc {}: {} (rule {})",
                e["ts"].as_str().unwrap_or(""),
                e["src"].as_str().unwrap_or(""),
                e["dst"].as_str().unwrap_or(""),
                e["unit"],
                e["fc"],
                e["reason"].as_str().unwrap_or(""),
                e["rule"]
            );
        }
    }
    s
}

fn list_detectors() {
    for d in DETECTORS {
        println!(
            "{:<28} {:<9} severity {} {}",
            d.kind.as_str(),
            if d.needs_baseline {
                "baseline"
            } else {
                "always"
            },
            d.severity,
            d.description
        );
    }
    println!();
    println!("thresholds (model `monitor:` section) and their defaults:");
    for (key, value) in Thresholds::default().describe() {
        println!("  {key}: {value}");
    }
}
