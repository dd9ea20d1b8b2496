//! The check table: every id (`ZG-C001` ...) with its name, severity and what it checks
//! ([`CHECKS`]), and [`info`] to look one up.
//!
//! Separate so the list a reader (or the SARIF rules, or the docs) looks up is one screen, apart
//! from the code that runs the checks. Ids never change meaning: retire, do not reuse.

use super::{CheckInfo, Severity};

macro_rules! checks {
    ($($id:literal $name:literal $sev:ident $desc:literal;)*) => {
        /// Every check, in id order.
        pub const CHECKS: &[CheckInfo] = &[
            $(CheckInfo { id: $id, name: $name, severity: Severity::$sev, description: $desc },)*
        ];
    };
}

checks! {
    "ZG-C001" "duplicate-id" Error "Zone, conduit, structured asset and rule ids are unique (a rule id within its conduit).";
    "ZG-C002" "unknown-reference" Error "Every zone a conduit connects, every conduit a zone allows and every rule source (zone, asset or CIDR) exists.";
    "ZG-C003" "conduit-endpoints" Error "A conduit connects at least 2 distinct zones and lists no zone twice (IEC 62443-3-2 ZCR 3.1).";
    "ZG-C004" "allowed-conduits-mismatch" Error "A zone's allowed_conduits and the conduits' connects agree both ways.";
    "ZG-C005" "asset-in-several-zones" Error "Every asset is in exactly one zone (same asset id or address in two zones).";
    "ZG-C006" "network-overlap" Error "An address lies in at most one zone's networks.";
    "ZG-C007" "asset-outside-zone-network" Error "An asset's address lies in its own zone's networks (error when it lies in another zone's network, warning when in none).";
    "ZG-C008" "sis-conduit-beyond-bpcs" Error "A zone holding a safety instrumented system (asset kind sis or a safety criticality) has conduits only to basic process control zones (Purdue 1-2), per IEC 61511 independence and ZCR 3.3.";
    "ZG-C009" "purdue-dmz-bypass" Error "No conduit path from a Purdue level >= 4 zone down to a level <= 2 zone avoids a level 3.5 DMZ zone (reachability over the conduit graph).";
    "ZG-C010" "conduit-sl-below-zone" Warning "A conduit's security level is not below the highest SL-T of the zones it connects, per FR.";
    "ZG-C011" "write-from-upper-level" Warning "Write-class Modbus (allowed by a rule, or declared in a Modbus protocols_allowed direction) from a zone at Purdue level >= 3 (warning) or >= 3.5, the DMZ and above (error).";
    "ZG-C012" "rule-source-outside-conduit" Error "Every rule source belongs to one of the zones its conduit connects.";
    "ZG-C013" "plaintext-modbus-high-sl" Error "No cleartext Modbus (TCP or RTU, no TLS) on a conduit whose zones have SL-T >= 3 (SR 3.1 RE1, SR 4.1, SR 1.2).";
    "ZG-C014" "sensitive-fc-unjustified" Error "A rule allowing FC 8, 17, 20, 21, 43 or 90 (diagnostics, identification, file and programming access) carries a justification.";
    "ZG-C015" "shadowed-rule" Warning "A rule is not shadowed by an earlier rule that allows a superset of its sources, units, functions and ranges with no extra constraint.";
    "ZG-C016" "rule-never-matches" Warning "A rule can match some request: non-empty sources, units that exist on the target zone's assets, a range for the tables its functions touch, min <= max.";
    "ZG-C017" "any-source-rule" Error "No rule allows any source (0.0.0.0/0, ::/0).";
    "ZG-C018" "write-into-sis" Error "Writes into a SIS zone are justified (error without justification, warning with one).";
    "ZG-C019" "sis-zone-mixed" Warning "A SIS zone holds only safety assets (IEC 62443-3-2 ZCR 3.3).";
    "ZG-C020" "missing-sl-target" Warning "Every zone has a security_level_target (IEC 62443-3-2 ZCR 5.6).";
    "ZG-C021" "missing-purdue-level" Info "Every zone has a purdue_level (reachability checks skip zones without one).";
    "ZG-C022" "duplicate-gateway-listen" Error "No two gateways listen on the same address and port.";
    "ZG-C023" "gateway-monitor-mode" Warning "A gateway in monitor mode forwards everything: the conduit is not enforced (SR 5.2 RE1).";
    "ZG-C024" "gateway-upstream-outside-zones" Warning "A gateway's upstream address lies in one of its conduit's zones.";
    "ZG-C025" "gateway-without-rules" Info "A gateway with no rules denies every request.";
    "ZG-C026" "no-audit-section" Warning "A model with gateways configures the audit trail (SR 2.8, SR 3.9).";
    "ZG-C027" "unbounded-write" Info "A write rule has a rate limit (SR 7.1 RE1) and, for registers, value bounds.";
    "ZG-C028" "undeclared-flows" Warning "A conduit declares its flows: protocols_allowed or a gateway (IEC 62443-3-2 ZCR 6.4).";
    "ZG-C029" "missing-conduit-sl" Warning "Every conduit has a security_level.";
    "ZG-C030" "unit-not-on-asset" Warning "Every unit id a rule names is on an asset of the conduit's target zone (when that zone lists unit ids).";
    "ZG-C031" "gateway-not-runnable" Error "Every gateway can be run by this build of zonegate (today: tcp://, tls://, rtu:// and rtu+tcp:// upstreams). zonegate run refuses a model with one that cannot, so none of its conduits is enforced.";
    "ZG-C032" "class-without-table" Warning "A function class in a rule has a table to act on: some of its table functions has an address range in the rule (otherwise the class allows none of them).";
    "ZG-C033" "file-record-by-class" Warning "FC 20/21 (file records) are allowed only by name: they touch no register table, so a class next to table ranges does not limit them to those ranges.";
    "ZG-C034" "fifo-pointer-only" Warning "A rule allowing FC 24 (read FIFO queue) knows the gateway checks only the pointer address, not the up to 31 queued registers the device returns.";
    "ZG-C035" "gateway-listens-everywhere" Warning "A gateway listens on the address of the interface its clients use, not on every interface (0.0.0.0 or ::).";
    "ZG-C036" "replication-reverse-flow" Error "Nothing flows back across a one-way replication: no rule with a source in its receiving zone, no protocols_allowed direction towards its sending zone, no replication the other way, on the same pair of zones.";
    "ZG-C037" "replication-endpoints" Error "A replication connects two distinct zones that exist ([from, to]).";
    "ZG-C038" "replication-max-age" Warning "A replication's max_age is longer than every block's period (else the replica answers 0x0B between reads).";
    "ZG-C039" "replication-address-mismatch" Warning "A replication's transmit.to is the receive side's bind address and port.";
    "ZG-C040" "replication-hmac" Info "A replication authenticated with HMAC-SHA256 gives the receive side a key that can forge data; Ed25519 keeps the secret on the transmit side.";
    "ZG-C041" "replication-source-unsupported" Warning "This build's transmit agent can read a replication's source (tcp://, tls://, rtu:// and rtu+tcp://: every upstream kind today; a kind it cannot read is refused by `zonegate run --side transmit`).";
    "ZG-C042" "monitor-baseline-unusable" Error "The monitor's baseline (monitor.baseline, relative to the model file) reads as a baseline (`zonegate analyze --write-baseline`): it cannot be read, is not JSON or is not of a baseline's shape otherwise, and the gateway runs the monitor without it. Read by `zonegate check` only: a file never refuses `run` or a reload.";
    "ZG-C043" "shadow-candidate-unusable" Error "A gateway conduit's shadow: candidate (relative to the model file) loads as a model, compiles and has a conduit of the same id; otherwise the gateway evaluates no candidate for it. Each of the candidate's own problems is a finding at its line in the candidate. Read by `zonegate check` only: a file never refuses `run` or a reload.";
    "ZG-C044" "shadow-without-gateway" Error "A conduit with a shadow: candidate has a gateway: block (nothing else evaluates the candidate).";
}

/// The description of a check id.
pub fn info(id: &str) -> Option<&'static CheckInfo> {
    CHECKS.iter().find(|c| c.id == id)
}
