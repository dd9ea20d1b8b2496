//! Fuzz target: the model-file loader of `zonegate-policy` (YAML → `Model` → `Policy`).
//!
//! Input: the bytes of a model file. The body lives in the library
//! (`zonegate_policy::fuzzing::fuzz_load`): no panic on any input; every load error carries a
//! line, a column and a message; a model that loads and compiles decides a few fixed requests
//! without panicking, and a verdict is an allow exactly when it carries no exception code.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    zonegate_policy::fuzzing::fuzz_load(data);
});
