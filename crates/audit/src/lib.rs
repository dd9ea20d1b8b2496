//! zonegate-audit (placeholder, being written).
