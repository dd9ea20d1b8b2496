//! The zone/conduit diagram of the HTML report, as inline SVG.
//!
//! Zones are boxes in rows by Purdue level (highest level at the top). Conduits are orthogonal
//! polylines that never cross a box they do not join, so a conduit that skips a level (the DMZ
//! bypass an assessor looks for) is visibly drawn around the rows in between, not through them:
//! - the gap below each row is a channel of horizontal lanes, one lane per conduit that uses it;
//! - a conduit between adjacent rows leaves the upper box at the bottom, runs along its lane and
//!   enters the lower box at the top; one within a row runs in the channel below that row;
//! - a conduit that skips rows runs along a lane of the channel below its upper box to a
//!   vertical corridor right of every box, down the corridor, and along a lane of the channel
//!   above its lower box;
//! - each box edge spreads its attachment points, so conduits sharing a pair of zones are drawn
//!   apart.
//!
//! Every label sits on its conduit's own lane, so no two labels overlap, and carries an explicit
//! `textLength`, so its extent is known (the tests check both from the SVG); the canvas grows to
//! hold the longest label.

use std::fmt::Write as _;

use crate::model::{ConduitExt, GatewayExt, Site, ZoneExt};
use crate::util::html;

/// Box width.
const BOX_W: f32 = 190.0;
/// Box height.
const BOX_H: f32 = 58.0;
/// Vertical distance between lanes of a channel.
const LANE: f32 = 22.0;
/// Smallest channel height.
const MIN_GAP: f32 = 44.0;
/// Horizontal gap between boxes of a row.
const GAP: f32 = 70.0;
/// Left margin (holds the level labels).
const LEFT: f32 = 60.0;
/// Top margin.
const TOP: f32 = 20.0;
/// Distance between corridor lanes.
const LANE_X: f32 = 18.0;
/// How far right of the bottom attachments the top ones are.
const TOP_SHIFT: f32 = 14.0;
/// Label font size.
const FONT: f32 = 12.0;
/// Rendered width of one label character: `textLength` makes it exact.
const CHAR_W: f32 = 6.8;

/// How a conduit's segment between two zones is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Both zones in one row: through the channel below it.
    Same,
    /// Adjacent rows.
    Adjacent,
    /// Rows in between: around them through a corridor.
    Skip,
}

/// One drawn segment of a conduit (a conduit joining n zones has n - 1).
#[derive(Debug)]
struct Edge {
    conduit: usize,
    /// Upper zone (or the left one within a row), lower zone.
    a: usize,
    b: usize,
    kind: Kind,
    /// Lane in the first channel, lane in the second (Skip only).
    lanes: (usize, usize),
    corridor: usize,
}

/// The width a label takes with [`CHAR_W`] per character.
fn text_len(s: &str) -> f32 {
    s.chars().count() as f32 * CHAR_W
}

/// Draws the diagram.
pub fn svg(site: &Site) -> String {
    let n = site.zones.len();
    // Rows: distinct levels, highest first; zones without a level at the bottom.
    let key = |zi: usize| {
        site.zones[zi]
            .purdue_level
            .map(|p| i32::from(p.high_tenths()))
    };
    let mut levels: Vec<Option<i32>> = (0..n).map(key).collect();
    levels.sort_by(|a, b| b.cmp(a));
    levels.dedup();
    let rows: Vec<Vec<usize>> = levels
        .iter()
        .map(|l| (0..n).filter(|zi| key(*zi) == *l).collect())
        .collect();
    let mut row_of = vec![0usize; n];
    for (ri, row) in rows.iter().enumerate() {
        for &zi in row {
            row_of[zi] = ri;
        }
    }

    // Segments, lanes and corridors.
    let mut edges: Vec<Edge> = Vec::new();
    let mut lanes_used = vec![0usize; rows.len()];
    let mut corridors = 0usize;
    for (ci, c) in site.conduits.iter().enumerate() {
        let zs = site.conduit_zones(c);
        for pair in zs.windows(2) {
            let (mut a, mut b) = (pair[0], pair[1]);
            if row_of[a] > row_of[b] {
                std::mem::swap(&mut a, &mut b);
            }
            let (ra, rb) = (row_of[a], row_of[b]);
            let kind = match rb - ra {
                0 => Kind::Same,
                1 => Kind::Adjacent,
                _ => Kind::Skip,
            };
            let first = lanes_used[ra];
            lanes_used[ra] += 1;
            let mut second = 0;
            let mut corridor = 0;
            if kind == Kind::Skip {
                second = lanes_used[rb - 1];
                lanes_used[rb - 1] += 1;
                corridor = corridors;
                corridors += 1;
            }
            edges.push(Edge {
                conduit: ci,
                a,
                b,
                kind,
                lanes: (first, second),
                corridor,
            });
        }
    }

    // Rows and channels.
    let max_in_row = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let content_w = (max_in_row as f32) * (BOX_W + GAP) - GAP;
    let mut row_y = Vec::with_capacity(rows.len());
    let mut y = TOP;
    for used in &lanes_used {
        row_y.push(y);
        let channel = ((*used as f32) + 1.0) * LANE;
        y += BOX_H + channel.max(MIN_GAP);
    }
    let height = y;
    let mut pos = vec![(0.0f32, 0.0f32); n];
    for (ri, row) in rows.iter().enumerate() {
        let row_w = (row.len() as f32) * (BOX_W + GAP) - GAP;
        let x0 = LEFT + (content_w - row_w) / 2.0;
        for (k, &zi) in row.iter().enumerate() {
            pos[zi] = (x0 + (k as f32) * (BOX_W + GAP), row_y[ri]);
        }
    }
    let center = |zi: usize| pos[zi].0 + BOX_W / 2.0;

    // Attachment points: spread along each box edge, ordered by where the other end lies.
    let mut bottom: Vec<Vec<(f32, usize)>> = vec![Vec::new(); n];
    let mut top: Vec<Vec<(f32, usize)>> = vec![Vec::new(); n];
    for (ei, e) in edges.iter().enumerate() {
        bottom[e.a].push((center(e.b), ei));
        match e.kind {
            Kind::Same => bottom[e.b].push((center(e.a), ei)),
            Kind::Adjacent | Kind::Skip => top[e.b].push((center(e.a), ei)),
        }
    }
    let mut port_a = vec![0.0f32; edges.len()];
    let mut port_b = vec![0.0f32; edges.len()];
    for zi in 0..n {
        for (side, list) in [(0, &mut bottom[zi]), (1, &mut top[zi])] {
            list.sort_by(|x, y| x.0.total_cmp(&y.0));
            let k = list.len() as f32;
            for (m, &(_, ei)) in list.iter().enumerate() {
                // Top attachments sit a little right of the bottom ones, so that a conduit
                // entering a box never runs on top of one leaving the box above it.
                let shift = if side == 1 { TOP_SHIFT } else { 0.0 };
                let x = pos[zi].0 + (BOX_W - TOP_SHIFT) * (m as f32 + 1.0) / (k + 1.0) + shift;
                if side == 0 && edges[ei].a == zi {
                    port_a[ei] = x;
                } else {
                    port_b[ei] = x;
                }
            }
        }
    }
    let corridor_x0 = LEFT + content_w + 24.0;
    let lane_y = |row: usize, lane: usize| row_y[row] + BOX_H + (lane as f32 + 1.0) * LANE;

    // Paths and labels.
    struct Drawn {
        points: Vec<(f32, f32)>,
        label: String,
        label_x: f32,
        label_y: f32,
        color: &'static str,
        dash: bool,
    }
    let mut drawn: Vec<(usize, Drawn)> = Vec::new();
    for (ei, e) in edges.iter().enumerate() {
        let c = &site.conduits[e.conduit];
        let (ra, rb) = (row_of[e.a], row_of[e.b]);
        let (xa, xb) = (port_a[ei], port_b[ei]);
        let a_bottom = row_y[ra] + BOX_H;
        let l1 = lane_y(ra, e.lanes.0);
        let points = match e.kind {
            Kind::Same => vec![(xa, a_bottom), (xa, l1), (xb, l1), (xb, a_bottom)],
            Kind::Adjacent => vec![(xa, a_bottom), (xa, l1), (xb, l1), (xb, row_y[rb])],
            Kind::Skip => {
                let cx = corridor_x0 + (e.corridor as f32) * LANE_X;
                let l2 = lane_y(rb - 1, e.lanes.1);
                vec![
                    (xa, a_bottom),
                    (xa, l1),
                    (cx, l1),
                    (cx, l2),
                    (xb, l2),
                    (xb, row_y[rb]),
                ]
            }
        };
        let (color, suffix) = match &c.gateway {
            Some(g) if g.enforced() => ("#1a7f37", " [zonegate]"),
            Some(g) if g.runnable_now().is_ok() => ("#a15c00", " [zonegate monitor]"),
            Some(_) => ("#b00020", " [gateway not runnable]"),
            None => ("#57606a", ""),
        };
        let label = format!(
            "{} ({}){suffix}",
            c.id,
            c.sl().map_or("SL ?".to_owned(), |l| l.display())
        );
        // On the first horizontal run, from its left end.
        let label_x = points[1].0.min(points[2].0) + 4.0;
        drawn.push((
            ei,
            Drawn {
                points,
                label,
                label_x,
                label_y: l1 - 5.0,
                color,
                dash: c.gateway.is_none() || !c.enforced(),
            },
        ));
    }
    let corridor_right = corridor_x0 + (corridors as f32) * LANE_X;
    let labels_right = drawn
        .iter()
        .map(|(_, d)| d.label_x + text_len(&d.label))
        .fold(0.0f32, f32::max);
    let width = (LEFT + content_w + 20.0)
        .max(corridor_right + 10.0)
        .max(labels_right + 10.0);

    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"zone and conduit diagram\" font-family=\"sans-serif\" font-size=\"{FONT:.0}\">"
    );
    for (ri, lvl) in levels.iter().enumerate() {
        let label = lvl.map_or("L?".to_owned(), |l| {
            if l % 10 == 0 {
                format!("L{}", l / 10)
            } else {
                format!("L{}.{}", l / 10, l % 10)
            }
        });
        let _ = writeln!(
            s,
            "<text data-label=\"level\" x=\"8\" y=\"{:.1}\" textLength=\"{:.1}\" lengthAdjust=\"spacingAndGlyphs\" fill=\"#57606a\" font-weight=\"bold\">{label}</text>",
            row_y[ri] + BOX_H / 2.0 + 4.0,
            text_len(&label)
        );
    }
    // Conduits under the boxes (their ends touch the box edges), labels last.
    for (ei, d) in &drawn {
        let e = &edges[*ei];
        let c = &site.conduits[e.conduit];
        let pts: Vec<String> = d
            .points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            s,
            "<polyline data-conduit=\"{}\" data-from=\"{}\" data-to=\"{}\" points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2.5\"{}><title>{}</title></polyline>",
            html(&c.id),
            html(&site.zones[e.a].id),
            html(&site.zones[e.b].id),
            pts.join(" "),
            d.color,
            if d.dash { " stroke-dasharray=\"6 4\"" } else { "" },
            html(&c.id)
        );
    }
    for (zi, z) in site.zones.iter().enumerate() {
        let (x, y) = pos[zi];
        let (fill, stroke) = if z.is_sis() {
            ("#fde8e8", "#b00020")
        } else if z.purdue_level.is_some_and(|p| p.is_dmz()) {
            ("#fff4d6", "#a15c00")
        } else if z.purdue_level.is_some_and(|p| p.low() >= 4.0) {
            ("#e8f0fe", "#1f4e79")
        } else {
            ("#e9f5ec", "#1a7f37")
        };
        let sl = z.sl_t().map_or("?".to_owned(), |t| {
            if t.is_uniform() {
                t.0[0].to_string()
            } else {
                format!("up to {} (per FR)", t.max())
            }
        });
        let _ = writeln!(
            s,
            "<g><rect data-zone=\"{}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{BOX_W:.1}\" height=\"{BOX_H:.1}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#57606a\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#57606a\">SL-T {}</text></g>",
            html(&z.id),
            x + BOX_W / 2.0,
            y + 18.0,
            html(&truncate(&z.id, 26)),
            x + BOX_W / 2.0,
            y + 34.0,
            html(&truncate(z.name.as_deref().unwrap_or(""), 28)),
            x + BOX_W / 2.0,
            y + 50.0,
            html(&sl)
        );
    }
    for (_, d) in &drawn {
        let _ = writeln!(
            s,
            "<text data-label=\"conduit\" x=\"{:.1}\" y=\"{:.1}\" textLength=\"{:.1}\" lengthAdjust=\"spacingAndGlyphs\" fill=\"{}\" stroke=\"#fafbfc\" stroke-width=\"4\" paint-order=\"stroke\">{}</text>",
            d.label_x,
            d.label_y,
            text_len(&d.label),
            d.color,
            html(&d.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
