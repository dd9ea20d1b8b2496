//! Tests of `zonegate report`.
