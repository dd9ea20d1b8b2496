//! What `decide` returns: a [`Verdict`] with its [`Decision`], the rule id, and a [`Reason`]
//! whose [`Denial`] maps straight to the Modbus exception the client sees
//! (`impl From<Denial> for ExceptionCode`, like rustls maps `InvalidMessage` to an alert).

use std::fmt;

use zonegate_modbus::ExceptionCode;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Forward the request.
    Allow,
    /// Do not forward it.
    Deny,
}

impl Decision {
    /// `allow` | `deny` (the event record's `decision`; monitor mode writes `would_deny`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// Why a request was denied. The strings of [`Denial::as_str`] are stable: audit events and
/// the monitor key on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Denial {
    /// No rule names the source address (0x01).
    NoRuleForSource,
    /// Rules name the source, but not this unit id (0x01).
    NoRuleForUnit,
    /// Rules name the source and unit, but require a TLS role the client lacks (0x01).
    RoleNotAllowed,
    /// Rules match the source and unit, but none allows the function or sub-function (0x01).
    NoRuleForFunction,
    /// A rule allows the function, but an address touched lies outside every such rule (0x02).
    AddressOutOfRange,
    /// A written value lies outside the rule's `values` bounds (0x03).
    ValueOutOfBounds,
    /// The rule bounds values but the request's result cannot be known in advance: FC 22 mask
    /// write with a non-zero AND mask, FC 21 file records (0x03).
    ValueUnverifiable,
    /// The rule's rate limit for this source is used up (0x06, server device busy).
    RateLimited,
}

impl Denial {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoRuleForSource => "no_rule_for_source",
            Self::NoRuleForUnit => "no_rule_for_unit",
            Self::RoleNotAllowed => "role_not_allowed",
            Self::NoRuleForFunction => "no_rule_for_function",
            Self::AddressOutOfRange => "address_out_of_range",
            Self::ValueOutOfBounds => "value_out_of_bounds",
            Self::ValueUnverifiable => "value_unverifiable",
            Self::RateLimited => "rate_limited",
        }
    }

    /// Every denial, for tables and tests.
    pub const ALL: [Self; 8] = [
        Self::NoRuleForSource,
        Self::NoRuleForUnit,
        Self::RoleNotAllowed,
        Self::NoRuleForFunction,
        Self::AddressOutOfRange,
        Self::ValueOutOfBounds,
        Self::ValueUnverifiable,
        Self::RateLimited,
    ];
}

impl From<Denial> for ExceptionCode {
    /// docs/DESIGN.md 'What the wire sees': 0x01 no rule allows the function for that source and
    /// unit, 0x02 address outside, 0x03 value out of bounds, 0x06 rate limit exceeded.
    fn from(d: Denial) -> Self {
        match d {
            Denial::NoRuleForSource
            | Denial::NoRuleForUnit
            | Denial::RoleNotAllowed
            | Denial::NoRuleForFunction => Self::IllegalFunction,
            Denial::AddressOutOfRange => Self::IllegalDataAddress,
            Denial::ValueOutOfBounds | Denial::ValueUnverifiable => Self::IllegalDataValue,
            Denial::RateLimited => Self::ServerDeviceBusy,
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reason of a verdict: `allowed`, or a [`Denial`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// A rule allowed the request.
    Allowed,
    /// Denied, and why.
    Denied(Denial),
}

impl Reason {
    /// Stable snake_case name: `allowed`, `no_rule_for_source`, `no_rule_for_unit`,
    /// `role_not_allowed`, `no_rule_for_function`, `address_out_of_range`,
    /// `value_out_of_bounds`, `value_unverifiable`, `rate_limited`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied(d) => d.as_str(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of [`crate::ConduitPolicy::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict<'p> {
    /// Allow or deny.
    pub decision: Decision,
    /// The id of the rule that allowed the request; for a denial, the rule that came closest
    /// (e.g. the rate-limited rule), or `None` when no rule named the source.
    pub rule: Option<&'p str>,
    /// Why.
    pub reason: Reason,
}

impl<'p> Verdict<'p> {
    /// An allow by `rule`.
    pub fn allow(rule: &'p str) -> Self {
        Self {
            decision: Decision::Allow,
            rule: Some(rule),
            reason: Reason::Allowed,
        }
    }

    /// A denial.
    pub fn deny(denial: Denial, rule: Option<&'p str>) -> Self {
        Self {
            decision: Decision::Deny,
            rule,
            reason: Reason::Denied(denial),
        }
    }

    /// True when the request may be forwarded.
    pub fn is_allow(&self) -> bool {
        self.decision == Decision::Allow
    }

    /// The denial, if denied.
    pub fn denial(&self) -> Option<Denial> {
        match self.reason {
            Reason::Denied(d) => Some(d),
            Reason::Allowed => None,
        }
    }

    /// The exception code for `deny: exception` (`None` when allowed).
    pub fn exception(&self) -> Option<ExceptionCode> {
        self.denial().map(ExceptionCode::from)
    }
}
