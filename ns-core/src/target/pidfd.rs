//! What the kernel's pidfds can do here: [`pidfd_setns_supported`] (entering through a
//! pidfd, Linux 5.8) and [`pidfd_pid`] (the PID behind one).
//!
//! Plain questions to the kernel and `/proc`; nothing here pins or enters anything.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// Whether `setns(2)` takes a pidfd here (Linux 5.8), asked once per process by trying it:
/// a short-lived thread enters its own UTS namespace through a pidfd of the caller, which
/// changes nothing. `EINVAL` (a pidfd is no namespace file) means no; success, or `EPERM`
/// for a caller without `CAP_SYS_ADMIN`, means yes.
pub fn pidfd_setns_supported() -> bool {
    // Cached without a lock (0 unknown, 1 yes, 2 no): a lock held by another thread at the
    // moment of a `fork` would stay held forever in the child. Threads that ask at once may
    // each probe; they get the same answer.
    static ANSWER: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
    match ANSWER.load(std::sync::atomic::Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    let yes = (|| {
        // A failure to ask (out of descriptors or threads) is not kept.
        let pidfd = ns_sys::pidfd_open(std::process::id() as libc::pid_t, 0).ok()?;
        let probe = move || match ns_sys::setns(pidfd.as_fd(), libc::CLONE_NEWUTS) {
            Ok(()) => true,
            Err(e) => e.raw_os_error() == Some(libc::EPERM),
        };
        // On a thread of its own: whatever the call does stays with that thread.
        std::thread::Builder::new()
            .name("ns-probe".to_owned())
            .spawn(probe)
            .ok()
            .and_then(|t| t.join().ok())
    })();
    match yes {
        Some(yes) => {
            ANSWER.store(
                if yes { 1 } else { 2 },
                std::sync::atomic::Ordering::Relaxed,
            );
            yes
        }
        None => false,
    }
}

/// Whether `/proc` shows the caller's own PID namespace (`/proc/self` names the caller).
pub(super) fn proc_is_own() -> bool {
    std::fs::read_link("/proc/self")
        .map(|own| own.to_str() == Some(std::process::id().to_string().as_str()))
        .unwrap_or(false)
}

/// The PID behind a pidfd, as seen from the caller's PID namespace: -1 once the process has
/// been reaped, 0 when it lives outside the caller's PID namespace.
///
/// Asks the pidfd itself (`PIDFD_GET_INFO`, Linux 6.13), which answers in the caller's PID
/// namespace. Older kernels: the `Pid:` line of `/proc/self/fdinfo/FD` (Linux 5.3), which
/// answers in the PID namespace of the `/proc` mount; that is checked to be the caller's
/// (`/proc/self` must name the caller), else the error is `EXDEV`.
///
/// # Errors
/// `EBADF` when the descriptor is no pidfd; `EXDEV` as above; those of reading `/proc`.
pub fn pidfd_pid(pidfd: BorrowedFd<'_>) -> io::Result<libc::pid_t> {
    let mut info = ns_sys::pidfd_info {
        mask: ns_sys::pidfd::PIDFD_INFO_PID,
        ..Default::default()
    };
    match ns_sys::pidfd::pidfd_get_info(pidfd, &mut info) {
        Ok(()) if info.mask & ns_sys::pidfd::PIDFD_INFO_PID != 0 => return Ok(info.tgid as i32),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(-1),
        _ => {}
    }
    if !proc_is_own() {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    }
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()))?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))
}
