//! The output forms of a list of findings: text for a terminal ([`render_text`]), JSON
//! ([`render_json`]) and SARIF 2.1.0 for code scanning ([`render_sarif`]).
//!
//! Separate because layout changes should not touch the checks.

use std::fmt::Write as _;

use super::{counts, Finding, CHECKS};

/// Renders findings for a terminal: `file:line: severity[ID] element: message`, then a summary.
pub fn render_text(findings: &[Finding], file: &str) -> String {
    let mut s = String::new();
    for f in findings {
        let _ = writeln!(
            s,
            "{}:{}: {}[{}] {}: {}",
            f.file,
            f.line,
            f.severity.as_str(),
            f.id,
            f.element,
            f.message
        );
    }
    let (e, w, i) = counts(findings);
    let _ = writeln!(
        s,
        "{file}: {e} error(s), {w} warning(s), {i} info(s){}",
        if e == 0 { " - ok" } else { "" }
    );
    s
}

/// JSON: `{"file", "summary": {errors, warnings, infos}, "findings": [...]}`.
pub fn render_json(findings: &[Finding], file: &str) -> serde_json::Value {
    let (e, w, i) = counts(findings);
    serde_json::json!({
        "file": file,
        "summary": {"errors": e, "warnings": w, "infos": i},
        "findings": findings,
    })
}

/// SARIF 2.1.0 for GitHub code scanning: every check as a `tool.driver.rules` entry, every
/// finding as a result with `ruleId`, `level`, `message` and a physical location (uri + line).
pub fn render_sarif(findings: &[Finding]) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = CHECKS
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": c.id,
                "name": c.name,
                "shortDescription": {"text": c.description},
                "fullDescription": {"text": c.description},
                "defaultConfiguration": {"level": c.severity.sarif_level()},
                "help": {"text": c.description},
                "properties": {"tags": ["security", "iec62443"]},
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            let idx = CHECKS.iter().position(|c| c.id == f.id).unwrap_or(0);
            serde_json::json!({
                "ruleId": f.id,
                "ruleIndex": idx,
                "level": f.severity.sarif_level(),
                "message": {"text": format!("{}: {}", f.element, f.message)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": sarif_uri(&f.file)},
                        "region": {"startLine": f.line.max(1)},
                    }
                }],
                "partialFingerprints": {"zonegateElement": format!("{}:{}", f.id, f.element)},
            })
        })
        .collect();
    serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "zonegate",
                "informationUri": "https://example.invalid/zonegate",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

/// A relative path with forward slashes, as code scanning expects: leading `./` removed, and an
/// absolute path under the current directory made relative to it.
fn sarif_uri(file: &str) -> String {
    let path = std::path::Path::new(file);
    let rel = if path.is_absolute() {
        std::env::current_dir()
            .ok()
            .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.display().to_string()))
            .unwrap_or_else(|| file.to_owned())
    } else {
        file.to_owned()
    };
    let f = rel.replace('\\', "/");
    f.strip_prefix("./").unwrap_or(&f).to_owned()
}
