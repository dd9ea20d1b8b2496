//! Firewall output: only declared flows, default drop, logged drops; nftables output accepted by
//! `nft -c -f` (run when nft is installed and allowed to check), iptables-restore structure
//! (and `iptables-restore --test` when available).

use std::process::Command;

use zonegate_toolkit::compile::{self, Target};

use super::util::{clean_examples, flawed_examples, load, site, BASE};

/// Runs `tool args... FILE` on the text; None when the tool is missing or not permitted here.
pub(crate) fn external_check(
    tool: &str,
    args: &[&str],
    text: &str,
    name: &str,
) -> Option<(bool, String)> {
    let dir = std::env::temp_dir().join(format!("zonegate-compile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rules");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(tool).args(args).arg(&file).output();
    // Removed before anything returns (a missing tool left the directory behind).
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.ok()?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success()
        && (err.contains("Operation not permitted") || err.contains("Permission denied"))
    {
        eprintln!("{tool}: not permitted here, structural checks only: {err}");
        return None;
    }
    Some((out.status.success(), err))
}

#[test]
fn base_model_flows() {
    let s = site(BASE);
    let p = compile::plan(&s);
    // Two gateway rules (HMI, EWS) and two HTTPS flows.
    let gw: Vec<_> = p.flows.iter().filter(|f| f.to_gateway).collect();
    assert_eq!(gw.len(), 2);
    assert!(gw.iter().all(|f| f.port == 5020 && f.proto == "tcp"));
    assert_eq!(gw[0].src[0].to_string(), "10.2.0.10");
    let fwd: Vec<_> = p.flows.iter().filter(|f| !f.to_gateway).collect();
    assert_eq!(fwd.len(), 2);
    // "Z4 -> DMZ" is one way only.
    assert_eq!(fwd[0].src[0].to_string(), "10.4.0.0/16");
    assert_eq!(fwd[0].dst[0].to_string(), "10.35.0.0/24");
    // No direct Modbus to the PLC: port 502 never appears as an allowed flow.
    assert!(p.flows.iter().all(|f| f.port != 502));
}

#[test]
fn nftables_structure_and_nft_check() {
    for p in clean_examples().into_iter().chain(flawed_examples()) {
        let s = load(&p);
        let text = compile::render(&s, Target::Nftables);
        assert!(text.contains("table inet zonegate {"));
        assert_eq!(text.matches("policy drop;").count(), 2, "{text}");
        assert_eq!(
            text.matches("log prefix \"zonegate-drop \" counter drop")
                .count(),
            2
        );
        if !p.to_string_lossy().contains("flawed") {
            // Modbus goes through the gateways: no direct flow to port 502 is opened.
            assert!(
                !text.contains(" 502 ct state"),
                "direct Modbus opened:\n{text}"
            );
        }
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        match external_check("nft", &["-c", "-f"], &text, &name) {
            Some((ok, err)) => assert!(ok, "nft -c -f rejected {}:\n{err}\n{text}", p.display()),
            None => eprintln!("nft not available: structural checks only"),
        }
    }
}

#[test]
fn iptables_structure() {
    for p in clean_examples().into_iter().chain(flawed_examples()) {
        let s = load(&p);
        let text = compile::render(&s, Target::Iptables);
        assert!(text.contains("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]"));
        assert!(text.trim_end().ends_with("COMMIT"));
        assert!(text.contains("-j LOG --log-prefix \"zonegate-drop \""));
        assert!(
            text.contains("-A INPUT -j ZONEGATE-DROP")
                && text.contains("-A FORWARD -j ZONEGATE-DROP")
        );
        if !p.to_string_lossy().contains("flawed") {
            for line in text
                .lines()
                .filter(|l| l.starts_with("-A") && l.contains("ACCEPT"))
            {
                assert!(!line.contains("--dport 502 "), "{line}");
            }
        }
        let name = format!("ipt-{}", p.file_stem().unwrap().to_string_lossy());
        if let Some((ok, err)) = external_check("iptables-restore", &["--test"], &text, &name) {
            assert!(
                ok,
                "iptables-restore --test rejected {}:\n{err}\n{text}",
                p.display()
            );
        }
    }
}

#[test]
fn cleanroom_gateway_sources_are_the_rule_sources() {
    let s = load(&clean_examples()[0]);
    let text = compile::render(&s, Target::Nftables);
    assert!(text.contains("ip saddr 10.20.10.41 ip daddr 127.0.0.1 tcp dport 5020"));
    assert!(text.contains("comment \"C1-SUP-CTRL historian-read\""));
    // Serial conduit: noted, nothing opened.
    assert!(text.contains("# note: C0-CTRL-FIELD"));
}

#[test]
fn ipv6_sources_go_to_ip6_rules() {
    let y = BASE
        .replacen("from: [HMI]", "from: [\"fd00::/64\"]", 1)
        .replacen(
            "networks: [10.2.0.0/24]",
            "networks: [10.2.0.0/24, \"fd00::/64\"]",
            1,
        );
    let s = site(&y);
    let nft = compile::render(&s, Target::Nftables);
    // A v6 source cannot reach a v4 listen address: noted, not emitted.
    assert!(nft.contains("another IP family"), "{nft}");
    let y = y.replacen("listen: 127.0.0.1:5020", "listen: \"[::]:5020\"", 1);
    let s = site(&y);
    let nft = compile::render(&s, Target::Nftables);
    assert!(nft.contains("ip6 saddr fd00::/64 tcp dport 5020"), "{nft}");
    let ipt = compile::render(&s, Target::Iptables);
    assert!(ipt.contains("# ip6tables: -A INPUT -s fd00::/64"), "{ipt}");
    if let Some((ok, err)) = external_check("nft", &["-c", "-f"], &nft, "v6") {
        assert!(ok, "{err}\n{nft}");
    }
}
