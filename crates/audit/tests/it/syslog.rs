//! SIEM export: a real rsyslogd on loopback (UDP and TCP octet counting, and TLS through
//! rsyslog's gtls driver when Debian's rsyslog-gnutls is installed), a rustls collector in the
//! test for TLS details (trust failures), and the never-blocking queue when the collector is down.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use zonegate_audit::{SyslogConfig, SyslogTransport, VerifyOptions};

use super::util::*;

fn rsyslogd() -> Option<PathBuf> {
    [
        "/usr/sbin/rsyslogd",
        "/sbin/rsyslogd",
        "/usr/local/sbin/rsyslogd",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

struct Daemon {
    child: Child,
    out: PathBuf,
    udp: u16,
    tcp: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_ports() -> (u16, u16) {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        u.local_addr().unwrap().port(),
        t.local_addr().unwrap().port(),
    )
}

/// Starts rsyslogd with its own config in `dir`, listening on loopback only.
fn start_rsyslogd(bin: &Path, dir: &Path) -> Daemon {
    let (udp, tcp) = free_ports();
    let out = dir.join("received.log");
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{d}")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="zg" type="string" string="%app-name%|%msgid%|%structured-data%|%msg%\n")
*.* action(type="omfile" file="{out}" template="zg")
"#,
            d = dir.display(),
            out = out.display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", tcp)).is_err() {
        assert!(
            Instant::now() < deadline,
            "rsyslogd did not start listening"
        );
        thread::sleep(Duration::from_millis(20));
    }
    // imudp may bind after imtcp: probe both until rsyslog has written a probe of each.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let _ = probe.send_to(b"<14>1 - - probe - - - probe-udp", ("127.0.0.1", udp));
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.contains("probe-udp") {
            break;
        }
        assert!(Instant::now() < deadline, "rsyslogd did not receive UDP");
        thread::sleep(Duration::from_millis(50));
    }
    Daemon {
        child,
        out,
        udp,
        tcp,
    }
}

/// Lines rsyslog wrote, once every one of `want` has arrived at the end of one (bounded wait).
fn received(out: &Path, want: &[String]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<String> = std::fs::read_to_string(out)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        let all = want
            .iter()
            .all(|w| lines.iter().any(|l| l.ends_with(w.as_str())));
        if all || Instant::now() > deadline {
            return lines;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn export_through(transport: SyslogTransport, port: u16, daemon: &Daemon, log_dir: &Path) {
    let mut c = config(log_dir);
    c.syslog = Some(SyslogConfig::new(transport, format!("127.0.0.1:{port}")));
    let h = start(c);
    append_n(&h, 5, true);
    h.shutdown().wait().unwrap();
    let stats = h.stats();
    assert_eq!(stats.export_sent, 8, "{stats:?}");
    assert_eq!(stats.export_dropped, 0);
    let log_lines = lines(&log_dir.join("audit.log"));
    let got = received(&daemon.out, &log_lines);
    for log_line in &log_lines {
        let hit = got.iter().find(|g| g.ends_with(log_line.as_str()));
        let hit = hit.unwrap_or_else(|| panic!("{log_line} not received: {got:#?}"));
        let parts: Vec<&str> = hit.splitn(4, '|').collect();
        assert_eq!(parts[0], "zonegate");
        let ev: zonegate_audit::Event = serde_json::from_str(log_line).unwrap();
        assert_eq!(parts[1], ev.kind.as_str());
        assert!(parts[2].starts_with(&format!("[zonegate@32473 seq=\"{}\"", ev.seq.unwrap())));
    }
}

#[test]
fn rsyslog_receives_udp_and_tcp() {
    let Some(bin) = rsyslogd() else {
        eprintln!("\n\n*** SKIPPED rsyslog_receives_udp_and_tcp: rsyslogd is not installed (apt-get install rsyslog) ***\n\n");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_rsyslogd(&bin, dir.path());
    let udp_dir = tempfile::tempdir().unwrap();
    export_through(SyslogTransport::Udp, daemon.udp, &daemon, udp_dir.path());
    let tcp_dir = tempfile::tempdir().unwrap();
    export_through(SyslogTransport::Tcp, daemon.tcp, &daemon, tcp_dir.path());
}

#[test]
fn collector_down_drops_and_counts_without_blocking_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (_, port) = free_ports(); // nothing listens there
    let mut c = config(dir.path());
    let mut s = SyslogConfig::new(SyslogTransport::Tcp, format!("127.0.0.1:{port}"));
    s.queue = 4;
    c.syslog = Some(s);
    let h = start(c);
    let t = Instant::now();
    append_n(&h, 200, false);
    assert!(t.elapsed() < Duration::from_secs(5));
    h.shutdown().wait().unwrap();
    let st = h.stats();
    assert_eq!(st.export_sent, 0);
    assert_eq!(st.export_dropped, 203, "{st:?}");
    assert!(verify_dir(dir.path(), &VerifyOptions::default()).is_ok());
}

struct Pki {
    ca_pem: String,
    leaf_der: Vec<u8>,
    leaf_key_der: Vec<u8>,
    leaf_pem: String,
    leaf_key_pem: String,
    ca_der: Vec<u8>,
    client_pem: String,
    client_key_pem: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["gateway.example".to_owned()])
        .unwrap()
        .signed_by(&client_key, &ca, &ca_key)
        .unwrap();
    Pki {
        ca_der: ca.der().to_vec(),
        client_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
        ca_pem: ca.pem(),
        leaf_der: leaf.der().to_vec(),
        leaf_key_der: leaf_key.serialize_der(),
        leaf_pem: leaf.pem(),
        leaf_key_pem: leaf_key.serialize_pem(),
    }
}

/// A one-connection RFC 5425 collector: TLS, then octet-counted frames until EOF.
fn tls_collector(p: &Pki) -> (u16, thread::JoinHandle<Vec<String>>) {
    tls_collector_with(p, false)
}

/// `require_client`: mutual TLS, client certificates must chain to the test CA.
fn tls_collector_with(p: &Pki, require_client: bool) -> (u16, thread::JoinHandle<Vec<String>>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(p.ca_der.clone())).unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let cfg = builder
        .with_single_cert(
            vec![CertificateDer::from(p.leaf_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(p.leaf_key_der.clone())),
        )
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(cfg)).unwrap();
        let mut r = BufReader::new(rustls::StreamOwned::new(conn, sock));
        let mut msgs = Vec::new();
        for _ in 0..10_000 {
            let mut len = Vec::new();
            if r.read_until(b' ', &mut len).unwrap_or(0) == 0 {
                break;
            }
            let n: usize = std::str::from_utf8(&len).unwrap().trim().parse().unwrap();
            let mut msg = vec![0; n];
            if r.read_exact(&mut msg).is_err() {
                break;
            }
            msgs.push(String::from_utf8(msg).unwrap());
        }
        msgs
    });
    (port, t)
}

#[test]
fn tls_export_reaches_a_rustls_collector() {
    let p = pki();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &p.ca_pem).unwrap();
    let (port, collector) = tls_collector(&p);
    let mut c = config(dir.path());
    let mut s = SyslogConfig::new(SyslogTransport::Tls, format!("127.0.0.1:{port}"));
    s.ca_file = Some(ca);
    s.server_name = Some("localhost".into());
    c.syslog = Some(s);
    let h = start(c);
    append_n(&h, 4, true);
    h.shutdown().wait().unwrap();
    let msgs = collector.join().unwrap();
    let log_lines = lines(&dir.path().join("audit.log"));
    assert_eq!(msgs.len(), log_lines.len(), "{msgs:#?}");
    for (m, l) in msgs.iter().zip(&log_lines) {
        assert!(m.starts_with('<') && m.contains(">1 "), "{m}");
        assert!(m.ends_with(l.as_str()), "{m}");
    }
}

#[test]
fn tls_export_refuses_an_untrusted_collector() {
    let p = pki();
    let other = pki();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &other.ca_pem).unwrap(); // not the collector's CA
    let (port, collector) = tls_collector(&p);
    let mut c = config(dir.path());
    let mut s = SyslogConfig::new(SyslogTransport::Tls, format!("127.0.0.1:{port}"));
    s.ca_file = Some(ca);
    s.server_name = Some("localhost".into());
    c.syslog = Some(s);
    let h = start(c);
    append_n(&h, 3, true);
    h.shutdown().wait().unwrap();
    let st = h.stats();
    assert_eq!(st.export_sent, 0, "{st:?}");
    assert!(st.export_errors >= 1);
    assert!(collector.join().unwrap().is_empty());
}

#[test]
fn tls_without_ca_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.syslog = Some(SyslogConfig::new(SyslogTransport::Tls, "127.0.0.1:6514"));
    let e = zonegate_audit::AuditLog::start(c).unwrap_err();
    assert!(e.to_string().contains("ca_file"), "{e}");
}

#[test]
fn mutual_tls_presents_the_client_certificate() {
    let p = pki();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, text) in [
        ("ca.pem", &p.ca_pem),
        ("client.pem", &p.client_pem),
        ("client.key", &p.client_key_pem),
    ] {
        std::fs::write(d.join(name), text).unwrap();
    }
    let run = |with_cert: bool| {
        let (port, collector) = tls_collector_with(&p, true);
        let log_dir = tempfile::tempdir().unwrap();
        let mut c = config(log_dir.path());
        let mut s = SyslogConfig::new(SyslogTransport::Tls, format!("127.0.0.1:{port}"));
        s.ca_file = Some(d.join("ca.pem"));
        s.server_name = Some("localhost".into());
        if with_cert {
            s.client_cert = Some(d.join("client.pem"));
            s.client_key = Some(d.join("client.key"));
        }
        c.syslog = Some(s);
        let h = start(c);
        append_n(&h, 2, true);
        h.shutdown().wait().unwrap();
        (h.stats(), collector.join().unwrap())
    };
    let (st, msgs) = run(true);
    assert_eq!((st.export_sent, msgs.len()), (5, 5), "{st:?}");
    let (st, msgs) = run(false);
    assert!(
        msgs.is_empty(),
        "collector must refuse a client without certificate"
    );
    assert_eq!(st.export_sent + st.export_dropped, 5, "{st:?}");
    // The rejection alert normally arrives within the exporter's 100 ms wait, so nothing
    // counts as sent; on a very loaded machine it may come later, hence no strict assert.
    eprintln!("mutual TLS without certificate: {st:?}");
}

#[test]
fn client_cert_without_key_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    std::fs::write(dir.path().join("ca.pem"), &p.ca_pem).unwrap();
    let mut c = config(dir.path());
    let mut s = SyslogConfig::new(SyslogTransport::Tls, "127.0.0.1:6514");
    s.ca_file = Some(dir.path().join("ca.pem"));
    s.client_cert = Some(dir.path().join("ca.pem"));
    c.syslog = Some(s);
    let e = zonegate_audit::AuditLog::start(c).unwrap_err();
    assert!(e.to_string().contains("go together"), "{e}");
}

fn gtls_driver() -> Option<PathBuf> {
    let dirs = [
        "/usr/lib/x86_64-linux-gnu/rsyslog",
        "/usr/lib/aarch64-linux-gnu/rsyslog",
        "/usr/lib/rsyslog",
        "/usr/lib64/rsyslog",
    ];
    dirs.iter()
        .map(|d| Path::new(d).join("lmnsd_gtls.so"))
        .find(|p| p.exists())
}

#[test]
fn rsyslog_receives_tls() {
    let (Some(bin), Some(_)) = (rsyslogd(), gtls_driver()) else {
        eprintln!(
            "\n\n*** SKIPPED rsyslog_receives_tls: needs rsyslogd and its TLS driver \
             (apt-get install rsyslog rsyslog-gnutls); TLS is still tested against the rustls \
             collector ***\n\n"
        );
        return;
    };
    let p = pki();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, text) in [
        ("ca.pem", &p.ca_pem),
        ("cert.pem", &p.leaf_pem),
        ("key.pem", &p.leaf_key_pem),
    ] {
        std::fs::write(d.join(name), text).unwrap();
    }
    let (_, port) = free_ports();
    let out = d.join("received.log");
    let conf = d.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{d}" DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile="{d}/ca.pem" DefaultNetstreamDriverCertFile="{d}/cert.pem"
       DefaultNetstreamDriverKeyFile="{d}/key.pem")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="zg" type="string" string="%app-name%|%msgid%|%structured-data%|%msg%\n")
*.* action(type="omfile" file="{out}" template="zg")
"#,
            d = d.display(),
            out = out.display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(d.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = Daemon {
        child,
        out,
        udp: 0,
        tcp: port,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "rsyslogd (TLS) did not start listening"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let log_dir = tempfile::tempdir().unwrap();
    let mut c = config(log_dir.path());
    let mut sc = SyslogConfig::new(SyslogTransport::Tls, format!("127.0.0.1:{port}"));
    sc.ca_file = Some(d.join("ca.pem"));
    sc.server_name = Some("localhost".into());
    c.syslog = Some(sc);
    let h = start(c);
    append_n(&h, 5, true);
    h.shutdown().wait().unwrap();
    let st = h.stats();
    assert_eq!((st.export_sent, st.export_dropped), (8, 0), "{st:?}");
    let log_lines = lines(&log_dir.path().join("audit.log"));
    let got = received(&daemon.out, &log_lines);
    for l in &log_lines {
        assert!(
            got.iter()
                .any(|g| g.starts_with("zonegate|") && g.ends_with(l.as_str())),
            "{l} not received over TLS: {got:#?}"
        );
    }
}
