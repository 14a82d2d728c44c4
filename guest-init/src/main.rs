//! `guest-init`: the sealed PID 1 of a cvmforge image.
//!
//! Steps, each logged as one line on `/dev/console`:
//! 1. block SIGCHLD/SIGTERM/SIGINT and read them from a signalfd; make
//!    Ctrl-Alt-Del a SIGINT (forwarded) rather than a hard reset;
//! 2. mount /proc, /sys, /dev (devtmpfs), /tmp, /run ([`mounts`]) — nothing persistent;
//! 3. read and validate `/etc/cvmforge/init.json` ([`config`]);
//! 4. load the listed kernel modules in order ([`modules`]), then set up each data volume under dm-verity from the
//!    measured command line and mount it read-only ([`volumes`]);
//! 5. bring up lo and, with `cvm.net=` on the kernel command line ([`cmdline`]),
//!    the first virtio NIC ([`net`]);
//! 6. lock the kernel (no more modules, no usermode helpers, hardening sysctls) and
//!    make `/` read-only, nosuid, nodev ([`harden`]);
//! 7. start the payload as the configured unprivileged user with no capability in any
//!    set and `NO_NEW_PRIVS` ([`payload`]); its output goes through a pipe that init
//!    relays to the console with a prefix ([`relay`]);
//! 8. reap zombies; on SIGTERM/SIGINT (Ctrl-Alt-Del) or the ACPI power button
//!    ([`button`]), send the payload SIGTERM, and SIGKILL after [`STOP_DEADLINE`];
//! 9. when the payload exits, or on any error or panic: sync and power off.
//!
//! There is no shell, no rescue mode, and the console is never read.

mod button;
mod cmdline;
mod config;
mod console;
mod harden;
mod modules;
mod mounts;
mod net;
mod payload;
mod power;
mod relay;
mod selfcheck;
mod volumes;

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

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
    #[error("data volume setup failed")]
    Volume(#[from] volumes::VolumeError),
    #[error("network setup failed")]
    Net(#[from] net::NetError),
    #[error(transparent)]
    Payload(#[from] payload::PayloadError),
    #[error("hardening failed")]
    Harden(#[from] harden::HardenError),
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
    let cmdline = String::from_utf8_lossy(&read_limited("/proc/cmdline", 64 * 1024)?).into_owned();
    let net = cmdline::parse_cmdline(&cmdline)?;
    let volume_params = cmdline::parse_volumes(&cmdline)?;
    for m in &config.modules {
        log!("{}", m.load()?.describe(&m.name));
    }
    for line in volumes::set_up(&config.volumes, &volume_params)? {
        log!("{line}");
    }
    for line in net::bring_up(net)? {
        log!("{line}");
    }
    log!("{}", mounts::mount_configfs_if_present()?);
    log_block_devices();
    let mut buttons = button::open_power_buttons();
    for (name, _) in &buttons {
        log!("power button: /dev/input/{name}");
    }
    for line in harden::lock_kernel()? {
        log!("{line}");
    }
    harden::seal_root()?;
    log!("/ is read-only, nosuid, nodev (mode 0755)");
    for line in selfcheck::run() {
        log!("{line}");
    }
    for line in give_attestation_devices(&config) {
        log!("{line}");
    }
    let (pid, output) = payload::spawn(&config)?;
    log!("started payload pid {pid}");
    if let Err(e) = payload::verify_credentials(pid, &config) {
        let _ = kill(pid, Signal::SIGKILL);
        return Err(e.into());
    }
    log!(
        "payload pid {pid} runs as uid {} gid {}, no groups, no capabilities in any set, NoNewPrivs 1",
        config.uid,
        config.gid
    );
    supervise(&signals, pid, relay::Relay::new(output), &mut buttons)
}

/// The attestation-report devices (`/dev/sev-guest`, `/dev/tdx_guest`), when the kernel made them, become the
/// payload's (owner uid/gid, mode 0600): the payload asks for reports that bind its own key in REPORT_DATA. Nothing
/// else in /dev changes hands. A device that cannot be given is logged; the payload then reports "no device".
fn give_attestation_devices(config: &Config) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut log = Vec::new();
    // configfs-tsm (Linux 6.7+): report entries are made by mkdir, which only root may do; init makes one for the
    // payload and gives it its files (`inblob`, `outblob`, `provider`, ...).
    let tsm = std::path::Path::new("/sys/kernel/config/tsm/report");
    if tsm.is_dir() {
        let entry = tsm.join("payload");
        let given = std::fs::create_dir(&entry).and_then(|()| {
            let mut paths = vec![entry.clone()];
            for item in std::fs::read_dir(&entry)? {
                paths.push(item?.path());
            }
            for path in paths {
                nix::unistd::chown(
                    &path,
                    Some(nix::unistd::Uid::from_raw(config.uid)),
                    Some(nix::unistd::Gid::from_raw(config.gid)),
                )?;
            }
            Ok(())
        });
        log.push(match given {
            Ok(()) => format!("{} belongs to the payload (uid {})", entry.display(), config.uid),
            Err(e) => format!("cannot give {} to the payload: {e}", entry.display()),
        });
    }
    for device in ["/dev/sev-guest", "/dev/tdx_guest"] {
        if !std::path::Path::new(device).exists() {
            continue;
        }
        let owner = nix::unistd::chown(
            device,
            Some(nix::unistd::Uid::from_raw(config.uid)),
            Some(nix::unistd::Gid::from_raw(config.gid)),
        );
        let mode = std::fs::set_permissions(device, std::fs::Permissions::from_mode(0o600));
        log.push(match (owner, mode) {
            (Ok(()), Ok(())) => format!("{device} belongs to the payload (uid {}), mode 0600", config.uid),
            (Err(e), _) => format!("cannot give {device} to the payload: {e}"),
            (_, Err(e)) => format!("cannot give {device} to the payload: {e}"),
        });
    }
    log
}

/// The block devices the guest sees (by name, from sysfs): the boot test reads this line to prove that a scratch
/// disk was visible, so that "the disk is unchanged" means something. Nothing is ever mounted from them.
fn log_block_devices() {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
        .collect();
    names.sort();
    log!("block devices: {}", if names.is_empty() { "none".to_string() } else { names.join(" ") });
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

/// How long the payload has to exit after SIGTERM (a stop request) before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Waits for signals, payload output and the power button: reaps every child, relays output, and on a stop request
/// (SIGTERM/SIGINT, the power button) sends the payload SIGTERM, then SIGKILL after [`STOP_DEADLINE`]. Returns when
/// the payload ends.
fn supervise(
    signals: &SignalFd,
    payload: Pid,
    mut output: relay::Relay<std::io::PipeReader>,
    buttons: &mut [(String, std::fs::File)],
) -> Result<String, InitError> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut deadline: Option<Instant> = None;
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(at) => {
                let ms = at.saturating_duration_since(Instant::now()).as_millis().min(60_000);
                PollTimeout::from(u16::try_from(ms).unwrap_or(u16::MAX))
            }
        };
        let (signal_ready, output_ready, pressed) = {
            let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            let output_fd = output.reader_fd();
            if output.is_open() {
                fds.push(PollFd::new(output_fd, PollFlags::POLLIN));
            }
            let first_button = fds.len();
            fds.extend(buttons.iter().map(|(_, f)| PollFd::new(f.as_fd(), PollFlags::POLLIN)));
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => return Err(InitError::Wait { errno }),
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            let signal_ready = fds.first().is_some_and(ready);
            let output_ready = output.is_open() && fds.get(1).is_some_and(ready);
            let pressed: Vec<usize> = fds
                .iter()
                .enumerate()
                .skip(first_button)
                .filter(|(_, f)| ready(f))
                .map(|(i, _)| i - first_button)
                .collect();
            (signal_ready, output_ready, pressed)
        };
        if output_ready {
            output.pump(Instant::now(), &mut |line| console::write_payload_line(line));
        }
        for i in pressed {
            if let Some((name, device)) = buttons.get_mut(i) {
                if button::pressed(device) && deadline.is_none() {
                    log!("power button ({name}): stopping the payload");
                    deadline = Some(request_stop(payload, Signal::SIGTERM));
                }
            }
        }
        if deadline.is_some_and(|at| Instant::now() >= at) {
            log!("payload pid {payload} did not exit within {} s; killing it", STOP_DEADLINE.as_secs());
            let _ = kill(payload, Signal::SIGKILL);
            deadline = Some(Instant::now() + STOP_DEADLINE);
        }
        if !signal_ready {
            continue;
        }
        let info = match signals.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
            Err(errno) => return Err(InitError::Wait { errno }),
        };
        let signal = i32::try_from(info.ssi_signo).ok().and_then(|s| Signal::try_from(s).ok());
        match signal {
            Some(Signal::SIGCHLD) => {
                if let Some(how) = reap(payload)? {
                    // Relay what the payload wrote last.
                    output.pump(Instant::now(), &mut |line| console::write_payload_line(line));
                    return Ok(how);
                }
            }
            Some(s) if payload::FORWARDED.contains(&s) => {
                log!("forwarding {} to payload pid {payload}", s.as_str());
                let at = request_stop(payload, s);
                deadline.get_or_insert(at);
            }
            _ => {}
        }
    }
}

/// Sends `signal` to the payload; returns when it must be gone.
fn request_stop(payload: Pid, signal: Signal) -> Instant {
    if let Err(errno) = kill(payload, signal) {
        log!("sending {} failed: {errno}", signal.as_str());
    }
    Instant::now() + STOP_DEADLINE
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
