//! Starting and supervising the payload.
//!
//! The payload is spawned with `std::process::Command`: empty environment
//! except the config's `env`, stdin `/dev/null`, cwd `/`. In the child, before
//! `exec`, [`drop_privileges`] empties the signal mask (init blocks the signals
//! it reads from its signalfd, and std does not reset the mask: the first boot
//! test showed `SigBlk: 0000000000014002` in the payload), then calls
//! `setgroups([])`, `setgid(gid)`, `setuid(uid)` in that order. After the spawn,
//! init reads `/proc/<pid>/status` and refuses a payload that kept root,
//! supplementary groups, capabilities or blocked signals.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::{setgid, setgroups, setuid, Gid, Pid, Uid};

use crate::config::Config;

/// Why the payload could not be started safely.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PayloadError {
    /// fork/exec (or the credential change in the child) failed.
    #[error("cannot start `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The pid does not fit `pid_t`.
    #[error("payload pid {pid} does not fit pid_t")]
    Pid { pid: u32 },
    /// `/proc/<pid>/status` could not be read.
    #[error("cannot read `/proc/{pid}/status`")]
    Status {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    /// `/proc/<pid>/status` lacks or garbles a field.
    #[error("`/proc/{pid}/status`: field `{field}` missing or malformed")]
    StatusField { pid: i32, field: &'static str },
    /// The payload's credentials are not the configured unprivileged ones.
    #[error("payload credentials wrong: {field} is `{found}`, expected `{expected}`")]
    Credentials { field: &'static str, found: String, expected: String },
}

/// Starts the payload; returns its pid and the read end of its output pipe (stdout and stderr; stdin is
/// `/dev/null`). The payload never holds the console: see `relay`.
pub(crate) fn spawn(config: &Config) -> Result<(Pid, std::io::PipeReader), PayloadError> {
    let (program, args) = config.command.split_first().ok_or_else(|| PayloadError::Spawn {
        program: String::new(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
    })?;
    let spawn_error = |source| PayloadError::Spawn { program: program.clone(), source };
    let (output, output_writer) = std::io::pipe().map_err(spawn_error)?;
    let (uid, gid) = (Uid::from_raw(config.uid), Gid::from_raw(config.gid));
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(&config.env)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(output_writer.try_clone().map_err(spawn_error)?)
        .stderr(output_writer);
    // SAFETY: `pre_exec` runs the closure in the forked child before exec. init is
    // single-threaded when it spawns (no thread is ever started), so no lock can be
    // held by another thread in the child; the closure allocates nothing and only
    // makes the system calls sigprocmask, setsid, prctl, setgroups, setgid and setuid.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || drop_privileges(uid, gid).map_err(std::io::Error::from));
    }
    let child = command.spawn().map_err(spawn_error)?;
    let pid = i32::try_from(child.id()).map_err(|_| PayloadError::Pid { pid: child.id() })?;
    // Dropping `Child` neither waits nor kills; init reaps with waitpid(-1). The parent's copies of the write end
    // were moved into `command`, which is dropped here, so the pipe ends when the payload closes it.
    drop(child);
    drop(command);
    nix::fcntl::fcntl(&output, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
        .map_err(|errno| spawn_error(errno.into()))?;
    Ok((Pid::from_raw(pid), output))
}

/// `SECBIT_*` from `include/uapi/linux/securebits.h`: root gets no capabilities from exec (`NOROOT`), `setuid` away
/// from root clears them (`NO_SETUID_FIXUP` stays off), `KEEP_CAPS` stays off, no ambient raise; each one locked.
const SECUREBITS: nix::libc::c_ulong = (1 << 0) // NOROOT
    | (1 << 1) // NOROOT_LOCKED
    | (1 << 3) // NO_SETUID_FIXUP_LOCKED (off)
    | (1 << 5) // KEEP_CAPS_LOCKED (off)
    | (1 << 6) // NO_CAP_AMBIENT_RAISE
    | (1 << 7); // NO_CAP_AMBIENT_RAISE_LOCKED

/// `prctl(2)` with integer arguments.
fn prctl(option: nix::libc::c_int, arg: nix::libc::c_ulong) -> Result<(), Errno> {
    // SAFETY: every option used here takes integer arguments only; no pointer is passed.
    #[allow(unsafe_code)]
    let rc = unsafe {
        nix::libc::prctl(option, arg, 0 as nix::libc::c_ulong, 0 as nix::libc::c_ulong, 0 as nix::libc::c_ulong)
    };
    Errno::result(rc).map(drop)
}

/// In the child: unblock all signals; a new session (no controlling terminal); lock the securebits; empty the
/// capability bounding and ambient sets; then `setgroups([])`, `setgid`, `setuid` (groups and gid can only be
/// changed while still uid 0), and `PR_SET_NO_NEW_PRIVS`, so that no setuid file or file capability can ever raise
/// the payload's privileges again.
fn drop_privileges(uid: Uid, gid: Gid) -> Result<(), Errno> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    nix::unistd::setsid()?;
    prctl(nix::libc::PR_SET_SECUREBITS, SECUREBITS)?;
    for cap in 0..64 {
        match prctl(nix::libc::PR_CAPBSET_DROP, cap) {
            Ok(()) => {}
            // Past CAP_LAST_CAP of this kernel.
            Err(Errno::EINVAL) => break,
            Err(e) => return Err(e),
        }
    }
    let clear_all = nix::libc::c_ulong::try_from(nix::libc::PR_CAP_AMBIENT_CLEAR_ALL).unwrap_or(4);
    prctl(nix::libc::PR_CAP_AMBIENT, clear_all)?;
    setgroups(&[])?;
    setgid(gid)?;
    setuid(uid)?;
    prctl(nix::libc::PR_SET_NO_NEW_PRIVS, 1)
}

/// Checks `/proc/<pid>/status` against the configured uid/gid.
pub(crate) fn verify_credentials(pid: Pid, config: &Config) -> Result<(), PayloadError> {
    let raw = pid.as_raw();
    let text = std::fs::read_to_string(format!("/proc/{raw}/status"))
        .map_err(|source| PayloadError::Status { pid: raw, source })?;
    check_status(&parse_status(&text, raw)?, config.uid, config.gid)
}

/// The fields of `/proc/<pid>/status` (proc(5)) that matter for privilege.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcStatus {
    /// Real, effective, saved, filesystem uid.
    pub(crate) uid: Vec<String>,
    /// Real, effective, saved, filesystem gid.
    pub(crate) gid: Vec<String>,
    /// Supplementary groups.
    pub(crate) groups: Vec<String>,
    /// Every capability set: inheritable, permitted, effective, bounding, ambient (hex).
    pub(crate) caps: BTreeMap<&'static str, String>,
    /// Blocked signal mask (hex).
    pub(crate) sig_blk: String,
    /// `NoNewPrivs` (`1` once set).
    pub(crate) no_new_privs: String,
}

const CAP_FIELDS: [&str; 5] = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"];

/// Parses the `Uid`, `Gid`, `Groups`, `Cap*` and `SigBlk` lines.
pub(crate) fn parse_status(text: &str, pid: i32) -> Result<ProcStatus, PayloadError> {
    let field = |name: &'static str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .map(|v| v.split_ascii_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .ok_or(PayloadError::StatusField { pid, field: name })
    };
    let four = |name: &'static str| {
        field(name).and_then(|v| if v.len() == 4 { Ok(v) } else { Err(PayloadError::StatusField { pid, field: name }) })
    };
    let one = |name: &'static str| {
        field(name).and_then(|v| match v.as_slice() {
            [x] => Ok(x.clone()),
            _ => Err(PayloadError::StatusField { pid, field: name }),
        })
    };
    let (uid, gid, groups) = (four("Uid")?, four("Gid")?, field("Groups")?);
    let mut caps = BTreeMap::new();
    for name in CAP_FIELDS {
        caps.insert(name, one(name)?);
    }
    Ok(ProcStatus { uid, gid, groups, caps, sig_blk: one("SigBlk")?, no_new_privs: one("NoNewPrivs")? })
}

/// Refuses anything but uid/gid exactly as configured, no groups, no capabilities, no blocked signals.
pub(crate) fn check_status(s: &ProcStatus, uid: u32, gid: u32) -> Result<(), PayloadError> {
    let wrong = |field: &'static str, found: String, expected: String| {
        Err(PayloadError::Credentials { field, found, expected })
    };
    let want_uid = vec![uid.to_string(); 4];
    let want_gid = vec![gid.to_string(); 4];
    if s.uid != want_uid {
        return wrong("Uid", s.uid.join(" "), want_uid.join(" "));
    }
    if s.gid != want_gid {
        return wrong("Gid", s.gid.join(" "), want_gid.join(" "));
    }
    if !s.groups.is_empty() {
        return wrong("Groups", s.groups.join(" "), String::new());
    }
    for (name, value) in &s.caps {
        if value.bytes().any(|b| b != b'0') {
            return wrong(name, value.clone(), "0".repeat(value.len()));
        }
    }
    if s.sig_blk.bytes().any(|b| b != b'0') {
        return wrong("SigBlk", s.sig_blk.clone(), "0".repeat(s.sig_blk.len()));
    }
    if s.no_new_privs != "1" {
        return wrong("NoNewPrivs", s.no_new_privs.clone(), "1".into());
    }
    Ok(())
}

/// How a process ended, for the log.
pub(crate) fn describe_exit(status: WaitStatus) -> Option<String> {
    match status {
        WaitStatus::Exited(_, code) => Some(format!("status {code}")),
        WaitStatus::Signaled(_, sig, core) => {
            Some(format!("signal {}{}", sig.as_str(), if core { " (core dumped)" } else { "" }))
        }
        _ => None,
    }
}

/// The signals init forwards to the payload.
pub(crate) const FORWARDED: [Signal; 2] = [Signal::SIGTERM, Signal::SIGINT];

/// Maps a `waitpid` error that only means "no children left" to `None`.
pub(crate) fn no_children(e: Errno) -> Option<Errno> {
    (e != Errno::ECHILD).then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(uid: &str, gid: &str, groups: &str, cap_eff: &str, sig_blk: &str) -> String {
        format!(
            "Name:\tsummarize-serve\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t57\n\
             Uid:\t{uid}\nGid:\t{gid}\nFDSize:\t64\nGroups:\t{groups}\n\
             SigQ:\t0/1\nSigPnd:\t0000000000000000\nSigBlk:\t{sig_blk}\nSigIgn:\t0000000000000000\n\
             CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t{cap_eff}\n\
             CapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t0\n"
        )
    }

    const ZERO: &str = "0000000000000000";
    const U: &str = "65534\t65534\t65534\t65534";

    #[test]
    fn accepts_dropped_privileges() {
        let s = parse_status(&status(U, U, " ", ZERO, ZERO), 57).unwrap();
        assert!(s.groups.is_empty());
        check_status(&s, 65534, 65534).unwrap();
    }

    #[test]
    fn rejects_kept_privileges() {
        let cases = [
            (status("0\t0\t0\t0", U, "", ZERO, ZERO), "Uid"),
            (status("65534\t0\t65534\t65534", U, "", ZERO, ZERO), "Uid"),
            (status(U, "0\t65534\t65534\t65534", "", ZERO, ZERO), "Gid"),
            (status(U, U, "0 4", ZERO, ZERO), "Groups"),
            (status(U, U, "", "000001ffffffffff", ZERO), "CapEff"),
            (status(U, U, "", ZERO, "0000000000004000"), "SigBlk"),
            // Issue 17: a full bounding set, an ambient capability, or NO_NEW_PRIVS unset refuse the payload too.
            (status(U, U, "", ZERO, ZERO).replace("CapBnd:\t0000000000000000", "CapBnd:\t000001ffffffffff"), "CapBnd"),
            (status(U, U, "", ZERO, ZERO).replace("CapAmb:\t0000000000000000", "CapAmb:\t0000000000000400"), "CapAmb"),
            (status(U, U, "", ZERO, ZERO).replace("NoNewPrivs:\t1", "NoNewPrivs:\t0"), "NoNewPrivs"),
        ];
        for (text, want) in cases {
            let err = check_status(&parse_status(&text, 57).unwrap(), 65534, 65534).unwrap_err();
            assert!(matches!(err, PayloadError::Credentials { field, .. } if field == want), "{want}: {err}");
        }
    }

    #[test]
    fn rejects_malformed_status() {
        let err = parse_status("Uid:\t1\t1\nGid:\t1\t1\t1\t1\n", 57).unwrap_err();
        assert!(matches!(err, PayloadError::StatusField { field: "Uid", .. }), "{err}");
        let err = parse_status(&status(U, U, "", ZERO, ZERO).replace("SigBlk", "SigXyz"), 57).unwrap_err();
        assert!(matches!(err, PayloadError::StatusField { field: "SigBlk", .. }), "{err}");
    }

    #[test]
    fn describes_exit() {
        let pid = Pid::from_raw(57);
        assert_eq!(describe_exit(WaitStatus::Exited(pid, 3)).as_deref(), Some("status 3"));
        assert_eq!(describe_exit(WaitStatus::Signaled(pid, Signal::SIGTERM, false)).as_deref(), Some("signal SIGTERM"));
        assert_eq!(describe_exit(WaitStatus::StillAlive), None);
    }
}
