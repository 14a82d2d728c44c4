//! The ACPI power button (what QEMU's `system_powerdown`, `virsh shutdown` and a cloud "stop" press): the kernel's
//! `button` driver reports it as an input device named "Power Button", read through `evdev` as `struct input_event`
//! records. Pressing it stops the payload (SIGTERM, then SIGKILL after a deadline) and powers the VM off.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

/// `struct input_event` on x86-64: `struct timeval` (16 bytes), `__u16 type`, `__u16 code`, `__s32 value`.
const EVENT_SIZE: usize = 24;
/// `EV_KEY` and `KEY_POWER` from `include/uapi/linux/input-event-codes.h`.
const EV_KEY: u16 = 0x01;
const KEY_POWER: u16 = 116;

/// Opens every input device named "Power Button" (non-blocking); returns them with their names for the log.
pub(crate) fn open_power_buttons() -> Vec<(String, File)> {
    let Ok(entries) = std::fs::read_dir("/sys/class/input") else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("event"))
        .collect();
    names.sort();
    let mut buttons = Vec::new();
    for name in names {
        let device_name = std::fs::read_to_string(format!("/sys/class/input/{name}/device/name")).unwrap_or_default();
        if device_name.trim_end() != "Power Button" {
            continue;
        }
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(format!("/dev/input/{name}"));
        if let Ok(file) = opened {
            buttons.push((name, file));
        }
    }
    buttons
}

/// Reads the pending events; true if one was a press of the power key.
pub(crate) fn pressed(device: &mut File) -> bool {
    let mut buf = [0u8; EVENT_SIZE * 16];
    let mut seen = false;
    while let Ok(n) = device.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen |= buf.get(..n).unwrap_or_default().chunks_exact(EVENT_SIZE).any(is_power_press);
    }
    seen
}

fn is_power_press(event: &[u8]) -> bool {
    let u16_at = |i: usize| event.get(i..i + 2).and_then(|b| b.try_into().ok()).map(u16::from_ne_bytes);
    let value = event.get(20..24).and_then(|b| b.try_into().ok()).map(i32::from_ne_bytes);
    u16_at(16) == Some(EV_KEY) && u16_at(18) == Some(KEY_POWER) && value == Some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u16, code: u16, value: i32) -> Vec<u8> {
        let mut e = vec![0u8; 16];
        e.extend(kind.to_ne_bytes());
        e.extend(code.to_ne_bytes());
        e.extend(value.to_ne_bytes());
        e
    }

    #[test]
    fn recognises_only_a_power_key_press() {
        assert!(is_power_press(&event(EV_KEY, KEY_POWER, 1)));
        assert!(!is_power_press(&event(EV_KEY, KEY_POWER, 0)), "release");
        assert!(!is_power_press(&event(EV_KEY, 115, 1)), "another key");
        assert!(!is_power_press(&event(0, KEY_POWER, 1)), "EV_SYN");
        assert!(!is_power_press(&event(EV_KEY, KEY_POWER, 1)[..20]), "short");
    }
}
