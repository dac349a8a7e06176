//! The credentials and confinement a runner thread must still have after a closure (ids,
//! groups, capability sets, securebits, `no_new_privs`, seccomp filters), read from
//! `/proc/thread-self/status`. Reading only: a thread that differs is retired, never fixed.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::sys::cap_last;

/// What a closure could change about the thread's identity, privilege and confinement, read
/// with a few cheap system calls: ids, groups, the effective, permitted, inheritable,
/// bounding and ambient capability sets, securebits, `no_new_privs`, the seccomp mode (and
/// the filter count, from `/proc`, only when the thread already had filters).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Credentials {
    pub(super) uids: [libc::uid_t; 3],
    pub(super) gids: [libc::gid_t; 3],
    pub(super) groups: Vec<libc::gid_t>,
    /// capget's two `{effective, permitted, inheritable}` triples (capabilities 0-31, 32-63).
    pub(super) caps: [u32; 6],
    pub(super) bounding: u64,
    pub(super) ambient: u64,
    pub(super) securebits: libc::c_int,
    pub(super) no_new_privs: libc::c_int,
    pub(super) seccomp_mode: libc::c_int,
    pub(super) seccomp_filters: Option<String>,
}

impl Credentials {
    /// The calling thread's credentials (the kernel keeps them per thread). `proc` is the
    /// `/proc` the thread started with, read only when the thread has seccomp filters.
    pub(super) fn current(proc: &OwnedFd) -> std::io::Result<Credentials> {
        let (mut uids, mut gids) = ([0; 3], [0; 3]);
        // SAFETY: each call writes only into the live buffers passed.
        let ok = unsafe {
            libc::getresuid(&mut uids[0], &mut uids[1], &mut uids[2]) == 0
                && libc::getresgid(&mut gids[0], &mut gids[1], &mut gids[2]) == 0
        };
        if !ok {
            return Err(std::io::Error::last_os_error());
        }
        let caps = ns_sys::cred::capget()?;
        let mut buf = [0 as libc::gid_t; 64];
        // SAFETY: getgroups writes at most `buf.len()` ids.
        let n = unsafe { libc::getgroups(buf.len() as libc::c_int, buf.as_mut_ptr()) };
        let groups = if n >= 0 {
            buf[..n as usize].to_vec()
        } else {
            // More than fit: ask for the count, then read them all.
            // SAFETY: with size 0 getgroups only returns the count.
            let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) }.max(0) as usize;
            let mut all = vec![0; count];
            // SAFETY: `all` has room for `count` ids.
            let n = unsafe { libc::getgroups(count as libc::c_int, all.as_mut_ptr()) };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            all.truncate(n as usize);
            all
        };
        let prctl = |op: libc::c_int, arg: libc::c_ulong| {
            // SAFETY: prctl queries with integer arguments only.
            unsafe { libc::prctl(op, arg, 0, 0, 0) }
        };
        let mut bounding = 0u64;
        for cap in 0..=cap_last() {
            if prctl(libc::PR_CAPBSET_READ, cap.into()) == 1 {
                bounding |= 1 << cap;
            }
        }
        // Ambient capabilities are always within permitted and inheritable: ask only there.
        // capget's version-3 layout: {effective, permitted, inheritable} for capabilities
        // 0-31, then the same for 32-63.
        let perm = u64::from(caps[1]) | (u64::from(caps[4]) << 32);
        let inh = u64::from(caps[2]) | (u64::from(caps[5]) << 32);
        let mut ambient = 0u64;
        for cap in 0..=cap_last() {
            // SAFETY: a prctl query with integer arguments only.
            let set = || unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_IS_SET as libc::c_ulong,
                    libc::c_ulong::from(cap),
                    0,
                    0,
                )
            };
            if ((perm & inh) >> cap) & 1 == 1 && set() == 1 {
                ambient |= 1 << cap;
            }
        }
        let seccomp_mode = prctl(libc::PR_GET_SECCOMP, 0);
        let seccomp_filters = if seccomp_mode == 2 {
            Some(seccomp_filters(proc)?)
        } else {
            None
        };
        Ok(Credentials {
            uids,
            gids,
            groups,
            caps,
            bounding,
            ambient,
            securebits: prctl(libc::PR_GET_SECUREBITS, 0),
            no_new_privs: prctl(libc::PR_GET_NO_NEW_PRIVS, 0),
            seccomp_mode,
            seccomp_filters,
        })
    }
}

/// The `Seccomp_filters:` line of the thread's status: how many filters it has (5.9).
pub(super) fn seccomp_filters(proc: &OwnedFd) -> std::io::Result<String> {
    // SAFETY: a NUL-terminated path relative to a live directory descriptor.
    let fd = unsafe {
        libc::openat(
            proc.as_raw_fd(),
            c"thread-self/status".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nobody else owns.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text)?;
    Ok(text
        .lines()
        .find(|l| l.starts_with("Seccomp_filters:"))
        .unwrap_or("")
        .to_owned())
}
