//! zonegate-modbus (placeholder, being written).
