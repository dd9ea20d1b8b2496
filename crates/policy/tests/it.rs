//! Integration tests of zonegate-policy: the model loader (`it/load.rs`), the decision engine
//! (`it/decide.rs`) and properties of the set logic (`it/props.rs`). One test binary for the
//! crate; test data lives in `tests/it/data/`.

// Test helpers outside #[test] functions may unwrap too (clippy.toml allows it in tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod it {
    mod classes;
    mod decide;
    mod load;
    mod paths;
    mod props;
    mod replication;
}
