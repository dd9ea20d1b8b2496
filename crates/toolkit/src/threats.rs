//! Threats and countermeasures for the gaps of an assessment, by the conduit's transport.
//!
//! A Modbus TCP conduit is attacked as a network session (spoofed clients, hijacked sessions,
//! interception on the LAN) and answered with Modbus/TCP Security. A serial conduit (Modbus RTU
//! on RS-485, often extended over radio) has no sessions and no addresses to spoof: anything on
//! the bus can talk. Its threats are bus access, a rogue master and no confidentiality on the
//! wire, answered, as in an SL-4 RS-485 threat model, by encryption in transit where the path
//! leaves the cabinet, monitoring of the bus and degraded-mode operation. A conduit with both
//! legs (a TCP client side and a serial device side) gets both.

use zonegate_policy::Conduit;

use crate::model::{protocol_port, ConduitExt};

/// How a conduit carries Modbus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP (or nothing serial).
    Tcp,
    /// Only a serial line (RTU, RS-485, serial radio).
    Serial,
    /// A TCP leg and a serial leg.
    Both,
}

impl Transport {
    /// The transport of a conduit: serial when it has an RTU upstream or a protocol that names
    /// RTU, RS-485 or a serial line; TCP when it has a gateway listener or a protocol with a port.
    pub fn of(c: &Conduit) -> Self {
        let serial = c.is_serial();
        // A serial listener has no TCP leg on the client side; a bus upstream has none on the
        // device side unless it is rtu+tcp:// or tcp://.
        let tcp = c
            .gateway
            .as_ref()
            .is_some_and(|g| g.listen_serial.is_none() || g.upstream.host_port().is_some())
            || c.protocols_allowed
                .iter()
                .any(|p| protocol_port(p).is_some());
        match (serial, tcp) {
            (true, false) => Self::Serial,
            (true, true) => Self::Both,
            _ => Self::Tcp,
        }
    }
}

/// The threat and countermeasure a gap of requirement `id` leaves open on a serial conduit.
fn serial_threat(id: &str) -> Option<(&'static str, &'static str)> {
    Some(match id {
        "SR 1.2" | "SR 1.2 RE1" | "SR 1.8" | "SR 1.9" => (
            "Bus access: any device connected to the RS-485 segment or the radio link can send frames; the bus carries no identity",
            "Physical protection of the bus (locked cabinets, no spare taps), zonegate as the only master at the end of the segment, and encryption in transit where the path leaves the cabinet",
        ),
        "SR 3.8" | "SR 3.8 RE1" | "SR 3.8 RE2" | "SR 3.8 RE3" => (
            "Rogue master: a second master on the bus can inject commands between the real master's polls (Modbus RTU has no sessions to protect)",
            "Monitoring of the bus for unknown masters and unexpected frames, alarms to the SOC; a single master by design",
        ),
        "SR 3.1 RE1" => (
            "Tampering on the wire: frames can be altered on the bus or the radio path (the CRC is not a MAC)",
            "Encryption and integrity in transit where the path leaves the cabinet (encrypted radio link, serial tunnel with authentication); physical protection inside it",
        ),
        "SR 4.1" | "SR 4.1 RE1" | "SR 4.1 RE2" => (
            "No confidentiality on the wire: process values and setpoints are readable by anyone on the bus or in radio range",
            "Encryption in transit where the path leaves the cabinet; locked cabinets and protected cabling inside",
        ),
        "SR 6.2" => (
            "No monitoring of the serial segment: new masters, scans and write floods on the bus go unnoticed",
            "Monitoring of the bus: zonegate records every frame it forwards, a bus monitor the frames it does not see",
        ),
        "SR 2.1 RE2" => (
            "Misuse of privileges: every master on the bus holds every permission",
            "Let only zonegate master the bus, with separate rules per operator and engineering source on its client side",
        ),
        "SR 7.1" | "SR 7.1 RE1" | "SR 5.2 RE2" => (
            "Loss of the link: a jammed radio, a cut cable or a babbling node stops the bus",
            "Degraded-mode operation: the remote sites fall back to safe local control when the link is lost, and zonegate rate limits protect the bus",
        ),
        _ => return None,
    })
}

/// The threats (with countermeasures) a gap of requirement `id` leaves open on a conduit with
/// this transport.
pub fn threats_for(id: &str, transport: Transport) -> Vec<(&'static str, &'static str)> {
    let tcp = tcp_threat(id);
    let serial = serial_threat(id);
    match transport {
        Transport::Tcp => tcp.into_iter().collect(),
        // Serial-specific where there is one; the generic ones (unauthorised commands, audit,
        // programming functions) apply to any transport.
        Transport::Serial => serial
            .or(tcp.filter(|_| !tcp_only(id)))
            .into_iter()
            .collect(),
        Transport::Both => tcp.into_iter().chain(serial).collect(),
    }
}

/// Requirements whose TCP threat makes no sense on a serial line.
fn tcp_only(id: &str) -> bool {
    matches!(
        id,
        "SR 1.2"
            | "SR 1.2 RE1"
            | "SR 1.8"
            | "SR 1.9"
            | "SR 2.1 RE2"
            | "SR 3.1 RE1"
            | "SR 4.1"
            | "SR 4.1 RE1"
            | "SR 4.1 RE2"
            | "SR 3.8"
            | "SR 3.8 RE1"
            | "SR 3.8 RE2"
            | "SR 3.8 RE3"
    )
}

/// The threat and countermeasure a gap of requirement `id` leaves open on a TCP conduit.
fn tcp_threat(id: &str) -> Option<(&'static str, &'static str)> {
    Some(match id {
        "SR 1.2" | "SR 1.2 RE1" | "SR 1.8" | "SR 1.9" => (
            "Spoofing: any host that reaches the conduit can pose as the HMI or engineering workstation (source addresses are not authentication)",
            "Modbus/TCP Security (TLS, port 802) with client certificates issued per device",
        ),
        "SR 2.1 RE2" => (
            "Misuse of privileges: operator and engineer permissions cannot be told apart by identity",
            "Map certificate roles to rules (Modbus/TCP Security role extension)",
        ),
        "SR 3.1 RE1" => (
            "Tampering: commands and values can be modified in transit on the cleartext link (man in the middle)",
            "TLS (mbaps) end to end; otherwise gateway next to the device with a short, physically protected cable",
        ),
        "SR 4.1" | "SR 4.1 RE1" | "SR 4.1 RE2" => (
            "Interception: process values and setpoints can be read on the wire",
            "TLS (mbaps) on the conduit, or physical protection of the cabling",
        ),
        "SR 3.8" | "SR 3.8 RE1" | "SR 3.8 RE2" | "SR 3.8 RE3" => (
            "Session hijacking: commands can be injected into an established Modbus TCP session",
            "TLS sessions (mbaps)",
        ),
        "SR 2.1" | "SR 2.1 RE1" | "SR 5.2 RE1" => (
            "Unauthorised commands: any client that reaches the devices can read and write",
            "zonegate gateway in enforce mode with per-source allow rules (deny by default)",
        ),
        "SR 3.5" => (
            "Malformed or malicious frames reach the devices",
            "zonegate strict Modbus parsing in the path",
        ),
        "SR 2.8" | "SR 3.9" | "SR 2.9" => (
            "Repudiation and undetected misuse: commands are not recorded, or records can be altered unnoticed",
            "zonegate audit section: hash-chained log with rotation (`zonegate log verify`)",
        ),
        "SR 2.8 RE1" => (
            "Local-only audit records can be lost or ignored",
            "audit.syslog to the central SIEM",
        ),
        "SR 2.12" | "SR 2.12 RE1" => (
            "Actions cannot be attributed to a person or device",
            "Client certificates plus signed audit checkpoints (audit.signing_key)",
        ),
        "SR 6.2" => (
            "No intrusion detection: scans, new masters and write floods go unnoticed",
            "zonegate monitor detectors on the conduit, alarms to the SOC",
        ),
        "SR 7.1 RE1" => (
            "Denial of service: a client can flood the devices with requests",
            "rate limits on every rule",
        ),
        "SR 7.7" => (
            "Reconnaissance and programming: diagnostics, identification and file functions reach the devices",
            "Remove FC 8/17/20/21/43/90 from the rules, or justify them and restrict to the engineering workstation",
        ),
        "SR 5.1 RE2" | "SR 1.13" => (
            "Enterprise or remote networks reach control zones without passing the DMZ",
            "Route every IT/OT flow through the level 3.5 DMZ (replica, proxy, jump host)",
        ),
        "SR 5.2 RE2" => (
            "No way to isolate the zone quickly during an incident",
            "Island mode: an isolation switch or procedure that stops the conduit",
        ),
        "SR 5.1" | "SR 5.2" => (
            "No boundary device between the zones",
            "A firewall or zonegate gateway on the conduit",
        ),
        "SR 2.1 RE4" => (
            "A single person can change critical values",
            "Dual approval for critical writes (procedure or a second authorisation step)",
        ),
        "SR 3.3 RE2" => (
            "Security functions may fail silently during operation",
            "Run `zonegate probe` on a schedule and alarm on FAIL",
        ),
        "SR 3.9 RE1" => (
            "Audit records on rewritable media",
            "Export the audit log to write-once storage",
        ),
        "SR 2.10" => (
            "Commands pass unaudited when the log fails",
            "audit.on_failure: block_writes or block_all",
        ),
        _ => return None,
    })
}
