//! tar (to be written).
