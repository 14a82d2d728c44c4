//! Starting a helper thread now rather than at the next scheduler tick.
//!
//! On a Linux VM whose other vCPUs are idle (tickless), a new thread is queued on its parent's CPU and only moves
//! to an idle one when the periodic load balancer runs: up to one tick later, 4 ms at HZ=250. For `measure snp`,
//! whose whole run is about 10 ms, that delay was most of the gap between one and two cores: on the development VM
//! (Firecracker, Linux 6.18, 2 vCPUs) a spawned thread started after 0.1 to 4.8 ms, median 2.3 ms.
//!
//! [`spawn_promptly`] makes sure the two threads part at once: whichever of them runs first on the shared CPU
//! moves itself to another CPU it may run on (and then allows its old set of CPUs again; it stays where it now
//! runs). The other one keeps the CPU. Measured there, the helper then starts after about 0.12 ms. If the new thread
//! has started on another CPU already, nobody moves. This changes only timing, never results; where any step is not
//! possible (one CPU, a restricted affinity mask, not Linux) nothing moves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

/// How long the parent waits for the new thread to show up elsewhere before it moves away itself. Where the
/// scheduler does place new threads on idle CPUs they start well within this.
const GRACE: Duration = Duration::from_micros(100);

/// Spawns `work` on `scope` so that it starts at once on another CPU. See the module documentation.
pub fn spawn_promptly<'scope, 'env, T, F>(scope: &'scope Scope<'scope, 'env>, work: F) -> ScopedJoinHandle<'scope, T>
where
    F: FnOnce() -> T + Send + 'scope,
    T: Send + 'scope,
{
    let Some(parent_cpu) = current_cpu() else {
        return scope.spawn(work);
    };
    // Set by the first of the two threads to act: it has moved away, or it found them apart already.
    let settled = Arc::new(AtomicBool::new(false));
    let child_settled = Arc::clone(&settled);
    let handle = scope.spawn(move || {
        let first = !child_settled.swap(true, Ordering::AcqRel);
        // Running on the parent's CPU before the parent moved: the parent is waiting behind this thread.
        if first && current_cpu() == Some(parent_cpu) {
            hop_to_another_cpu();
        }
        work()
    });
    let waited = Instant::now();
    while !settled.load(Ordering::Acquire) && waited.elapsed() < GRACE {
        std::hint::spin_loop();
    }
    if !settled.swap(true, Ordering::AcqRel) {
        hop_to_another_cpu();
    }
    handle
}

#[cfg(target_os = "linux")]
fn current_cpu() -> Option<usize> {
    nix::sched::sched_getcpu().ok()
}

#[cfg(not(target_os = "linux"))]
fn current_cpu() -> Option<usize> {
    None
}

#[cfg(target_os = "linux")]
fn hop_to_another_cpu() {
    use nix::sched::{sched_getaffinity, sched_getcpu, sched_setaffinity, CpuSet};
    use nix::unistd::Pid;

    let me = Pid::from_raw(0);
    let (Ok(allowed), Ok(current)) = (sched_getaffinity(me), sched_getcpu()) else {
        return;
    };
    let mut elsewhere = allowed;
    if elsewhere.unset(current).is_err() || !(0..CpuSet::count()).any(|cpu| elsewhere.is_set(cpu).unwrap_or(false)) {
        return;
    }
    if sched_setaffinity(me, &elsewhere).is_ok() {
        // Back to every CPU it was allowed before; it stays where it now runs.
        let _ = sched_setaffinity(me, &allowed);
    }
}

#[cfg(not(target_os = "linux"))]
fn hop_to_another_cpu() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_runs_and_the_affinity_is_restored() {
        #[cfg(target_os = "linux")]
        let before = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok();
        let sum = std::thread::scope(|s| spawn_promptly(s, || (1..=10).sum::<u32>()).join().ok());
        assert_eq!(sum, Some(55));
        #[cfg(target_os = "linux")]
        assert_eq!(nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok(), before);
    }
}
