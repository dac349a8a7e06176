//! Process file descriptors: `pidfd_open(2)`, `pidfd_send_signal(2)` and `PIDFD_GET_INFO`
//! (`include/uapi/linux/pidfd.h`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libc::{c_int, c_uint, pid_t};

use crate::abi::{ioc, IOC_READ, IOC_WRITE};

/// `pidfd_open` flag: a non-blocking pidfd (Linux 5.10).
pub const PIDFD_NONBLOCK: c_uint = libc::O_NONBLOCK as c_uint;

/// `PIDFS_IOCTL_MAGIC`, the ioctl type byte of pidfs.
pub const PIDFS_IOCTL_MAGIC: u32 = 0xff;

/// `pidfd_info.mask` bit: `pid`, `tgid` and `ppid` are valid (always returned).
pub const PIDFD_INFO_PID: u64 = 1 << 0;
/// `pidfd_info.mask` bit: the credential fields are valid (always returned).
pub const PIDFD_INFO_CREDS: u64 = 1 << 1;
/// `pidfd_info.mask` bit: `cgroupid` is valid.
pub const PIDFD_INFO_CGROUPID: u64 = 1 << 2;
/// `pidfd_info.mask` bit: `exit_code` is valid (Linux 6.15); only returned when requested,
/// and only once the process has been reaped by its parent.
pub const PIDFD_INFO_EXIT: u64 = 1 << 3;
/// `pidfd_info.mask` bit: `coredump_mask` is valid (Linux 6.16); only returned when requested.
pub const PIDFD_INFO_COREDUMP: u64 = 1 << 4;

/// Size of the first published `struct pidfd_info` (Linux 6.13).
pub const PIDFD_INFO_SIZE_VER0: usize = 64;
/// Size with `coredump_mask` (Linux 6.16).
pub const PIDFD_INFO_SIZE_VER1: usize = 72;

/// Calls `waitid(P_PIDFD, pidfd, …)` (Linux 5.4): waits for the child behind `pidfd` to
/// change state and returns what the kernel reported, `None` with `WNOHANG` when it has not
/// yet. `options` is an OR of `WEXITED`, `WNOHANG`, `WNOWAIT`, `__WALL`, …; interrupted calls
/// are retried.
///
/// Fails with `ECHILD` when the process is not a child of the caller or has already been
/// reaped (by anyone): unlike a wait by PID, it can never reap another process that reused
/// the number.
///
/// ```
/// use std::os::fd::AsFd;
///
/// let child = std::process::Command::new("true").spawn()?;
/// let pidfd = ns_sys::pidfd_open(child.id() as libc::pid_t, 0)?;
/// let info = ns_sys::pidfd_wait(pidfd.as_fd(), libc::WEXITED)?.expect("exited");
/// // SAFETY: waitid filled the siginfo of a CLD_EXITED event.
/// assert_eq!(unsafe { info.si_status() }, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn pidfd_wait(pidfd: BorrowedFd<'_>, options: c_int) -> io::Result<Option<libc::siginfo_t>> {
    loop {
        // SAFETY: an all-zero siginfo_t is valid storage for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: a live, writable siginfo_t; the descriptor is borrowed and open.
        let ret = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                options,
            )
        };
        if ret == 0 {
            // SAFETY: waitid filled the structure; si_pid is valid for SIGCHLD information.
            let pid = unsafe { info.si_pid() };
            return Ok((pid != 0).then_some(info));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            // A pidfd someone made non-blocking (O_NONBLOCK on the open file, Linux 5.10)
            // answers a blocking wait with EAGAIN: wait for it to become readable (the exit).
            Some(libc::EAGAIN) if options & libc::WNOHANG == 0 => {
                let mut poll = libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one live pollfd; -1 waits without a timeout. EINTR is retried by
                // the loop.
                unsafe { libc::poll(&mut poll, 1, -1) };
            }
            _ => return Err(e),
        }
    }
}

/// `PIDFD_GET_INFO` (Linux 6.13), encoded with the size of this crate's [`pidfd_info`].
///
/// The kernel dispatches on the request's number and honours the size encoded in it, filling
/// what it knows and zeroing the rest.
pub const PIDFD_GET_INFO: u32 = ioc(
    IOC_READ | IOC_WRITE,
    PIDFS_IOCTL_MAGIC,
    11,
    std::mem::size_of::<pidfd_info>() as u32,
);

/// Information about the process behind a pidfd, `struct pidfd_info` (Linux 6.13).
///
/// Set `mask` to the `PIDFD_INFO_*` bits you ask for; the kernel sets it to what it returned.
/// Ids are as seen from the caller's PID and user namespaces.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct pidfd_info {
    /// Requested, then returned `PIDFD_INFO_*` bits.
    pub mask: u64,
    /// Id of the process's cgroup (`PIDFD_INFO_CGROUPID`).
    pub cgroupid: u64,
    /// Thread id.
    pub pid: u32,
    /// Thread-group id.
    pub tgid: u32,
    /// Parent's thread-group id.
    pub ppid: u32,
    /// Real user id.
    pub ruid: u32,
    /// Real group id.
    pub rgid: u32,
    /// Effective user id.
    pub euid: u32,
    /// Effective group id.
    pub egid: u32,
    /// Saved user id.
    pub suid: u32,
    /// Saved group id.
    pub sgid: u32,
    /// Filesystem user id.
    pub fsuid: u32,
    /// Filesystem group id.
    pub fsgid: u32,
    /// Wait status as `waitpid(2)` reports it (`PIDFD_INFO_EXIT`).
    pub exit_code: i32,
    /// `PIDFD_COREDUMP*` bits (`PIDFD_INFO_COREDUMP`).
    pub coredump_mask: u32,
    /// Reserved; zero.
    pub spare1: u32,
}

/// Calls `pidfd_open(2)` (Linux 5.3): a file descriptor that refers to process `pid` for as
/// long as it is open, whatever happens to the number `pid`. It is `O_CLOEXEC`.
///
/// Fails with `ESRCH` when no process has that PID (a zombie still has one) and with `EINVAL`
/// when `pid` is a thread that does not lead its thread group.
///
/// ```
/// use std::os::fd::AsFd;
///
/// let mut child = std::process::Command::new("sleep").arg("10").spawn()?;
/// let pidfd = ns_sys::pidfd_open(child.id() as libc::pid_t, 0)?;
/// // Signals through the pidfd can never reach a process that reused the PID.
/// ns_sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL)?;
/// child.wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn pidfd_open(pid: pid_t, flags: c_uint) -> io::Result<OwnedFd> {
    // SAFETY: plain system call; no memory is passed.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
    let fd = crate::abi::cvt(ret)?;
    // SAFETY: on success the kernel returns a new file descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as c_int) })
}

/// Calls `pidfd_send_signal(2)` (Linux 5.1) with no `siginfo` and no flags.
///
/// Signal 0 sends nothing and only checks that the process still exists (a zombie does; a
/// reaped process does not: `ESRCH`).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: c_int) -> io::Result<()> {
    // SAFETY: plain system call; a null siginfo pointer is allowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0 as c_uint,
        )
    };
    crate::abi::cvt(ret).map(drop)
}

/// `PIDFD_GET_INFO` (Linux 6.13): fills `info` for the process behind `pidfd`.
///
/// Set `info.mask` to the bits you want first. Fails with `ESRCH` once the process has been
/// reaped, unless `PIDFD_INFO_EXIT` was asked for and the exit status is known (6.15).
/// Kernels before 6.13 fail with `ENOTTY`.
pub fn pidfd_get_info(pidfd: BorrowedFd<'_>, info: &mut pidfd_info) -> io::Result<()> {
    // SAFETY: `info` is a live, writable `pidfd_info` of the size encoded in the request.
    let ret = unsafe {
        libc::ioctl(
            pidfd.as_raw_fd(),
            PIDFD_GET_INFO as _,
            info as *mut pidfd_info,
        )
    };
    crate::abi::cvt(ret as libc::c_long).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};
    use std::os::fd::AsFd;

    #[test]
    fn pidfd_info_matches_the_uapi_layout() {
        assert_eq!(size_of::<pidfd_info>(), PIDFD_INFO_SIZE_VER1);
        assert_eq!(offset_of!(pidfd_info, pid), 16);
        assert_eq!(offset_of!(pidfd_info, fsgid), 56);
        assert_eq!(offset_of!(pidfd_info, exit_code), 60);
        assert_eq!(offset_of!(pidfd_info, coredump_mask), PIDFD_INFO_SIZE_VER0);
        assert_eq!(PIDFD_GET_INFO, 0xc048_ff0b);
    }

    #[test]
    fn pidfd_of_self_answers_signal_zero_and_info() {
        let me = std::process::id() as pid_t;
        let fd = pidfd_open(me, 0).unwrap();
        pidfd_send_signal(fd.as_fd(), 0).unwrap();
        let mut info = pidfd_info {
            mask: PIDFD_INFO_PID | PIDFD_INFO_CREDS,
            ..Default::default()
        };
        match pidfd_get_info(fd.as_fd(), &mut info) {
            Ok(()) => {
                assert_eq!(info.tgid, me as u32);
                // SAFETY: getuid has no preconditions.
                assert_eq!(info.ruid, unsafe { libc::getuid() });
                assert_ne!(info.mask & PIDFD_INFO_PID, 0);
            }
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOTTY)),
        }
        // SAFETY: fcntl on an fd we own.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "pidfd must be close-on-exec");
    }

    #[test]
    fn pidfd_open_of_a_missing_pid_is_esrch() {
        // PIDs are below pid_max (at most 2^22), so this one never exists.
        let err = pidfd_open(0x7fff_fff0, 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    }
}
