//! Tests of `zonegate log`.
