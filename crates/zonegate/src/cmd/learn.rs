//! `zonegate learn CAPTURE... | --events AUDIT_LOG... [--model BASE] [--min-writes N] -o MODEL`:
//! writes a reviewable zone/conduit model from observed traffic (see
//! `zonegate_monitor::learn` for what enters it). The result loads with `zonegate check`, and
//! `zonegate analyze` of the same traffic with `--model` gives no would-deny.
//!
//! Exit status: 0 written, 2 input error (unreadable capture, log or base model; nothing seen).

use std::net::SocketAddr;
use std::path::PathBuf;

use zonegate_audit::show::{for_each, parse_time, Filter};
use zonegate_audit::Kind as EventKind;
use zonegate_monitor::learn::{synthesize, Options};
use zonegate_monitor::replay::Replay;
use zonegate_monitor::{Adu, Flow, Monitor, Side, Thresholds};
use zonegate_toolkit::cli::{write_output, EXIT_INPUT};

use super::analyze::analyze;

/// Arguments of `zonegate learn`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// pcap or pcapng files.
    #[arg(required_unless_present = "events")]
    pub(crate) captures: Vec<PathBuf>,
    /// Learn from zonegate audit logs (request records) instead of captures. Repeatable.
    #[arg(long, value_name = "AUDIT_LOG", num_args = 1..)]
    pub(crate) events: Vec<PathBuf>,
    /// Base model: its zones and asset ids name the addresses they hold.
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// A write function enters a rule only when that master sent it at least N times.
    #[arg(long, default_value_t = 1)]
    pub(crate) min_writes: u64,
    /// More TCP ports that carry Modbus/TCP (502 always does). Repeatable.
    #[arg(long = "port", value_name = "PORT")]
    pub(crate) ports: Vec<u16>,
    /// Where to write the model (`-` = stdout).
    #[arg(short = 'o', long = "output", value_name = "MODEL")]
    pub(crate) output: PathBuf,
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(args: Args) -> u8 {
    let base = match &args.model {
        Some(path) => match zonegate_policy::load_file(path) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("zonegate learn: {e}");
                return EXIT_INPUT;
            }
        },
        None => None,
    };
    let mut monitor = Monitor::new(Thresholds::default(), None).learning();
    let mut sources: Vec<String> = Vec::new();
    if args.events.is_empty() {
        let mut ports = vec![502];
        ports.extend(args.ports.iter().copied());
        if let Err(code) = analyze(&args.captures, ports, &mut monitor, None, None) {
            return code;
        }
        sources.extend(args.captures.iter().map(|p| p.display().to_string()));
    } else {
        match feed_events(&args.events, &mut monitor, None) {
            Ok(skipped) if skipped > 0 => {
                eprintln!("zonegate learn: {skipped} request record(s) could not be turned into a request (no address, serial upstream or sub-function unknown)");
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("zonegate learn: {e}");
                return EXIT_INPUT;
            }
        }
        sources.extend(args.events.iter().map(|p| p.display().to_string()));
    }
    let Some(learned) = monitor.learned().filter(|b| b.requests > 0) else {
        eprintln!("zonegate learn: no Modbus request in the input: nothing to learn");
        return EXIT_INPUT;
    };
    let text = synthesize(
        learned,
        base.as_ref(),
        &Options {
            min_writes: args.min_writes,
            sources,
        },
    );
    let out = (args.output.as_os_str() != "-").then_some(args.output.as_path());
    write_output("learn", out, &text)
}

/// Builds the request PDU an audit `request` record describes (FC 1-6, 15, 16; the others
/// carry too little to rebuild). `None` when it cannot.
fn request_pdu(e: &zonegate_audit::Event) -> Option<Vec<u8>> {
    let fc = e.fc?;
    let mut pdu = vec![fc];
    let address = e.address?;
    pdu.extend_from_slice(&address.to_be_bytes());
    match fc {
        1..=4 => pdu.extend_from_slice(&e.quantity?.to_be_bytes()),
        5 => pdu.extend_from_slice(if *e.values.as_ref()?.first()? != 0 {
            &[0xff, 0x00]
        } else {
            &[0, 0]
        }),
        6 => pdu.extend_from_slice(&e.values.as_ref()?.first()?.to_be_bytes()),
        15 | 16 => {
            let values = e.values.as_ref().filter(|_| !e.values_truncated)?;
            let quantity = e.quantity?;
            if values.len() != usize::from(quantity) {
                return None;
            }
            pdu.extend_from_slice(&quantity.to_be_bytes());
            if fc == 15 {
                let mut bytes = vec![0u8; values.len().div_ceil(8)];
                for (i, v) in values.iter().enumerate() {
                    if *v != 0 {
                        bytes[i / 8] |= 1 << (i % 8);
                    }
                }
                pdu.push(u8::try_from(bytes.len()).ok()?);
                pdu.extend_from_slice(&bytes);
            } else {
                pdu.push(u8::try_from(values.len() * 2).ok()?);
                for v in values {
                    pdu.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        _ => return None,
    }
    Some(pdu)
}

/// Feeds the `request` records of audit logs to the monitor (and the replay); returns how many
/// request records could not be rebuilt.
pub(crate) fn feed_events(
    paths: &[PathBuf],
    monitor: &mut Monitor,
    mut replay: Option<&mut Replay>,
) -> Result<u64, String> {
    let mut skipped = 0;
    for_each(paths, &Filter::default(), |e, _| {
        if e.kind != EventKind::Request {
            return;
        }
        let src = e.src.as_deref().and_then(|s| s.parse::<SocketAddr>().ok());
        let dst = e.dst.as_deref().and_then(|s| s.parse::<SocketAddr>().ok());
        let ts_us =
            e.ts.as_deref()
                .and_then(|t| parse_time(t).ok())
                .and_then(|t| u64::try_from(t.unix_timestamp_nanos() / 1000).ok());
        let (Some(src), Some(dst), Some(ts_us), Some(unit), Some(pdu)) =
            (src, dst, ts_us, e.unit, request_pdu(e))
        else {
            skipped += 1;
            return;
        };
        if let Some(r) = replay.as_deref_mut() {
            r.request(ts_us, src.ip(), dst.ip(), unit, &pdu);
        }
        monitor.adu(Adu {
            ts_us,
            flow: Flow {
                client: src,
                server: dst,
            },
            side: Side::ToServer,
            transaction_id: e.tid.unwrap_or(0),
            unit,
            pdu: &pdu,
        });
        // An audit log has no answers: the request is finished here.
        monitor.flow_closed(Flow {
            client: src,
            server: dst,
        });
    })
    .map_err(|e| e.to_string())?;
    Ok(skipped)
}
