//! TDX: load_options (to be written). See docs/specs/tdx-measurement.md.
