//! What the toolkit's subcommands (`zonegate check`, `report`, `assess`, `compile`, `probe`) share
//! at the edge of the program: load the model or print why not, write the output to a file or
//! stdout, encode JSON. Each returns the exit status to use on failure (2: input or output error),
//! so a command module reads `let Ok(site) = cli::load_or_report(path) else { return 2 };`.
//!
//! These functions print to stdout/stderr; everything else in the crate returns text.

use std::path::Path;

use serde::Serialize;

use crate::model::Site;

/// Exit status for a model, input or output file that cannot be read or written.
pub const EXIT_INPUT: u8 = 2;

/// Loads the model at `path`. On failure prints every load error to stderr (one a line, each
/// with file:line:column) and returns how many there were.
pub fn load_or_report(path: &Path) -> Result<Site, usize> {
    match crate::load(path) {
        Ok(site) => Ok(site),
        Err(errors) => {
            eprintln!("{errors}");
            Err(errors.len())
        }
    }
}

/// Writes `text` to the file `out`, or to stdout when `out` is `None`. Returns 0, or
/// [`EXIT_INPUT`] after `zonegate COMMAND: cannot write FILE: reason` on stderr.
pub fn write_output(command: &str, out: Option<&Path>, text: &str) -> u8 {
    match out {
        None => {
            print!("{text}");
            0
        }
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("zonegate {command}: cannot write {}: {e}", path.display());
                EXIT_INPUT
            }
        },
    }
}

/// Pretty JSON with a final newline. On failure prints `zonegate COMMAND: cannot encode JSON:
/// reason` on stderr and returns [`EXIT_INPUT`].
pub fn pretty_json(command: &str, value: &impl Serialize) -> Result<String, u8> {
    match serde_json::to_string_pretty(value) {
        Ok(mut s) => {
            s.push('\n');
            Ok(s)
        }
        Err(e) => {
            eprintln!("zonegate {command}: cannot encode JSON: {e}");
            Err(EXIT_INPUT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_model_reports_one_error() {
        assert_eq!(
            load_or_report(Path::new("/nonexistent/zonegate-model.yaml")).err(),
            Some(1)
        );
    }

    #[test]
    fn output_to_an_unwritable_file_is_exit_2() {
        let dir = std::env::temp_dir().join("zonegate-toolkit-cli-test-no-such-dir");
        assert_eq!(
            write_output("test", Some(&dir.join("x").join("y")), "text"),
            EXIT_INPUT
        );
    }

    #[test]
    fn json_ends_with_a_newline() {
        assert_eq!(pretty_json("test", &[1, 2]).unwrap(), "[\n  1,\n  2\n]\n");
    }
}
