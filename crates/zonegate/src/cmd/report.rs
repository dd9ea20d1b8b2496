//! `zonegate report MODEL [--format text|markdown|json|html] [--probe RESULTS]...`: the IEC 62443
//! Zone Implementation Report (header, zone architecture, conduit configuration, validation
//! results). The logic lives in `zonegate_toolkit::report`.
//!
//! Exit status: 0 the report was written and the model has no error finding; 1 the report was
//! written but the model has error findings (the checks of `zonegate check`, listed in the
//! report's validation results): a report of a design with errors is not evidence of a sound one;
//! 2 the model or a probe file cannot be read, or the report cannot be written.

use std::path::PathBuf;

use zonegate_toolkit::{check, cli, probe, report};

/// Output format of `zonegate report`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    /// Plain text in the layout integrators know.
    Text,
    /// Markdown (GitHub-flavoured tables).
    Markdown,
    /// JSON (machine-readable, SR 7.6 RE1).
    Json,
    /// One self-contained HTML file with the zone/conduit graph as inline SVG.
    Html,
}

/// Arguments of `zonegate report`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The zone/conduit model (YAML).
    pub(crate) model: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
    /// Results written by `zonegate probe --out` to include (repeatable).
    #[arg(long = "probe", value_name = "RESULTS")]
    pub(crate) probe: Vec<PathBuf>,
    /// Write the report to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(args: Args) -> u8 {
    let Ok(site) = cli::load_or_report(&args.model) else {
        return cli::EXIT_INPUT;
    };
    let mut probes = Vec::new();
    for p in &args.probe {
        let text = match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                eprintln!(
                    "zonegate report: cannot read probe results {}: {e}",
                    p.display()
                );
                return cli::EXIT_INPUT;
            }
        };
        match probe::read_results(&text) {
            Ok(mut runs) => probes.append(&mut runs),
            Err(e) => {
                eprintln!("zonegate report: {}: {e}", p.display());
                return cli::EXIT_INPUT;
            }
        }
    }
    let r = report::build(&site, probes);
    let text = match args.format {
        Format::Text => report::render_text(&r),
        Format::Markdown => report::render_markdown(&r),
        Format::Html => report::render_html(&r, &site),
        Format::Json => match cli::pretty_json("report", &r) {
            Ok(s) => s,
            Err(code) => return code,
        },
    };
    let written = cli::write_output("report", args.out.as_deref(), &text);
    if written != 0 {
        return written;
    }
    let (errors, _, _) = check::counts(&check::check(&site));
    if errors > 0 {
        eprintln!(
            "zonegate report: {}: the model has {errors} error finding(s) (see `zonegate check`)",
            args.model.display()
        );
        return 1;
    }
    0
}
