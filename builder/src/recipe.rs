//! recipe (to be written).
