//! `zonegate decode` (not written yet).

/// Arguments of `zonegate decode`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(_args: Args) -> u8 {
    eprintln!("zonegate decode: not implemented yet");
    2
}
