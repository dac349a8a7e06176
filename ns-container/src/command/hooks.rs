//! Code of the caller's that a spawn runs in the child: `pre_exec` hooks and the closure of
//! `spawn_fn` (both in a copy of the caller's memory), and the hooks tests use to steer or
//! stop a spawn half-way.

#[cfg(feature = "test-hooks")]
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};

use libc::{c_int, c_void};

use super::settings::NsCommand;

impl NsCommand {
    /// Runs `f` in the child right before the seccomp filter and `execve`, after every other
    /// step, as std's `CommandExt::pre_exec`. Hooks run in the order they were added; an
    /// error stops the spawn with [`Step::PreExec`](crate::Step::PreExec) and its errno.
    ///
    /// # Safety
    /// As for std's `pre_exec`: `f` runs in a copy of the calling process made by `clone`,
    /// like `fork`, with only one thread. It must only do what is allowed after `fork` in a
    /// multithreaded program: async-signal-safe calls (`signal-safety(7)`) on data it
    /// captured; no allocation, no locks (other threads may have held them at the clone), no
    /// panics. With a hook, the child always has its own copy of the caller's memory, and
    /// the caller's descriptors stay open (marked close-on-exec) until `execve` instead of
    /// being closed before the container's paths are touched.
    pub unsafe fn pre_exec<F>(&mut self, f: F) -> &mut NsCommand
    where
        F: FnMut() -> std::io::Result<()> + Send + Sync + 'static,
    {
        self.pre_exec.0.push(Box::new(f));
        self
    }

    /// Whether a closure child ([`spawn_fn`](NsCommand::spawn_fn), [`clone`](crate::clone()))
    /// stays dumpable. By default it is made non-dumpable (`PR_SET_DUMPABLE` 0) at its start,
    /// again after its credentials change and right before the closure runs: it is a copy of
    /// the caller, and once it has dropped its capabilities to a container's, the
    /// container's root could otherwise read and write it through `/proc/PID/mem` (runc
    /// makes its init non-dumpable for this reason). Ask for `true` only when something must
    /// trace or read the closure's process. A program's child is not concerned: `execve`
    /// sets the flag for the program.
    pub fn dumpable(&mut self, yes: bool) -> &mut NsCommand {
        self.dumpable = yes;
        self
    }

    /// For tests of what the exec relay protects: executes the program directly, as a spawn
    /// without it would. Only with the `test-hooks` feature, which is for this crate's own
    /// tests and is no part of its API.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn without_exec_relay_for_tests(&mut self) -> &mut NsCommand {
        self.relay_off = true;
        self
    }

    /// For tests of what the pid route protects: the program's process is created by the
    /// child in the target's pid namespace on the caller's memory (made non-dumpable for the
    /// spawn), as before the trampoline created it. Only with the `test-hooks` feature.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn without_pid_route_for_tests(&mut self) -> &mut NsCommand {
        self.pid_route_off = true;
        self
    }

    /// For tests of the resolution used before Linux 5.6: targets under the root are
    /// resolved by the `O_NOFOLLOW` walk even where `openat2` works. Only with the
    /// `test-hooks` feature, which is for this crate's own tests and is no part of its API.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn resolve_by_walk_for_tests(&mut self) -> &mut NsCommand {
        self.resolve_walk = true;
        self
    }

    /// For tests of the error paths: the intermediate process waits for one byte on `fd`
    /// before it creates the child (or, with `after_child`, right after, before it writes the
    /// child's id maps), so that a test can kill a process of the spawn at a known point. The
    /// wait also ends when the calling process dies. Forces an intermediate even when nothing
    /// is entered. Only with the `test-hooks` feature, which is for this crate's own tests
    /// and is no part of its API.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn pause_intermediate_for_tests(
        &mut self,
        fd: OwnedFd,
        after_child: bool,
    ) -> &mut NsCommand {
        self.pause = Some((fd, after_child));
        self
    }

    /// For tests that compare the two ways of entering a target's user namespace: always
    /// give the intermediate its own copy of memory, never use the trampoline. Only with the
    /// `test-hooks` feature.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn user_entry_by_copy_for_tests(&mut self) -> &mut NsCommand {
        self.user_route = Some(false);
        self
    }

    /// For tests of the trampoline itself: the spawn must enter the target's user namespace
    /// through the trampoline, and fails (`Error::Invalid`) where it would not, or where the
    /// trampoline fails, instead of falling back to the copy path. Only with the
    /// `test-hooks` feature.
    #[doc(hidden)]
    #[cfg(feature = "test-hooks")]
    pub fn user_entry_by_trampoline_for_tests(&mut self) -> &mut NsCommand {
        self.user_route = Some(true);
        self
    }
}

/// Runs in the child (its own copy of the caller's memory): calls the closure through a
/// reference, so that nothing it captured is dropped (the child `_exit`s right after), and
/// turns a panic into exit status 101.
///
/// # Safety
/// `data` points to this process's copy of the caller's `F`.
pub(super) unsafe fn call_closure<F: FnMut() -> i32>(data: *mut c_void) -> c_int {
    // SAFETY: see above; the child owns its copy and never drops it.
    let f = unsafe { &mut *(data as *mut F) };
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(101)
}
