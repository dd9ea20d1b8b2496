//! `admin: {tls: {cert, key, client_ca}}`: the endpoint serves HTTPS and a client must present
//! a certificate chaining to `client_ca`. Certificates are made at run time (rcgen); the model
//! is loaded from a file so its relative paths resolve as `zonegate run` resolves them; the
//! client is tokio-rustls on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zonegate_admin::Admin;
use zonegate_gateway::Metrics;

/// Bound of every network step of these tests.
const WAIT: Duration = Duration::from_secs(5);

/// A lab CA writing its certificates as PEM files into `dir`.
struct Ca {
    dir: PathBuf,
    name: String,
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        Self {
            dir: dir.to_owned(),
            name: name.to_owned(),
            cert,
            key,
        }
    }

    fn pem(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.name))
    }

    /// A leaf `<name>.pem` / `<name>.key`: a server certificate for 127.0.0.1, or a client one.
    fn leaf(&self, name: &str, server: bool) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let sans = if server {
            vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
        } else {
            Vec::new()
        };
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let (c, k) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// The lab: the operators' CA (server and client certificates) and a foreign CA.
struct Lab {
    dir: tempfile::TempDir,
    ops: Ca,
    other: Ca,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let ops = Ca::new(dir.path(), "ops-ca");
    let other = Ca::new(dir.path(), "other-ca");
    ops.leaf("admin", true);
    ops.leaf("operator", false);
    other.leaf("intruder", false);
    Lab { dir, ops, other }
}

/// Loads a model with this `admin:` block from a file in the lab folder, as `zonegate run`
/// does, and starts the endpoint it describes.
async fn start(lab: &Lab, admin_block: &str, token: Option<&str>) -> Admin {
    let path = lab.dir.path().join("model.yaml");
    std::fs::write(&path, format!("zones: []\nconduits: []\n{admin_block}")).unwrap();
    let model = zonegate_policy::load_file(&path).unwrap();
    let a = model.admin.clone().unwrap();
    let t = a.tls.unwrap().resolved(|p| model.resolve(p));
    let config = zonegate_admin::tls_config(&t).unwrap();
    Admin::start_with_tls(
        a.listen,
        Arc::new(Metrics::new()),
        token.map(str::to_owned),
        Some(config),
    )
    .await
    .unwrap()
}

const TLS_BLOCK: &str = "admin:\n  listen: 127.0.0.1:0\n  tls:\n    cert: admin.pem\n    key: admin.key\n    client_ca: ops-ca.pem\n";

/// One HTTPS GET; `Ok(status line and rest)` or `Err(why the TLS or HTTP exchange failed)`.
async fn get(
    addr: SocketAddr,
    trust: &Path,
    client: Option<(&Path, &Path)>,
    path: &str,
    token: Option<&str>,
) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(trust).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((c, k)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(c)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(k).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let socket = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let exchange = async {
        let mut s = connector
            .connect(name, socket)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
        // TLS 1.3: the client's handshake ends before the server has checked its certificate;
        // a refusal arrives as an alert on the first read.
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if out.is_empty() {
            return Err("closed without an answer".to_owned());
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .map_err(|_| "no answer in time".to_owned())?
}

fn status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_client_certificate_from_client_ca_gets_healthz() {
    let lab = lab();
    let admin = start(&lab, TLS_BLOCK, None).await;
    assert!(
        admin.url().starts_with("https://127.0.0.1:"),
        "{}",
        admin.url()
    );
    let d = lab.dir.path();
    let client = (d.join("operator.pem"), d.join("operator.key"));
    let answer = get(
        admin.addr(),
        &lab.ops.pem(),
        Some((&client.0, &client.1)),
        "/healthz",
        None,
    )
    .await
    .unwrap();
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");
    let answer = get(
        admin.addr(),
        &lab.ops.pem(),
        Some((&client.0, &client.1)),
        "/metrics",
        None,
    )
    .await
    .unwrap();
    assert!(answer.contains("zonegate_build_info"), "{answer}");
    admin.stop();
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_in_the_handshake() {
    let lab = lab();
    let admin = start(&lab, TLS_BLOCK, None).await;
    let why = get(admin.addr(), &lab.ops.pem(), None, "/healthz", None)
        .await
        .unwrap_err();
    // rustls names the alert the server sent: certificate required (TLS 1.3).
    assert!(
        why.to_ascii_lowercase().contains("certificate"),
        "refused for the certificate: {why}"
    );
    // Plain HTTP on the HTTPS port is no way round it either.
    let mut s = TcpStream::connect(admin.addr()).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
    assert!(
        !String::from_utf8_lossy(&out).contains("200 OK"),
        "no HTTP answer without TLS"
    );
    admin.stop();
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let lab = lab();
    let admin = start(&lab, TLS_BLOCK, None).await;
    let d = lab.dir.path();
    let (c, k) = (d.join("intruder.pem"), d.join("intruder.key"));
    let why = get(
        admin.addr(),
        &lab.ops.pem(),
        Some((&c, &k)),
        "/healthz",
        None,
    )
    .await
    .unwrap_err();
    assert!(
        why.to_ascii_lowercase().contains("unknown")
            || why.to_ascii_lowercase().contains("certificate"),
        "refused for the issuer: {why}"
    );
    // The operators' CA is the only one: the foreign CA's own name changes nothing.
    assert_ne!(lab.other.pem(), lab.ops.pem());
    admin.stop();
}

#[tokio::test]
async fn with_tls_and_a_token_both_are_required() {
    let lab = lab();
    let token = "0123456789abcdef-admin";
    let admin = start(&lab, TLS_BLOCK, Some(token)).await;
    let d = lab.dir.path();
    let client = (d.join("operator.pem"), d.join("operator.key"));
    let cert = Some((client.0.as_path(), client.1.as_path()));
    let no_token = get(admin.addr(), &lab.ops.pem(), cert, "/metrics", None)
        .await
        .unwrap();
    assert_eq!(status(&no_token), 401, "{no_token}");
    let both = get(admin.addr(), &lab.ops.pem(), cert, "/metrics", Some(token))
        .await
        .unwrap();
    assert_eq!(status(&both), 200, "{both}");
    assert!(
        get(admin.addr(), &lab.ops.pem(), None, "/metrics", Some(token))
            .await
            .is_err()
    );
    admin.stop();
}

#[tokio::test]
async fn refused_handshakes_are_counted_by_reason() {
    let lab = lab();
    let path = lab.dir.path().join("model.yaml");
    std::fs::write(&path, format!("zones: []\nconduits: []\n{TLS_BLOCK}")).unwrap();
    let model = zonegate_policy::load_file(&path).unwrap();
    let a = model.admin.clone().unwrap();
    let t = a.tls.unwrap().resolved(|p| model.resolve(p));
    let metrics = Arc::new(Metrics::new());
    let admin = Admin::start_with_tls(
        a.listen,
        Arc::clone(&metrics),
        None,
        Some(zonegate_admin::tls_config(&t).unwrap()),
    )
    .await
    .unwrap();
    let _ = get(admin.addr(), &lab.ops.pem(), None, "/healthz", None).await;
    let mut text = String::new();
    for _ in 0..50 {
        text = metrics.encode();
        if text.contains("zonegate_admin_tls_refused_total{reason=\"no_client_certificate\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        text.contains("zonegate_admin_tls_refused_total{reason=\"no_client_certificate\"} 1"),
        "{text}"
    );
    admin.stop();
}

#[test]
fn a_key_that_does_not_fit_the_certificate_names_the_file() {
    let lab = lab();
    let path = lab.dir.path().join("model.yaml");
    std::fs::write(
        &path,
        "zones: []\nconduits: []\nadmin:\n  listen: 127.0.0.1:0\n  tls:\n    cert: admin.pem\n    key: operator.key\n    client_ca: ops-ca.pem\n",
    )
    .unwrap();
    let model = zonegate_policy::load_file(&path).unwrap();
    let t = model
        .admin
        .clone()
        .unwrap()
        .tls
        .unwrap()
        .resolved(|p| model.resolve(p));
    let err = zonegate_admin::tls_config(&t).unwrap_err();
    assert!(err.contains("operator.key"), "{err}");
}
