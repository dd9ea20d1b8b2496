//! The HTML report's zone/conduit diagram, checked from the SVG it produces: for every example
//! model no conduit crosses a box it does not join, no two labels overlap and every label lies
//! inside the canvas; plus a headless-Chromium screenshot of each report.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use zonegate_toolkit::report;

use super::util::{clean_examples, flawed_examples, load};

/// Font size of the labels (the diagram's `font-size`).
const FONT: f32 = 12.0;

#[derive(Debug, Clone)]
struct Rect {
    name: String,
    x0: f32,
    y0: f32,
    x1: f32,
    y1: f32,
}

#[derive(Debug)]
struct Edge {
    conduit: String,
    from: String,
    to: String,
    points: Vec<(f32, f32)>,
}

#[derive(Debug)]
struct Diagram {
    width: f32,
    height: f32,
    boxes: Vec<Rect>,
    edges: Vec<Edge>,
    labels: Vec<Rect>,
}

/// The value of `name="..."` in one tag.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    let end = tag[at..].find('"')? + at;
    Some(&tag[at..end])
}

fn num(tag: &str, name: &str) -> f32 {
    attr(tag, name)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        .parse()
        .unwrap_or_else(|e| panic!("{name} in {tag}: {e}"))
}

/// Every opening tag `<name ...>` of the SVG, with the text up to the next `<` (element text).
fn tags<'a>(svg: &'a str, name: &str) -> Vec<(&'a str, &'a str)> {
    let open = format!("<{name} ");
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find(&open) {
        let t = &rest[i..];
        let end = t.find('>').expect("unterminated tag");
        let text_end = t[end..].find('<').map_or(t.len(), |k| k + end);
        out.push((&t[..end], &t[end + 1..text_end]));
        rest = &t[end..];
    }
    out
}

fn parse(svg: &str) -> Diagram {
    let (root, _) = tags(svg, "svg")[0];
    let boxes = tags(svg, "rect")
        .into_iter()
        .filter_map(|(t, _)| {
            let name = attr(t, "data-zone")?.to_owned();
            let (x, y) = (num(t, "x"), num(t, "y"));
            Some(Rect {
                name,
                x0: x,
                y0: y,
                x1: x + num(t, "width"),
                y1: y + num(t, "height"),
            })
        })
        .collect();
    let edges = tags(svg, "polyline")
        .into_iter()
        .map(|(t, _)| Edge {
            conduit: attr(t, "data-conduit").unwrap().to_owned(),
            from: attr(t, "data-from").unwrap().to_owned(),
            to: attr(t, "data-to").unwrap().to_owned(),
            points: attr(t, "points")
                .unwrap()
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect(),
        })
        .collect();
    let labels = tags(svg, "text")
        .into_iter()
        .filter(|(t, _)| attr(t, "data-label").is_some())
        .map(|(t, text)| {
            assert_eq!(attr(t, "text-anchor"), None, "labels start at x: {t}");
            let (x, y) = (num(t, "x"), num(t, "y"));
            // textLength fixes the rendered width; the glyphs span the font size above the
            // baseline and a little below it.
            Rect {
                name: text.to_owned(),
                x0: x,
                y0: y - FONT,
                x1: x + num(t, "textLength"),
                y1: y + 3.0,
            }
        })
        .collect();
    Diagram {
        width: num(root, "width"),
        height: num(root, "height"),
        boxes,
        edges,
        labels,
    }
}

/// True when the segment passes through the inside of the rectangle (touching its edge is not
/// crossing: that is where a conduit joins its own zones).
fn crosses(a: (f32, f32), b: (f32, f32), r: &Rect) -> bool {
    let (x0, y0, x1, y1) = (r.x0 + 0.5, r.y0 + 0.5, r.x1 - 0.5, r.y1 - 0.5);
    // Liang-Barsky clipping of the segment to the shrunk rectangle.
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let mut t0 = 0.0f32;
    let mut t1 = 1.0f32;
    for (p, q) in [
        (-dx, a.0 - x0),
        (dx, x1 - a.0),
        (-dy, a.1 - y0),
        (dy, y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return false;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    t0 < t1
}

type Seg = ((f32, f32), (f32, f32));

/// True when two axis-parallel segments lie on one line and share more than a point.
fn collinear_overlap(a: Seg, b: Seg) -> bool {
    let span = |p: f32, q: f32| (p.min(q), p.max(q));
    let shared = |(a0, a1): (f32, f32), (b0, b1): (f32, f32)| a0.max(b0) + 1.0 < a1.min(b1);
    let vertical = |s: Seg| (s.0 .0 - s.1 .0).abs() < 0.1;
    let horizontal = |s: Seg| (s.0 .1 - s.1 .1).abs() < 0.1;
    if vertical(a) && vertical(b) && (a.0 .0 - b.0 .0).abs() < 1.0 {
        return shared(span(a.0 .1, a.1 .1), span(b.0 .1, b.1 .1));
    }
    if horizontal(a) && horizontal(b) && (a.0 .1 - b.0 .1).abs() < 1.0 {
        return shared(span(a.0 .0, a.1 .0), span(b.0 .0, b.1 .0));
    }
    false
}

fn overlap(a: &Rect, b: &Rect) -> bool {
    a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1
}

fn all_examples() -> Vec<PathBuf> {
    let mut v = clean_examples();
    v.extend(flawed_examples());
    v
}

fn diagram_of(path: &Path) -> Diagram {
    let svg = report::svg(&load(path));
    parse(&svg)
}

#[test]
fn report_diagram_draws_no_conduit_through_a_box_it_does_not_join() {
    for path in all_examples() {
        let d = diagram_of(&path);
        assert!(!d.boxes.is_empty(), "{}: no zone boxes", path.display());
        assert!(!d.edges.is_empty(), "{}: no conduits", path.display());
        for e in &d.edges {
            for seg in e.points.windows(2) {
                for b in &d.boxes {
                    if b.name == e.from || b.name == e.to {
                        continue;
                    }
                    assert!(
                        !crosses(seg[0], seg[1], b),
                        "{}: conduit {} ({} - {}) segment {:?} crosses zone {}",
                        path.display(),
                        e.conduit,
                        e.from,
                        e.to,
                        seg,
                        b.name
                    );
                }
            }
            // Its ends are on the boxes it joins.
            let on = |p: (f32, f32), name: &str| {
                d.boxes.iter().any(|b| {
                    b.name == name
                        && (b.x0..=b.x1).contains(&p.0)
                        && ((p.1 - b.y0).abs() < 0.6 || (p.1 - b.y1).abs() < 0.6)
                })
            };
            let (first, last) = (e.points[0], e.points[e.points.len() - 1]);
            assert!(
                on(first, &e.from) && on(last, &e.to),
                "{}: conduit {} does not end on {} and {}: {:?}",
                path.display(),
                e.conduit,
                e.from,
                e.to,
                e.points
            );
        }
    }
}

#[test]
fn report_diagram_dmz_bypass_drawn_through_the_dmz() {
    // The bug: C6-ENT-VENDOR (enterprise straight to control) was drawn as a straight line
    // through the DMZ box, hiding the very bypass the report lists.
    let d = diagram_of(&super::util::examples().join("flawed/water-treatment.yaml"));
    let bypass: Vec<&Edge> = d
        .edges
        .iter()
        .filter(|e| e.conduit == "C6-ENT-VENDOR")
        .collect();
    assert!(!bypass.is_empty(), "no C6-ENT-VENDOR in {d:?}");
    let dmz: Vec<&Rect> = d.boxes.iter().filter(|b| b.name.contains("DMZ")).collect();
    assert!(!dmz.is_empty(), "no DMZ zone box");
    for e in bypass {
        for seg in e.points.windows(2) {
            for b in &dmz {
                assert!(
                    !crosses(seg[0], seg[1], b),
                    "{} drawn through {}",
                    e.conduit,
                    b.name
                );
            }
        }
    }
}

#[test]
fn report_diagram_labels_overlap_or_are_cut_at_the_edge() {
    // The bugs: conduits sharing a path overlapped with their labels (C6/C4 in the flawed water
    // treatment, the two C2 of the clean one, C1/C1B in the flawed cleanroom) and a label was
    // cut at the right edge (`[zonega` in cleanroom-hvac).
    for path in all_examples() {
        let d = diagram_of(&path);
        assert!(!d.labels.is_empty());
        for (i, a) in d.labels.iter().enumerate() {
            assert!(
                a.x0 >= 0.0 && a.y0 >= 0.0 && a.x1 <= d.width && a.y1 <= d.height,
                "{}: label {:?} leaves the {}x{} canvas",
                path.display(),
                a,
                d.width,
                d.height
            );
            for b in &d.labels[i + 1..] {
                assert!(
                    !overlap(a, b),
                    "{}: labels overlap: {a:?} and {b:?}",
                    path.display()
                );
            }
            for b in &d.boxes {
                assert!(
                    !overlap(a, b),
                    "{}: label {a:?} covers zone {}",
                    path.display(),
                    b.name
                );
            }
        }
        // Conduits (sharing a pair of zones or not) never run on top of each other.
        for (i, a) in d.edges.iter().enumerate() {
            for b in &d.edges[i + 1..] {
                for sa in a.points.windows(2) {
                    for sb in b.points.windows(2) {
                        assert!(
                            !collinear_overlap((sa[0], sa[1]), (sb[0], sb[1])),
                            "{}: {} {:?} and {} {:?} drawn on top of each other",
                            path.display(),
                            a.conduit,
                            sa,
                            b.conduit,
                            sb
                        );
                    }
                }
            }
        }
    }
}

/// Chromium, if installed.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

#[test]
fn report_html_screenshot_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        eprintln!("SKIPPED report_html_screenshot_in_headless_chromium: chromium is not installed (apt-get install -y chromium)");
        return;
    };
    let out = std::env::var_os("ZONEGATE_SCREENSHOT_DIR").map_or_else(
        || std::env::temp_dir().join(format!("zonegate-report-shots-{}", std::process::id())),
        PathBuf::from,
    );
    std::fs::create_dir_all(&out).unwrap();
    for path in all_examples() {
        let site = load(&path);
        let html = report::render_html(&report::build(&site, Vec::new()), &site);
        let flawed = path.parent().is_some_and(|p| p.ends_with("flawed"));
        let stem = format!(
            "{}{}",
            if flawed { "flawed-" } else { "" },
            path.file_stem().unwrap().to_string_lossy()
        );
        let page = out.join(format!("{stem}.html"));
        let png = out.join(format!("{stem}.png"));
        std::fs::write(&page, &html).unwrap();
        let _ = std::fs::remove_file(&png);
        let profile = out.join(format!("profile-{stem}"));
        let mut child = Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--screenshot={}", png.display()))
            .arg("--window-size=1400,1000")
            .arg(format!("file://{}", page.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Bounded: a hung browser fails the test instead of hanging it.
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium took more than 60 s on {}", page.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(status.success(), "chromium failed on {}", page.display());
        let bytes = std::fs::read(&png).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
            "{} is not a real screenshot ({} bytes)",
            png.display(),
            bytes.len()
        );
        let _ = std::fs::remove_dir_all(&profile);
    }
    // The screenshots stay only where ZONEGATE_SCREENSHOT_DIR asked for them.
    if std::env::var_os("ZONEGATE_SCREENSHOT_DIR").is_none() {
        let _ = std::fs::remove_dir_all(&out);
    }
}
