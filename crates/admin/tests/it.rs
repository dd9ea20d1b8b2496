//! The one integration-test binary of zonegate-admin. Modules under `tests/it/`:
//! `tls` (the admin endpoint over HTTPS with mutual TLS: good, missing and foreign client
//! certificates, with and without the bearer token).

// Tests may unwrap (team rule); helpers outside #[test] functions need it said.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod it {
    mod tls;
}
