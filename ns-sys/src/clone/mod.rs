//! `clone3(2)` and the legacy `clone(2)`, and their argument structure
//! (`include/uapi/linux/sched.h`).
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | [`clone3`] (fork-like, on a copy of the caller's stack) and [`clone_on_stack`], which translates [`clone_args`] for the legacy call |
//! | `args.rs` | [`clone_args`] and the `CLONE_ARGS_SIZE_VER*` sizes |
//! | `x86_64.rs`, `aarch64.rs` | the machine code, one file per architecture: `clone3_on_stack`, the legacy call on a new stack, and the task entry every such task starts in |
//! | `anchor.rs` | the symbol that names that task entry |
//! | `probe.rs` | asking the kernel what it takes: [`clone3_usable`], [`clone_into_cgroup_usable`], `clone3_accepts` |
//!
//! Assembly lives only in the per-architecture files; on other architectures this module
//! offers `clone3` and the probes that need no task entry.

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod anchor;
#[cfg(target_arch = "x86_64")]
#[path = "x86_64.rs"]
mod arch;
#[cfg(target_arch = "aarch64")]
#[path = "aarch64.rs"]
mod arch;
mod args;
mod probe;

use std::io;

use libc::pid_t;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use libc::{c_int, c_void};

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub use anchor::task_start_anchor;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub use arch::clone3_on_stack;
pub use args::{clone_args, CLONE_ARGS_SIZE_VER0, CLONE_ARGS_SIZE_VER1, CLONE_ARGS_SIZE_VER2};
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub use probe::clone3_accepts;
pub use probe::{clone3_usable, clone_into_cgroup_usable};

/// Calls `clone3(2)` (Linux 5.3) with the whole [`clone_args`] structure.
///
/// Returns the child's PID (as seen from the caller's PID namespace) in the caller and `0` in
/// the child. Kernels that predate a field accept the larger structure as long as the fields
/// they do not know are zero; otherwise they fail with `E2BIG`. A kernel without `clone3`
/// fails with `ENOSYS`.
///
/// ```
/// use ns_sys::{clone3, clone_args};
///
/// let mut args = clone_args {
///     exit_signal: libc::SIGCHLD as u64,
///     ..Default::default()
/// };
/// # if !ns_sys::clone3_usable() { return Ok(()); }
/// // SAFETY: like fork: the child only calls _exit.
/// let pid = unsafe { clone3(&mut args) }?;
/// if pid == 0 {
///     // SAFETY: _exit is async-signal-safe.
///     unsafe { libc::_exit(7) };
/// }
/// let mut status = 0;
/// // SAFETY: waiting for our own child.
/// assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
/// assert_eq!(libc::WEXITSTATUS(status), 7);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Safety
/// The child starts as a copy of the calling *thread* only. Unless `args` asks for a new stack
/// and shares nothing, the child returns from this function on a copy of the caller's stack,
/// exactly like after `fork(2)`: in a multithreaded program it may only call async-signal-safe
/// functions until it calls `execve` or `_exit` (see `signal-safety(7)`). With `CLONE_VM` the
/// child shares the caller's memory; a new `stack` is then required, and since this wrapper
/// returns into the caller's code on that stack, `CLONE_VM` must not be used through it at all.
/// Every address in `args` must be valid for the kernel to write through.
pub unsafe fn clone3(args: &mut clone_args) -> io::Result<pid_t> {
    // SAFETY: `args` points to a live, properly aligned `clone_args` of the size we pass; the
    // caller upholds the contract about what the child may do.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *mut clone_args,
            std::mem::size_of::<clone_args>(),
        )
    };
    crate::abi::cvt(ret).map(|pid| pid as pid_t)
}

/// Calls the legacy `clone(2)` system call so that the new task starts on its own stack by
/// calling `entry(arg)`, for kernels or sandboxes without `clone3` (Docker's and containerd's
/// default seccomp profiles make `clone3` fail with `ENOSYS`). x86_64 and aarch64.
///
/// Takes the same [`clone_args`] as [`clone3_on_stack`] and translates it: the exit signal
/// goes into the low byte of the flags, `CLONE_PIDFD` (5.2) makes the kernel store the pidfd
/// at `args.pidfd` (the legacy call passes it through the `parent_tid` slot, so it cannot be
/// combined with `CLONE_PARENT_SETTID`), `child_tid` works as for `clone3`. What the legacy
/// call cannot express fails with `EINVAL` before any system call: flags above 32 bits
/// (`CLONE_CLEAR_SIGHAND`, `CLONE_INTO_CGROUP`), `CLONE_NEWTIME` (its bit is part of the exit
/// signal byte), `set_tid`, `cgroup`, and `CLONE_PIDFD` together with `CLONE_PARENT_SETTID`.
///
/// # Safety
/// As for [`clone3_on_stack`].
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub unsafe fn clone_on_stack(
    args: &mut clone_args,
    entry: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
) -> io::Result<pid_t> {
    let pidfd = args.flags & crate::flags::CLONE_PIDFD as u64 != 0;
    let settid = args.flags & crate::flags::CLONE_PARENT_SETTID as u64 != 0;
    if args.flags > u64::from(u32::MAX)
        || args.flags & crate::flags::CSIGNAL as u64 != 0
        || args.exit_signal > crate::flags::CSIGNAL as u64
        || args.set_tid != 0
        || args.set_tid_size != 0
        || args.cgroup != 0
        || (pidfd && settid)
    {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let flags = (args.flags | args.exit_signal) as libc::c_ulong;
    let parent_tid = if pidfd { args.pidfd } else { args.parent_tid };
    let stack_top = args.stack.wrapping_add(args.stack_size);
    // SAFETY: forwarded from the caller, who upholds the stack and address contract.
    unsafe {
        arch::legacy_clone(
            flags,
            stack_top,
            parent_tid,
            args.child_tid,
            args.tls,
            entry,
            arg,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone3_forks_and_reports_the_child_pid() {
        let mut child_pid: pid_t = 0;
        let mut args = clone_args {
            flags: crate::flags::CLONE_PARENT_SETTID as u64,
            parent_tid: &mut child_pid as *mut pid_t as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        };
        // SAFETY: a fork-like clone (no CLONE_VM, no new stack); the child only calls _exit.
        let pid = unsafe { clone3(&mut args) }.expect("clone3");
        if pid == 0 {
            // SAFETY: _exit is async-signal-safe and never returns.
            unsafe { libc::_exit(7) };
        }
        assert_eq!(child_pid, pid);
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 7);
    }

    #[test]
    fn clone3_rejects_an_exit_signal_with_clone_parent() {
        let mut args = clone_args {
            flags: crate::flags::CLONE_PARENT as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        };
        // SAFETY: the kernel refuses these arguments before creating any child.
        let err = unsafe { clone3(&mut args) }.expect_err("clone3 must refuse");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}
