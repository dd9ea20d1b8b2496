//! zonegate-gateway's one integration-test binary: a simulated device and a gateway on
//! loopback (ports from port 0), clients bound to 127.0.0.x source addresses, every wait
//! bounded. Modules by topic under `tests/it/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod it {
    pub(crate) mod accept;
    pub(crate) mod audit;
    pub(crate) mod backpressure;
    pub(crate) mod deny;
    pub(crate) mod forward;
    pub(crate) mod monitor;
    pub(crate) mod pool;
    pub(crate) mod reload;
    pub(crate) mod replies;
    pub(crate) mod robust;
    pub(crate) mod rtu;
    pub(crate) mod session;
    pub(crate) mod sim;
    pub(crate) mod start;
    pub(crate) mod tls;
    pub(crate) mod util;
    pub(crate) mod write_class;
}
