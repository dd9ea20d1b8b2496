//! zonegate-gateway (placeholder, being written).
