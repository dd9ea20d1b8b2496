//! `zonegate compile MODEL --target nftables|iptables [-o FILE]`: L3/L4 rules for the zone
//! boundaries from the conduits: only the declared flows (to the gateways' listen ports, and the
//! ports of `protocols_allowed` between zone networks), default drop, drops logged with the prefix
//! `zonegate-drop`. The logic lives in `zonegate_toolkit::compile`.
//!
//! The model passes the checks of `zonegate check` first ([`crate::gate`]): an error finding
//! refuses to emit rules unless its id is named in `--accept-findings` (the accepted findings are
//! then named in a comment at the top of the rules); warnings are printed on stderr.
//!
//! Exit status: 0 written, 1 the model has error findings (nothing written), 2 the model cannot
//! be read or the output cannot be written.

use std::path::PathBuf;

use zonegate_toolkit::{cli, compile};

use crate::gate::{self, Accepted};

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
    /// Emit rules even though the model has error findings with these check ids
    /// (comma-separated, e.g. ZG-C017): a deliberate exception, named in the output.
    #[arg(
        long,
        value_name = "IDS",
        value_delimiter = ',',
        value_parser = gate::parse_check_id
    )]
    pub(crate) accept_findings: Vec<&'static str>,
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(args: Args) -> u8 {
    let Ok(site) = cli::load_or_report(&args.model) else {
        return cli::EXIT_INPUT;
    };
    let review = gate::review(&site, &Accepted::new(&args.accept_findings));
    review.print("compile", &args.model.display().to_string());
    if review.refuses() {
        eprintln!("zonegate compile: no rules written");
        return 1;
    }
    let target = match args.target {
        Target::Nftables => compile::Target::Nftables,
        Target::Iptables => compile::Target::Iptables,
    };
    // Both nft -f and iptables-restore read `#` lines as comments.
    let mut text = String::new();
    for n in review.notes() {
        if n.starts_with("accepted finding") {
            text.push_str(&format!("# zonegate compile --accept-findings: {n}\n"));
        }
    }
    text.push_str(&compile::render(&site, target));
    cli::write_output("compile", args.out.as_deref(), &text)
}
