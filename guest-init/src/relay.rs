//! The payload's only output channel: a pipe that init relays to the console, one line at a time, each prefixed
//! `payload: ` and escaped, at a bounded rate. The payload never holds the console: it cannot read what the host
//! types on the serial line, cannot make it its controlling terminal or inject input (`TIOCSCTTY`, `TIOCSTI`), and
//! cannot print a line that passes for init's (`cvmforge-init: ...`).

use std::io::{ErrorKind, Read};
use std::time::Instant;

/// The longest line relayed as one; longer output is cut into lines of this many bytes.
pub(crate) const MAX_LINE: usize = 512;
/// Lines per second relayed on average...
const LINES_PER_SECOND: f64 = 20.0;
/// ... with bursts of at most this many lines.
const BURST: f64 = 100.0;

/// Reads the payload's pipe and writes complete lines through `emit`.
pub(crate) struct Relay<R> {
    reader: R,
    pending: Vec<u8>,
    tokens: f64,
    refilled: Instant,
    dropped: u64,
    open: bool,
}

impl<R: Read> Relay<R> {
    pub(crate) fn new(reader: R) -> Self {
        Relay { reader, pending: Vec::new(), tokens: BURST, refilled: Instant::now(), dropped: 0, open: true }
    }

    /// The pipe, for `poll`.
    pub(crate) fn reader_fd(&self) -> std::os::fd::BorrowedFd<'_>
    where
        R: std::os::fd::AsFd,
    {
        self.reader.as_fd()
    }

    /// Whether the payload still holds the write end.
    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    /// Reads what is available (the pipe is non-blocking) and relays every complete line.
    pub(crate) fn pump(&mut self, now: Instant, emit: &mut dyn FnMut(&str)) {
        let mut chunk = [0u8; 4096];
        loop {
            match self.reader.read(&mut chunk) {
                Ok(0) => {
                    self.open = false;
                    break;
                }
                Ok(n) => {
                    self.pending.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    self.drain_lines(now, emit, false);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock: nothing more now.
            }
        }
        if !self.open {
            self.drain_lines(now, emit, true);
        }
    }

    fn drain_lines(&mut self, now: Instant, emit: &mut dyn FnMut(&str), flush: bool) {
        loop {
            let end = match self.pending.iter().position(|&b| b == b'\n') {
                Some(i) if i < MAX_LINE => i + 1,
                _ if self.pending.len() >= MAX_LINE => MAX_LINE,
                _ if flush && !self.pending.is_empty() => self.pending.len(),
                _ => return,
            };
            let line: Vec<u8> = self.pending.drain(..end).collect();
            self.relay(&line, now, emit);
        }
    }

    fn relay(&mut self, line: &[u8], now: Instant, emit: &mut dyn FnMut(&str)) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * LINES_PER_SECOND).min(BURST);
        if self.tokens < 1.0 {
            self.dropped += 1;
            return;
        }
        self.tokens -= 1.0;
        if self.dropped > 0 {
            emit(&format!("payload: [{} line(s) dropped by the rate limit]", self.dropped));
            self.dropped = 0;
        }
        emit(&format!("payload: {}", escape(line.strip_suffix(b"\n").unwrap_or(line))));
    }
}

/// Printable text stays; control characters (including a lone `\r` and terminal escapes) and invalid UTF-8 are shown
/// as escapes.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control()
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
            {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn relay_all(input: &[u8], now: Instant) -> Vec<String> {
        let mut relay = Relay::new(input);
        let mut lines = Vec::new();
        relay.pump(now, &mut |l| lines.push(l.to_string()));
        assert!(!relay.is_open());
        lines
    }

    #[test]
    fn prefixes_and_escapes_every_line() {
        let lines = relay_all(b"ok\ncvmforge-init: payload exited\r\x1b[2K\nbad \xff byte\nno newline", Instant::now());
        assert_eq!(
            lines,
            [
                "payload: ok",
                "payload: cvmforge-init: payload exited\\r\\u{1b}[2K",
                "payload: bad \\xff byte",
                "payload: no newline",
            ]
        );
    }

    #[test]
    fn cuts_long_lines() {
        let long = vec![b'a'; MAX_LINE * 2 + 3];
        let lines = relay_all(&long, Instant::now());
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), "payload: ".len() + MAX_LINE);
    }

    #[test]
    fn rate_limits_a_flood_and_says_how_much_was_dropped() {
        let flood = "x\n".repeat(1000);
        let start = Instant::now();
        let mut relay = Relay::new(flood.as_bytes());
        let mut lines = Vec::new();
        relay.pump(start, &mut |l| lines.push(l.to_string()));
        assert_eq!(lines.len(), BURST as usize);
        // A second later, 20 more tokens: the first relayed line reports the drop.
        let mut relay2 = Relay { reader: &b"y\n"[..], ..relay };
        relay2.pump(start + Duration::from_secs(1), &mut |l| lines.push(l.to_string()));
        assert_eq!(lines[BURST as usize], "payload: [900 line(s) dropped by the rate limit]");
        assert_eq!(lines.last().map(String::as_str), Some("payload: y"));
    }
}
