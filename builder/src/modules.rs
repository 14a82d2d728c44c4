//! modules (to be written).
