//! zonegate-policy (placeholder, being written).
