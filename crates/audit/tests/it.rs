//! The one integration-test binary of zonegate-audit. Modules under `tests/it/`:
//! `writer` (chain, rotation, restart, group commit), `tamper` (every kind of tampering),
//! `crash` (kill -9 under concurrent durable writes), `failure` (disk full and recovery),
//! `syslog` (export to a real rsyslogd and to a rustls TLS collector), `show` (filters).

// Tests may unwrap (team rule); helpers outside #[test] functions need it said.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod it {
    pub(crate) mod util;

    mod crash;
    mod failure;
    mod loss;
    mod retention;
    mod show;
    mod syslog;
    mod tamper;
    mod writer;
}
