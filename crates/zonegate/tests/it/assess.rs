//! Tests of `zonegate assess`.
