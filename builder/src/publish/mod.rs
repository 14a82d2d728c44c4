//! Publishing a release: in-toto statements of what a release is ([`statement`]), DSSE envelopes that sign them
//! ([`dsse`]) with Ed25519 keys ([`keys`]), and the transparency log they are published in ([`log`]: C2SP tlog-tiles,
//! signed-note checkpoints, witness cosignatures, offline proofs).
//!
//! Everything here is a function of the manifest, the keys and an explicit time: it never reads the clock and never
//! prints.

pub mod dsse;
pub mod keys;
pub mod log;
pub mod statement;
