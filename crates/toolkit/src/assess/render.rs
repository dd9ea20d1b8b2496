//! The human-readable forms of an [`Assessment`]: plain text (`zonegate assess`) and markdown
//! (`--format markdown`), both with the legend that says what each status means. The JSON form is
//! the serde serialisation of the types in the parent module.
//!
//! Separate because layout changes (columns, wording) should not touch the assessment logic.

use std::fmt::Write as _;

use super::{Assessment, Item, Status};
use crate::model::SlVector;
use crate::util::md;
use zonegate_policy::Fr;

use Status::{Assumed, Declared, Gap, Met, Provided};

fn vec_row(v: Option<SlVector>) -> String {
    match v {
        None => Fr::ALL.iter().map(|_| format!("{:>4}", "-")).collect(),
        Some(v) => v.0.iter().map(|l| format!("{l:>4}")).collect(),
    }
}

const LEGEND: &str = "Legend: MET = proven by the configuration zonegate enforces; PROVIDED = built into zonegate when its gateway is in the path (verify with `zonegate probe`); DECLARED = stated in the model's prose, not verified; ASSUMED = outside what the model can show, the asset owner must evidence it; GAP = in scope and not met.\nSL-A = highest level with no GAP and no DECLARED item at or below it in that FR: prose never raises SL-A (the `declared` row shows what the prose would reach). ASSUMED items count as met, so SL-A is an upper bound until they are evidenced.";

/// Plain-text assessment.
pub fn render_text(a: &Assessment) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "IEC 62443-3-3 ASSESSMENT: {}", a.facility);
    let _ = writeln!(w, "Model: {}", a.model_file);
    let _ = writeln!(
        w,
        "Requirements: {} SRs/REs; source: {}.",
        a.table_size, a.table_source
    );
    let _ = writeln!(w, "{LEGEND}");
    if a.check_errors > 0 {
        let _ = writeln!(
            w,
            "WARNING: `zonegate check` reports {} design error(s); fix them first, they weaken every conclusion below.",
            a.check_errors
        );
    }
    let header: String = Fr::ALL.iter().map(|f| format!("{f:>4}")).collect();
    let _ = writeln!(w, "\nZONES                       {header}");
    for z in &a.zones {
        let _ = writeln!(w, "  {:<22} SL-T{}", z.id, vec_row(z.target));
        let _ = writeln!(
            w,
            "  {:<22} SL-A{}   {}",
            "",
            vec_row(z.achieved),
            if z.conduits.is_empty() {
                "(no conduit: isolated)".to_owned()
            } else if z.shortfalls.is_empty() {
                "meets SL-T".to_owned()
            } else {
                format!("SHORT: {}", z.shortfalls.join(", "))
            }
        );
        if z.declared.is_some() && z.declared != z.achieved {
            let _ = writeln!(
                w,
                "  {:<22} decl{}   (prose counted; not achieved)",
                "",
                vec_row(z.declared)
            );
        }
        if !z.meets.is_empty() {
            let _ = writeln!(
                w,
                "  {:<22} meets on every conduit: {}",
                "",
                z.meets.join(", ")
            );
        }
        if !z.declared_only.is_empty() {
            let _ = writeln!(
                w,
                "  {:<22} declared only (not counted): {}",
                "",
                z.declared_only.join(", ")
            );
        }
        if !z.gaps.is_empty() {
            let _ = writeln!(w, "  {:<22} gaps at SL-T: {}", "", z.gaps.join(", "));
        }
    }
    for c in &a.conduits {
        let _ = writeln!(w, "\nCONDUIT {} ({})", c.id, c.connects.join(" <-> "));
        let _ = writeln!(w, "  {:<22}{header}", "");
        let _ = writeln!(w, "  {:<22}{}", "target", vec_row(c.target));
        let _ = writeln!(w, "  {:<22}{}", "achieved", vec_row(Some(c.achieved)));
        let _ = writeln!(
            w,
            "  {:<22}{}   (prose counted; not achieved)",
            "declared",
            vec_row(Some(c.declared))
        );
        for (fr, gaps) in &c.limited_by {
            let _ = writeln!(w, "  {fr} below target because of: {}", gaps.join(", "));
        }
        let met: Vec<&Item> = c
            .items
            .iter()
            .filter(|i| matches!(i.status, Met | Provided | Declared))
            .collect();
        let _ = writeln!(w, "  Meets ({}):", met.len());
        for i in met {
            let _ = writeln!(
                w,
                "    {:<9} {:<11} {} - {}",
                i.status.label(),
                i.id,
                i.title,
                i.evidence
            );
        }
        let tgt_max = c.target.map_or(4, |t| t.max());
        let gaps: Vec<&Item> = c
            .items
            .iter()
            .filter(|i| i.status == Gap && i.sl <= tgt_max)
            .collect();
        let _ = writeln!(w, "  Gaps at or below the target ({}):", gaps.len());
        for i in gaps {
            let _ = writeln!(
                w,
                "    GAP       {:<11} (SL {}) {} - {}",
                i.id, i.sl, i.title, i.evidence
            );
        }
        let above = c
            .items
            .iter()
            .filter(|i| i.status == Gap && i.sl > tgt_max)
            .count();
        if above > 0 {
            let _ = writeln!(w, "  ({above} more gap(s) only required above the target)");
        }
        let assumed = c.items.iter().filter(|i| i.status == Assumed).count();
        let _ = writeln!(w, "  Assumed, to evidence outside the model: {assumed} requirement(s) (see --format json)");
        if !c.plaintext_interfaces.is_empty() {
            let _ = writeln!(
                w,
                "  Cleartext Modbus interfaces: {}",
                c.plaintext_interfaces.join("; ")
            );
        }
        if !c.threats.is_empty() {
            let _ = writeln!(w, "  Threats and countermeasures:");
            for t in &c.threats {
                let _ = writeln!(w, "    - THREAT: {}", t.threat);
                let _ = writeln!(
                    w,
                    "      COUNTER: {} ({})",
                    t.countermeasure,
                    t.requirements.join(", ")
                );
            }
        }
    }
    s
}

/// Markdown assessment.
pub fn render_markdown(a: &Assessment) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "# IEC 62443-3-3 assessment: {}\n", md(&a.facility));
    let _ = writeln!(
        w,
        "Model `{}`. Requirements: {} SRs/REs; source: {}.\n",
        md(&a.model_file),
        a.table_size,
        md(&a.table_source)
    );
    let _ = writeln!(w, "{}\n", LEGEND.replace('\n', "\n\n"));
    if a.check_errors > 0 {
        let _ = writeln!(
            w,
            "> **Warning:** `zonegate check` reports {} design error(s).\n",
            a.check_errors
        );
    }
    let head: String = Fr::ALL.iter().map(|f| format!(" {f} |")).collect();
    let sep: String = Fr::ALL.iter().map(|_| "---|").collect();
    let _ = writeln!(
        w,
        "## Zones\n\n| Zone | |{head} Result |\n|---|---|{sep}---|"
    );
    for z in &a.zones {
        let t: String = z
            .target
            .map_or(Fr::ALL.iter().map(|_| " - |").collect(), |v| {
                v.0.iter().map(|l| format!(" {l} |")).collect()
            });
        let ac: String = z
            .achieved
            .map_or(Fr::ALL.iter().map(|_| " - |").collect(), |v| {
                v.0.iter().map(|l| format!(" {l} |")).collect()
            });
        let res = if z.conduits.is_empty() {
            "isolated".to_owned()
        } else if z.shortfalls.is_empty() {
            "meets SL-T".to_owned()
        } else {
            format!("short: {}", z.shortfalls.join(", "))
        };
        let _ = writeln!(w, "| {} | SL-T |{t} |", md(&z.id));
        let _ = writeln!(w, "| | SL-A |{ac} {} |", md(&res));
        if let Some(d) = z.declared.filter(|d| Some(*d) != z.achieved) {
            let dc: String = d.0.iter().map(|l| format!(" {l} |")).collect();
            let _ = writeln!(w, "| | declared |{dc} prose counted, not achieved |");
        }
    }
    for c in &a.conduits {
        let _ = writeln!(
            w,
            "\n## Conduit {} ({})\n",
            md(&c.id),
            md(&c.connects.join(" ↔ "))
        );
        let t: String = c
            .target
            .map_or(Fr::ALL.iter().map(|_| " - |").collect(), |v| {
                v.0.iter().map(|l| format!(" {l} |")).collect()
            });
        let ac: String = c.achieved.0.iter().map(|l| format!(" {l} |")).collect();
        let dc: String = c.declared.0.iter().map(|l| format!(" {l} |")).collect();
        let _ = writeln!(
            w,
            "| |{head}\n|---|{sep}\n| target |{t}\n| achieved |{ac}\n| declared (prose, not achieved) |{dc}\n"
        );
        let _ = writeln!(
            w,
            "| Status | Requirement | SL | Title | Evidence |\n|---|---|---|---|---|"
        );
        let tgt_max = c.target.map_or(4, |t| t.max());
        for i in c.items.iter().filter(|i| {
            matches!(i.status, Met | Provided | Declared) || (i.status == Gap && i.sl <= tgt_max)
        }) {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} |",
                i.status.label(),
                i.id,
                i.sl,
                md(&i.title),
                md(&i.evidence)
            );
        }
        if !c.threats.is_empty() {
            let _ = writeln!(w, "\n**Threats and countermeasures**\n");
            for t in &c.threats {
                let _ = writeln!(
                    w,
                    "- {} → {} ({})",
                    md(&t.threat),
                    md(&t.countermeasure),
                    t.requirements.join(", ")
                );
            }
        }
    }
    s
}
