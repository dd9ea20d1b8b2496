//! `zonegate log ...` (not written yet).

/// Subcommands of `zonegate log`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Verify a log's hash chain.
    Verify {},
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(_command: Command) -> u8 {
    eprintln!("zonegate log: not implemented yet");
    2
}
