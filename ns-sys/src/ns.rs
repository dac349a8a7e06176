//! `setns(2)` and `unshare(2)`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use libc::c_int;

/// Calls `setns(2)` (Linux 3.0; pidfds since 5.8).
///
/// With a namespace file descriptor, `nstype` must be 0 or exactly that namespace's
/// `CLONE_NEW*` flag. With a pidfd (5.8), `nstype` is any OR of `CLONE_NEW*` flags and the
/// caller enters all of those namespaces of the process, or none of them.
///
/// Which task moves depends on the type: see `setns(2)` and the `ns-core` guide.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// # // Skipped without privilege, except under `cargo xtask test-root` (NS_TEST_ROOT).
/// # if std::env::var_os("NS_TEST_ROOT").is_none() && unsafe { libc::geteuid() } != 0 {
/// #     return Ok(());
/// # }
/// use std::os::fd::AsFd;
///
/// // Join this process's own UTS namespace again, on a thread of its own.
/// let uts = std::fs::File::open("/proc/self/ns/uts")?;
/// std::thread::spawn(move || ns_sys::setns(uts.as_fd(), libc::CLONE_NEWUTS))
///     .join()
///     .unwrap()?;
/// # Ok(())
/// # }
/// ```
pub fn setns(fd: BorrowedFd<'_>, nstype: c_int) -> io::Result<()> {
    // SAFETY: plain system call on a borrowed, open file descriptor; no memory is passed.
    let ret = unsafe { libc::syscall(libc::SYS_setns, fd.as_raw_fd(), nstype) };
    crate::abi::cvt(ret).map(drop)
}

/// Calls `unshare(2)` (Linux 2.6.16) with any OR of `CLONE_*` flags.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// # // Skipped without privilege, except under `cargo xtask test-root` (NS_TEST_ROOT).
/// # if std::env::var_os("NS_TEST_ROOT").is_none() && unsafe { libc::geteuid() } != 0 {
/// #     return Ok(());
/// # }
/// // A new network namespace for one thread, which then ends.
/// std::thread::spawn(|| {
///     // SAFETY: only a CLONE_NEW* flag.
///     unsafe { ns_sys::unshare(libc::CLONE_NEWNET) }
/// })
/// .join()
/// .unwrap()?;
/// # Ok(())
/// # }
/// ```
///
/// # Safety
/// Besides namespaces, `unshare` splits other state the calling thread shares with the rest
/// of its process. `CLONE_FILES` gives the thread a descriptor table of its own: from then on
/// an `OwnedFd` made by another thread may name a different file (or none) in this one, which
/// breaks the I/O-safety promise every `OwnedFd` relies on. The caller must make sure that
/// nothing of the kind happens (no `CLONE_FILES` in a thread of a multithreaded program whose
/// descriptors move between threads), and that `CLONE_FS` or `CLONE_SYSVSEM` are what it means.
/// Passing only `CLONE_NEW*` flags is always sound.
pub unsafe fn unshare(flags: c_int) -> io::Result<()> {
    // SAFETY: plain system call; no memory is passed. The caller upholds the contract above.
    let ret = unsafe { libc::syscall(libc::SYS_unshare, flags) };
    crate::abi::cvt(ret).map(drop)
}

/// `kcmp(2)` type: do the two tasks share filesystem information (root, cwd, umask)?
pub const KCMP_FS: c_int = 3;
/// `kcmp(2)` type: do the two tasks share a file descriptor table?
pub const KCMP_FILES: c_int = 2;
/// `kcmp(2)` type: do the two tasks share an address space?
pub const KCMP_VM: c_int = 1;

/// Calls `kcmp(2)` (Linux 3.5, needs `CONFIG_KCMP`): compares a kernel resource of two tasks
/// (thread ids work). Returns 0 when they share it, 1 or 2 for an ordering when they do not,
/// 3 when they cannot be ordered.
///
/// This is how a thread learns whether it still shares its filesystem state with another
/// thread, which decides whether it may enter a mount namespace.
pub fn kcmp(
    pid1: libc::pid_t,
    pid2: libc::pid_t,
    kind: c_int,
    idx1: libc::c_ulong,
    idx2: libc::c_ulong,
) -> io::Result<c_int> {
    // SAFETY: plain system call; no memory is passed for these comparison types.
    let ret = unsafe { libc::syscall(libc::SYS_kcmp, pid1, pid2, kind, idx1, idx2) };
    crate::abi::cvt(ret).map(|v| v as c_int)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsFd;

    #[test]
    fn setns_refuses_a_file_that_is_no_namespace() {
        let f = File::open("/proc/self/status").unwrap();
        let err = setns(f.as_fd(), 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn setns_refuses_a_mismatched_type() {
        let f = File::open("/proc/thread-self/ns/uts").unwrap();
        let err = setns(f.as_fd(), crate::CLONE_NEWNET).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn kcmp_sees_threads_share_fs_until_one_unshares_it() {
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() };
        assert_eq!(kcmp(me, me, KCMP_FS, 0, 0).unwrap(), 0);
        let (shared, after) = std::thread::spawn(move || {
            // SAFETY: as above.
            let tid = unsafe { libc::gettid() };
            let shared = kcmp(me, tid, KCMP_FS, 0, 0).unwrap();
            // SAFETY: CLONE_FS splits only this thread's root and cwd.
            unsafe { unshare(crate::CLONE_FS) }.unwrap();
            (shared, kcmp(me, tid, KCMP_FS, 0, 0).unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(shared, 0);
        assert_ne!(after, 0);
    }

    #[test]
    fn unshare_rejects_unknown_flags() {
        // SAFETY: the kernel refuses these flags before changing anything.
        let err = unsafe { unshare(crate::CLONE_THREAD | crate::CLONE_VM | 0x1) }.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}
