//! `zonegate compile MODEL --target nftables|iptables [-o FILE]`: L3/L4 rules for the zone
//! boundaries from the conduits: only the declared flows (to the gateways' listen ports, and the
//! ports of `protocols_allowed` between zone networks), default drop, drops logged with the prefix
//! `zonegate-drop`. The logic lives in `zonegate_toolkit::compile`.
//!
//! Exit status: 0 written, 2 the model cannot be read or the output cannot be written.

use std::path::PathBuf;

use zonegate_toolkit::{cli, compile};

/// Firewall syntax.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Target {
    /// nftables ruleset for `nft -f` (inet table, IPv4 and IPv6).
    Nftables,
    /// iptables-restore input (IPv4).
    Iptables,
}

/// Arguments of `zonegate compile`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The zone/conduit model (YAML).
    pub(crate) model: PathBuf,
    /// Firewall syntax to produce.
    #[arg(long, value_enum)]
    pub(crate) target: Target,
    /// Write the rules to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(args: Args) -> u8 {
    let Ok(site) = cli::load_or_report(&args.model) else {
        return cli::EXIT_INPUT;
    };
    let target = match args.target {
        Target::Nftables => compile::Target::Nftables,
        Target::Iptables => compile::Target::Iptables,
    };
    cli::write_output(
        "compile",
        args.out.as_deref(),
        &compile::render(&site, target),
    )
}
