//! `zonegate probe MODEL --conduit ID [--from ADDR] [--out RESULTS.json]`: the commissioning test
//! of a live conduit. Derives from the rules what must work and what must fail for the source
//! address, tries each through the conduit's gateway, prints PASS/FAIL per test and writes JSON
//! for `zonegate report --probe`. Never leaves a changed value (see `zonegate_toolkit::probe`).
//!
//! Exit status: 0 every test passed, 1 a test failed, 2 the model cannot be read, the conduit has
//! no gateway, or the gateway cannot be reached.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use zonegate_toolkit::{cli, probe};

/// Arguments of `zonegate probe`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The zone/conduit model (YAML).
    pub(crate) model: PathBuf,
    /// The conduit to probe (it must have a `gateway:` block).
    #[arg(long, required_unless_present = "replication", default_value_t = String::new())]
    pub(crate) conduit: String,
    /// Probe a one-way replication instead: forward flow, latency, reverse flow blocked.
    #[arg(long, value_name = "ID", conflicts_with = "conduit")]
    pub(crate) replication: Option<String>,
    /// With --replication: write a marker into this spare holding register of the source
    /// (UNIT:ADDRESS, inside a replicated block), time it to the replica, restore the value.
    #[arg(long, value_name = "UNIT:ADDRESS", requires = "replication")]
    pub(crate) mark: Option<String>,
    /// Source address to send from (the client socket is bound to it).
    #[arg(long, value_name = "ADDR")]
    pub(crate) from: Option<IpAddr>,
    /// Connect here instead of the gateway's `listen` address.
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) connect: Option<SocketAddr>,
    /// Timeout per connection attempt and per reply, in milliseconds.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub(crate) timeout_ms: u64,
    /// Modbus/TCP Security: the client certificate (PEM) to probe as; its role decides which
    /// rules apply. Required when the conduit's gateway has a `tls:` listener (with
    /// --replication: when the replica has a `receive.tls` block).
    #[arg(long, value_name = "PEM", requires = "key")]
    pub(crate) cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub(crate) key: Option<PathBuf>,
    /// The CA bundle (PEM) the gateway's certificate must chain to (default: the conduit's
    /// `tls.client_ca`, or the replica's `receive.tls.client_ca`, right for a lab PKI where
    /// one CA signs both).
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub(crate) ca: Option<PathBuf>,
    /// The name the gateway's certificate must carry (default: the IP address connected to).
    #[arg(long, value_name = "NAME", requires = "cert")]
    pub(crate) server_name: Option<String>,
    /// Write the results as JSON here (for `zonegate report --probe`).
    #[arg(long, value_name = "RESULTS.json")]
    pub(crate) out: Option<PathBuf>,
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(args: Args) -> u8 {
    if let Some(id) = &args.replication {
        let tls = match (&args.cert, &args.key) {
            (Some(cert), Some(key)) => {
                match super::replicate::probe_tls(&args, id, cert.clone(), key.clone()) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        eprintln!("zonegate probe: {e}");
                        return cli::EXIT_INPUT;
                    }
                }
            }
            _ => None,
        };
        return super::replicate::probe(&super::replicate::ProbeArgs {
            model: &args.model,
            id,
            timeout: Duration::from_millis(args.timeout_ms.max(1)),
            from: args.from,
            mark: args.mark.as_deref(),
            connect: args.connect,
            out: args.out.as_deref(),
            tls,
        });
    }
    let Ok(site) = cli::load_or_report(&args.model) else {
        return cli::EXIT_INPUT;
    };
    let tls = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => match tls_options(&site, &args, cert.clone(), key.clone()) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("zonegate probe: {e}");
                return cli::EXIT_INPUT;
            }
        },
        _ => None,
    };
    let opts = probe::ProbeOptions {
        conduit: args.conduit.clone(),
        from: args.from,
        connect: args.connect,
        timeout: Duration::from_millis(args.timeout_ms.max(1)),
        tls,
    };
    let run = match probe::run(&site, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zonegate probe: {e}");
            return cli::EXIT_INPUT;
        }
    };
    print!("{}", probe::render_text(&run));
    if let Some(path) = &args.out {
        let code = match cli::pretty_json("probe", &run) {
            Ok(json) => cli::write_output("probe", Some(path), &json),
            Err(code) => code,
        };
        if code != 0 {
            return code;
        }
    }
    u8::from(run.failed > 0)
}

/// The TLS side of the probe: the CA (given, or the conduit's `client_ca` resolved against the
/// model's folder) and the server name (given, or the address connected to).
fn tls_options(
    site: &zonegate_toolkit::model::Site,
    args: &Args,
    cert: PathBuf,
    key: PathBuf,
) -> Result<zonegate_toolkit::mbaps::ProbeTls, String> {
    let gateway = site
        .conduit(&args.conduit)
        .and_then(|c| c.gateway.as_ref())
        .ok_or_else(|| format!("no conduit {} with a gateway in the model", args.conduit))?;
    let ca = match (&args.ca, &gateway.tls) {
        (Some(ca), _) => ca.clone(),
        (None, Some(tls)) => {
            let folder = args.model.parent().unwrap_or(std::path::Path::new("."));
            folder.join(&tls.client_ca)
        }
        (None, None) => {
            return Err(format!(
            "conduit {} has no tls: block; --cert applies only to a Modbus/TCP Security listener",
            args.conduit
        ))
        }
    };
    let server_name = args.server_name.clone().unwrap_or_else(|| {
        zonegate_toolkit::mbaps::default_server_name(args.connect.unwrap_or(gateway.listen))
    });
    Ok(zonegate_toolkit::mbaps::ProbeTls {
        ca,
        identity: Some((cert, key)),
        server_name,
    })
}
