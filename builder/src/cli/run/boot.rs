//! Booting under QEMU and supervising it: spawn it in its own process group, stream its console, watch for a
//! kernel panic, the deadline and signals, and always stop it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::{CliResult, Failure};
use cvmforge::qemu::{is_kernel_panic, QEMU_BINARY};

/// How long the console keeps streaming after a panic line, so that the panic's backtrace is shown.
const PANIC_GRACE: Duration = Duration::from_secs(1);
/// How often the supervisor checks the child, the deadline and the signal flag.
const POLL: Duration = Duration::from_millis(100);
/// Longest console line kept in one piece; longer output is split (a guest could print without newlines forever).
const MAX_LINE: usize = 16 * 1024;
/// QEMU's own stderr lines kept for the error message.
const STDERR_TAIL: usize = 5;

/// How the run ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// QEMU exited 0 and the console showed no panic: the guest powered off.
    PoweredOff,
    /// The console showed a kernel panic (this line).
    Panic(String),
    /// The deadline passed.
    TimedOut,
    /// QEMU exited with an error, with the last lines it printed.
    QemuFailed { status: ExitStatus, stderr_tail: Vec<String> },
    /// SIGINT, SIGTERM or SIGHUP.
    Interrupted,
}

/// What the reader threads report.
enum Event {
    Panic(String),
}

/// Kills QEMU when dropped, whatever way `cvmforge` leaves the supervisor (return, error, panic).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Both fail only if QEMU already exited and was reaped, which is the goal.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_qemu(qemu_args: &[String]) -> CliResult<KillOnDrop> {
    let child = Command::new(QEMU_BINARY)
        .args(qemu_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a terminal's Ctrl-C reaches cvmforge only, which then stops QEMU and reports it
        // (QEMU would otherwise exit 0 on SIGINT, which looks like a clean power-off).
        .process_group(0)
        .spawn()
        .map_err(|e| {
            Failure::hinted(
                anyhow::Error::new(e).context(format!("cannot start `{QEMU_BINARY}`")),
                "install QEMU (Debian/Ubuntu: `apt install qemu-system-x86`)",
            )
        })?;
    Ok(KillOnDrop(child))
}

pub(super) fn boot_and_wait(qemu_args: &[String], timeout: Duration) -> CliResult<Outcome> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted)).context("cannot install a signal handler")?;
    }
    let mut qemu = spawn_qemu(qemu_args)?;
    let (events, received) = mpsc::channel();
    let console = qemu.0.stdout.take().map(|out| spawn_console(out, events));
    let stderr = qemu.0.stderr.take().map(spawn_stderr);
    let outcome = supervise(&mut qemu.0, &received, timeout, &interrupted)?;
    drop(qemu);
    // QEMU is gone, so both pipes are at end of file: the readers finish printing what is left.
    if let Some(console) = console {
        let _ = console.join();
    }
    let stderr_tail = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(match outcome {
        // A panic line can arrive after QEMU exited (a guest with `panic=N` reboots, which ends QEMU with 0).
        Outcome::PoweredOff => match received.try_recv() {
            Ok(Event::Panic(line)) => Outcome::Panic(line),
            Err(_) => Outcome::PoweredOff,
        },
        Outcome::QemuFailed { status, .. } => Outcome::QemuFailed { status, stderr_tail },
        other => other,
    })
}

fn supervise(
    qemu: &mut Child,
    events: &Receiver<Event>,
    timeout: Duration,
    interrupted: &AtomicBool,
) -> anyhow::Result<Outcome> {
    let deadline = Instant::now() + timeout;
    let mut panic: Option<(String, Instant)> = None;
    loop {
        if interrupted.load(Ordering::Relaxed) {
            return Ok(Outcome::Interrupted);
        }
        if let Some(status) = qemu.try_wait().context("cannot wait for QEMU")? {
            return Ok(match panic {
                Some((line, _)) => Outcome::Panic(line),
                None if status.success() => Outcome::PoweredOff,
                None => Outcome::QemuFailed { status, stderr_tail: Vec::new() },
            });
        }
        let now = Instant::now();
        if let Some((line, at)) = &panic {
            if now >= *at + PANIC_GRACE {
                return Ok(Outcome::Panic(line.clone()));
            }
        } else if now >= deadline {
            return Ok(Outcome::TimedOut);
        }
        match events.recv_timeout(POLL) {
            Ok(Event::Panic(line)) => {
                panic.get_or_insert((line, Instant::now()));
            }
            Err(RecvTimeoutError::Timeout) => {}
            // The console is closed (QEMU is exiting): wait instead of spinning on a channel that returns at once.
            Err(RecvTimeoutError::Disconnected) => thread::sleep(POLL),
        }
    }
}

/// Streams the guest console (QEMU's stdout) to stderr line by line, and reports the first kernel panic line.
fn spawn_console(out: impl Read + Send + 'static, events: Sender<Event>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(out);
        let mut reported = false;
        let mut line = Vec::new();
        while read_line_bounded(&mut reader, &mut line).unwrap_or(false) {
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            let _ = writeln!(io::stderr().lock(), "{text}");
            if !reported && is_kernel_panic(text) {
                reported = true;
                let _ = events.send(Event::Panic(text.trim_start_matches(timestamp_prefix).trim().to_owned()));
            }
        }
    })
}

/// Characters of the kernel's `[    1.234567] ` timestamp, stripped from the panic line in the error message.
fn timestamp_prefix(c: char) -> bool {
    c == '[' || c == ']' || c == ' ' || c == '.' || c.is_ascii_digit()
}

/// Reads up to and including the next newline, or [`MAX_LINE`] bytes; `false` at end of file.
fn read_line_bounded(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<bool> {
    line.clear();
    let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX);
    let n = reader.by_ref().take(limit).read_until(b'\n', line)?;
    Ok(n > 0)
}

/// Forwards QEMU's own messages (already prefixed with its name) to stderr, and returns the last few for the error message.
fn spawn_stderr(err: impl Read + Send + 'static) -> JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let mut reader = BufReader::new(err);
        let mut tail: Vec<String> = Vec::new();
        let mut line = Vec::new();
        while read_line_bounded(&mut reader, &mut line).unwrap_or(false) {
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            let _ = writeln!(io::stderr().lock(), "{text}");
            if tail.len() == STDERR_TAIL {
                tail.remove(0);
            }
            tail.push(text);
        }
        tail
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_console_lines_are_split() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.extend_from_slice(b"\nend");
        let mut reader = BufReader::new(&input[..]);
        let mut line = Vec::new();
        assert!(read_line_bounded(&mut reader, &mut line).unwrap());
        assert_eq!(line.len(), MAX_LINE);
        assert!(read_line_bounded(&mut reader, &mut line).unwrap());
        assert_eq!(line, [&[b'x'; 10][..], b"\n"].concat());
        assert!(read_line_bounded(&mut reader, &mut line).unwrap());
        assert_eq!(line, b"end");
        assert!(!read_line_bounded(&mut reader, &mut line).unwrap());
    }
}
