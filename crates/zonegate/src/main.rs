//! `zonegate`: the command-line front of the workspace.
//!
//! This file only parses the command line and dispatches; each subcommand lives in its own
//! module under `cmd/`, which wires the library crates together. Exit status is a contract:
//! 0 = fine, 1 = findings or failed verification, 2 = usage or input error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod gate;
mod notify;

/// Enforce an IEC 62443 zone-and-conduit model on Modbus traffic.
///
/// zonegate is a bump-in-the-wire Modbus gateway, a tamper-evident audit trail and a toolkit for
/// the YAML zone/conduit model that drives both. Start with `zonegate demo`.
#[derive(Debug, Parser)]
#[command(
    name = "zonegate",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway for every conduit of a model that has a `gateway:` block.
    Run(cmd::run::Args),
    /// Start a simulated HVAC controller behind a gateway on loopback and print what to try.
    Demo(cmd::demo::Args),
    /// Run a simulated Modbus TCP device (coils, discrete inputs, holding and input registers).
    Sim(cmd::sim::Args),
    /// Decode one Modbus frame (TCP ADU by default) given in hex and print it as JSON.
    Decode(cmd::decode::Args),
    /// Check a zone/conduit model for design errors (exit 1 when there are errors).
    Check(cmd::check::Args),
    /// Print the IEC 62443 zone implementation report for a model.
    Report(cmd::report::Args),
    /// Assess a model against the IEC 62443-3-3 system requirements.
    Assess(cmd::assess::Args),
    /// Compile a model's conduits into L3/L4 firewall rules.
    Compile(cmd::compile::Args),
    /// Probe a live conduit: check that what must work works and what must fail fails.
    Probe(cmd::probe::Args),
    /// Make a lab PKI for Modbus/TCP Security: a CA, server and client certificates with a role.
    #[command(subcommand)]
    Cert(cmd::cert::Command),
    /// Analyse pcap/pcapng captures: detectors, inventory, policy replay (`--model`).
    Analyze(cmd::analyze::Args),
    /// Write a reviewable model from observed traffic (captures or audit logs).
    Learn(cmd::learn::Args),
    /// List the devices seen in captures (addresses, unit ids, functions, identification).
    Inventory(cmd::inventory::Args),
    /// Work with the tamper-evident audit log: verify, show, keygen.
    #[command(subcommand)]
    Log(cmd::log::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cmd::init_tracing();
    let status = match cli.command {
        Command::Run(args) => cmd::run::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Decode(args) => cmd::decode::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Report(args) => cmd::report::run(args),
        Command::Assess(args) => cmd::assess::run(args),
        Command::Compile(args) => cmd::compile::run(args),
        Command::Probe(args) => cmd::probe::run(args),
        Command::Log(command) => cmd::log::run(command),
        Command::Cert(command) => cmd::cert::run(command),
        Command::Analyze(args) => cmd::analyze::run(args),
        Command::Learn(args) => cmd::learn::run(args),
        Command::Inventory(args) => cmd::inventory::run(args),
    };
    ExitCode::from(status)
}
