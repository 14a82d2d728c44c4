//! A memory-mapped input that is truncated while it is read raises SIGBUS, which would end the process with no word
//! of why. [`guard`] records each mapping's address range with a message prepared in advance; the SIGBUS handler,
//! installed once, finds the range that the faulting address falls in, writes that message to stderr and exits 1 (a
//! failure, as for any input that changed while it was measured). The handler only reads atomics and calls
//! `write(2)` and `_exit(2)`, which are async-signal-safe.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Once;

use nix::libc;

/// Mappings watched at once (`measure` maps the firmware, the kernel and the initrd).
const SLOTS: usize = 16;

struct Slot {
    start: AtomicUsize,
    end: AtomicUsize,
    message: AtomicPtr<u8>,
    message_len: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    message: AtomicPtr::new(std::ptr::null_mut()),
    message_len: AtomicUsize::new(0),
};
static SLOT_TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static INSTALL: Once = Once::new();

const UNKNOWN: &[u8] = b"error: bus error (SIGBUS) reading a memory-mapped input: a file was probably truncated while \
cvmforge read it; measure it again\n";

/// Watches `range` (a mapping of the file `shown` names) until the guard is dropped.
#[derive(Debug)]
pub(crate) struct Guard {
    slot: Option<usize>,
}

/// Starts watching the mapping at `start` of `len` bytes.
pub(crate) fn guard(start: *const u8, len: usize, shown: &str) -> Guard {
    INSTALL.call_once(install);
    let message: &'static mut [u8] = Box::leak(
        format!("error: `{shown}` was truncated while cvmforge read it (SIGBUS); measure it again\n")
            .into_bytes()
            .into_boxed_slice(),
    );
    for (index, slot) in SLOT_TABLE.iter().enumerate() {
        // A slot is free while its end is 0: claim it there, then fill it in, writing the start last.
        if slot.end.compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            slot.message_len.store(message.len(), Ordering::Release);
            slot.message.store(message.as_mut_ptr(), Ordering::Release);
            slot.end.store(start as usize + len, Ordering::Release);
            slot.start.store(start as usize, Ordering::Release);
            return Guard { slot: Some(index) };
        }
    }
    // Every slot in use: the generic message still explains a SIGBUS.
    Guard { slot: None }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.and_then(|i| SLOT_TABLE.get(i)) {
            slot.start.store(0, Ordering::Release);
            // The message stays allocated: a handler running now may still read it. It is a few dozen bytes.
            slot.end.store(0, Ordering::Release);
        }
    }
}

fn install() {
    // SAFETY: `on_sigbus` is async-signal-safe (see the module docs); the sigaction struct is fully initialised.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

extern "C" fn on_sigbus(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers; `si_addr` is the faulting address.
    let address = unsafe { info.as_ref().map_or(0, |i| i.si_addr() as usize) };
    let mut message: (*const u8, usize) = (UNKNOWN.as_ptr(), UNKNOWN.len());
    for slot in &SLOT_TABLE {
        let start = slot.start.load(Ordering::Acquire);
        if start != 0 && address >= start && address < slot.end.load(Ordering::Acquire) {
            message = (slot.message.load(Ordering::Acquire), slot.message_len.load(Ordering::Acquire));
            break;
        }
    }
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the message points to leaked, never-freed bytes.
    unsafe {
        libc::write(2, message.0.cast(), message.1);
        libc::_exit(1);
    }
}
