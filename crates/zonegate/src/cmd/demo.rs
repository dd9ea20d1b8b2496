//! `zonegate demo`: no arguments, no files. Starts the simulated cleanroom HVAC controller and a
//! gateway in front of it on loopback with a built-in model, prints the commands to try
//! (pymodbus and mbpoll: an allowed read, a blocked write, an out-of-bounds setpoint) and one
//! line per decision, until Ctrl-C. The demo lives in `zonegate_gateway::demo`.

use std::net::SocketAddr;
use std::path::PathBuf;

use zonegate_gateway::demo;

/// Arguments of `zonegate demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where the gateway listens (default: a free port on 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(crate) listen: SocketAddr,
    /// Audit log file (default: a new file in the temp directory); `-` prints the JSON events
    /// on stdout instead of the readable summary.
    #[arg(long, value_name = "FILE")]
    pub(crate) audit_log: Option<PathBuf>,
    /// Print the built-in model (as a file `zonegate run -c` accepts) and exit.
    #[arg(long)]
    pub(crate) print_model: bool,
    /// Where the dashboard and metrics are served (default: a free port on 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(crate) admin: SocketAddr,
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(args: Args) -> u8 {
    if args.print_model {
        print!("{}", demo::printed_model());
        return 0;
    }
    let audit_log = match args.audit_log {
        Some(p) if p.as_os_str() == "-" => None,
        Some(p) => Some(p),
        None => Some(demo::default_audit_log()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zonegate demo: cannot start the async runtime: {e}");
            return 2;
        }
    };
    // The lab PKI of the Modbus/TCP Security conduit, made fresh next to the audit log.
    let pki_dir = std::env::temp_dir().join(format!("zonegate-demo-{}-pki", std::process::id()));
    if let Err(e) = crate::cmd::cert::lab_pki(&pki_dir) {
        eprintln!(
            "zonegate demo: cannot make the lab PKI in {}: {e}",
            pki_dir.display()
        );
        return 2;
    }
    let metrics = std::sync::Arc::new(zonegate_gateway::Metrics::new());
    // The dashboard: loopback unless the operator says otherwise (no token in the demo).
    if !args.admin.ip().is_loopback() {
        eprintln!("zonegate demo: --admin must be a loopback address (the demo sets no token)");
        let _ = std::fs::remove_dir_all(&pki_dir);
        return 2;
    }
    let admin = match runtime.block_on(zonegate_admin::Admin::start(
        args.admin,
        std::sync::Arc::clone(&metrics),
        None,
    )) {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "zonegate demo: cannot serve the dashboard on {}: {e}",
                args.admin
            );
            let _ = std::fs::remove_dir_all(&pki_dir);
            return 2;
        }
    };
    let options = demo::DemoOptions {
        listen: args.listen,
        audit_log,
        pki: Some(demo::DemoPki {
            dir: pki_dir.clone(),
        }),
        admin: Some((metrics, admin.addr())),
    };
    let outcome = runtime.block_on(demo::run(options));
    // The lab CA's key has no use once the demo's gateway is gone.
    let _ = std::fs::remove_dir_all(&pki_dir);
    let _guard = runtime.enter();
    admin.stop();
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("zonegate demo: {e}");
            2
        }
    }
}
