//! TDX: pe (to be written). See docs/specs/tdx-measurement.md.
