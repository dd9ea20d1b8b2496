//! The live monitor and shadow candidates (issue 12): detector alerts as `alert` records on
//! the audit chain, a full monitor queue that drops and counts without slowing a request,
//! `shadow:` would-deny records, and thresholds that follow a reload.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zonegate_audit::{Decision, Event, Kind};
use zonegate_gateway::sim::{Device, Sim};
use zonegate_gateway::{Gateway, GatewayOptions};

use super::util::{exception_of, model, read_events, read_holding, temp_dir, Client, HISTORIAN};

/// Rules for these tests: the historian reads holding 0-199 and may send diagnostics.
const RULES: &str = "      - id: historian-read
        from: [HIST]
        functions: [read, diagnostics]
        holding: 0-199
";

struct Watched {
    sim: Sim,
    gateway: Gateway,
    dir: std::path::PathBuf,
    model_path: std::path::PathBuf,
    audit: std::path::PathBuf,
    upstream: std::net::SocketAddr,
}

impl Watched {
    /// A sim, and a gateway whose model ends with `extra` (top-level sections, e.g.
    /// `monitor:`) and whose conduit has `conduit_lines` (indented 4).
    async fn start(extra: &str, conduit_lines: &str, hold: Option<Arc<Mutex<()>>>) -> Self {
        Self::start_with(extra, conduit_lines, "", hold).await
    }

    /// Like [`Watched::start`], with `gateway_lines` (indented 6) in the `gateway:` block.
    async fn start_with(
        extra: &str,
        conduit_lines: &str,
        gateway_lines: &str,
        hold: Option<Arc<Mutex<()>>>,
    ) -> Self {
        let sim = Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac())
            .await
            .unwrap();
        let dir = temp_dir();
        let audit = dir.join("audit.log");
        let model_path = dir.join("model.yaml");
        let upstream = sim.local_addr();
        let t = text(upstream, &audit, extra, conduit_lines).replacen(
            "    rules:\n",
            &format!("{gateway_lines}    rules:\n"),
            1,
        );
        std::fs::write(&model_path, t).unwrap();
        let options = GatewayOptions {
            watch_interval: Duration::from_millis(50),
            probe_upstreams: false,
            monitor_hold: hold,
            ..GatewayOptions::default()
        };
        let gateway = Gateway::start_file(&model_path, options)
            .await
            .unwrap_or_else(|e| panic!("gateway did not start: {e}"));
        Self {
            sim,
            gateway,
            dir,
            model_path,
            audit,
            upstream,
        }
    }

    async fn client(&self) -> Client {
        Client::connect(self.gateway.listeners()[0].addr, HISTORIAN).await
    }

    /// Rewrites the model with `extra` and reloads it.
    fn reload(&self, extra: &str, conduit_lines: &str) {
        let t = text(self.upstream, &self.audit, extra, conduit_lines);
        std::fs::write(&self.model_path, t).unwrap();
        self.gateway.reload().unwrap();
    }

    /// The audit records, once `pred` holds (5 s at most).
    async fn events_until(&self, pred: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let mut last = Vec::new();
        for _ in 0..100 {
            last = read_events(&self.audit);
            if pred(&last) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        last
    }

    async fn stop(self) -> Vec<Event> {
        self.gateway.shutdown().await;
        self.sim.stop().await;
        let events = read_events(&self.audit);
        let _ = std::fs::remove_dir_all(&self.dir);
        events
    }
}

fn text(upstream: std::net::SocketAddr, audit: &Path, extra: &str, conduit_lines: &str) -> String {
    // The conduit lines go before `gateway:` (indented 4, as the conduit's keys).
    let base = model(upstream, audit, "", Some(RULES));
    let base = base.replacen(
        "    gateway:\n",
        &format!("{conduit_lines}    gateway:\n"),
        1,
    );
    format!("{base}{extra}")
}

fn alerts<'a>(events: &'a [Event], reason: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.kind == Kind::Alert && e.reason.as_deref() == Some(reason))
        .collect()
}

/// FC 8 / sub-function 0x0004 Force Listen Only Mode, data 0x0000.
const LISTEN_ONLY: [u8; 5] = [0x08, 0x00, 0x04, 0x00, 0x00];

#[tokio::test]
async fn a_listen_only_request_becomes_an_alert_record_on_the_audit_chain() {
    let w = Watched::start("monitor:\n  queue: 64\n", "", None).await;
    let mut c = w.client().await;
    let (_, bytes) = c.raw_adu(1, &LISTEN_ONLY);
    c.send(&bytes).await;
    // The gateway answers nothing (the request expects no answer); a read still works after.
    let answer = c.call(1, &read_holding(0, 2)).await;
    assert_eq!(exception_of(&answer), None);
    let events = w
        .events_until(|e| !alerts(e, "diagnostics_listen_only").is_empty())
        .await;
    let alert = alerts(&events, "diagnostics_listen_only")[0].clone();
    assert_eq!(alert.conduit.as_deref(), Some("C1"));
    assert!(alert.src.as_deref().unwrap().starts_with(HISTORIAN));
    assert_eq!(alert.dst.as_deref(), Some(w.upstream.to_string().as_str()));
    assert_eq!((alert.unit, alert.fc), (Some(1), Some(8)));
    assert!(alert.message.as_deref().unwrap().contains("8/04"));
    assert!(alert.request_id.is_some(), "names the request");
    // On the chain: sequenced and hashed like every record, and the log verifies.
    assert!(alert.seq.is_some() && alert.hash.is_some());
    let stats = w.gateway.monitor_stats();
    assert_eq!(stats.dropped, 0);
    assert!(stats.alerts >= 1, "{stats:?}");
    let audit = w.audit.clone();
    let dir = w.dir.clone();
    w.gateway.shutdown().await;
    let report =
        zonegate_audit::verify(&[audit], &zonegate_audit::VerifyOptions::default()).unwrap();
    assert!(report.ok, "{report:?}");
    w.sim.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_request_refused_by_deny_drop_or_close_is_still_seen_by_the_monitor() {
    // Regression: with `deny: drop` or `close` a refused request never reached the monitor
    // (only requests answered by a slot did), so a listen-only attempt went unreported.
    let rules_without_diagnostics = "      - id: historian-read\n        from: [HIST]\n        functions: [read]\n        holding: 0-199\n";
    for deny in ["drop", "close"] {
        let w = Watched::start_with(
            "monitor:\n  queue: 64\n",
            "",
            &format!("      deny: {deny}\n"),
            None,
        )
        .await;
        let t = std::fs::read_to_string(&w.model_path).unwrap();
        std::fs::write(
            &w.model_path,
            t.replacen(RULES, rules_without_diagnostics, 1),
        )
        .unwrap();
        w.gateway.reload().unwrap();
        let mut c = w.client().await;
        let (_, bytes) = c.raw_adu(1, &LISTEN_ONLY);
        c.send(&bytes).await;
        let events = w
            .events_until(|e| !alerts(e, "diagnostics_listen_only").is_empty())
            .await;
        let denied = events
            .iter()
            .find(|e| e.kind == Kind::Request && e.fc == Some(8))
            .unwrap_or_else(|| panic!("deny: {deny}: no request record: {events:?}"));
        assert_eq!(denied.decision, Some(Decision::Deny), "deny: {deny}");
        let alert = alerts(&events, "diagnostics_listen_only");
        assert_eq!(alert.len(), 1, "deny: {deny}: {events:?}");
        assert_eq!(alert[0].request_id, denied.request_id, "deny: {deny}");
        w.stop().await;
    }
}

#[tokio::test]
// The lock is the monitor thread's (a std thread), held on purpose while requests are sent.
#[allow(clippy::await_holding_lock)]
async fn a_full_monitor_queue_drops_and_counts_and_never_holds_a_request() {
    let hold = Arc::new(Mutex::new(()));
    let w = Watched::start("monitor:\n  queue: 2\n", "", Some(Arc::clone(&hold))).await;
    let mut c = w.client().await;
    let n = 40;
    {
        // The monitor thread blocks on its first job while this is held: the queue fills.
        let _held = hold.lock().unwrap();
        for i in 0..n {
            let answer = c.call(1, &read_holding(i, 1)).await;
            assert_eq!(exception_of(&answer), None, "request {i} answered");
        }
        let s = w.gateway.monitor_stats();
        // At most the job being processed and the 2 queued got in.
        assert!(s.dropped >= u64::from(n) - 3, "{s:?}");
        assert_eq!(s.queued + s.dropped, u64::from(n), "{s:?}");
    }
    let events = w.stop().await;
    let overload = alerts(&events, "monitor_overload");
    assert_eq!(overload.len(), 1, "one overload record: {overload:?}");
    assert!(overload[0]
        .message
        .as_deref()
        .unwrap()
        .contains("not monitored"));
}

#[tokio::test]
async fn a_shadow_candidate_records_what_it_would_deny() {
    let w = Watched::start("", "    shadow: candidate.yaml\n", None).await;
    // The candidate narrows the read to holding 0-9.
    let candidate = text(w.upstream, &w.dir.join("unused.log"), "", "")
        .replace("holding: 0-199", "holding: 0-9");
    std::fs::write(w.dir.join("candidate.yaml"), candidate).unwrap();
    w.reload("", "    shadow: candidate.yaml\n");
    let mut c = w.client().await;
    let inside = c.call(1, &read_holding(5, 1)).await;
    let outside = c.call(1, &read_holding(50, 1)).await;
    // Enforcement is the model's: both reads are answered.
    assert_eq!(
        (exception_of(&inside), exception_of(&outside)),
        (None, None)
    );
    let events = w
        .events_until(|e| e.iter().any(|e| e.kind == Kind::Shadow))
        .await;
    let shadow: Vec<&Event> = events.iter().filter(|e| e.kind == Kind::Shadow).collect();
    assert_eq!(shadow.len(), 1, "{shadow:?}");
    let s = shadow[0];
    assert_eq!(s.decision, Some(Decision::WouldDeny));
    assert_eq!(s.reason.as_deref(), Some("address_out_of_range"));
    assert_eq!(s.rule.as_deref(), Some("historian-read"));
    assert_eq!(s.address, Some(50));
    assert!(s.message.as_deref().unwrap().contains("candidate.yaml"));
    assert!(s.message.as_deref().unwrap().contains("allows it"));

    // A broken candidate is rejected with its errors and changes nothing enforced.
    std::fs::write(
        w.dir.join("candidate.yaml"),
        "conduits: [{conduit_id: C1, rulez: []}]\n",
    )
    .unwrap();
    w.gateway.reload().unwrap();
    let again = c.call(1, &read_holding(50, 1)).await;
    assert_eq!(exception_of(&again), None);
    let events = w
        .events_until(|e| {
            e.iter().any(|e| {
                e.kind == Kind::PolicyRejected
                    && e.message.as_deref().is_some_and(|m| m.contains("rulez"))
            })
        })
        .await;
    assert!(
        events.iter().any(|e| e.kind == Kind::PolicyRejected
            && e.message
                .as_deref()
                .is_some_and(|m| m.contains("shadow candidate"))),
        "rejected with its errors"
    );
    let shadows = events.iter().filter(|e| e.kind == Kind::Shadow).count();
    assert_eq!(shadows, 1, "no shadow evaluation once the candidate is bad");
    w.stop().await;
}

#[tokio::test]
async fn a_reload_applies_new_detector_thresholds() {
    // Reads of holding 500+ are refused by the policy with 0x02: the monitor sees
    // illegal-data-address exceptions to the historian.
    let lax = "monitor:\n  thresholds: {address_scan_count: 100}\n";
    let strict = "monitor:\n  thresholds: {address_scan_count: 3, address_scan_window_s: 600}\n";
    let w = Watched::start(lax, "", None).await;
    let mut c = w.client().await;
    for i in 0..4 {
        let a = c.call(1, &read_holding(500 + i, 1)).await;
        assert_eq!(exception_of(&a), Some(0x02));
    }
    // Everything sent so far has been looked at, and nothing fired.
    for _ in 0..100 {
        if w.gateway.monitor_stats().processed >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(alerts(&read_events(&w.audit), "address_scan").is_empty());
    w.reload(strict, "");
    for i in 0..3 {
        let a = c.call(1, &read_holding(600 + i, 1)).await;
        assert_eq!(exception_of(&a), Some(0x02));
    }
    let events = w
        .events_until(|e| !alerts(e, "address_scan").is_empty())
        .await;
    let scan = alerts(&events, "address_scan");
    assert_eq!(scan.len(), 1, "{scan:?}");
    assert!(scan[0]
        .message
        .as_deref()
        .unwrap()
        .contains("3 illegal-data-address"));
    w.stop().await;
}
