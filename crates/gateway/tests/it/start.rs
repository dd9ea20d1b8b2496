//! Start-up: an unreachable device is said at start, not first noticed at the first request
//! (issue 8.8), and every relative path of the model resolves against the model file's
//! folder, never the current directory (8.7).

use std::path::Path;
use std::time::Duration;

use tokio::net::TcpListener;
use zonegate_audit::Kind;
use zonegate_gateway::sim::{Device, Sim};
use zonegate_gateway::{Gateway, GatewayOptions};

use super::util::*;

/// Starts a gateway for the template model with `upstream`, probing on; returns it and its
/// folder.
async fn start(upstream: std::net::SocketAddr, audit: &Path, dir: &Path) -> Gateway {
    let model_path = dir.join("model.yaml");
    std::fs::write(&model_path, model(upstream, audit, "", None)).unwrap();
    let options = GatewayOptions {
        drain_timeout: Duration::from_secs(2),
        ..GatewayOptions::default()
    };
    assert!(options.probe_upstreams, "probing is the default");
    match Gateway::start_file(&model_path, options).await {
        Ok(g) => g,
        Err(e) => panic!("gateway did not start: {e}"),
    }
}

/// Regression (8.8): an unreachable upstream was only noticed at the first request.
#[tokio::test]
async fn an_unreachable_upstream_is_only_noticed_at_the_first_request() {
    // A port nobody listens on any more.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let dir = temp_dir();
    let audit = dir.join("audit.log");
    let gateway = start(dead, &audit, &dir).await;
    // No request is made: the record must come from the start-up probe.
    let mut found = None;
    for _ in 0..100 {
        found = read_events(&audit)
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("upstream_unreachable"));
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = found.expect("an upstream_unreachable record at start");
    assert_eq!(e.kind, Kind::Connection);
    assert_eq!(e.conduit.as_deref(), Some("C1"));
    assert_eq!(e.dst.as_deref(), Some(dead.to_string().as_str()));
    assert!(
        e.message.as_deref().unwrap_or("").contains("unreachable"),
        "{e:?}"
    );
    // It started anyway and answers 0x0A while the device is down.
    let mut c = Client::connect(gateway.listeners()[0].addr, HISTORIAN).await;
    assert_eq!(
        exception_of(&c.call(1, &read_holding(100, 1)).await),
        Some(0x0A)
    );
    gateway.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_reachable_upstream_gets_no_unreachable_record() {
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    let dir = temp_dir();
    let audit = dir.join("audit.log");
    let gateway = start(sim.local_addr(), &audit, &dir).await;
    let mut c = Client::connect(gateway.listeners()[0].addr, HISTORIAN).await;
    assert_eq!(registers_of(&c.call(1, &read_holding(100, 1)).await), [200]);
    // The probe is bounded by connect_timeout; loopback answers at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    gateway.shutdown().await;
    let events = read_events(&audit);
    assert!(events.iter().any(|e| e.kind == Kind::Stop), "log complete");
    assert!(
        !events
            .iter()
            .any(|e| e.reason.as_deref() == Some("upstream_unreachable")),
        "{events:#?}"
    );
    sim.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Regression (8.7): `audit.path: audit.log` was written to the current directory, not next
/// to the model file (the gateway loaded the model's text without its folder).
#[tokio::test]
async fn a_relative_audit_path_is_resolved_against_the_current_directory() {
    let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
        .await
        .unwrap();
    let dir = temp_dir();
    let name = format!("relative-audit-{}.log", std::process::id());
    let cwd_file = std::env::current_dir().unwrap().join(&name);
    assert_ne!(
        std::env::current_dir().unwrap(),
        dir,
        "the test runs from another directory than the model's"
    );
    let gateway = start(sim.local_addr(), Path::new(&name), &dir).await;
    let mut c = Client::connect(gateway.listeners()[0].addr, HISTORIAN).await;
    assert_eq!(registers_of(&c.call(1, &read_holding(100, 1)).await), [200]);
    // A reload keeps resolving against the model's folder.
    gateway
        .reload_text(
            &std::fs::read_to_string(dir.join("model.yaml")).unwrap(),
            "model.yaml",
        )
        .unwrap();
    gateway.shutdown().await;
    let in_cwd = cwd_file.exists();
    let _ = std::fs::remove_file(&cwd_file);
    assert!(!in_cwd, "nothing written to the current directory");
    let events = read_events(&dir.join(&name));
    assert!(
        events.iter().any(|e| e.kind == Kind::Request),
        "{events:#?}"
    );
    assert!(events.iter().any(|e| e.kind == Kind::Stop));
    sim.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
