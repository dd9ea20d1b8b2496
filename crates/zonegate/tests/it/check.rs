//! Tests of `zonegate check`.
