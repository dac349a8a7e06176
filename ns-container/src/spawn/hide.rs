//! Hiding the caller's memory while a task that shares it lives in a container's pid
//! namespace: the caller's memory is made non-dumpable (`PR_SET_DUMPABLE` 0) for the length
//! of such a spawn and put back after it. A container's root then needs `CAP_SYS_PTRACE` in
//! the caller's user namespace to open `/proc/PID/mem` of the child (or pid stage) that
//! shares it, which runc's default capabilities do not give (runc's CVE-2016-9962 class).
//! The flag belongs to the memory, so the caller is non-dumpable too while any such spawn
//! runs (no core dump, and only `CAP_SYS_PTRACE` may trace it); spawns from several threads
//! share one window, which the last one closes.
//!
//! The state is kept under a spin lock that records its holder's pid, so that a forked copy
//! of the caller (a closure child) never waits for a lock its parent held at the fork.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

/// The pid of the process holding the lock, 0 when free.
static LOCK: AtomicI32 = AtomicI32::new(0);
/// Under the lock: the process the counts below belong to, how many spawns hold the
/// window, and the flag to put back when the last one ends.
static FOR: AtomicI32 = AtomicI32::new(0);
static HOLDERS: AtomicUsize = AtomicUsize::new(0);
static SAVED: AtomicI32 = AtomicI32::new(0);

fn locked<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    loop {
        match LOCK.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => break,
            // Held in the process this one was forked from: nobody releases it here.
            Err(holder) if holder != me => {
                if LOCK
                    .compare_exchange(holder, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    break;
                }
            }
            Err(_) => std::hint::spin_loop(),
        }
    }
    if FOR.load(Ordering::Relaxed) != me {
        // Counts copied from a parent by fork are not this process's.
        FOR.store(me, Ordering::Relaxed);
        HOLDERS.store(0, Ordering::Relaxed);
    }
    let r = f();
    LOCK.store(0, Ordering::Release);
    r
}

/// In a closure child (a copy of the caller with one thread): whatever the caller's other
/// threads held at the fork is not this process's. Async-signal-safe (atomic stores).
pub(crate) fn forget_after_fork() {
    FOR.store(0, Ordering::Relaxed);
    HOLDERS.store(0, Ordering::Relaxed);
    LOCK.store(0, Ordering::Release);
}

/// The window: the caller's memory is non-dumpable while one exists.
pub(super) struct Hidden(());

impl Hidden {
    pub(super) fn open() -> Hidden {
        locked(|| {
            if HOLDERS.load(Ordering::Relaxed) == 0 {
                // SAFETY: prctl queries and sets a flag of this process's memory.
                let was = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
                SAVED.store(was.max(0), Ordering::Relaxed);
                if was > 0 {
                    // SAFETY: as above.
                    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
                }
            }
            HOLDERS.fetch_add(1, Ordering::Relaxed);
        });
        Hidden(())
    }
}

impl Drop for Hidden {
    fn drop(&mut self) {
        locked(|| {
            let left = HOLDERS.load(Ordering::Relaxed).saturating_sub(1);
            HOLDERS.store(left, Ordering::Relaxed);
            let saved = SAVED.load(Ordering::Relaxed);
            if left == 0 && saved > 0 {
                // SAFETY: prctl sets a flag of this process's memory back.
                unsafe { libc::prctl(libc::PR_SET_DUMPABLE, saved as libc::c_ulong, 0, 0, 0) };
            }
        });
    }
}
