//! Asking the kernel what `clone3` takes here, without creating anything that lasts:
//! [`clone3_usable`], [`clone_into_cgroup_usable`] and [`clone3_accepts`].
//!
//! The probes that start a task use the architecture's `clone3_on_stack` and reap it before
//! they return; none leaves a process, a descriptor or a changed signal mask behind.

use std::io;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use libc::{c_int, c_void};

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use super::arch::clone3_on_stack;
use super::args::clone_args;

/// Whether `clone3(2)` can be called here: `false` on kernels before 5.3 and where a seccomp
/// filter refuses it (Docker's and containerd's default profiles answer `ENOSYS`). Asks the
/// kernel with a deliberately invalid call that creates nothing (a zero-sized argument:
/// `EINVAL` when `clone3` exists).
///
/// ```
/// if !ns_sys::clone3_usable() {
///     eprintln!("clone3 refused here: spawning falls back to the legacy clone");
/// }
/// ```
pub fn clone3_usable() -> bool {
    // SAFETY: with size 0 the kernel rejects the call before reading any memory.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<clone_args>(), 0usize) };
    ret == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
}

/// Whether `clone3` takes `CLONE_INTO_CGROUP` (Linux 5.7), asked with a call that creates
/// nothing: the flag with a cgroup descriptor number that cannot be open (`INT_MAX`, above
/// any `RLIMIT_NOFILE`) fails with `EBADF` where the flag is known, `EINVAL` where it is not
/// (and whatever a seccomp filter says). The call shares the caller's memory
/// (`CLONE_VM | CLONE_VFORK`), so the kernel copies no page tables before it looks at the
/// descriptor. On targets without the task entry, `false`.
pub fn clone_into_cgroup_usable() -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let mut args = clone_args {
            flags: crate::flags::CLONE_INTO_CGROUP,
            cgroup: i32::MAX as u64,
            ..Default::default()
        };
        matches!(probe_task(&mut args), Err(e) if e.raw_os_error() == Some(libc::EBADF))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Flags [`clone3_accepts`] refuses to try: they would make its task a thread of the caller,
/// a child of someone else, or have the kernel write where the probe does not expect.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const PROBE_REFUSED: u64 = (libc::CLONE_THREAD
    | libc::CLONE_SIGHAND
    | libc::CLONE_PARENT
    | libc::CLONE_SETTLS
    | libc::CLONE_PARENT_SETTID
    | libc::CLONE_CHILD_SETTID
    | libc::CLONE_CHILD_CLEARTID
    | libc::CLONE_PIDFD
    | libc::CLONE_VM
    | libc::CLONE_VFORK
    | libc::CLONE_PTRACE) as u64
    | crate::flags::CLONE_INTO_CGROUP;

/// Whether `clone3` accepts `flags` (such as `CLONE_CLEAR_SIGHAND`, Linux 5.5) here, asked by
/// doing it: a task sharing the caller's memory (`CLONE_VM | CLONE_VFORK`, the caller waits)
/// starts on a small stack of its own, exits at once, and is reaped through its pidfd; every
/// signal is blocked meanwhile, so no handler of the caller runs on that stack. For flags no
/// invalid call can tell apart; costs one such task. Flags that would change what the task
/// is (`CLONE_THREAD`, `CLONE_PARENT`, `CLONE_SIGHAND`, `CLONE_SETTLS`, the tid and pidfd
/// flags, `CLONE_VM`/`CLONE_VFORK` themselves, `CLONE_PTRACE`, `CLONE_INTO_CGROUP`) are not
/// tried: the answer is `false`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn clone3_accepts(flags: u64) -> bool {
    if flags & PROBE_REFUSED != 0 {
        return false;
    }
    let mut args = clone_args {
        flags,
        ..Default::default()
    };
    probe_task(&mut args).is_ok()
}

/// Starts a task with `args` plus `CLONE_VM | CLONE_VFORK | CLONE_PIDFD` on a small stack of
/// its own, with every signal blocked, and reaps it: it only exits.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn probe_task(args: &mut clone_args) -> io::Result<()> {
    extern "C" fn exit_now(_: *mut c_void) -> c_int {
        0
    }
    // 16 KiB, 16-byte aligned at both ends.
    let mut stack = vec![0u128; 1024];
    let mut pidfd: c_int = -1;
    args.flags |= (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD) as u64;
    args.pidfd = &mut pidfd as *mut c_int as u64;
    args.stack = stack.as_mut_ptr() as u64;
    args.stack_size = (stack.len() * std::mem::size_of::<u128>()) as u64;
    args.exit_signal = 0;
    // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask write only to the sets
    // passed, and the old mask is put back below.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: the task runs `exit_now` (no memory touched) on `stack`, which outlives it: the
    // caller is suspended until the task exits (CLONE_VFORK); it inherits the full signal
    // mask. `pidfd` is live for the kernel to write.
    let started = unsafe { clone3_on_stack(args, exit_now, std::ptr::null_mut()) };
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    started?;
    // SAFETY: the kernel stored a new pidfd for the task just created.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) };
    // Reaped here, or already by someone else's wait: either way it is gone.
    let _ = crate::pidfd::pidfd_wait(std::os::fd::AsFd::as_fd(&fd), libc::WEXITED | libc::__WALL);
    Ok(())
}
