//! `guest-init`: the sealed PID 1 of a cvmforge image.
//!
//! Steps, each logged as one line on `/dev/console`:
//! 1. block SIGCHLD/SIGTERM/SIGINT and read them from a signalfd; make
//!    Ctrl-Alt-Del a SIGINT (forwarded) rather than a hard reset;
//! 2. mount /proc, /sys, /dev (devtmpfs), /tmp, /run ([`mounts`]) — nothing persistent;
//! 3. read and validate `/etc/cvmforge/init.json` ([`config`]);
//! 4. load the listed kernel modules in order ([`modules`]);
//! 5. bring up lo and, with `cvm.net=` on the kernel command line ([`cmdline`]),
//!    the first virtio NIC ([`net`]);
//! 6. start the payload as the configured unprivileged user ([`payload`]);
//! 7. reap zombies, forward SIGTERM/SIGINT to the payload;
//! 8. when the payload exits, or on any error or panic: sync and power off.
//!
//! There is no shell, no rescue mode, and the console is never read.

mod cmdline;
mod config;
mod console;
mod modules;
mod mounts;
mod net;
mod payload;
mod power;

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpid, Pid};

use crate::config::{Config, CONFIG_PATH, MAX_CONFIG_BYTES};
use crate::console::log;

/// A fatal error: init powers off after logging it.
#[derive(Debug, thiserror::Error)]
enum InitError {
    #[error("cannot set up signal handling: {errno}")]
    Signals { errno: Errno },
    #[error(transparent)]
    Mount(#[from] mounts::MountError),
    #[error("cannot read `{path}`")]
    ReadFile {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("`{CONFIG_PATH}` is invalid")]
    Config(#[from] config::ConfigError),
    #[error("kernel command line")]
    Cmdline(#[from] cmdline::CmdlineError),
    #[error(transparent)]
    Module(#[from] modules::ModuleError),
    #[error("network setup failed")]
    Net(#[from] net::NetError),
    #[error(transparent)]
    Payload(#[from] payload::PayloadError),
    #[error("waiting for signals failed: {errno}")]
    Wait { errno: Errno },
}

/// Renders an error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn main() {
    if getpid().as_raw() != 1 {
        // Never mount, load modules or power off a machine this was not built for.
        eprintln!("error: guest-init must run as PID 1 inside a cvmforge image");
        std::process::exit(2);
    }
    std::panic::set_hook(Box::new(|info| {
        log!("fatal: {info}; powering off");
        power::power_off();
    }));
    match run() {
        Ok(how) => log!("payload exited with {how}; powering off"),
        Err(e) => log!("fatal: {}; powering off", chain(&e)),
    }
    power::power_off();
}

/// Runs every step; returns how the payload ended.
fn run() -> Result<String, InitError> {
    let signals = block_signals()?;
    power::soft_ctrl_alt_del().map_err(|errno| InitError::Signals { errno })?;
    for m in &mounts::MOUNTS {
        m.apply()?;
        log!("mounted {}", m.target);
    }
    let config = Config::parse(&read_limited(CONFIG_PATH, MAX_CONFIG_BYTES)?)?;
    log!("read {CONFIG_PATH}");
    let net = cmdline::parse_cmdline(&String::from_utf8_lossy(&read_limited("/proc/cmdline", 64 * 1024)?))?;
    for m in &config.modules {
        log!("{}", m.load()?.describe(&m.name));
    }
    for line in net::bring_up(net)? {
        log!("{line}");
    }
    let pid = payload::spawn(&config)?;
    log!("started payload pid {pid}");
    if let Err(e) = payload::verify_credentials(pid, &config) {
        let _ = kill(pid, Signal::SIGKILL);
        return Err(e.into());
    }
    log!("payload pid {pid} runs as uid {} gid {}, no groups, no capabilities", config.uid, config.gid);
    supervise(&signals, pid)
}

/// Blocks the signals init handles and returns a signalfd for them.
fn block_signals() -> Result<SignalFd, InitError> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in payload::FORWARDED {
        set.add(s);
    }
    set.thread_block().map_err(|errno| InitError::Signals { errno })?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).map_err(|errno| InitError::Signals { errno })
}

/// Reads a small file, refusing more than `limit` bytes.
fn read_limited(path: &'static str, limit: usize) -> Result<Vec<u8>, InitError> {
    use std::io::Read;
    let err = |source| InitError::ReadFile { path, source };
    let file = std::fs::File::open(path).map_err(err)?;
    let mut buf = Vec::new();
    file.take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1)).read_to_end(&mut buf).map_err(err)?;
    Ok(buf)
}

/// Waits for signals: reaps every child, forwards SIGTERM/SIGINT; returns when the payload ends.
fn supervise(signals: &SignalFd, payload: Pid) -> Result<String, InitError> {
    loop {
        let info = match signals.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(errno) => return Err(InitError::Wait { errno }),
        };
        let signal = i32::try_from(info.ssi_signo).ok().and_then(|s| Signal::try_from(s).ok());
        match signal {
            Some(Signal::SIGCHLD) => {
                if let Some(how) = reap(payload)? {
                    return Ok(how);
                }
            }
            Some(s) if payload::FORWARDED.contains(&s) => {
                log!("forwarding {} to payload pid {payload}", s.as_str());
                if let Err(errno) = kill(payload, s) {
                    log!("forwarding {} failed: {errno}", s.as_str());
                }
            }
            _ => {}
        }
    }
}

/// Reaps all exited children; returns the payload's end if it was among them.
fn reap(payload: Pid) -> Result<Option<String>, InitError> {
    let mut payload_end = None;
    loop {
        let status = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return Ok(payload_end),
            Ok(status) => status,
            Err(e) => match payload::no_children(e) {
                None => return Ok(payload_end),
                Some(Errno::EINTR) => continue,
                Some(errno) => return Err(InitError::Wait { errno }),
            },
        };
        if status.pid() == Some(payload) {
            payload_end = payload::describe_exit(status);
        }
    }
}
