//! Intel TDX launch (MRTD) and boot-time (RTMR0-3) measurements for a TD booted by TDVF.
//!
//! Spec: `docs/specs/tdx-measurement.md`.

pub mod fv;
pub mod load_options;
pub mod mrtd;
pub mod pe;
pub mod rtmr;
pub mod tdvf;
