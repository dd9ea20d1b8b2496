//! The model's top-level `admin:` section: the gateway's operations endpoint (metrics, health,
//! the dashboard; issue 9).
//!
//! ```yaml
//! admin:
//!   listen: 127.0.0.1:9502        # required; loopback unless token_file is set
//!   token_file: /etc/zonegate/admin.token   # bearer token, required off loopback
//! ```
//!
//! Off unless present. The admin port shows which masters talk to which device and what the
//! gateway denies: it is a security boundary of its own, so an address other than loopback
//! (or the unspecified address, which includes every interface) is refused unless the requests
//! must carry the bearer token read from `token_file`.

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
    let keys = f.finish(cx);
    let listen = listen?;
    if !listen.ip().is_loopback() && token_file.is_none() {
        let (line, column) = keys.position("listen").unwrap_or((n.line, n.column));
        cx.error_at(
            line,
            column,
            &crate::decode::join(p, "listen"),
            format!(
                "{listen} is not a loopback address: the admin port shows the plant's traffic and \
                 must not be open without a bearer token; set `token_file`, or listen on \
                 127.0.0.1"
            ),
        );
        return None;
    }
    Some(AdminSettings {
        listen,
        token_file,
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
            &format!("{BASE}admin:\n  listen: 127.0.0.1\n  tls: yes\n"),
            "m.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not an address:port"), "{err}");
        assert!(err.contains("admin.tls"), "{err}");
    }
}
