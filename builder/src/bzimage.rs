//! bzimage (to be written).
