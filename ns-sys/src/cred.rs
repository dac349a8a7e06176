//! Credential system calls that change only the calling task.
//!
//! glibc's `setuid`, `setgid` and `setgroups` apply the change to every thread the library
//! believes the process has: they take a lock and signal each thread on glibc's list. In a
//! process created with a raw `clone3` (not glibc's `fork`), that list is a copy of the
//! creator's, or the creator's own memory when the child shares it (`CLONE_VM`): the lock
//! may be held forever and the "threads" are not the child's. These wrappers make the raw
//! system call, which changes the calling task alone — in a single-threaded child, the
//! whole process. glibc's own `posix_spawn` does the same.

use std::io;

use libc::{gid_t, uid_t};

/// `setuid(2)` for the calling task only.
pub fn setuid(uid: uid_t) -> io::Result<()> {
    // SAFETY: plain system call; no memory is passed.
    let ret = unsafe { libc::syscall(libc::SYS_setuid, uid) };
    crate::abi::cvt(ret).map(drop)
}

/// `setgid(2)` for the calling task only.
pub fn setgid(gid: gid_t) -> io::Result<()> {
    // SAFETY: plain system call; no memory is passed.
    let ret = unsafe { libc::syscall(libc::SYS_setgid, gid) };
    crate::abi::cvt(ret).map(drop)
}

/// `setgroups(2)` for the calling task only; an empty slice drops every supplementary group.
pub fn setgroups(groups: &[gid_t]) -> io::Result<()> {
    // SAFETY: the kernel reads `groups.len()` ids from the slice, which stays alive.
    let ret = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    crate::abi::cvt(ret).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_ids_are_accepted_and_bad_ones_refused() {
        // SAFETY: getuid/getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        // Setting the ids one already has is always allowed.
        setgid(gid).unwrap();
        setuid(uid).unwrap();
        // (uid_t)-1 is never a valid id.
        assert_eq!(
            setuid(uid_t::MAX).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
        assert_eq!(
            setgid(gid_t::MAX).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
    }
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets, as two 32-bit halves.
pub const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy)]
pub struct cap_user_header {
    /// [`LINUX_CAPABILITY_VERSION_3`].
    pub version: u32,
    /// 0 for the calling task.
    pub pid: libc::c_int,
}

/// The calling task's capability sets as `capget(2)` gives them (version 3): two
/// `{effective, permitted, inheritable}` triples, capabilities 0-31 then 32-63. Makes no
/// allocation: usable between `clone` and `execve`.
pub fn capget() -> io::Result<[u32; 6]> {
    let mut header = cap_user_header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [0u32; 6];
    // SAFETY: capget writes two triples into the live array and reads the live header.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    crate::abi::cvt(ret).map(|_| data)
}

/// `capset(2)` of the calling task's sets, laid out as [`capget`] returns them. Makes no
/// allocation.
pub fn capset(data: &[u32; 6]) -> io::Result<()> {
    let mut header = cap_user_header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset reads the live header and two triples from the live array.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    crate::abi::cvt(ret).map(drop)
}
