//! Modbus/TCP Security on both sides, through the gateway's TLS code: a TLS replica (mutual
//! TLS, client certificates from a lab CA made with rcgen) read by a second replication's
//! `tls://` source, which verifies the replica's certificate and presents its own.
//!
//! ```text
//! sim --tcp--> transmit A --udp--> receive A (TLS replica) <--tls-- transmit B --udp--> receive B
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::sync::watch;
use zonegate_gateway::mbaps;
use zonegate_gateway::sim::{Device, Sim};
use zonegate_policy::{load_str, Replication};
use zonegate_replicate::{ReceiveAgent, ReceiveOptions, Transmitter};

use super::agents::{start_audit, wait_for};
use super::common::hmac_key;

struct Pki {
    dir: PathBuf,
    ca: Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(dir: &Path) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "replica lab CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = p.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Self {
            dir: dir.to_path_buf(),
            ca,
            ca_key,
        }
    }

    fn leaf(&self, name: &str, server: bool) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let names = if server {
            vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
        } else {
            Vec::new()
        };
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let (c, k) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

fn replication(id: &str, source: &str, receive_extra: &str) -> Replication {
    let yaml = format!(
        r#"
replications:
  - replication_id: {id}
    connects: [Z3-OPS, Z4-DMZ]
    source: "{source}"
    blocks:
      - {{unit: 1, table: holding, range: 0-9, period: 50ms}}
    transmit: {{to: 127.0.0.1:9, key: k, repeat: 1, refresh: 1s, request_timeout: 500ms}}
    receive: {{bind: 127.0.0.1:0, key: k, serve: 127.0.0.1:0, max_age: 2s{receive_extra}}}
"#
    );
    load_str(&yaml, "test.yaml").unwrap().replications.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_replica_is_read_by_a_tls_source_with_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (rcert, rkey) = pki.leaf("replica", true);
    let (ccert, ckey) = pki.leaf("reader", false);
    let ca = dir.path().join("ca.pem");
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::new())
        .await
        .unwrap();
    sim.device().set_holding(5, 55);
    // A: the device to a TLS replica.
    let a = replication(
        "R-A",
        &format!("tcp://{}", sim.local_addr()),
        &format!(
            ", tls: {{cert: {}, key: {}, client_ca: {}}}",
            rcert.display(),
            rkey.display(),
            ca.display()
        ),
    );
    let server = mbaps::server_config(a.receive.tls.as_ref().unwrap()).unwrap();
    let a_log = dir.path().join("a.log");
    let a_audit = start_audit(&a_log);
    let options = ReceiveOptions {
        tls: Some(server),
        state: None,
    };
    let rx_a =
        ReceiveAgent::bind_with(a.clone(), hmac_key().verify_key(), a_audit.clone(), options)
            .await
            .unwrap();
    let (a_replica, a_udp) = (rx_a.serve_addr().unwrap(), rx_a.udp_addr().unwrap());
    let (stop, stop_rx) = watch::channel(false);
    let rx_a_task = tokio::spawn(rx_a.run(stop_rx.clone()));
    let mut ta = a.clone();
    ta.transmit.to = a_udp;
    tokio::spawn(
        Transmitter::new(ta, hmac_key())
            .await
            .unwrap()
            .run(stop_rx.clone()),
    );
    // B: the TLS replica, read over tls://, to a plaintext replica.
    let source = |name: &str| {
        format!(
            "tls://{a_replica}?ca={}&cert={}&key={}&server_name={name}",
            ca.display(),
            ccert.display(),
            ckey.display()
        )
    };
    let b = replication("R-B", &source("localhost"), "");
    let rx_b = ReceiveAgent::bind(
        b.clone(),
        hmac_key().verify_key(),
        start_audit(&dir.path().join("b.log")),
    )
    .await
    .unwrap();
    let (b_replica, b_udp) = (rx_b.serve_addr().unwrap(), rx_b.udp_addr().unwrap());
    tokio::spawn(rx_b.run(stop_rx.clone()));
    let mut tb = b.clone();
    tb.transmit.to = b_udp;
    tokio::spawn(
        Transmitter::new(tb, hmac_key())
            .await
            .unwrap()
            .run(stop_rx.clone()),
    );
    let got = wait_for(b_replica, 5, 1, Duration::from_secs(10), |r| {
        r == &Ok(vec![55])
    })
    .await;
    assert_eq!(
        got,
        Ok(vec![55]),
        "the value did not cross both replications"
    );
    // A device name its certificate does not carry: every read fails, nothing is sent.
    let c = replication("R-C", &source("plc.example"), "");
    let mut tc = c.clone();
    tc.transmit.to = b_udp;
    let txc = Transmitter::new(tc, hmac_key()).await.unwrap();
    let stats = txc.stats();
    tokio::spawn(txc.run(stop_rx.clone()));
    let t = Instant::now();
    while stats.read_failures.load(Ordering::Relaxed) < 2 && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stats.read_failures.load(Ordering::Relaxed) >= 2);
    assert_eq!(stats.datagrams.load(Ordering::Relaxed), 0);
    stop.send(true).unwrap();
    rx_a_task.await.unwrap();
    a_audit.shutdown().await.unwrap();
    let recs: Vec<serde_json::Value> = std::fs::read_to_string(&a_log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let est: Vec<_> = recs
        .iter()
        .filter(|e| e["reason"] == "tls_established")
        .collect();
    assert!(!est.is_empty(), "{recs:?}");
    assert_eq!(est[0]["peer_subject"], "CN=reader");
    assert_eq!(est[0]["conduit"], "R-A");
    assert_eq!(est[0]["peer_fingerprint"].as_str().map(str::len), Some(64));
}

#[test]
fn a_tls_source_with_files_that_cannot_be_used_is_refused_naming_the_file() {
    let r = replication(
        "R-X",
        "tls://127.0.0.1:802?ca=/nonexistent/ca.pem&server_name=plc1",
        "",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt
        .block_on(Transmitter::new(r, hmac_key()))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
}
