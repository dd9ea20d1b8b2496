//! `zonegate check MODEL [--format text|json|sarif]`: design checks of a zone/conduit model.
//!
//! Exit status: 0 no error findings, 1 error findings, 2 the model cannot be read or parsed
//! (the loader's errors are printed, each with file:line:column). The checks live in
//! `zonegate_toolkit::check`; besides the model, `check` reads the files its monitor settings
//! name (the baseline, the shadow candidates: ZG-C042, ZG-C043), which `run` never refuses for.

use std::path::PathBuf;

use zonegate_toolkit::{check, cli};

/// Output format of `zonegate check`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    /// One finding a line: `file:line: severity[ID] element: message`.
    Text,
    /// One JSON document with a summary and the findings.
    Json,
    /// SARIF 2.1.0 (GitHub code scanning).
    Sarif,
}

/// Arguments of `zonegate check`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The zone/conduit model (YAML).
    #[arg(required_unless_present = "list")]
    pub(crate) model: Option<PathBuf>,
    /// List every check (id, default severity, what it checks) and exit.
    #[arg(long)]
    pub(crate) list: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
}

/// Runs the subcommand and returns the exit status.
pub(crate) fn run(args: Args) -> u8 {
    let Some(path) = args.model.as_ref().filter(|_| !args.list) else {
        for c in check::CHECKS {
            println!(
                "{} {:<8} {:<32} {}",
                c.id,
                c.severity.as_str(),
                c.name,
                c.description
            );
        }
        return 0;
    };
    let site = match cli::load_or_report(path) {
        Ok(site) => site,
        Err(count) => {
            eprintln!("zonegate check: {}: {count} load error(s)", path.display());
            return cli::EXIT_INPUT;
        }
    };
    // The checks of `run`'s gate, plus the files the monitor settings name.
    let findings = check::check_with_files(&site);
    let out = match args.format {
        Format::Text => Ok(check::render_text(&findings, &site.file)),
        Format::Json => cli::pretty_json("check", &check::render_json(&findings, &site.file)),
        Format::Sarif => cli::pretty_json("check", &check::render_sarif(&findings)),
    };
    match out {
        Ok(out) => print!("{out}"),
        Err(code) => return code,
    }
    let (errors, _, _) = check::counts(&findings);
    u8::from(errors > 0)
}
