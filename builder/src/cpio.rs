//! cpio (to be written).
