//! Tests of `zonegate compile`.
