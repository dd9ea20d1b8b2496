//! zonegate-toolkit (placeholder, being written).
