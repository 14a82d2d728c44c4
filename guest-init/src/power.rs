//! Power-off: the only way this init ever ends. PID 1 must never exit (that is
//! a kernel panic), so failure to power off parks the process forever.

use std::time::Duration;

use nix::sys::reboot::{reboot, set_cad_enabled, RebootMode};
use nix::unistd::sync;

use crate::console::log;

/// Makes Ctrl-Alt-Del send SIGINT to PID 1 (forwarded to the payload for a clean
/// stop) instead of an immediate kernel restart (`reboot(2)`, `LINUX_REBOOT_CMD_CAD_OFF`).
pub(crate) fn soft_ctrl_alt_del() -> Result<(), nix::errno::Errno> {
    set_cad_enabled(false)
}

/// Syncs and powers the VM off; never returns.
pub(crate) fn power_off() -> ! {
    sync();
    let err = match reboot(RebootMode::RB_POWER_OFF) {
        Ok(never) => match never {},
        Err(errno) => errno,
    };
    log!("reboot(RB_POWER_OFF) failed: {err}; halting here");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
