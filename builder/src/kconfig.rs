//! kconfig (to be written).
