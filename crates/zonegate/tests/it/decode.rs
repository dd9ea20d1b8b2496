//! Tests of `zonegate decode`.
