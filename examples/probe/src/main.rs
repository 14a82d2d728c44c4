//! The probe: a payload that attacks the sealed guest from the inside (see README.md).

use std::io::{Read, Write};

use nix::libc;

/// The result of one attack.
struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    /// `blocked`: what the sealed image must do; `how`: what happened.
    fn report(&mut self, attack: &str, blocked: bool, how: &str) {
        if blocked {
            self.passed += 1;
            println!("probe: ok: {attack}: blocked ({how})");
        } else {
            self.failed += 1;
            println!("probe: FAIL: {attack}: succeeded ({how})");
        }
    }
}

fn errno() -> String {
    std::io::Error::last_os_error().to_string()
}

/// Creating a file must fail: `/` is read-only.
fn create(path: &str) -> (bool, String) {
    match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(mut f) => {
            let _ = f.write_all(b"#!/bin/sh\n");
            (false, format!("created {path}"))
        }
        Err(e) => (true, e.to_string()),
    }
}

/// A socket of `family` must not be created (a module request for an unknown family; AF_PACKET needs root).
fn socket(family: libc::c_int, kind: libc::c_int) -> (bool, String) {
    // SAFETY: socket(2) takes integers only; a returned descriptor is closed at once.
    let fd = unsafe { libc::socket(family, kind, 0) };
    if fd >= 0 {
        // SAFETY: `fd` was just returned by socket(2) and is not used after this.
        unsafe { libc::close(fd) };
        return (false, format!("socket({family}) = {fd}"));
    }
    (true, errno())
}

/// request_key(2) with a callout runs `/sbin/request-key` as root in the kernel's default setup.
fn request_key() -> (bool, String) {
    let (kind, desc, info) = (c"user", c"cvmforge-probe", c"callout");
    // SAFETY: the three pointers are valid NUL-terminated strings that outlive the call.
    let id =
        unsafe { libc::syscall(libc::SYS_request_key, kind.as_ptr(), desc.as_ptr(), info.as_ptr(), 0 as libc::c_long) };
    if id >= 0 {
        return (false, format!("got key {id}"));
    }
    (true, errno())
}

/// Every capability set must be empty and NoNewPrivs set.
fn status_fields() -> Vec<(String, bool, String)> {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mut out = Vec::new();
    for field in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"] {
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
            .map(str::trim)
            .unwrap_or("missing")
            .to_string();
        let blocked =
            if field == "NoNewPrivs" { value == "1" } else { !value.is_empty() && value.bytes().all(|b| b == b'0') };
        out.push((format!("keep a capability or privilege ({field})"), blocked, format!("{field} {value}")));
    }
    out
}

fn unshare_user_namespace() -> (bool, String) {
    // SAFETY: unshare(2) takes a flag word only.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) };
    if rc == 0 {
        return (false, "unshare(CLONE_NEWUSER|CLONE_NEWNET) succeeded".into());
    }
    (true, errno())
}

fn open_console(path: &str) -> (bool, String) {
    match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(_) => (false, format!("opened {path} read-write")),
        Err(e) => (true, e.to_string()),
    }
}

/// stdin must not be the console: reading it gives end of file at once.
fn read_stdin() -> (bool, String) {
    let mut buf = [0u8; 64];
    match std::io::stdin().read(&mut buf) {
        Ok(0) => (true, "end of file (stdin is /dev/null)".into()),
        Ok(n) => (false, format!("read {n} bytes from stdin")),
        Err(e) => (true, e.to_string()),
    }
}

/// TIOCSTI (inject input) and TIOCSCTTY (take a controlling terminal) on fds 0-2 must fail: none is a terminal.
fn tty_ioctl(request: libc::c_ulong, name: &str) -> (bool, String) {
    let byte: libc::c_char = b'x' as libc::c_char;
    for fd in [0, 1, 2] {
        // SAFETY: TIOCSTI reads one byte through the pointer, TIOCSCTTY takes an integer; both are valid here.
        let rc = unsafe {
            if name == "TIOCSTI" {
                libc::ioctl(fd, request as _, &byte as *const libc::c_char)
            } else {
                libc::ioctl(fd, request as _, 0 as libc::c_int)
            }
        };
        if rc == 0 {
            return (false, format!("{name} on fd {fd} succeeded"));
        }
    }
    (true, format!("{name} on fds 0-2: {}", errno()))
}

fn main() {
    let mut tally = Tally { passed: 0, failed: 0 };
    let attacks: Vec<(String, (bool, String))> = vec![
        ("write a file into /".into(), create("/cvmforge-probe")),
        ("plant /sbin/modprobe".into(), {
            let _ = std::fs::create_dir("/sbin");
            create("/sbin/modprobe")
        }),
        ("plant /sbin/request-key".into(), create("/sbin/request-key")),
        ("trigger a module request (AF_APPLETALK)".into(), socket(5, libc::SOCK_DGRAM)),
        ("request_key() with a callout".into(), request_key()),
        ("open an AF_PACKET socket".into(), socket(libc::AF_PACKET, libc::SOCK_RAW)),
        ("create a user namespace".into(), unshare_user_namespace()),
        ("open /dev/console".into(), open_console("/dev/console")),
        ("open /dev/ttyS0".into(), open_console("/dev/ttyS0")),
        ("read the console through stdin".into(), read_stdin()),
        ("inject console input (TIOCSTI)".into(), tty_ioctl(libc::TIOCSTI, "TIOCSTI")),
        ("take the console as controlling terminal (TIOCSCTTY)".into(), tty_ioctl(libc::TIOCSCTTY, "TIOCSCTTY")),
    ];
    for (attack, (blocked, how)) in attacks {
        tally.report(&attack, blocked, &how);
    }
    for (attack, blocked, how) in status_fields() {
        tally.report(&attack, blocked, &how);
    }
    // Forging init's lines: the console must show this only behind init's `payload: ` prefix (the stage checks).
    println!("cvmforge-init: FORGED-BY-PROBE payload exited with status 0; powering off");
    print!("\rcvmforge-init: FORGED-BY-PROBE carriage return\n");
    let _ = std::io::stdout().flush();
    println!("probe: {} passed, {} failed", tally.passed, tally.failed);
    let _ = std::io::stdout().flush();
}
