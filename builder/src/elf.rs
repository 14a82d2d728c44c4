//! elf (to be written).
