//! Intel TDX MRTD and RTMRs. See docs/specs/tdx-measurement.md.
