//! The `tls:` block of a `gateway:`: the listener speaks Modbus/TCP Security (mbaps).
//!
//! ```yaml
//! gateway:
//!   listen: 0.0.0.0:802
//!   upstream: tcp://10.0.0.5:502
//!   tls:
//!     cert: pki/gateway.pem        # server certificate chain (PEM), leaf first
//!     key: pki/gateway.key         # its private key (PEM: PKCS#8, PKCS#1 or SEC1)
//!     client_ca: pki/clients.pem   # CA bundle client certificates must chain to (PEM)
//!     crl: pki/clients.crl         # optional: revoked client certificates (PEM CRLs)
//!     min_version: "1.2"           # "1.2" (default) or "1.3"; nothing lower (spec R-34)
//! ```
//!
//! Mutual TLS is not optional: the spec requires the client's certificate (R-06, R-10), so
//! there is no key to turn it off. Relative paths resolve against the model file's folder.

use std::path::PathBuf;

use crate::decode::{text, Cx, Fields};
use crate::yaml::Node;

/// The lowest TLS version the listener negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246), the spec's floor (R-01, R-34).
    #[default]
    V1_2,
    /// TLS 1.3 (RFC 8446).
    V1_3,
}

impl TlsVersion {
    /// `1.2` or `1.3`, as the model writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1_2 => "1.2",
            Self::V1_3 => "1.3",
        }
    }
}

/// A `tls:` block: the listener's certificate and the clients it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListener {
    /// Server certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Private key of `cert` (PEM).
    pub key: PathBuf,
    /// CA bundle (PEM) a client certificate must chain to.
    pub client_ca: PathBuf,
    /// Certificate revocation lists (PEM) for client certificates.
    pub crl: Option<PathBuf>,
    /// Lowest version negotiated (default 1.2).
    pub min_version: TlsVersion,
    /// 1-based line of the `tls:` mapping.
    pub line: u32,
}

impl TlsListener {
    /// Every file the block names, in model order (what a reload watches).
    pub fn files(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.cert, &self.key, &self.client_ca]
            .into_iter()
            .chain(self.crl.as_ref())
    }

    /// The same block with its files resolved by `resolve` (the model file's folder).
    pub fn resolved(&self, resolve: impl Fn(&std::path::Path) -> PathBuf) -> Self {
        Self {
            cert: resolve(&self.cert),
            key: resolve(&self.key),
            client_ca: resolve(&self.client_ca),
            crl: self.crl.as_deref().map(&resolve),
            min_version: self.min_version,
            line: self.line,
        }
    }
}

fn min_version(cx: &mut Cx, n: &Node, p: &str) -> Option<TlsVersion> {
    let s = text(cx, n, p)?;
    match s.trim() {
        "1.2" => Some(TlsVersion::V1_2),
        "1.3" => Some(TlsVersion::V1_3),
        "1.0" | "1.1" | "1" | "ssl3" => {
            cx.error(
                n,
                p,
                format!(
                    "TLS {s} is not allowed: Modbus/TCP Security forbids anything below 1.2 (R-34)"
                ),
            );
            None
        }
        _ => {
            cx.error(
                n,
                p,
                format!("`{s}` is not a TLS version; write \"1.2\" or \"1.3\""),
            );
            None
        }
    }
}

/// Decodes a `tls:` block.
pub(crate) fn decode_tls(cx: &mut Cx, n: &Node, p: &str) -> Option<TlsListener> {
    let mut f = Fields::open(cx, n, p, "a tls block")?;
    let cert = f.req(cx, "cert", text).map(PathBuf::from);
    let key = f.req(cx, "key", text).map(PathBuf::from);
    let client_ca = f.req(cx, "client_ca", text).map(PathBuf::from);
    let crl = f.opt(cx, "crl", text).map(PathBuf::from);
    let min_version = f.opt(cx, "min_version", min_version).unwrap_or_default();
    f.finish(cx);
    Some(TlsListener {
        cert: cert?,
        key: key?,
        client_ca: client_ca?,
        crl,
        min_version,
        line: n.line,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::load_str;

    fn gateway(tls: &str) -> Result<crate::GatewaySettings, crate::LoadErrors> {
        let text = format!(
            "conduits:\n  - conduit_id: C1\n    gateway:\n      listen: 127.0.0.1:802\n      upstream: tcp://10.0.0.1:502\n      tls:\n{tls}    rules: []\n"
        );
        load_str(&text, "m.yaml").map(|m| m.conduits[0].gateway.clone().unwrap())
    }

    #[test]
    fn tls_block_decodes_with_defaults() {
        let g = gateway("        cert: s.pem\n        key: s.key\n        client_ca: ca.pem\n")
            .unwrap();
        let t = g.tls.unwrap();
        assert_eq!(t.cert.to_str(), Some("s.pem"));
        assert_eq!(t.crl, None);
        assert_eq!(t.min_version, super::TlsVersion::V1_2);
        assert_eq!(t.files().count(), 3);
    }

    #[test]
    fn tls_min_version_below_1_2_is_refused() {
        for v in ["\"1.1\"", "1.0", "1.1"] {
            let e = gateway(&format!(
                "        cert: s.pem\n        key: s.key\n        client_ca: ca.pem\n        min_version: {v}\n"
            ))
            .unwrap_err();
            assert!(e.to_string().contains("R-34"), "{v}: {e}");
        }
        let g = gateway(
            "        cert: s.pem\n        key: s.key\n        client_ca: ca.pem\n        crl: r.crl\n        min_version: \"1.3\"\n",
        )
        .unwrap();
        let t = g.tls.unwrap();
        assert_eq!(t.min_version, super::TlsVersion::V1_3);
        assert_eq!(t.files().count(), 4);
    }

    #[test]
    fn tls_block_requires_client_ca() {
        let e = gateway("        cert: s.pem\n        key: s.key\n").unwrap_err();
        assert!(e.to_string().contains("client_ca"), "{e}");
    }
}
