//! `zonegate probe` against the real zonegate gateway in front of the simulated device, all on
//! loopback with ports chosen at run time: every test passes, no value changes, and `--from`
//! binds the client to a second loopback address.

use std::time::Duration;

use zonegate_gateway::sim::{Device, Sim};
use zonegate_gateway::{Gateway, GatewayOptions};
use zonegate_toolkit::probe::{self, ProbeOptions};

use super::util::{site, BASE};

#[test]
fn probe_through_the_gateway_in_front_of_the_simulator() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("zonegate-live-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let audit = dir.join("audit.log");
    let sim = rt
        .block_on(Sim::start("127.0.0.1:0".parse().unwrap(), Device::hvac()))
        .unwrap();
    let device = sim.device().clone();
    let model = BASE
        .replacen("listen: 127.0.0.1:5020", "listen: 127.0.0.1:0", 1)
        .replacen(
            "upstream: tcp://10.1.0.10:502",
            &format!("upstream: tcp://{}", sim.local_addr()),
            1,
        )
        .replacen(
            "networks: [10.2.0.0/24]",
            "networks: [10.2.0.0/24, 127.0.0.0/8]",
            1,
        )
        .replacen("from: [HMI]", "from: [HMI, 127.0.0.1]", 1)
        .replacen("from: [EWS]", "from: [EWS, 127.0.0.2]", 1)
        .replacen("path: audit.log", &format!("path: {}", audit.display()), 1);
    let gw = rt
        .block_on(Gateway::start_text(
            &model,
            "live.yaml",
            GatewayOptions::default(),
        ))
        .unwrap();
    let addr = gw.listeners()[0].addr;
    let s = site(&model);
    let before: Vec<u16> = device.holding_range(0, 200);

    // The read-only source.
    let opts = ProbeOptions {
        conduit: "C1".into(),
        from: Some("127.0.0.1".parse().unwrap()),
        connect: Some(addr),
        timeout: Duration::from_secs(3),
        tls: None,
    };
    let run = probe::run(&s, &opts).unwrap();
    assert_eq!(run.failed, 0, "{}", probe::render_text(&run));
    assert_eq!(run.tests.len(), 5);
    assert!(run
        .tests
        .iter()
        .any(|t| t.name == "out-of-range-read" && t.outcome.contains("0x02")));

    // The writing source (writes 10-19 only, no reads): bound to 127.0.0.2.
    let opts = ProbeOptions {
        from: Some("127.0.0.2".parse().unwrap()),
        ..opts
    };
    let run = probe::run(&s, &opts).unwrap();
    assert_eq!(run.source, "127.0.0.2");
    assert_eq!(run.failed, 0, "{}", probe::render_text(&run));
    assert!(run
        .tests
        .iter()
        .any(|t| t.name == "write-denied" && t.request.contains("FC 22")));

    assert_eq!(
        device.holding_range(0, 200),
        before,
        "the probe changed a value"
    );
    rt.block_on(async {
        gw.shutdown().await;
        sim.stop().await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}
