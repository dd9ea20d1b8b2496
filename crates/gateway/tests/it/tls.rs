//! Modbus/TCP Security (issue 10): the mutual-TLS listener, roles, refusals, resumption,
//! reload of the TLS files, and the `tls://` upstream. Certificates are made at run time
//! (rcgen); peers are tokio-rustls on loopback.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use zonegate_audit::{Event, Kind};
use zonegate_gateway::sim::{Device, Sim};
use zonegate_modbus::tcp::{decode_adu, encode_adu};
use zonegate_modbus::{Request, UnitId};

use super::util::{
    exception_of, read_holding, registers_of, temp_dir, write_one, Rig, HISTORIAN, WAIT,
};

/// The DER of the role extension's OID arcs.
const ROLE_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 50316, 802, 1];

/// A lab CA and the certificates made with it, as PEM files in `dir`.
pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

/// How a client certificate is made.
#[derive(Default, Clone)]
pub(crate) struct Leaf<'a> {
    pub(crate) role: Option<&'a str>,
    /// Raw extnValue bytes (for malformed roles), instead of `role`.
    pub(crate) raw_role: Option<Vec<u8>>,
    /// Two role extensions.
    pub(crate) twice: bool,
    pub(crate) expired: bool,
    pub(crate) not_yet_valid: bool,
    pub(crate) serial: Option<u8>,
}

fn utf8_der(s: &str) -> Vec<u8> {
    let mut v = vec![0x0C, u8::try_from(s.len()).unwrap()];
    v.extend_from_slice(s.as_bytes());
    v
}

/// The lab PKI's files go with it (they were left in the temp dir, 11 directories a run).
impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pki {
    pub(crate) fn new(name: &str) -> Self {
        let dir = temp_dir();
        let ca_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = p.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Self { dir, ca, ca_key }
    }

    pub(crate) fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server certificate (localhost, 127.0.0.1): `<name>.pem`, `<name>.key`.
    pub(crate) fn server(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        self.write(name, &cert.pem(), &key.serialize_pem())
    }

    /// A client certificate with CN `name`.
    pub(crate) fn client(&self, name: &str, leaf: &Leaf<'_>) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if let Some(s) = leaf.serial {
            p.serial_number = Some(SerialNumber::from(vec![s]));
        }
        if leaf.expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        if leaf.not_yet_valid {
            p.not_before = rcgen::date_time_ymd(2090, 1, 1);
            p.not_after = rcgen::date_time_ymd(2091, 1, 1);
        }
        let value = match (&leaf.raw_role, leaf.role) {
            (Some(raw), _) => Some(raw.clone()),
            (None, Some(r)) => Some(utf8_der(r)),
            _ => None,
        };
        if let Some(v) = value {
            p.custom_extensions
                .push(CustomExtension::from_oid_content(ROLE_OID, v));
            if leaf.twice {
                p.custom_extensions.push(CustomExtension::from_oid_content(
                    ROLE_OID,
                    utf8_der("Engineer"),
                ));
            }
        }
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        self.write(name, &cert.pem(), &key.serialize_pem())
    }

    /// A CRL revoking the certificates with these serials.
    pub(crate) fn crl(&self, serials: &[u8]) -> PathBuf {
        let now = rcgen::date_time_ymd(2026, 1, 1);
        let crl = CertificateRevocationListParams {
            this_update: now,
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(vec![1]),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(vec![*s]),
                    revocation_time: now,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.ca, &self.ca_key)
        .unwrap();
        let path = self.dir.join("ca.crl");
        std::fs::write(&path, crl.pem().unwrap()).unwrap();
        path
    }

    fn write(&self, name: &str, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let c = self.dir.join(format!("{name}.pem"));
        let k = self.dir.join(format!("{name}.key"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }
}

/// The `tls:` lines of a gateway block (indented 6).
fn tls_lines(cert: &Path, key: &Path, ca: &Path, extra: &str) -> String {
    format!(
        "      tls:\n        cert: {}\n        key: {}\n        client_ca: {}\n{extra}",
        cert.display(),
        key.display(),
        ca.display()
    )
}

/// Rules by role: an Operator reads, an Engineer also writes setpoints; `anyone` reads input
/// registers whatever the role (a rule without `roles:`).
const ROLE_RULES: &str = "      - id: operator-read
        from: [HIST]
        roles: [Operator, Engineer]
        functions: [read]
        holding: 0-199
      - id: engineer-write
        from: [HIST]
        roles: [Engineer]
        functions: [write_single_register]
        holding: 100-109
      - id: anyone-input
        from: [HIST]
        functions: [read_input_registers]
        input: 0-99
";

/// A client configuration trusting `ca`, presenting `cert`/`key` when given.
fn client_config(ca: &Path, cert: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match cert {
        Some((c, k)) => b
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(c)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(k).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    Arc::new(config)
}

async fn tcp_from(addr: SocketAddr, source: &str) -> TcpStream {
    let ip: IpAddr = source.parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(ip, 0)).unwrap();
    tokio::time::timeout(WAIT, socket.connect(addr))
        .await
        .unwrap()
        .unwrap()
}

/// A Modbus client over TLS.
struct TlsClient {
    stream: TlsStream<TcpStream>,
    buf: Vec<u8>,
    tid: u16,
}

impl TlsClient {
    async fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> std::io::Result<Self> {
        let tcp = tcp_from(addr, HISTORIAN).await;
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = ServerName::try_from("localhost").unwrap();
        let stream = tokio::time::timeout(WAIT, connector.connect(name, tcp))
            .await
            .map_err(|_| std::io::Error::other("handshake timed out"))??;
        Ok(Self {
            stream,
            buf: Vec::new(),
            tid: 1,
        })
    }

    /// Sends a request, returns the answer PDU (`Err` when the connection failed first).
    async fn call(&mut self, request: &Request<'_>) -> std::io::Result<Vec<u8>> {
        let mut pdu = [0u8; 253];
        let n = request.encode(&mut pdu).unwrap();
        let mut adu = [0u8; 260];
        let m = encode_adu(self.tid, UnitId::new(1), &pdu[..n], &mut adu).unwrap();
        self.tid += 1;
        self.stream.write_all(&adu[..m]).await?;
        self.stream.flush().await?;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(Some(a)) = decode_adu(&self.buf) {
                let pdu = a.pdu.to_vec();
                let n = a.wire_len();
                self.buf.drain(..n);
                return Ok(pdu);
            }
            let mut chunk = [0u8; 512];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
            }
        }
    }
}

/// A rig whose listener speaks Modbus/TCP Security, with [`ROLE_RULES`].
async fn tls_rig(pki: &Pki, extra: &str) -> Rig {
    let (cert, key) = pki.server("gateway");
    Rig::start(&tls_lines(&cert, &key, &pki.ca(), extra), Some(ROLE_RULES)).await
}

fn connections(events: &[Event]) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| e.kind == Kind::Connection)
        .collect()
}

async fn refusal_reason(rig: &Rig, reason: &str) -> Vec<Event> {
    let want = reason.to_owned();
    rig.events_until(move |ev| {
        ev.iter()
            .any(|e| e.kind == Kind::Connection && e.reason.as_deref() == Some(want.as_str()))
    })
    .await
}

#[tokio::test]
async fn tls_operator_reads_and_is_refused_a_write_with_exception_01() {
    let pki = Pki::new("lab CA");
    let rig = tls_rig(&pki, "").await;
    let (c, k) = pki.client(
        "op1",
        &Leaf {
            role: Some("Operator"),
            ..Leaf::default()
        },
    );
    let mut client = TlsClient::connect(rig.addr, client_config(&pki.ca(), Some((&c, &k))))
        .await
        .unwrap();
    let read = client.call(&read_holding(100, 2)).await.unwrap();
    assert_eq!(exception_of(&read), None, "{read:?}");
    assert_eq!(registers_of(&read).len(), 2);
    let write = client.call(&write_one(100, 200)).await.unwrap();
    assert_eq!(exception_of(&write), Some(0x01), "R-31: role not allowed");

    let events = rig
        .events_until(|ev| {
            ev.iter()
                .any(|e| e.reason.as_deref() == Some("role_not_allowed"))
        })
        .await;
    let fp = {
        let pem = std::fs::read(&c).unwrap();
        let der = CertificateDer::from_pem_slice(&pem).unwrap();
        zonegate_audit::sha256_hex(&der)
    };
    let requests: Vec<&Event> = events.iter().filter(|e| e.fc.is_some()).collect();
    assert!(requests.len() >= 2, "{events:?}");
    for e in &requests {
        assert_eq!(e.role.as_deref(), Some("Operator"), "{e:?}");
        assert_eq!(e.peer_subject.as_deref(), Some("CN=op1"), "{e:?}");
        assert_eq!(e.peer_fingerprint.as_deref(), Some(fp.as_str()), "{e:?}");
    }
    let est = connections(&events);
    assert!(
        est.iter()
            .any(|e| e.reason.as_deref() == Some("tls_established")
                && e.role.as_deref() == Some("Operator")),
        "{est:?}"
    );
    rig.stop().await;
}

#[tokio::test]
async fn tls_engineer_role_may_write() {
    let pki = Pki::new("lab CA");
    let rig = tls_rig(&pki, "").await;
    let (c, k) = pki.client(
        "eng1",
        &Leaf {
            role: Some("Engineer"),
            ..Leaf::default()
        },
    );
    let mut client = TlsClient::connect(rig.addr, client_config(&pki.ca(), Some((&c, &k))))
        .await
        .unwrap();
    let write = client.call(&write_one(100, 200)).await.unwrap();
    assert_eq!(exception_of(&write), None, "{write:?}");
    rig.stop().await;
}

/// Each malformed role is no role: the handshake succeeds, a rule with `roles:` never
/// matches, a rule without `roles:` still does, and the connection record says why.
#[tokio::test]
async fn tls_malformed_roles_are_the_null_role_and_the_record_says_why() {
    let pki = Pki::new("lab CA");
    let rig = tls_rig(&pki, "").await;
    let long = "a".repeat(200);
    let cases: Vec<(&str, Leaf<'_>, &str)> = vec![
        ("none", Leaf::default(), "role_absent"),
        (
            "bare",
            Leaf {
                raw_role: Some(b"Operator".to_vec()),
                ..Leaf::default()
            },
            "role_not_utf8string",
        ),
        (
            "twice",
            Leaf {
                role: Some("Operator"),
                twice: true,
                ..Leaf::default()
            },
            "role_duplicate",
        ),
        (
            "long",
            Leaf {
                raw_role: Some({
                    let mut v = vec![0x0C, 0x81, 200];
                    v.extend_from_slice(long.as_bytes());
                    v
                }),
                ..Leaf::default()
            },
            "role_too_long",
        ),
    ];
    for (name, leaf, why) in cases {
        let (c, k) = pki.client(name, &leaf);
        let mut client = TlsClient::connect(rig.addr, client_config(&pki.ca(), Some((&c, &k))))
            .await
            .unwrap();
        let read = client.call(&read_holding(100, 1)).await.unwrap();
        assert_eq!(
            exception_of(&read),
            Some(0x01),
            "{name}: roles: never matches no role"
        );
        let input = client.call(&super::util::read_input(0, 1)).await.unwrap();
        assert_eq!(
            exception_of(&input),
            None,
            "{name}: a rule without roles matches"
        );
        let subject = format!("CN={name}");
        let events = rig
            .events_until(|ev| {
                ev.iter().any(|e| {
                    e.kind == Kind::Connection && e.peer_subject.as_deref() == Some(&subject)
                })
            })
            .await;
        let rec = events
            .iter()
            .find(|e| e.kind == Kind::Connection && e.peer_subject.as_deref() == Some(&subject))
            .unwrap();
        assert_eq!(rec.reason.as_deref(), Some(why), "{name}: {rec:?}");
        assert_eq!(rec.role, None);
    }
    rig.stop().await;
}

/// Each refusal of the handshake is one `connection` record with why; no request goes
/// through.
#[tokio::test]
async fn tls_handshake_refusals_are_recorded_with_why() {
    let pki = Pki::new("lab CA");
    let other = Pki::new("another CA");
    let (rc, rk) = pki.client(
        "revoked",
        &Leaf {
            role: Some("Operator"),
            serial: Some(66),
            ..Leaf::default()
        },
    );
    let crl = pki.crl(&[66]);
    let rig = tls_rig(&pki, &format!("        crl: {}\n", crl.display())).await;
    let op = Leaf {
        role: Some("Operator"),
        ..Leaf::default()
    };
    let (oc, ok) = other.client("stranger", &op);
    let (ec, ek) = pki.client(
        "expired",
        &Leaf {
            expired: true,
            ..op.clone()
        },
    );
    let (nc, nk) = pki.client(
        "early",
        &Leaf {
            not_yet_valid: true,
            ..op.clone()
        },
    );
    let cases: Vec<(Option<(PathBuf, PathBuf)>, &str)> = vec![
        (None, "no_client_certificate"),
        (Some((oc, ok)), "certificate_unknown_issuer"),
        (Some((ec, ek)), "certificate_expired"),
        (Some((nc, nk)), "certificate_not_yet_valid"),
        (Some((rc, rk)), "certificate_revoked"),
    ];
    for (cert, reason) in cases {
        let config = client_config(
            &pki.ca(),
            cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        );
        // Under TLS 1.3 the client's handshake may complete before the server's alert comes:
        // then the first request fails instead.
        if let Ok(mut c) = TlsClient::connect(rig.addr, config).await {
            assert!(c.call(&read_holding(100, 1)).await.is_err(), "{reason}");
        }
        let events = refusal_reason(&rig, reason).await;
        let rec = connections(&events)
            .into_iter()
            .find(|e| e.reason.as_deref() == Some(reason));
        assert!(rec.is_some(), "no {reason} record in {events:?}");
        assert_eq!(rec.unwrap().src.as_deref(), Some(HISTORIAN));
    }
    let events = rig.events_until(|_| true).await;
    assert!(
        events.iter().all(|e| e.fc.is_none()),
        "no request of a refused client reached the policy: {events:?}"
    );
    rig.stop().await;
}

#[tokio::test]
async fn tls_plaintext_modbus_sent_to_the_tls_port_is_never_answered() {
    let pki = Pki::new("lab CA");
    let rig = tls_rig(&pki, "").await;
    let mut tcp = tcp_from(rig.addr, HISTORIAN).await;
    let mut pdu = [0u8; 253];
    let n = read_holding(100, 1).encode(&mut pdu).unwrap();
    let mut adu = [0u8; 260];
    let m = encode_adu(7, UnitId::new(1), &pdu[..n], &mut adu).unwrap();
    tcp.write_all(&adu[..m]).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut got)).await;
    assert!(
        decode_adu(&got).map_or(true, |a| a.is_none()),
        "a Modbus answer on the TLS port: {got:?}"
    );
    let events = refusal_reason(&rig, "not_tls").await;
    assert!(connections(&events)
        .iter()
        .any(|e| e.reason.as_deref() == Some("not_tls")));
    rig.stop().await;
}

/// R-42 / §8.4: a resumed session keeps the role of its certificate, checked on every
/// request.
#[tokio::test]
async fn tls_resumed_session_keeps_its_role_checked_on_every_request() {
    let pki = Pki::new("lab CA");
    let rig = tls_rig(&pki, "").await;
    let (c, k) = pki.client(
        "op-resume",
        &Leaf {
            role: Some("Operator"),
            ..Leaf::default()
        },
    );
    let config = client_config(&pki.ca(), Some((&c, &k)));
    for round in 0..2 {
        let mut client = TlsClient::connect(rig.addr, Arc::clone(&config))
            .await
            .unwrap();
        let read = client.call(&read_holding(100, 1)).await.unwrap();
        assert_eq!(exception_of(&read), None, "round {round}");
        let write = client.call(&write_one(100, 200)).await.unwrap();
        assert_eq!(exception_of(&write), Some(0x01), "round {round}");
        drop(client);
    }
    let events = rig
        .events_until(|ev| {
            ev.iter().any(|e| {
                e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("resumed handshake"))
            })
        })
        .await;
    let resumed = events
        .iter()
        .find(|e| {
            e.message
                .as_deref()
                .is_some_and(|m| m.contains("resumed handshake"))
        })
        .expect("the second connection resumed the session");
    assert_eq!(resumed.role.as_deref(), Some("Operator"));
    rig.stop().await;
}

/// A reload with a bad key file keeps the TLS settings in force, names the file, and drops
/// no session; a good one is applied to the next handshake.
#[tokio::test]
async fn tls_reload_with_a_bad_key_file_keeps_the_tls_settings_and_the_sessions() {
    let pki = Pki::new("lab CA");
    let rig = tls_rig(&pki, "").await;
    let (c, k) = pki.client(
        "op-reload",
        &Leaf {
            role: Some("Operator"),
            ..Leaf::default()
        },
    );
    let config = client_config(&pki.ca(), Some((&c, &k)));
    let mut client = TlsClient::connect(rig.addr, Arc::clone(&config))
        .await
        .unwrap();
    assert_eq!(
        exception_of(&client.call(&read_holding(100, 1)).await.unwrap()),
        None
    );

    let key = pki.dir.join("gateway.key");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = rig.gateway.reload().unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("tls.key") && text.contains("gateway.key"),
        "{text}"
    );
    let events = rig
        .events_until(|ev| ev.iter().any(|e| e.kind == Kind::PolicyRejected))
        .await;
    assert!(events.iter().any(|e| e.kind == Kind::PolicyRejected
        && e.message
            .as_deref()
            .is_some_and(|m| m.contains("gateway.key"))));

    // The session goes on, and new handshakes still use the certificate in force.
    assert_eq!(
        exception_of(&client.call(&read_holding(100, 1)).await.unwrap()),
        None
    );
    let mut second = TlsClient::connect(rig.addr, Arc::clone(&config))
        .await
        .unwrap();
    assert_eq!(
        exception_of(&second.call(&read_holding(100, 1)).await.unwrap()),
        None
    );

    // A good new certificate is applied without dropping the session.
    let _ = pki.server("gateway");
    assert!(rig.gateway.reload().is_ok());
    assert_eq!(
        exception_of(&client.call(&read_holding(100, 1)).await.unwrap()),
        None
    );
    let mut third = TlsClient::connect(rig.addr, config).await.unwrap();
    assert_eq!(
        exception_of(&third.call(&read_holding(100, 1)).await.unwrap()),
        None
    );
    rig.stop().await;
}

#[tokio::test]
async fn tls_min_version_1_3_refuses_a_tls_1_2_client() {
    let pki = Pki::new("lab CA");
    let rig = tls_rig(&pki, "        min_version: \"1.3\"\n").await;
    let (c, k) = pki.client(
        "op12",
        &Leaf {
            role: Some("Operator"),
            ..Leaf::default()
        },
    );
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(pki.ca()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![CertificateDer::from_pem_file(&c).unwrap()],
        PrivateKeyDer::from_pem_file(&k).unwrap(),
    )
    .unwrap();
    assert!(TlsClient::connect(rig.addr, Arc::new(config))
        .await
        .is_err());
    let events = refusal_reason(&rig, "tls_incompatible").await;
    assert!(connections(&events)
        .iter()
        .any(|e| e.reason.as_deref() == Some("tls_incompatible")));
    rig.stop().await;
}

/// A Modbus/TCP Security device: a TLS server requiring a client certificate from `ca`, in
/// front of the simulated device (one request in flight per connection).
async fn tls_device(pki: &Pki, sim: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let (cert, key) = pki.server("device");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(pki.ca()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_file(&cert).unwrap()],
            PrivateKeyDer::from_pem_file(&key).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut plc) = TcpStream::connect(sim).await else {
                    return;
                };
                let _ = tokio::time::timeout(
                    Duration::from_secs(20),
                    tokio::io::copy_bidirectional(&mut tls, &mut plc),
                )
                .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn tls_upstream_verifies_the_device_and_presents_the_gateway_certificate() {
    let pki = Pki::new("device CA");
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    let (device, task) = tls_device(&pki, sim.local_addr()).await;
    let (gc, gk) = pki.client("gateway-as-client", &Leaf::default());
    // The util model writes `upstream: tcp://..`: start so, then reload to the TLS device.
    let rig = Rig::start_at(sim, device, "", None).await;
    let text = std::fs::read_to_string(&rig.model_path).unwrap().replace(
        &format!("upstream: tcp://{device}"),
        &format!(
            "upstream: tls://127.0.0.1:{}?ca={}&cert={}&key={}&server_name=localhost",
            device.port(),
            pki.ca().display(),
            gc.display(),
            gk.display()
        ),
    );
    std::fs::write(&rig.model_path, &text).unwrap();
    rig.gateway.reload().unwrap();
    let mut client = rig.client(HISTORIAN).await;
    for _ in 0..3 {
        let read = client.call(1, &read_holding(100, 2)).await;
        assert_eq!(exception_of(&read), None, "{read:?}");
        assert_eq!(registers_of(&read).len(), 2);
    }

    // A name the device certificate does not carry: 0x0A and why.
    let bad = text.replace("server_name=localhost", "server_name=plc.example");
    std::fs::write(&rig.model_path, &bad).unwrap();
    rig.gateway.reload().unwrap();
    let mut fresh = rig.client(HISTORIAN).await;
    drop(client);
    // The idle TLS connection verified under the old settings is not reused.
    let r = fresh.call(1, &read_holding(100, 1)).await;
    assert_eq!(
        exception_of(&r),
        Some(0x0A),
        "a device failing verification: {r:?}"
    );
    let events = rig
        .events_until(|ev| {
            ev.iter()
                .any(|e| e.reason.as_deref() == Some("upstream_tls_failed"))
        })
        .await;
    let rec = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("upstream_tls_failed"))
        .expect("a record of the failed device handshake");
    assert!(
        rec.message
            .as_deref()
            .is_some_and(|m| m.contains("certificate")),
        "{rec:?}"
    );
    task.abort();
    rig.stop().await;
}
