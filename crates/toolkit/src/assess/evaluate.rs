//! The verdict of each IEC 62443-3-3 requirement (SR/RE) on one conduit: a [`Status`] and the
//! evidence sentence the reports print, one match arm per requirement id of the embedded table.
//!
//! Separate because it is the assessment's rule book: to see or change why "SR 3.8" is a GAP on
//! a conduit, read its arm here; the facts it uses come from [`super::facts`] and the levels are
//! computed from the verdicts in [`super::score`].

use super::facts::Facts;
use super::Status;
use crate::model::{fc_name, ConduitExt, SENSITIVE_FCS};
use crate::requirements::Requirement;
use zonegate_policy::AuditOnFailure;

use Status::{Assumed, Declared, Gap, Met, NotApplicable, Provided};

fn assumed(what: &str) -> (Status, String) {
    (Assumed, format!("outside the model: {what}"))
}
/// The verdict for one requirement on one conduit.
pub(super) fn evaluate(f: &Facts<'_>, req: &Requirement) -> (Status, String) {
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
