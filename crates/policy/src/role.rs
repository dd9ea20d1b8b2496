//! The Modbus/TCP Security role of a client certificate (spec §8.4, R-21, R-22, R-65).
//!
//! The role is the UTF8String in extension `1.3.6.1.4.1.50316.802.1` of the client's leaf
//! certificate. The DER is read strictly: anything but exactly one role extension whose value
//! is exactly one DER UTF8String of 1..=[`MAX_ROLE_LEN`] printable bytes is *no role* (the
//! null role of R-23), and [`NoRole`] says why, so the audit record can name it. Other
//! implementations strip a fixed number of bytes or take the first of two extensions; a
//! certificate that does either must not silently gain a role here.
//!
//! Pure: bytes in, a verdict out. The chain, dates and revocation are the TLS verifier's job;
//! this module only reads a leaf the verifier already accepted.

use std::fmt;

use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::der::parse_der_utf8string;
use x509_parser::prelude::FromDer;

/// The role extension's OID (Modbus.org PEN 50316).
pub const ROLE_OID: &str = "1.3.6.1.4.1.50316.802.1";

/// Longest role accepted, in bytes; a longer one is no role (as CycloneTCP ignores it).
pub const MAX_ROLE_LEN: usize = 128;

/// The DER tag of a UNIVERSAL UTF8String.
const UTF8_STRING_TAG: u8 = 0x0C;

/// Why a certificate carries no role.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoRole {
    /// The leaf has no role extension.
    Absent,
    /// The leaf has more than one role extension (R-65: one role per certificate).
    Duplicate(usize),
    /// The extension's value is not a DER UTF8String (e.g. the bare bytes in the OCTET
    /// STRING, without the UTF8String tag).
    NotUtf8String,
    /// The UTF8String is malformed, or bytes follow it.
    Malformed(String),
    /// The role is empty.
    Empty,
    /// The role is longer than [`MAX_ROLE_LEN`] bytes.
    TooLong(usize),
    /// The role holds a control character (it would forge lines in logs).
    ControlCharacter,
    /// The leaf certificate itself could not be parsed.
    BadCertificate(String),
}

impl NoRole {
    /// A short snake_case name of the reason, for the audit record.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Absent => "role_absent",
            Self::Duplicate(_) => "role_duplicate",
            Self::NotUtf8String => "role_not_utf8string",
            Self::Malformed(_) => "role_malformed",
            Self::Empty => "role_empty",
            Self::TooLong(_) => "role_too_long",
            Self::ControlCharacter => "role_control_character",
            Self::BadCertificate(_) => "role_bad_certificate",
        }
    }
}

impl fmt::Display for NoRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent => write!(f, "no role extension {ROLE_OID}"),
            Self::Duplicate(n) => write!(f, "{n} role extensions {ROLE_OID} (one is allowed)"),
            Self::NotUtf8String => {
                write!(f, "the role extension does not hold a DER UTF8String")
            }
            Self::Malformed(why) => write!(f, "malformed role UTF8String: {why}"),
            Self::Empty => write!(f, "the role is empty"),
            Self::TooLong(n) => write!(f, "the role is {n} bytes (at most {MAX_ROLE_LEN})"),
            Self::ControlCharacter => write!(f, "the role holds a control character"),
            Self::BadCertificate(why) => write!(f, "cannot parse the leaf certificate: {why}"),
        }
    }
}

/// What the gateway keeps of a client's leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The subject, RFC 4514 style (empty when the certificate cannot be parsed).
    pub subject: String,
    /// Lowercase hex SHA-256 of the DER.
    pub fingerprint: String,
    /// The role, or why there is none.
    pub role: Result<String, NoRole>,
}

/// Reads subject, fingerprint and role of a DER leaf certificate; never fails.
pub fn read_leaf(der: &[u8]) -> PeerCertificate {
    let fingerprint = Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => PeerCertificate {
            subject: cert.subject().to_string(),
            fingerprint,
            role: role_of(&cert),
        },
        Err(e) => PeerCertificate {
            subject: String::new(),
            fingerprint,
            role: Err(NoRole::BadCertificate(e.to_string())),
        },
    }
}

fn role_of(cert: &X509Certificate<'_>) -> Result<String, NoRole> {
    let mut found = cert
        .extensions()
        .iter()
        .filter(|e| e.oid.to_id_string() == ROLE_OID);
    let ext = found.next().ok_or(NoRole::Absent)?;
    let more = found.count();
    if more > 0 {
        return Err(NoRole::Duplicate(more + 1));
    }
    role_value(ext.value)
}

/// Decodes the content of the role extension's OCTET STRING (the extnValue's bytes).
pub fn role_value(value: &[u8]) -> Result<String, NoRole> {
    if value.first() != Some(&UTF8_STRING_TAG) {
        return Err(NoRole::NotUtf8String);
    }
    let (rest, obj) = parse_der_utf8string(value).map_err(|e| NoRole::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(NoRole::Malformed(format!(
            "{} bytes after the UTF8String",
            rest.len()
        )));
    }
    let role = obj.as_str().map_err(|e| NoRole::Malformed(e.to_string()))?;
    if role.is_empty() {
        return Err(NoRole::Empty);
    }
    if role.len() > MAX_ROLE_LEN {
        return Err(NoRole::TooLong(role.len()));
    }
    if role.chars().any(char::is_control) {
        return Err(NoRole::ControlCharacter);
    }
    Ok(role.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn utf8(s: &[u8]) -> Vec<u8> {
        let mut v = vec![UTF8_STRING_TAG];
        if s.len() < 128 {
            v.push(s.len() as u8);
        } else {
            v.extend_from_slice(&[0x81, s.len() as u8]);
        }
        v.extend_from_slice(s);
        v
    }

    #[test]
    fn a_der_utf8string_is_the_role() {
        assert_eq!(role_value(&utf8(b"Operator")), Ok("Operator".to_owned()));
        assert_eq!(role_value(b"\x0c\x08Operator"), Ok("Operator".to_owned()));
    }

    #[test]
    fn a_bare_octet_string_without_the_utf8string_tag_is_no_role() {
        // digitalpetri's test utility writes the role bytes straight into the OCTET STRING.
        assert_eq!(role_value(b"Operator"), Err(NoRole::NotUtf8String));
        // A PrintableString (0x13) is not R-22's UTF8String either.
        assert_eq!(role_value(b"\x13\x08Operator"), Err(NoRole::NotUtf8String));
        assert_eq!(role_value(b""), Err(NoRole::NotUtf8String));
    }

    #[test]
    fn trailing_or_truncated_der_is_no_role() {
        let mut v = utf8(b"Operator");
        v.push(0);
        assert!(matches!(role_value(&v), Err(NoRole::Malformed(_))));
        assert!(matches!(
            role_value(b"\x0c\x09Operator"),
            Err(NoRole::Malformed(_))
        ));
        assert!(matches!(
            role_value(b"\x0c\x02\xff\xfe"),
            Err(NoRole::Malformed(_))
        ));
    }

    #[test]
    fn an_over_long_empty_or_control_role_is_no_role() {
        let long = vec![b'a'; MAX_ROLE_LEN + 1];
        assert_eq!(
            role_value(&utf8(&long)),
            Err(NoRole::TooLong(MAX_ROLE_LEN + 1))
        );
        let max = vec![b'a'; MAX_ROLE_LEN];
        assert!(role_value(&utf8(&max)).is_ok());
        assert_eq!(role_value(&utf8(b"")), Err(NoRole::Empty));
        assert_eq!(
            role_value(&utf8(b"Op\nrole=Admin")),
            Err(NoRole::ControlCharacter)
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let p = read_leaf(b"\x30\x03\x02\x01\x01");
        assert!(matches!(p.role, Err(NoRole::BadCertificate(_))));
        assert_eq!(p.fingerprint.len(), 64);
    }
}
