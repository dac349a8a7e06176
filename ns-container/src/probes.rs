//! Features of the kernel a spawn depends on, asked once per process by trying them and
//! kept without a lock (a lock held by a probing thread would stay held in a forked child).

use std::sync::atomic::{AtomicU8, Ordering};

use ns_core::KernelVersion;

/// Whether `clone3` can be used, asked of the kernel once per process.
pub(crate) fn clone3_usable() -> bool {
    static CELL: AtomicU8 = AtomicU8::new(0);
    probed(&CELL, ns_sys::clone3_usable)
}

/// A feature asked of the kernel once per process (by trying it: a version number says
/// nothing of backports, gVisor or a seccomp profile), the answer kept. Kept without a lock:
/// a lock that another thread holds while it probes would stay held forever in a child
/// forked at that moment (threads that ask at once may each probe, for the same answer).
pub(crate) fn probed(cell: &AtomicU8, probe: impl FnOnce() -> bool) -> bool {
    match cell.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let yes = probe();
            cell.store(if yes { 1 } else { 2 }, Ordering::Relaxed);
            yes
        }
    }
}

pub(crate) fn into_cgroup_supported() -> bool {
    static CELL: AtomicU8 = AtomicU8::new(0);
    probed(&CELL, ns_sys::clone_into_cgroup_usable)
}

/// `CLONE_CLEAR_SIGHAND` (5.5), told by the version where `clone3` is usable: no invalid
/// call tells the flag apart, and trying it costs a task (about 0.3 ms, a twentieth of a
/// short-lived runtime's start). A flag of `clone3`'s arguments, which no seccomp filter
/// sees, that no kernel of 5.5 or later lacks; where the version misleads (a backport) the
/// child resets each caught signal itself, which is correct everywhere.
pub(crate) fn clear_sighand_supported() -> bool {
    static CELL: AtomicU8 = AtomicU8::new(0);
    probed(&CELL, || clone3_usable() && KernelVersion::at_least(5, 5))
}

/// Asks the kernel now everything a spawn chooses by (see [`crate::prepare_spawning`]).
pub(crate) fn prepare() {
    clone3_usable();
    into_cgroup_supported();
    clear_sighand_supported();
    close_range_cloexec_supported();
    crate::mounts::MountApi::Auto.use_new();
    crate::trampoline::usable();
    crate::spawn::board::prepare();
}

pub(crate) fn close_range_cloexec_supported() -> bool {
    static CELL: AtomicU8 = AtomicU8::new(0);
    probed(&CELL, ns_sys::close_range_cloexec_usable)
}

/// Since Linux 6.0 `execve` moves a task into its `time_for_children` namespace, so a child
/// that shares its creator's memory can create a time namespace for the program it runs.
/// The one feature still told by the version: it is a change of behaviour at `execve`, which
/// only running a program in a new time namespace could show (and then the fallback, a
/// child with its own memory, is correct everywhere, only slower).
pub(crate) fn time_switch_at_exec() -> bool {
    KernelVersion::at_least(6, 0)
}
