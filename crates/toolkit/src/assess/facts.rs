//! What the model shows about one conduit, read once before any verdict: is a runnable zonegate
//! gateway in the path and enforcing, is Modbus secured by TLS with client certificates, are
//! rules mapped to roles, what the prose controls declare (firewall, default deny, crypto), which
//! Purdue levels it joins, whether it is wireless or serial.
//!
//! Separate from [`super::evaluate`] so a verdict reads as a rule over named facts, and a
//! question "why does zonegate think this conduit is wireless?" has one place to look.

use crate::check::Finding;
use crate::model::{ConduitExt, GatewayExt, Site, SENSITIVE_FCS};
use crate::threats::Transport;
use zonegate_policy::Conduit;

/// What the model shows about one conduit: the inputs of every verdict.
pub(super) struct Facts<'a> {
    pub(super) site: &'a Site,
    pub(super) c: &'a Conduit,
    pub(super) gw: bool,
    pub(super) enforce: bool,
    pub(super) modbus: bool,
    pub(super) tls: bool,
    pub(super) client_auth: bool,
    pub(super) roles: bool,
    pub(super) crypto_declared: bool,
    pub(super) fw_declared: bool,
    pub(super) default_deny_declared: bool,
    pub(super) untrusted: bool,
    pub(super) dmz: bool,
    pub(super) purdue_ok: bool,
    pub(super) unrated: Vec<String>,
    pub(super) sensitive: Vec<(String, bool)>,
    pub(super) wireless: bool,
    pub(super) writes: bool,
    pub(super) serial: bool,
}

/// Reads the [`Facts`] of conduit `c`; `findings` are the design checks of the whole site.
pub(super) fn facts<'a>(site: &'a Site, c: &'a Conduit, findings: &[Finding]) -> Facts<'a> {
    // Only a gateway this build's `zonegate run` can start is zonegate in the path.
    let gw = c.gateway.as_ref().is_some_and(|g| g.runnable_now().is_ok());
    let enforce = c.enforced();
    let rules = site.rules(c);
    let prose = |s: &str| {
        let s = s.to_ascii_lowercase();
        s.contains("tls")
            || s.contains("ipsec")
            || s.contains("encrypt")
            || s.contains("kerberos")
            || s.contains("ssh")
            || s.contains("mbaps")
            || s.contains("aes")
    };
    let crypto_declared = !c.protocols_allowed.is_empty()
        && c.protocols_allowed
            .iter()
            .all(|p| prose(&p.protocol) || p.security_mode.as_deref().is_some_and(prose));
    let controls = c.controls.join(" ").to_ascii_lowercase();
    let zones = site.conduit_zones(c);
    let all_text = format!(
        "{} {} {}",
        controls,
        c.name.clone().unwrap_or_default(),
        c.protocols_allowed
            .iter()
            .map(|p| format!(
                "{} {}",
                p.protocol,
                p.security_mode.clone().unwrap_or_default()
            ))
            .collect::<Vec<_>>()
            .join(" ")
    )
    .to_ascii_lowercase();
    Facts {
        site,
        c,
        gw,
        enforce,
        modbus: c.carries_modbus(),
        tls: c.modbus_is_secure(),
        client_auth: c.has_client_auth(),
        roles: c
            .rules
            .iter()
            .any(|r| r.roles.as_ref().is_some_and(|r| !r.is_empty())),
        crypto_declared,
        fw_declared: controls.contains("firewall")
            || controls.contains("deny")
            || controls.contains("diode"),
        default_deny_declared: controls.contains("default deny")
            || controls.contains("deny by default")
            || controls.contains("read-only")
            || controls.contains("diode"),
        untrusted: zones
            .iter()
            .any(|z| site.zones[*z].purdue_level.is_some_and(|p| p.low() >= 4.0)),
        dmz: zones
            .iter()
            .any(|z| site.zones[*z].purdue_level.is_some_and(|p| p.is_dmz())),
        purdue_ok: !findings.iter().any(|f| f.id == "ZG-C009"),
        unrated: c
            .rules
            .iter()
            .filter(|r| r.rate.is_none())
            .map(|r| r.id.clone())
            .collect(),
        sensitive: rules
            .iter()
            .filter(|r| r.functions().iter().any(|f| SENSITIVE_FCS.contains(f)))
            .map(|r| (r.id.clone(), r.is_justified()))
            .collect(),
        wireless: [
            "radio", "wireless", "wi-fi", "wifi", "wlan", "cellular", "lte",
        ]
        .iter()
        .any(|w| all_text.contains(w)),
        writes: rules.iter().any(|r| r.allows_write()),
        serial: Transport::of(c) == Transport::Serial,
    }
}
