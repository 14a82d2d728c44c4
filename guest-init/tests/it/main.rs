//! Integration tests of the `guest-init` binary outside a VM. The real boot is
//! covered by `scripts/tests/boot.sh` (a real QEMU boot of the demo image), which needs a kernel.

use std::process::Command;

#[test]
fn rejects_running_as_other_than_pid_1() {
    // Outside PID 1 it must not mount, load modules or power off the machine.
    let out = Command::new(env!("CARGO_BIN_EXE_guest-init")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "error: guest-init must run as PID 1 inside a cvmforge image\n");
    assert!(out.stdout.is_empty());
}
