//! `zonegate assess`: an assessment of the model against IEC 62443-3-3.
//!
//! For every conduit, each system requirement (SR) and enhancement (RE) of the embedded table
//! ([`crate::requirements`]) gets a [`Status`] with its evidence:
//! - **Met**: proven by the configuration zonegate enforces (e.g. `mode: enforce` -> SR 5.2 RE1);
//! - **Provided**: a built-in property of zonegate when its gateway is in the path (strict parser,
//!   fail-closed forwarding); assumed correct, verify with `zonegate probe`;
//! - **Declared**: stated in the model's prose (controls, security_mode) but not enforced here;
//! - **Assumed**: outside what a zone/conduit model can show (user accounts, backups, power...):
//!   the asset owner must evidence it;
//! - **NotApplicable**; **Gap**: in scope and not met.
//!
//! The achieved level per FR (SL-A) is the highest level L such that every requirement of that
//! FR at or below L is Met, Provided, Assumed or N/A: prose (Declared) never raises SL-A above
//! what enforcement shows. The level the prose would reach is shown beside it as `declared`.
//! Assumed items still count, so SL-A is an upper bound that the listed assumptions must
//! confirm; the report says so. Zones take the lowest SL-A of the conduits that connect them.
//! Gaps at or below the target become threats and countermeasures, which follow the conduit's
//! transport: a serial (RTU, RS-485, radio) conduit gets bus threats, not TCP session ones.

use std::fmt::Write as _;

use serde::Serialize;

use crate::check::{self, Finding};
use zonegate_policy::Fr;

use crate::model::{fc_name, ConduitExt, GatewayExt, Site, SlVector, ZoneExt, SENSITIVE_FCS};
use crate::requirements::{self, Requirement};
use crate::threats::{threats_for, Transport};
use crate::util::md;
use zonegate_policy::{AuditOnFailure, Conduit};

/// How a requirement stands for one conduit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Proven by the configuration zonegate enforces.
    Met,
    /// A built-in property of zonegate in the path (assumed correct implementation).
    Provided,
    /// Stated in the model's prose, not verified.
    Declared,
    /// Outside the model: the asset owner must evidence it.
    Assumed,
    /// Does not apply to this conduit.
    NotApplicable,
    /// In scope and not met.
    Gap,
}

impl Status {
    /// Upper-case label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Met => "MET",
            Self::Provided => "PROVIDED",
            Self::Declared => "DECLARED",
            Self::Assumed => "ASSUMED",
            Self::NotApplicable => "N/A",
            Self::Gap => "GAP",
        }
    }
}

/// One requirement's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// "SR 5.2 RE1".
    pub id: String,
    /// FR abbreviation.
    pub fr: &'static str,
    /// Lowest SL at which it applies.
    pub sl: u8,
    /// Title.
    pub title: String,
    /// Verdict.
    pub status: Status,
    /// Why.
    pub evidence: String,
}

/// A threat that a gap leaves open, with what answers it.
#[derive(Debug, Clone, Serialize)]
pub struct Threat {
    /// The threat.
    pub threat: String,
    /// The countermeasure.
    pub countermeasure: String,
    /// Requirements whose gaps raise it.
    pub requirements: Vec<String>,
}

/// Assessment of one conduit.
#[derive(Debug, Clone, Serialize)]
pub struct ConduitAssessment {
    /// Conduit id.
    pub id: String,
    /// Zones it connects.
    pub connects: Vec<String>,
    /// Target per FR (the conduit's SL, else the highest SL-T of its zones); None = unknown.
    pub target: Option<SlVector>,
    /// Achieved per FR, by enforcement (Declared items do not count).
    pub achieved: SlVector,
    /// What the model's prose would reach per FR if every Declared item held (never used as
    /// SL-A).
    pub declared: SlVector,
    /// For each FR below target: the gaps and prose-only (Declared) items that hold it down.
    pub limited_by: Vec<(&'static str, Vec<String>)>,
    /// Every requirement with its verdict.
    pub items: Vec<Item>,
    /// Threats and countermeasures from the gaps at or below the target.
    pub threats: Vec<Threat>,
    /// Cleartext Modbus interfaces of the conduit.
    pub plaintext_interfaces: Vec<String>,
}

/// Assessment of one zone.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneAssessment {
    /// Zone id.
    pub id: String,
    /// SL-T.
    pub target: Option<SlVector>,
    /// Lowest SL-A over the zone's conduits (None for a zone without conduits).
    pub achieved: Option<SlVector>,
    /// Lowest declared level over the zone's conduits (prose counted; never the SL-A).
    pub declared: Option<SlVector>,
    /// Conduits that connect it.
    pub conduits: Vec<String>,
    /// FRs where SL-A < SL-T.
    pub shortfalls: Vec<String>,
    /// Requirements met (MET or PROVIDED) on every conduit of the zone.
    pub meets: Vec<String>,
    /// Requirements only declared in prose on some conduit of the zone (and otherwise met).
    pub declared_only: Vec<String>,
    /// Requirements required at the zone's SL-T that are a GAP on some conduit of the zone.
    pub gaps: Vec<String>,
}

/// The whole assessment.
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    /// `facility`.
    pub facility: String,
    /// The model file.
    pub model_file: String,
    /// Where the requirements table comes from and its status.
    pub table_source: String,
    /// How many requirements the table holds.
    pub table_size: usize,
    /// Per conduit.
    pub conduits: Vec<ConduitAssessment>,
    /// Per zone.
    pub zones: Vec<ZoneAssessment>,
    /// Design-check errors (they weaken every conclusion).
    pub check_errors: usize,
}

/// The source note printed with every assessment.
pub const TABLE_SOURCE: &str = "IEC 62443-3-3:2013 SR/RE to SL mapping from a secondary source (Nemo10982/IEC62443DSL SecurityRequirements.java, transcribing Annex B); NOT confirmed against the purchased standard";

struct Facts<'a> {
    site: &'a Site,
    c: &'a Conduit,
    gw: bool,
    enforce: bool,
    modbus: bool,
    tls: bool,
    client_auth: bool,
    roles: bool,
    crypto_declared: bool,
    fw_declared: bool,
    default_deny_declared: bool,
    untrusted: bool,
    dmz: bool,
    purdue_ok: bool,
    unrated: Vec<String>,
    sensitive: Vec<(String, bool)>,
    wireless: bool,
    writes: bool,
    serial: bool,
}

fn facts<'a>(site: &'a Site, c: &'a Conduit, findings: &[Finding]) -> Facts<'a> {
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

use Status::{Assumed, Declared, Gap, Met, NotApplicable, Provided};

fn assumed(what: &str) -> (Status, String) {
    (Assumed, format!("outside the model: {what}"))
}

/// The verdict for one requirement on one conduit.
fn evaluate(f: &Facts<'_>, req: &Requirement) -> (Status, String) {
    let audit = f.site.audit.as_ref();
    let gw_audit = f.gw && audit.is_some();
    let id = req.id.as_str();
    let comm_identity = || -> (Status, String) {
        if f.modbus {
            if f.client_auth && f.gw {
                (Met, "Modbus/TCP Security with client certificates".into())
            } else if f.client_auth {
                (
                    Declared,
                    "Modbus/TCP Security with mutual authentication declared".into(),
                )
            } else if f.tls {
                (
                    Gap,
                    "TLS without client certificates: the Modbus client is not authenticated"
                        .into(),
                )
            } else {
                (
                    Gap,
                    "cleartext Modbus carries no identity; source addresses are not authentication"
                        .into(),
                )
            }
        } else if f.crypto_declared {
            (
                Declared,
                "the protocols declare authenticated, encrypted channels".into(),
            )
        } else {
            assumed("device authentication of the conduit's protocols")
        }
    };
    let session = || -> (Status, String) {
        if f.modbus {
            if f.tls && f.gw {
                (Provided, "TLS sessions (Modbus/TCP Security)".into())
            } else if f.tls {
                (
                    Declared,
                    "TLS sessions (Modbus/TCP Security) declared".into(),
                )
            } else if f.serial {
                (
                    Gap,
                    "Modbus RTU has no sessions: any master on the bus can inject frames".into(),
                )
            } else {
                (
                    Gap,
                    "cleartext Modbus TCP sessions can be hijacked or injected".into(),
                )
            }
        } else if f.crypto_declared {
            (Declared, "encrypted sessions declared".into())
        } else {
            assumed("session protection of the conduit's protocols")
        }
    };
    let crypto = |what: &str| -> (Status, String) {
        if f.modbus {
            if f.tls && f.gw {
                (
                    Met,
                    format!("TLS protects {what} on every Modbus interface"),
                )
            } else if f.tls {
                (
                    Declared,
                    format!("the protocols declare TLS (Modbus/TCP Security) for {what}"),
                )
            } else {
                let ifs: Vec<String> = f.c.plaintext_modbus().into_iter().map(|(s, _)| s).collect();
                (Gap, format!("cleartext Modbus: {}", ifs.join("; ")))
            }
        } else if f.crypto_declared {
            (
                Declared,
                format!("the protocols declare cryptographic protection of {what}"),
            )
        } else {
            (
                Gap,
                format!("no cryptographic protection of {what} declared"),
            )
        }
    };
    match id {
        "SR 1.2" | "SR 1.2 RE1" => comm_identity(),
        "SR 1.8" | "SR 1.9" => {
            if f.modbus {
                if f.tls {
                    (
                        Declared,
                        "certificates configured for Modbus/TCP Security".into(),
                    )
                } else {
                    (Gap, "no certificates: cleartext Modbus".into())
                }
            } else if f.crypto_declared {
                (Declared, "certificate-based protocols declared".into())
            } else {
                assumed("PKI of the conduit's protocols")
            }
        }
        "SR 1.6" | "SR 1.6 RE1" | "SR 2.2" | "SR 2.2 RE1" => {
            if f.wireless {
                assumed("the conduit uses a wireless/radio link: evidence its access management")
            } else {
                (NotApplicable, "no wireless link in the conduit".into())
            }
        }
        "SR 1.13" => {
            if !f.untrusted {
                (
                    NotApplicable,
                    "no untrusted (level >= 4) network on this conduit".into(),
                )
            } else if f.dmz {
                (
                    Declared,
                    "access from the untrusted network terminates in the DMZ".into(),
                )
            } else {
                (
                    Gap,
                    "an untrusted network reaches a zone other than the DMZ".into(),
                )
            }
        }
        "SR 1.13 RE1" => {
            if f.untrusted {
                assumed("explicit approval of access via untrusted networks")
            } else {
                (NotApplicable, "no untrusted network on this conduit".into())
            }
        }
        "SR 2.1" | "SR 2.1 RE1" => {
            if f.enforce {
                (Met, format!("zonegate enforces {} allow rule(s) per source, unit, function and range; everything else is denied", f.c.rules.len()))
            } else if f.gw {
                (
                    Gap,
                    "the gateway is in monitor mode: nothing is refused".into(),
                )
            } else if f.modbus && f.fw_declared {
                (
                    Declared,
                    "the controls declare a boundary device that restricts the Modbus traffic"
                        .into(),
                )
            } else if f.modbus {
                (
                    Gap,
                    "nothing on the conduit authorises individual Modbus functions".into(),
                )
            } else if f.fw_declared {
                (
                    Declared,
                    "a firewall restricts use of the conduit (controls)".into(),
                )
            } else {
                assumed("authorisation on the conduit's protocols")
            }
        }
        "SR 2.1 RE2" => {
            if f.gw {
                if f.roles && f.client_auth {
                    (Met, "rules are mapped to TLS roles".into())
                } else {
                    (Gap, "permissions are mapped to source addresses, not to authenticated roles (Modbus/TCP Security roles)".into())
                }
            } else if f.modbus {
                (
                    Gap,
                    "no role-based permissions on this Modbus conduit".into(),
                )
            } else {
                assumed("role mapping of the conduit's protocols")
            }
        }
        "SR 2.1 RE4" => {
            if f.gw && f.writes {
                (
                    Gap,
                    "a single authorised client can write; no dual approval".into(),
                )
            } else {
                assumed("dual approval procedures")
            }
        }
        "SR 2.8" => {
            if gw_audit {
                (
                    Met,
                    "every decision is an audit event (audit section configured)".into(),
                )
            } else if f.gw {
                (
                    Provided,
                    "every decision is an event, but without an audit section it goes to stdout"
                        .into(),
                )
            } else if f.modbus {
                (
                    Gap,
                    "Modbus commands on this conduit are not recorded".into(),
                )
            } else {
                assumed("event logging of the boundary device")
            }
        }
        "SR 2.8 RE1" => {
            if f.gw {
                if audit.is_some_and(|a| a.syslog.is_some()) {
                    (
                        Met,
                        "audit records are copied to a central syslog/SIEM".into(),
                    )
                } else {
                    (
                        Gap,
                        "audit records stay on the gateway (configure audit.syslog)".into(),
                    )
                }
            } else {
                assumed("central audit trail")
            }
        }
        "SR 2.9" => {
            if f.gw {
                if audit.is_some_and(|a| a.rotate_size.is_some()) {
                    (Met, "audit.rotate_size bounds and rotates the log".into())
                } else {
                    (
                        Gap,
                        "no audit.rotate_size: storage capacity is not managed".into(),
                    )
                }
            } else {
                assumed("audit storage capacity")
            }
        }
        "SR 2.10" => {
            if gw_audit {
                let on = audit.map_or(AuditOnFailure::BlockWrites, |a| a.on_failure);
                if on == AuditOnFailure::Continue {
                    (
                        Gap,
                        "audit.on_failure: continue forwards commands that cannot be audited"
                            .into(),
                    )
                } else {
                    (Met, format!("audit.on_failure: {}", on.as_str()))
                }
            } else if f.gw {
                (Provided, "default on_failure: block_writes".into())
            } else {
                assumed("response to audit failures")
            }
        }
        "SR 2.11" => {
            if f.gw {
                (
                    Provided,
                    "UTC timestamps (microseconds) and sequence numbers on every record".into(),
                )
            } else {
                assumed("timestamps")
            }
        }
        "SR 2.12" | "SR 2.12 RE1" => {
            if f.gw {
                if f.client_auth && audit.is_some_and(|a| a.signing_key.is_some()) {
                    (
                        Met,
                        "records bound to certificate identities, signed checkpoints".into(),
                    )
                } else {
                    (
                        Gap,
                        "records name source addresses, not authenticated identities".into(),
                    )
                }
            } else {
                assumed("non-repudiation")
            }
        }
        "SR 3.1" => {
            if f.modbus && !f.tls {
                (
                    Provided,
                    "transport checksums (TCP, RTU CRC) detect accidental corruption only".into(),
                )
            } else {
                crypto("integrity")
            }
        }
        "SR 3.1 RE1" => crypto("integrity"),
        "SR 3.3" | "SR 3.3 RE1" => {
            if f.gw {
                (
                    Provided,
                    "`zonegate check` verifies the design, `zonegate probe` the live conduit"
                        .into(),
                )
            } else {
                assumed("security functionality verification")
            }
        }
        "SR 3.3 RE2" => {
            if f.gw {
                (
                    Gap,
                    "no verification during normal operation (schedule `zonegate probe`)".into(),
                )
            } else {
                assumed("verification during operation")
            }
        }
        "SR 3.5" => {
            if f.gw {
                (
                    Provided,
                    "strict Modbus parser: malformed requests are never forwarded".into(),
                )
            } else if f.modbus {
                (Gap, "malformed Modbus reaches the devices unchecked".into())
            } else {
                assumed("input validation")
            }
        }
        "SR 3.6" | "SR 3.7" => {
            if f.gw {
                (Provided, "defined answers on every failure (0x0A unreachable, 0x0B timeout), clients never hang".into())
            } else {
                assumed("deterministic output and error handling")
            }
        }
        "SR 3.8" | "SR 3.8 RE1" | "SR 3.8 RE2" | "SR 3.8 RE3" => session(),
        "SR 3.9" => {
            if gw_audit {
                (
                    Met,
                    "hash-chained, tamper-evident audit log (`zonegate log verify`)".into(),
                )
            } else if f.gw {
                (
                    Gap,
                    "no audit file: records on stdout are not protected".into(),
                )
            } else {
                assumed("protection of audit information")
            }
        }
        "SR 3.9 RE1" => {
            if f.gw {
                (Gap, "no write-once copy of the audit log".into())
            } else {
                assumed("write-once audit media")
            }
        }
        "SR 4.1" => {
            if f.modbus && !f.tls && f.enforce {
                (
                    Met,
                    "read access only for the sources the rules allow (values travel in clear)"
                        .into(),
                )
            } else {
                crypto("confidentiality")
            }
        }
        "SR 4.1 RE1" => {
            if f.untrusted {
                crypto("confidentiality over the untrusted network")
            } else {
                (NotApplicable, "no untrusted network on this conduit".into())
            }
        }
        "SR 4.1 RE2" => crypto("confidentiality across the zone boundary"),
        "SR 4.3" => {
            if f.modbus && f.tls && f.gw {
                (Provided, "TLS with recognised algorithms".into())
            } else if f.crypto_declared {
                (Declared, "cryptography declared by the protocols".into())
            } else {
                (NotApplicable, "no cryptography on this conduit".into())
            }
        }
        "SR 5.1" => {
            if f.gw {
                (
                    Met,
                    "the conduit is a modelled boundary with zonegate in the path".into(),
                )
            } else if f.fw_declared {
                (Declared, "boundary device declared in controls".into())
            } else {
                (Gap, "no boundary device declared for this conduit".into())
            }
        }
        "SR 5.1 RE2" => {
            if f.purdue_ok {
                (
                    Met,
                    "no conduit path from level >= 4 to level <= 2 avoids the DMZ (zonegate check)"
                        .into(),
                )
            } else {
                (Gap, "the model has a path from the enterprise into control that avoids the DMZ (ZG-C009)".into())
            }
        }
        "SR 5.2" => {
            if f.gw {
                (Met, "zonegate gateway at the boundary".into())
            } else if f.fw_declared {
                (Declared, "boundary protection declared in controls".into())
            } else {
                (Gap, "no boundary protection declared".into())
            }
        }
        "SR 5.2 RE1" => {
            if f.enforce {
                (
                    Met,
                    "gateway in enforce mode: deny by default, allow by rule".into(),
                )
            } else if f.gw {
                (Gap, "gateway in monitor mode forwards everything".into())
            } else if f.default_deny_declared {
                (Declared, "default deny declared in controls".into())
            } else {
                (Gap, "no default-deny boundary declared".into())
            }
        }
        "SR 5.2 RE2" => {
            if f.gw {
                (Gap, "no island mode (isolation switch) in the model".into())
            } else {
                assumed("island mode")
            }
        }
        "SR 5.2 RE3" => {
            if f.gw {
                (
                    Provided,
                    "no request is forwarded without a decision; a policy error stops the gateway"
                        .into(),
                )
            } else {
                assumed("fail close of the boundary device")
            }
        }
        "SR 5.3" | "SR 5.3 RE1" => {
            if f.gw {
                (Provided, "only Modbus passes the gateway".into())
            } else {
                assumed("person-to-person communication restrictions")
            }
        }
        "SR 6.1" | "SR 6.1 RE1" => {
            if gw_audit {
                (
                    Provided,
                    "audit log as JSON lines; `zonegate log show`".into(),
                )
            } else if f.gw {
                (Provided, "events on stdout as JSON lines".into())
            } else {
                assumed("audit log access")
            }
        }
        "SR 6.2" => {
            if f.gw {
                (
                    Provided,
                    "zonegate monitors the conduit (new master, new function, scans, floods)"
                        .into(),
                )
            } else if f.modbus {
                (
                    Gap,
                    "no monitoring of the Modbus traffic on this conduit".into(),
                )
            } else {
                assumed("continuous monitoring")
            }
        }
        "SR 7.1" => {
            if let Some(g) = f.c.gateway.as_ref().filter(|_| f.gw) {
                (
                    Met,
                    format!(
                        "max_connections {}, request_timeout {} ms",
                        g.max_connections,
                        g.request_timeout.as_millis()
                    ),
                )
            } else {
                assumed("DoS protection")
            }
        }
        "SR 7.1 RE1" => {
            if f.gw {
                if f.unrated.is_empty() {
                    (Met, "every rule has a rate limit".into())
                } else {
                    (
                        Gap,
                        format!("rules without a rate limit: {}", f.unrated.join(", ")),
                    )
                }
            } else {
                assumed("communication load management")
            }
        }
        "SR 7.1 RE2" => {
            if f.gw {
                (
                    Met,
                    "connection and rate limits keep floods from the devices behind the gateway"
                        .into(),
                )
            } else {
                assumed("limiting DoS effects")
            }
        }
        "SR 7.2" => {
            if f.gw {
                (
                    Provided,
                    "bounded buffers, connections and in-flight requests".into(),
                )
            } else {
                assumed("resource management")
            }
        }
        "SR 7.6" => (
            Met,
            "the model file is the machine-checked configuration".into(),
        ),
        "SR 7.6 RE1" => (
            Met,
            "`zonegate report --format json` reports the settings".into(),
        ),
        "SR 7.7" => {
            if f.gw {
                let unjustified: Vec<&str> = f
                    .sensitive
                    .iter()
                    .filter(|(_, j)| !j)
                    .map(|(r, _)| r.as_str())
                    .collect();
                if f.sensitive.is_empty() {
                    (
                        Met,
                        "no rule allows diagnostics, identification, file or programming functions"
                            .into(),
                    )
                } else if unjustified.is_empty() {
                    (
                        Met,
                        format!(
                            "sensitive functions allowed only with a justification (rules {})",
                            f.sensitive
                                .iter()
                                .map(|(r, _)| r.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                } else {
                    (
                        Gap,
                        format!(
                            "rules allow {} without justification: {}",
                            SENSITIVE_FCS
                                .iter()
                                .map(|f| fc_name(*f))
                                .collect::<Vec<_>>()
                                .join("/"),
                            unjustified.join(", ")
                        ),
                    )
                }
            } else if f.modbus && f.default_deny_declared {
                (
                    Declared,
                    "the controls declare a restrictive (read-only / default-deny) boundary".into(),
                )
            } else if f.modbus {
                (Gap, "every Modbus function passes this conduit".into())
            } else if !f.c.protocols_allowed.is_empty() {
                (
                    Declared,
                    "only the listed protocols and ports are declared".into(),
                )
            } else {
                (Gap, "no list of allowed protocols".into())
            }
        }
        "SR 7.8" => (Declared, "the model lists the zones' assets".into()),
        _ => assumed(&req.title.to_ascii_lowercase()),
    }
}

/// Assesses a whole model.
pub fn assess(site: &Site) -> Result<Assessment, requirements::TableError> {
    let table = requirements::table()?;
    let findings = check::check(site);
    let check_errors = check::counts(&findings).0;
    let mut conduits = Vec::new();
    for c in &site.conduits {
        let f = facts(site, c, &findings);
        let target = site.conduit_target(c);
        let mut items = Vec::new();
        for req in &table {
            let (status, evidence) = evaluate(&f, req);
            items.push(Item {
                id: req.id.clone(),
                fr: req.fr_name(),
                sl: req.sl,
                title: req.title.clone(),
                status,
                evidence,
            });
        }
        // The highest level whose requirements (at or below it) all pass `ok`.
        let level_of = |fr: usize, ok: &dyn Fn(Status) -> bool| -> u8 {
            let mut level = 0;
            for l in 1..=4u8 {
                let all = items
                    .iter()
                    .zip(&table)
                    .filter(|(_, r)| r.fr == fr && r.sl <= l)
                    .all(|(i, _)| ok(i.status));
                if all {
                    level = l;
                } else {
                    break;
                }
            }
            level
        };
        let mut achieved = [0u8; 7];
        let mut declared = [0u8; 7];
        let mut limited_by: Vec<(&'static str, Vec<String>)> = Vec::new();
        for fr in 0..7 {
            achieved[fr] = level_of(fr, &|st| !matches!(st, Gap | Declared));
            declared[fr] = level_of(fr, &|st| st != Gap);
            if let Some(t) = target {
                if achieved[fr] < t.0[fr] {
                    limited_by.push((
                        Fr::ALL[fr].as_str(),
                        items
                            .iter()
                            .zip(&table)
                            .filter(|(i, r)| {
                                r.fr == fr && r.sl <= t.0[fr] && matches!(i.status, Gap | Declared)
                            })
                            .map(|(i, _)| {
                                if i.status == Declared {
                                    format!("{} (declared only)", i.id)
                                } else {
                                    i.id.clone()
                                }
                            })
                            .collect(),
                    ));
                }
            }
        }
        let transport = Transport::of(c);
        let mut threats: Vec<Threat> = Vec::new();
        for (i, r) in items.iter().zip(&table) {
            let tgt = target.map_or(4, |t| t.0[r.fr]);
            if i.status != Gap || r.sl > tgt {
                continue;
            }
            for (threat, counter) in threats_for(&i.id, transport) {
                match threats.iter_mut().find(|t| t.threat == threat) {
                    Some(t) => t.requirements.push(i.id.clone()),
                    None => threats.push(Threat {
                        threat: threat.to_owned(),
                        countermeasure: counter.to_owned(),
                        requirements: vec![i.id.clone()],
                    }),
                }
            }
        }
        conduits.push(ConduitAssessment {
            id: c.id.clone(),
            connects: c.connects.iter().map(|z| z.value.clone()).collect(),
            target,
            achieved: SlVector(achieved),
            declared: SlVector(declared),
            limited_by,
            items,
            threats,
            plaintext_interfaces: c.plaintext_modbus().into_iter().map(|(s, _)| s).collect(),
        });
    }
    let zones = site
        .zones
        .iter()
        .map(|z| {
            let mine: Vec<&ConduitAssessment> = conduits
                .iter()
                .filter(|c| c.connects.contains(&z.id))
                .collect();
            let achieved = mine.iter().map(|c| c.achieved).reduce(|a, b| a.meet(&b));
            let declared = mine.iter().map(|c| c.declared).reduce(|a, b| a.meet(&b));
            let shortfalls = match (z.sl_t(), achieved) {
                (Some(t), Some(a)) => Fr::ALL
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| a.0[*i] < t.0[*i])
                    .map(|(i, fr)| format!("{fr} {} < {}", a.0[i], t.0[i]))
                    .collect(),
                _ => Vec::new(),
            };
            let ok = |st: Status| matches!(st, Met | Provided);
            let (meets, declared_only): (Vec<String>, Vec<String>) = if mine.is_empty() {
                (Vec::new(), Vec::new())
            } else {
                let all = |f: &dyn Fn(Status) -> bool| -> Vec<String> {
                    table
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mine.iter().all(|c| f(c.items[*i].status)))
                        .map(|(_, r)| r.id.clone())
                        .collect()
                };
                let met = all(&ok);
                let prose: Vec<String> = all(&|st| ok(st) || st == Declared)
                    .into_iter()
                    .filter(|id| !met.contains(id))
                    .collect();
                (met, prose)
            };
            let gaps: Vec<String> = table
                .iter()
                .enumerate()
                .filter(|(i, r)| {
                    r.sl <= z.sl_t().map_or(4, |t| t.0[r.fr])
                        && mine.iter().any(|c| c.items[*i].status == Gap)
                })
                .map(|(_, r)| r.id.clone())
                .collect();
            ZoneAssessment {
                id: z.id.clone(),
                target: z.sl_t(),
                achieved,
                declared,
                conduits: mine.iter().map(|c| c.id.clone()).collect(),
                shortfalls,
                meets,
                declared_only,
                gaps,
            }
        })
        .collect();
    Ok(Assessment {
        facility: site
            .facility
            .clone()
            .unwrap_or_else(|| "(facility not stated)".into()),
        model_file: site.file.clone(),
        table_source: TABLE_SOURCE.to_owned(),
        table_size: table.len(),
        conduits,
        zones,
        check_errors,
    })
}

/// True when some zone or conduit falls short of its target on some FR.
pub fn has_shortfall(a: &Assessment) -> bool {
    a.zones.iter().any(|z| !z.shortfalls.is_empty())
        || a.conduits.iter().any(|c| !c.limited_by.is_empty())
}

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
