//! `zonegate run` (not written yet).

/// Arguments of `zonegate run`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(_args: Args) -> u8 {
    eprintln!("zonegate run: not implemented yet");
    2
}
