//! One module per subcommand. Each exposes `Args` (clap) and `run(Args) -> u8`, the exit status:
//! 0 = fine, 1 = findings or failed verification, 2 = usage or input error.

pub(crate) mod analyze;
pub(crate) mod assess;
pub(crate) mod cert;
pub(crate) mod check;
pub(crate) mod compile;
pub(crate) mod decode;
pub(crate) mod demo;
pub(crate) mod inventory;
pub(crate) mod learn;
pub(crate) mod log;
pub(crate) mod probe;
pub(crate) mod replicate;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod sim;

/// Human-readable logs go to stderr; `RUST_LOG` overrides the default `info` level.
pub(crate) fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into a log file or the journal.
    // Under systemd (JOURNAL_STREAM is set when stderr is the journal) no timestamps either:
    // journald stamps every line itself.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let ansi = !journal && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if journal {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
