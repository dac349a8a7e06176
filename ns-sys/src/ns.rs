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
pub fn setns(fd: BorrowedFd<'_>, nstype: c_int) -> io::Result<()> {
    // SAFETY: plain system call on a borrowed, open file descriptor; no memory is passed.
    let ret = unsafe { libc::syscall(libc::SYS_setns, fd.as_raw_fd(), nstype) };
    crate::cvt(ret).map(drop)
}

/// Calls `unshare(2)` (Linux 2.6.16) with any OR of `CLONE_*` flags.
pub fn unshare(flags: c_int) -> io::Result<()> {
    // SAFETY: plain system call; no memory is passed.
    let ret = unsafe { libc::syscall(libc::SYS_unshare, flags) };
    crate::cvt(ret).map(drop)
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
    fn unshare_rejects_unknown_flags() {
        let err = unshare(crate::CLONE_THREAD | crate::CLONE_VM | 0x1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}
