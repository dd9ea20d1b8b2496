//! `show`: filters over records in chain order across rotated files.

use zonegate_audit::show::{for_each, format_line, parse_time, Filter};
use zonegate_audit::{Decision, Kind};

use super::util::*;

fn shown(dir: &std::path::Path, f: &Filter) -> Vec<zonegate_audit::Event> {
    let mut out = Vec::new();
    for_each(&files(dir), f, |e, _| out.push(e.clone())).unwrap();
    out
}

#[test]
fn filters_combine_and_follow_chain_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.rotate_bytes = 3000;
    let h = start(c);
    append_n(&h, 30, true);
    h.shutdown().wait().unwrap();

    let all = shown(dir.path(), &Filter::default());
    assert_eq!(all.len(), 33);
    assert!(
        all.windows(2).all(|w| w[0].seq < w[1].seq),
        "chain order across files"
    );

    let mut f = Filter::default();
    f.kind = Some(Kind::Request);
    f.fc = Some("16".into());
    f.decision = Some(Decision::Deny);
    let hits = shown(dir.path(), &f);
    // request(i): odd i = fc 16, i % 3 == 0 = deny -> i in {3, 9, 15, 21, 27}
    assert_eq!(hits.len(), 5);

    let mut f = Filter::default();
    f.src = Some(zonegate_audit::show::SrcFilter::parse("10.0.0.7").unwrap());
    assert_eq!(shown(dir.path(), &f).len(), 1);

    let mut f = Filter::default();
    f.conduit = Some("nope".into());
    assert!(shown(dir.path(), &f).is_empty());

    let mut f = Filter::default();
    f.since = Some(parse_time("2000-01-01").unwrap());
    f.until = Some(parse_time("2000-01-02").unwrap());
    assert!(shown(dir.path(), &f).is_empty());
    f.until = None;
    assert_eq!(shown(dir.path(), &f).len(), 33);
}

#[test]
fn human_lines_are_aligned_and_informative() {
    let mut e = request(3);
    e.ts = Some("2026-11-22T03:04:05.123456Z".into());
    e.seq = Some(42);
    e.latency_us = Some(52);
    e.exception = Some(1);
    let l = format_line(&e);
    assert!(
        l.starts_with("2026-11-22T03:04:05.123456Z      42 request         C1-OPS-CTRL"),
        "{l}"
    );
    for part in [
        "16 write_multiple_registers",
        "holding 100+2",
        "deny",
        "rule=ews-setpoints",
        "exception=0x01",
        "values=[200,201]",
        "52 us",
    ] {
        assert!(l.contains(part), "{part} missing in {l}");
    }
    let mut s = request(4);
    s.seq = Some(43);
    s.ts.clone_from(&e.ts);
    let l2 = format_line(&s);
    // Same column positions for the decision.
    assert!(l.contains(" deny"));
    assert_eq!(l2.find("allow"), l.find("deny "), "{l}\n{l2}");
}
