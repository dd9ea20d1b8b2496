//! `zonegate assess MODEL [--format text|markdown|json] [--fail-on-gap]`: an assessment of the
//! model against IEC 62443-3-3: per conduit and zone, which system requirements the configuration
//! meets, the achieved level per foundational requirement against the target, and the gaps as
//! threats and countermeasures. The logic lives in `zonegate_toolkit::assess`.
//!
//! Exit status: 0 assessed (1 with `--fail-on-gap` when some SL-A is below its SL-T), 2 the model
//! cannot be read.

use std::path::PathBuf;

use zonegate_toolkit::{assess, cli};

/// Output format of `zonegate assess`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    /// Plain text.
    Text,
    /// Markdown.
    Markdown,
    /// JSON with every requirement's verdict and evidence.
    Json,
}

/// Arguments of `zonegate assess`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The zone/conduit model (YAML).
    pub(crate) model: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
    /// Exit 1 when a zone or conduit does not reach its target level on some FR.
    #[arg(long)]
    pub(crate) fail_on_gap: bool,
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(args: Args) -> u8 {
    let Ok(site) = cli::load_or_report(&args.model) else {
        return cli::EXIT_INPUT;
    };
    let a = match assess::assess(&site) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("zonegate assess: the built-in requirements table is broken: {e}");
            return cli::EXIT_INPUT;
        }
    };
    match args.format {
        Format::Text => print!("{}", assess::render_text(&a)),
        Format::Markdown => print!("{}", assess::render_markdown(&a)),
        Format::Json => match cli::pretty_json("assess", &a) {
            Ok(s) => print!("{s}"),
            Err(code) => return code,
        },
    }
    u8::from(args.fail_on_gap && assess::has_shortfall(&a))
}
