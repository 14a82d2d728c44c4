//! qemu (to be written).
