//! `zonegate sim --listen ADDR [--unit N]`: a simulated Modbus TCP device (a cleanroom HVAC
//! controller) for demos and tests. It prints `listening on ADDR` with the bound address (so a
//! test that asked for port 0 finds the port) and runs until Ctrl-C / SIGTERM. The device lives
//! in `zonegate_gateway::sim`.
//!
//! `zonegate sim --rtu /dev/ttyZ [--units 1,2] [--baud 19200] [--parity none]` serves the same
//! register map as Modbus RTU slaves on a serial line (a pty of a socat pair in tests and
//! demos); it prints `serving rtu on PATH`.

use std::io::Write as _;
use std::net::SocketAddr;

use zonegate_gateway::sim::{Device, RtuLine, RtuSim, Sim};

/// Arguments of `zonegate sim`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = zonegate_gateway::sim::DEFAULT_LISTEN)]
    pub(crate) listen: SocketAddr,
    /// Answer only this unit id (and 0 and 255); requests to other units get no answer.
    #[arg(long)]
    pub(crate) unit: Option<u8>,
    /// Start with every table zeroed instead of the HVAC values.
    #[arg(long)]
    pub(crate) blank: bool,
    /// Serve Modbus RTU slaves on this serial device instead of listening on TCP.
    #[arg(long, value_name = "PATH")]
    pub(crate) rtu: Option<std::path::PathBuf>,
    /// With --rtu: the slave unit ids (default: every unit 1..=247).
    #[arg(long, value_delimiter = ',', value_name = "N,N")]
    pub(crate) units: Vec<u8>,
    /// With --rtu: baud rate.
    #[arg(long, default_value_t = 19_200)]
    pub(crate) baud: u32,
    /// With --rtu: parity, none or even (a pty refuses even parity).
    #[arg(long, default_value = "none", value_parser = ["none", "even"])]
    pub(crate) parity: String,
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(args: Args) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zonegate sim: cannot start the async runtime: {e}");
            return 2;
        }
    };
    runtime.block_on(async move {
        let device = if args.blank {
            Device::new()
        } else {
            Device::hvac()
        }
        .with_unit(args.unit);
        if let Some(path) = &args.rtu {
            if args.units.iter().any(|&u| u == 0 || u > 247) {
                eprintln!("zonegate sim: --units takes slave addresses 1..=247");
                return 2;
            }
            let line = RtuLine {
                baud: args.baud,
                even_parity: args.parity == "even",
            };
            let sim = match RtuSim::start(path, line, device, &args.units) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("zonegate sim: cannot open {}: {e}", path.display());
                    return 2;
                }
            };
            let stop = StopSignals::install();
            {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "serving rtu on {}", path.display());
                let _ = out.flush();
            }
            stop.wait().await;
            sim.stop().await;
            return 0;
        }
        let sim = match Sim::start(args.listen, device).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("zonegate sim: cannot listen on {}: {e}", args.listen);
                return 2;
            }
        };
        // Handlers first, then the address: whoever reads it may signal at once.
        let stop = StopSignals::install();
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on {}", sim.local_addr());
            let _ = out.flush();
        }
        stop.wait().await;
        sim.stop().await;
        0
    })
}

/// SIGINT and SIGTERM, handled from the moment of `install`.
struct StopSignals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Self {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Waits for either signal.
    async fn wait(mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = recv(&mut self.int) => {}
            () = recv(&mut self.term) => {}
        }
    }
}
