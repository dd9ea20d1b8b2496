//! The model's top-level `admin:` section: the gateway's operations endpoint (metrics, health,
//! the dashboard; issue 9).
//!
//! ```yaml
//! admin:
//!   listen: 127.0.0.1:9502        # required; loopback unless token_file or tls is set
//!   token_file: /etc/zonegate/admin.token   # bearer token
//!   tls:                          # HTTPS with mutual TLS
//!     cert: pki/admin.pem         # the admin server's certificate chain (PEM), leaf first
//!     key: pki/admin.key          # its private key (PEM)
//!     client_ca: pki/ops-ca.pem   # CA bundle the operators' client certificates chain to
//!     crl: pki/ops.crl            # optional, as in a gateway's tls block
//!     min_version: "1.3"          # optional, "1.2" (default) or "1.3"
//! ```
//!
//! Off unless present. The admin port shows which masters talk to which device and what the
//! gateway denies: it is a security boundary of its own, so an address other than loopback
//! (or the unspecified address, which includes every interface) is refused unless the requests
//! must carry the bearer token read from `token_file`, or the client must present a
//! certificate chaining to `tls.client_ca` (mutual TLS, refused in the handshake otherwise).
//! With both, both are required. The `tls:` block is the one a gateway listener takes (same
//! keys, same checks; [`crate::TlsListener`]); its paths resolve against the model's folder.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::decode::{parsed, text, Cx, Fields};
use crate::yaml::Node;

/// The `admin:` section, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdminSettings {
    /// Where the admin HTTP server listens.
    pub listen: SocketAddr,
    /// File holding the bearer token every request must carry (`Authorization: Bearer ...`);
    /// relative to the model file's directory. `None`: no token (loopback only).
    pub token_file: Option<PathBuf>,
    /// HTTPS with mutual TLS: the server certificate and the CA client certificates must
    /// chain to. `None`: plain HTTP.
    pub tls: Option<crate::TlsListener>,
    /// 1-based line of the `admin:` mapping.
    pub line: u32,
}

/// Decodes the `admin:` section.
pub(crate) fn decode_admin(cx: &mut Cx, n: &Node, p: &str) -> Option<AdminSettings> {
    let mut f = Fields::open(cx, n, p, "an admin block")?;
    let listen = f.req(cx, "listen", |cx, n, p| {
        parsed(cx, n, p, |s| {
            s.trim().parse::<SocketAddr>().map_err(|_| {
                format!("`{s}` is not an address:port; write e.g. 127.0.0.1:9502 or [::1]:9502")
            })
        })
    });
    let token_file = f.opt(cx, "token_file", |cx, n, p| {
        let t = text(cx, n, p)?;
        if t.trim().is_empty() {
            cx.error(n, p, "a file path must not be empty");
            return None;
        }
        Some(PathBuf::from(t))
    });
    let tls = f.opt(cx, "tls", crate::tls::decode_tls);
    let keys = f.finish(cx);
    let listen = listen?;
    // A `tls` block written but wrong has its own error; this one is for none at all.
    let tls_written = keys.position("tls").is_some();
    if !listen.ip().is_loopback() && token_file.is_none() && !tls_written {
        let (line, column) = keys.position("listen").unwrap_or((n.line, n.column));
        cx.error_at(
            line,
            column,
            &crate::decode::join(p, "listen"),
            format!(
                "{listen} is not a loopback address: the admin port shows the plant's traffic and \
                 must not be open without a bearer token or mutual TLS; set `token_file` or \
                 `tls` (cert, key, client_ca), or listen on 127.0.0.1"
            ),
        );
        return None;
    }
    Some(AdminSettings {
        listen,
        token_file,
        tls,
        line: n.line,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    const BASE: &str = "zones: []\nconduits: []\n";

    #[test]
    fn loopback_without_a_token_loads() {
        let m = crate::load_str(
            &format!("{BASE}admin:\n  listen: 127.0.0.1:9502\n"),
            "m.yaml",
        )
        .unwrap();
        let a = m.admin.unwrap();
        assert_eq!(a.listen.to_string(), "127.0.0.1:9502");
        assert_eq!(a.token_file, None);
        assert!(
            crate::load_str(BASE, "m.yaml").unwrap().admin.is_none(),
            "off when absent"
        );
    }

    #[test]
    fn off_loopback_needs_a_token_file_and_the_error_names_the_line() {
        let text = format!("{BASE}admin:\n  listen: 0.0.0.0:9502\n");
        let err = crate::load_str(&text, "m.yaml").unwrap_err().to_string();
        assert!(err.contains("m.yaml:4:"), "{err}");
        assert!(err.contains("admin.listen"), "{err}");
        assert!(err.contains("token_file"), "{err}");
        let ok = format!("{BASE}admin:\n  listen: 10.0.0.1:9502\n  token_file: admin.token\n");
        let a = crate::load_str(&ok, "m.yaml").unwrap().admin.unwrap();
        assert_eq!(a.token_file.unwrap().to_str(), Some("admin.token"));
    }

    #[test]
    fn unknown_keys_and_bad_addresses_are_errors() {
        let err = crate::load_str(
            &format!("{BASE}admin:\n  listen: 127.0.0.1\n  tls: yes\n  color: red\n"),
            "m.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not an address:port"), "{err}");
        assert!(err.contains("admin.tls"), "{err}");
        assert!(err.contains("admin.color"), "{err}");
    }

    #[test]
    fn off_loopback_mutual_tls_alone_is_enough() {
        let text = format!(
            "{BASE}admin:\n  listen: 0.0.0.0:9502\n  tls:\n    cert: pki/admin.pem\n    key: pki/admin.key\n    client_ca: pki/ops-ca.pem\n"
        );
        let a = crate::load_str(&text, "m.yaml").unwrap().admin.unwrap();
        let t = a.tls.unwrap();
        assert_eq!(t.cert.to_str(), Some("pki/admin.pem"));
        assert_eq!(t.key.to_str(), Some("pki/admin.key"));
        assert_eq!(t.client_ca.to_str(), Some("pki/ops-ca.pem"));
        assert_eq!(t.line, 6, "the line of the mapping (its first key)");
        assert_eq!(a.token_file, None);
    }

    #[test]
    fn tls_and_token_together_load_and_both_are_kept() {
        let text = format!(
            "{BASE}admin:\n  listen: \"[::]:9502\"\n  token_file: t\n  tls:\n    cert: c\n    key: k\n    client_ca: ca\n    min_version: \"1.3\"\n"
        );
        let a = crate::load_str(&text, "m.yaml").unwrap().admin.unwrap();
        assert!(a.token_file.is_some());
        assert_eq!(a.tls.unwrap().min_version, crate::TlsVersion::V1_3);
    }

    #[test]
    fn an_admin_tls_block_without_client_ca_names_file_line_and_key() {
        let text =
            format!("{BASE}admin:\n  listen: 10.0.0.1:9502\n  tls:\n    cert: c\n    key: k\n");
        let err = crate::load_str(&text, "m.yaml").unwrap_err().to_string();
        assert!(err.contains("m.yaml:6:"), "{err}");
        assert!(err.contains("admin.tls"), "{err}");
        assert!(err.contains("client_ca"), "{err}");
        assert!(
            !err.contains("not a loopback"),
            "one error, the real one: {err}"
        );
        let bad = format!(
            "{BASE}admin:\n  listen: 127.0.0.1:9502\n  tls:\n    cert: c\n    key: k\n    client_ca: ca\n    min_version: \"1.1\"\n"
        );
        let err = crate::load_str(&bad, "m.yaml").unwrap_err().to_string();
        assert!(err.contains("m.yaml:9:"), "{err}");
        assert!(err.contains("admin.tls.min_version"), "{err}");
    }
}
