//! One log line per step on `/dev/console`. Never reads the console; never
//! logs payload data.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use nix::fcntl::OFlag;

/// Writes `cvmforge-init: {msg}` to `/dev/console` (falls back to stderr, which
/// the kernel points at the console, while `/dev` is not yet mounted).
pub(crate) fn write_line(msg: &str) {
    write_raw(&format!("cvmforge-init: {msg}\n"));
}

/// Writes one relayed payload line (already prefixed and escaped by `relay`).
pub(crate) fn write_payload_line(line: &str) {
    write_raw(&format!("{line}\n"));
}

fn write_raw(line: &str) {
    // O_NOCTTY: PID 1 must not acquire the console as its controlling terminal.
    let console = OpenOptions::new().write(true).custom_flags(OFlag::O_NOCTTY.bits()).open("/dev/console");
    let written = match console {
        Ok(mut c) => c.write_all(line.as_bytes()),
        Err(e) => Err(e),
    };
    if written.is_err() {
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

/// `log` with `format!` arguments.
macro_rules! log {
    ($($arg:tt)*) => { $crate::console::write_line(&format!($($arg)*)) };
}
pub(crate) use log;
