//! `zonegate inventory CAPTURE... [--format yaml|json]`: the passive inventory of captures:
//! every address with its role, unit ids and function codes, and the vendor, product and
//! revision that devices gave in FC 43/14 answers. The YAML form is a list of `assets:` entries
//! (id, address, unit_ids, vendor, model, firmware) to merge into a model's zones.
//!
//! `zonegate inventory --probe MODEL [--through-gateway] [--timeout S]`: the active inventory:
//! FC 43/14 (basic, then regular) and FC 17 sent only to the devices the model's gateway
//! conduits name as upstreams (`tcp://`, `rtu+tcp://`, `tls://` with the upstream's
//! certificates; an `rtu://` line only through its gateway), for the unit ids of their assets
//! (toolkit `identify`); the same `assets:` form, with the model's asset ids. What is not
//! probed is said on stderr, one line per conduit.
//!
//! Exit status: 0 written, 1 a probed device answered nothing, 2 input error.

use std::fmt::Write as _;
use std::path::PathBuf;

use zonegate_monitor::{Asset, Monitor, Role, Thresholds};
use zonegate_toolkit::cli::EXIT_INPUT;

use super::analyze::analyze;

/// Output format of `zonegate inventory`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    /// `assets:` entries for a model.
    Yaml,
    /// The assets as JSON, with everything observed.
    Json,
}

/// Arguments of `zonegate inventory`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// pcap or pcapng files.
    #[arg(required_unless_present = "probe")]
    pub(crate) captures: Vec<PathBuf>,
    /// Ask the devices of this model who they are (FC 43/14, FC 17) instead of reading
    /// captures: only each gateway conduit's upstream, only its asset's unit ids.
    #[arg(long, value_name = "MODEL", conflicts_with = "captures")]
    pub(crate) probe: Option<PathBuf>,
    /// With --probe: send through each conduit's gateway (its listen address), so that the
    /// gateway's policy decides, instead of to the upstream directly.
    #[arg(long, requires = "probe")]
    pub(crate) through_gateway: bool,
    /// With --probe: seconds to wait for a connection and for each answer.
    #[arg(long, default_value_t = 2.0, requires = "probe")]
    pub(crate) timeout: f64,
    /// Output format.
    #[arg(long, value_enum, default_value = "yaml")]
    pub(crate) format: Format,
    /// More TCP ports that carry Modbus/TCP (502 always does). Repeatable.
    #[arg(long = "port", value_name = "PORT")]
    pub(crate) ports: Vec<u16>,
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(args: Args) -> u8 {
    if let Some(model) = &args.probe {
        return probe(&args, model);
    }
    let mut monitor = Monitor::new(Thresholds::default(), None);
    let mut ports = vec![502];
    ports.extend(args.ports.iter().copied());
    if let Err(code) = analyze(&args.captures, ports, &mut monitor, None, None) {
        return code;
    }
    let assets = monitor.inventory().assets();
    match args.format {
        Format::Json => match serde_json::to_string_pretty(&assets) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("zonegate inventory: {e}");
                return EXIT_INPUT;
            }
        },
        Format::Yaml => print!("{}", render_yaml(&assets)),
    }
    0
}

/// `--probe MODEL`.
fn probe(args: &Args, path: &std::path::Path) -> u8 {
    use zonegate_toolkit::identify;
    let model = match zonegate_policy::load_file(path) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INPUT;
        }
    };
    let (targets, skipped) = identify::plan(&model, args.through_gateway);
    for s in &skipped {
        eprintln!("zonegate inventory: {s}");
    }
    if targets.is_empty() {
        eprintln!(
            "zonegate inventory: {} names no upstream to probe",
            path.display()
        );
        return EXIT_INPUT;
    }
    let timeout = std::time::Duration::from_secs_f64(args.timeout.clamp(0.05, 60.0));
    let found = identify::run(&targets, timeout);
    if matches!(args.format, Format::Json) {
        eprintln!("zonegate inventory: --probe writes YAML only");
    }
    print!(
        "{}",
        identify::render_yaml(&found, &path.display().to_string())
    );
    let silent = found.iter().any(|d| {
        d.units
            .iter()
            .all(|u| u.objects.is_empty() && u.server_id.is_none())
    });
    u8::from(silent)
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// `assets:` entries: one per server (what a zone lists), then the masters.
fn render_yaml(assets: &[&Asset]) -> String {
    let mut out = String::from(
        "# Observed by `zonegate inventory`; merge into the zones' `assets:`.\nassets:\n",
    );
    for a in assets
        .iter()
        .filter(|a| a.role == Role::Slave)
        .chain(assets.iter().filter(|a| a.role == Role::Master))
    {
        let prefix = if a.role == Role::Slave { "S" } else { "M" };
        let id = format!(
            "{prefix}-{}",
            a.address.to_string().replace(['.', ':'], "-")
        );
        let _ = write!(
            out,
            "  - id: {id}\n    address: {}\n",
            quoted(&a.address.to_string())
        );
        if a.role == Role::Slave {
            let units: Vec<String> = a.unit_ids.iter().map(u8::to_string).collect();
            let _ = writeln!(out, "    unit_ids: [{}]", units.join(", "));
            // The first unit that identified itself names the device.
            if let Some(objects) = a.identification.values().next() {
                for (key, object) in [
                    ("vendor", "vendor"),
                    ("model", "product"),
                    ("firmware", "revision"),
                ] {
                    if let Some(v) = objects.get(object) {
                        let _ = writeln!(out, "    {key}: {}", quoted(v));
                    }
                }
            }
        }
        let functions: Vec<String> = a.functions.iter().map(u8::to_string).collect();
        let role = if a.role == Role::Slave {
            "answered"
        } else {
            "sent"
        };
        let _ = writeln!(
            out,
            "    notes: {}",
            quoted(&format!(
                "{} requests {role}; function codes {}",
                a.requests,
                functions.join(", ")
            ))
        );
    }
    out
}
