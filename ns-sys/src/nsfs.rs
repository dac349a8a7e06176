//! `ioctl_ns(2)`: operations on namespace file descriptors (`include/uapi/linux/nsfs.h`).
//!
//! Each wrapper takes a file descriptor of an nsfs file (`/proc/PID/ns/*`, or a bind mount of
//! one) and makes one `ioctl`. A kernel that predates an operation fails with `ENOTTY`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libc::{c_int, pid_t, uid_t};

use crate::abi::{ioc, IOC_NONE, IOC_READ};

/// `NSIO`, the ioctl type byte of nsfs.
pub const NSIO: u32 = 0xb7;

/// `f_type` reported by `fstatfs(2)` for a namespace file (`include/uapi/linux/magic.h`).
pub const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Returns a file descriptor for the user namespace that owns the namespace (Linux 4.9).
pub const NS_GET_USERNS: u32 = ioc(IOC_NONE, NSIO, 0x1, 0);
/// Returns a file descriptor for the parent of a PID or user namespace (Linux 4.9).
pub const NS_GET_PARENT: u32 = ioc(IOC_NONE, NSIO, 0x2, 0);
/// Returns the `CLONE_NEW*` flag of the namespace (Linux 4.11).
pub const NS_GET_NSTYPE: u32 = ioc(IOC_NONE, NSIO, 0x3, 0);
/// Writes the UID of the creator of a user namespace to a `uid_t` (Linux 4.11).
pub const NS_GET_OWNER_UID: u32 = ioc(IOC_NONE, NSIO, 0x4, 0);
/// Writes the 64-bit id of a mount namespace to a `u64` (Linux 6.11).
pub const NS_GET_MNTNS_ID: u32 = ioc(IOC_READ, NSIO, 0x5, 8);
/// Translates a PID from the PID namespace into the caller's (Linux 6.11).
pub const NS_GET_PID_FROM_PIDNS: u32 = ioc(IOC_READ, NSIO, 0x6, 4);
/// Translates a thread-group id from the PID namespace into the caller's (Linux 6.11).
pub const NS_GET_TGID_FROM_PIDNS: u32 = ioc(IOC_READ, NSIO, 0x7, 4);
/// Translates a PID from the caller's PID namespace into the namespace (Linux 6.11).
pub const NS_GET_PID_IN_PIDNS: u32 = ioc(IOC_READ, NSIO, 0x8, 4);
/// Translates a thread-group id from the caller's PID namespace into the namespace (6.11).
pub const NS_GET_TGID_IN_PIDNS: u32 = ioc(IOC_READ, NSIO, 0x9, 4);
/// Writes the 64-bit id of any namespace to a `u64`; ids are never reused (Linux 6.18).
pub const NS_GET_ID: u32 = ioc(IOC_READ, NSIO, 0xd, 8);

/// Makes an ioctl whose result is its return value.
fn ioctl_value(fd: BorrowedFd<'_>, request: u32, arg: libc::c_ulong) -> io::Result<c_int> {
    // SAFETY: the nsfs requests used with this helper take their argument by value (or none)
    // and write no memory.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg) };
    crate::abi::cvt(ret as libc::c_long).map(|v| v as c_int)
}

/// Makes an ioctl that returns a new file descriptor.
fn ioctl_fd(fd: BorrowedFd<'_>, request: u32) -> io::Result<OwnedFd> {
    let raw = ioctl_value(fd, request, 0)?;
    // SAFETY: on success these requests return a new file descriptor (opened O_CLOEXEC by the
    // kernel) that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Makes an ioctl that writes a `T` through its argument.
fn ioctl_out<T: Default>(fd: BorrowedFd<'_>, request: u32) -> io::Result<T> {
    let mut out = T::default();
    // SAFETY: `out` is a live, writable `T`, the type the request writes.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, &mut out as *mut T) };
    crate::abi::cvt(ret as libc::c_long).map(|_| out)
}

/// `NS_GET_USERNS`: the owning user namespace, as a new file descriptor (Linux 4.9).
///
/// Fails with `EPERM` when the owner lies outside the caller's user namespace.
pub fn ns_get_userns(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    ioctl_fd(fd, NS_GET_USERNS)
}

/// `NS_GET_PARENT`: the parent of a PID or user namespace (Linux 4.9).
///
/// Fails with `EINVAL` for other types and `EPERM` at the root, or when the parent lies
/// outside the caller's view.
pub fn ns_get_parent(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    ioctl_fd(fd, NS_GET_PARENT)
}

/// `NS_GET_NSTYPE`: the namespace's `CLONE_NEW*` flag (Linux 4.11).
///
/// ```
/// use std::os::fd::AsFd;
///
/// let net = std::fs::File::open("/proc/self/ns/net")?;
/// assert_eq!(ns_sys::nsfs::ns_get_nstype(net.as_fd())?, libc::CLONE_NEWNET);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn ns_get_nstype(fd: BorrowedFd<'_>) -> io::Result<c_int> {
    ioctl_value(fd, NS_GET_NSTYPE, 0)
}

/// `NS_GET_OWNER_UID`: the UID (in the caller's user namespace) of the creator of a user
/// namespace (Linux 4.11). Fails with `EINVAL` for other types.
pub fn ns_get_owner_uid(fd: BorrowedFd<'_>) -> io::Result<uid_t> {
    ioctl_out(fd, NS_GET_OWNER_UID)
}

/// `NS_GET_MNTNS_ID`: the 64-bit id of a mount namespace (Linux 6.11).
pub fn ns_get_mntns_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    ioctl_out(fd, NS_GET_MNTNS_ID)
}

/// `NS_GET_ID`: the 64-bit id of any namespace, unique for the lifetime of the system
/// (Linux 6.18).
pub fn ns_get_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    ioctl_out(fd, NS_GET_ID)
}

/// `NS_GET_PID_FROM_PIDNS`: the PID, in the caller's PID namespace, of the task whose PID in
/// the PID namespace `fd` is `pid` (Linux 6.11). `ESRCH` when there is no such task or it is
/// invisible to the caller.
pub fn ns_get_pid_from_pidns(fd: BorrowedFd<'_>, pid: pid_t) -> io::Result<pid_t> {
    ioctl_value(fd, NS_GET_PID_FROM_PIDNS, pid as libc::c_ulong)
}

/// `NS_GET_TGID_FROM_PIDNS`: like [`ns_get_pid_from_pidns`], for the thread-group id.
pub fn ns_get_tgid_from_pidns(fd: BorrowedFd<'_>, pid: pid_t) -> io::Result<pid_t> {
    ioctl_value(fd, NS_GET_TGID_FROM_PIDNS, pid as libc::c_ulong)
}

/// `NS_GET_PID_IN_PIDNS`: the PID in the PID namespace `fd` of the task whose PID in the
/// caller's PID namespace is `pid` (Linux 6.11). `ESRCH` when the task has no PID there.
pub fn ns_get_pid_in_pidns(fd: BorrowedFd<'_>, pid: pid_t) -> io::Result<pid_t> {
    ioctl_value(fd, NS_GET_PID_IN_PIDNS, pid as libc::c_ulong)
}

/// `NS_GET_TGID_IN_PIDNS`: like [`ns_get_pid_in_pidns`], for the thread-group id.
pub fn ns_get_tgid_in_pidns(fd: BorrowedFd<'_>, pid: pid_t) -> io::Result<pid_t> {
    ioctl_value(fd, NS_GET_TGID_IN_PIDNS, pid as libc::c_ulong)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsFd;

    #[test]
    fn request_numbers_match_the_uapi_header() {
        assert_eq!(NS_GET_USERNS, 0xb701);
        assert_eq!(NS_GET_PARENT, 0xb702);
        assert_eq!(NS_GET_NSTYPE, 0xb703);
        assert_eq!(NS_GET_OWNER_UID, 0xb704);
        assert_eq!(NS_GET_MNTNS_ID, 0x8008_b705);
        assert_eq!(NS_GET_PID_FROM_PIDNS, 0x8004_b706);
        assert_eq!(NS_GET_TGID_FROM_PIDNS, 0x8004_b707);
        assert_eq!(NS_GET_PID_IN_PIDNS, 0x8004_b708);
        assert_eq!(NS_GET_TGID_IN_PIDNS, 0x8004_b709);
        assert_eq!(NS_GET_ID, 0x8008_b70d);
        assert_eq!(NSFS_MAGIC, 0x6e73_6673);
    }

    #[test]
    fn nstype_of_each_proc_file() {
        for (name, flag) in [
            ("mnt", crate::CLONE_NEWNS),
            ("cgroup", crate::CLONE_NEWCGROUP),
            ("uts", crate::CLONE_NEWUTS),
            ("ipc", crate::CLONE_NEWIPC),
            ("user", crate::CLONE_NEWUSER),
            ("pid", crate::CLONE_NEWPID),
            ("net", crate::CLONE_NEWNET),
            ("time", crate::CLONE_NEWTIME),
        ] {
            let f = File::open(format!("/proc/self/ns/{name}")).unwrap();
            assert_eq!(ns_get_nstype(f.as_fd()).unwrap(), flag, "{name}");
        }
    }

    #[test]
    fn nstype_of_a_regular_file_is_refused() {
        let f = File::open("/proc/self/status").unwrap();
        assert_eq!(
            ns_get_nstype(f.as_fd()).unwrap_err().raw_os_error(),
            Some(libc::ENOTTY)
        );
    }

    #[test]
    fn user_namespace_questions() {
        let net = File::open("/proc/self/ns/net").unwrap();
        let user = File::open("/proc/self/ns/user").unwrap();
        let owner = ns_get_userns(net.as_fd()).unwrap();
        assert_eq!(ns_get_nstype(owner.as_fd()).unwrap(), crate::CLONE_NEWUSER);
        // The owner uid is only defined for user namespaces.
        ns_get_owner_uid(user.as_fd()).unwrap();
        assert_eq!(
            ns_get_owner_uid(net.as_fd()).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
        // Only PID and user namespaces have parents.
        assert_eq!(
            ns_get_parent(net.as_fd()).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
    }

    #[test]
    fn ns_get_id_is_stable_for_one_namespace() {
        let a = File::open("/proc/self/ns/net").unwrap();
        let b = File::open("/proc/thread-self/ns/net").unwrap();
        match ns_get_id(a.as_fd()) {
            Ok(id) => assert_eq!(ns_get_id(b.as_fd()).unwrap(), id),
            // Kernels before 6.18 do not know the request.
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOTTY)),
        }
    }

    #[test]
    fn own_pid_translates_to_itself_in_own_pid_namespace() {
        let pidns = File::open("/proc/self/ns/pid").unwrap();
        let me = std::process::id() as pid_t;
        match ns_get_pid_in_pidns(pidns.as_fd(), me) {
            Ok(pid) => {
                assert_eq!(pid, me);
                assert_eq!(ns_get_pid_from_pidns(pidns.as_fd(), me).unwrap(), me);
                assert_eq!(ns_get_tgid_in_pidns(pidns.as_fd(), me).unwrap(), me);
                assert_eq!(ns_get_tgid_from_pidns(pidns.as_fd(), me).unwrap(), me);
            }
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOTTY)),
        }
    }
}
