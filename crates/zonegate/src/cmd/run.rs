//! `zonegate run -c MODEL`: run the gateway for every conduit of the model with a `gateway:`
//! block, until SIGINT/SIGTERM. SIGHUP, or saving the model file, reloads it.
//!
//! Exit status: 0 after a clean shutdown; 2 when the model has errors (each printed as
//! `file:line:col: key: message`), no conduit has a gateway, an upstream is not supported yet,
//! a listener cannot bind, or the audit log cannot be opened. The gateway itself lives in
//! `zonegate_gateway`.

use std::io::Write as _;
use std::path::PathBuf;

use zonegate_gateway::{Gateway, GatewayOptions, StartError};

/// Arguments of `zonegate run`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The zone/conduit model (YAML) to enforce.
    #[arg(short = 'c', long = "config", value_name = "MODEL")]
    pub(crate) model: PathBuf,
    /// Seconds to let clients' in-flight requests finish at shutdown.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub(crate) drain_timeout: f64,
    /// Worker threads of the data path (0 = one per CPU). The audit writer has its own thread.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) threads: usize,
    /// Run only this half of the model's one-way replications (`transmit` on the OT side,
    /// `receive` in the DMZ); the gateway is not started. Default: both halves when local.
    #[arg(long, value_enum)]
    pub(crate) side: Option<super::replicate::Side>,
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(args: Args) -> u8 {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if args.threads > 0 {
        builder.worker_threads(args.threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zonegate run: cannot start the async runtime: {e}");
            return 2;
        }
    };
    let options = GatewayOptions {
        drain_timeout: std::time::Duration::from_secs_f64(args.drain_timeout.clamp(0.0, 3600.0)),
        ..GatewayOptions::default()
    };
    runtime.block_on(async move {
        let replications = match super::replicate::start(&args.model, args.side).await {
            Ok(r) => r,
            Err(code) => return code,
        };
        // Without replications the gateway runs (or says why it cannot) as before.
        if replications.only && !replications.is_empty() {
            super::replicate::wait_for_signal().await;
            replications.stop().await;
            return 0;
        }
        let gateway = match Gateway::start_file(&args.model, options).await {
            Ok(g) => g,
            Err(StartError::Model(errors)) => {
                eprintln!("{errors}");
                eprintln!(
                    "zonegate run: {}: {} error(s); nothing started",
                    args.model.display(),
                    errors.len()
                );
                return 2;
            }
            Err(e) => {
                eprintln!("zonegate run: {e}");
                return 2;
            }
        };
        // The addresses are printed once SIGINT/SIGTERM/SIGHUP are handled, so a supervisor
        // that waits for them may signal right away.
        let summary = gateway
            .run_until_signal_then(|listeners| {
                let mut out = std::io::stdout().lock();
                for l in listeners {
                    let _ = writeln!(
                        out,
                        "listening on {} (conduit {}, upstream {}, mode {})",
                        l.addr, l.conduit, l.upstream, l.mode
                    );
                }
                let _ = out.flush();
            })
            .await;
        replications.stop().await;
        if summary.sessions_cut > 0 {
            eprintln!(
                "zonegate run: {} session(s) were cut at the drain deadline",
                summary.sessions_cut
            );
        }
        0
    })
}
