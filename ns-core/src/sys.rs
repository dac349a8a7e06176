//! Small system helpers shared by the modules of this crate: opening with `O_CLOEXEC`,
//! `fstatfs`/`fstat`, the nsfs type of a descriptor, thread counts, `/proc/thread-self/ns`
//! paths and `mount(2)`.
//!
//! Thin wrappers that answer in `io::Result`: no policy, no messages, and no use of any other
//! file of this crate but `ns_type.rs` (whose names it reads).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::ns_type::NsType;

/// Opens a file read-only and close-on-exec, the way namespace files are opened.
pub(crate) fn open_cloexec(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a valid NUL-terminated path; open has no other preconditions.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `f_type` of the filesystem behind `fd`.
pub(crate) fn fs_type(fd: BorrowedFd<'_>) -> io::Result<i64> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `st` is writable storage for one statfs structure.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatfs succeeded and filled the structure.
    Ok(statfs_magic(&unsafe { st.assume_init() }))
}

/// `f_type` of a `statfs`, whose integer type differs between targets.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn statfs_magic(st: &libc::statfs) -> i64 {
    st.f_type as i64
}

/// The namespace type of an nsfs file descriptor: `NS_GET_NSTYPE` (4.11), or on older kernels
/// the `net:[…]` name that `/proc/self/fd/N` shows for namespace files.
pub(crate) fn nsfs_type(fd: BorrowedFd<'_>) -> io::Result<NsType> {
    match ns_sys::nsfs::ns_get_nstype(fd) {
        Ok(bits) => {
            NsType::from_bits(bits).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => {
            let link = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
            let link = link.as_os_str().as_bytes();
            let name = link.split(|b| *b == b':').next().unwrap_or_default();
            let name = std::str::from_utf8(name).unwrap_or_default();
            NsType::parse_one(name.trim()).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
        }
        Err(e) => Err(e),
    }
}

/// Number of threads of the calling process (field 20 of `/proc/self/stat`).
pub(crate) fn thread_count() -> io::Result<usize> {
    let stat = fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) may hold spaces and parentheses: fields after it follow the
    // last ')'. num_threads is field 20, the 18th after the name.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    rest.split_whitespace()
        .nth(17)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/self/stat"))
}

/// The calling thread's id.
pub(crate) fn gettid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// `(st_dev, st_ino)` of the calling thread's user namespace: one `stat` through its
/// `/proc/thread-self/ns/user` link, no descriptor; `None` where that fails.
pub(crate) fn thread_user_ns_id() -> Option<(u64, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `st` is writable storage for one stat structure.
    if unsafe { libc::stat(c"/proc/thread-self/ns/user".as_ptr(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: stat succeeded and filled the structure.
    let st = unsafe { st.assume_init() };
    // st_ino is 32 bits wide on some 32-bit targets; nsfs inode numbers fit.
    #[allow(clippy::useless_conversion)]
    Some((st.st_dev, u64::from(st.st_ino)))
}

/// The `/proc` path of a namespace file of the calling thread.
pub(crate) fn thread_ns_path(name: &str) -> String {
    format!("/proc/thread-self/ns/{name}")
}

/// The `/proc/self/task` path of a namespace file of the calling thread, for kernels before
/// 3.17 that lack `/proc/thread-self`.
pub(crate) fn task_ns_path(name: &str) -> String {
    format!("/proc/self/task/{}/ns/{name}", gettid())
}

/// Opens a namespace file of the calling thread.
pub(crate) fn open_thread_ns(name: &str) -> io::Result<OwnedFd> {
    match open_cloexec(Path::new(&thread_ns_path(name))) {
        Err(e)
            if e.raw_os_error() == Some(libc::ENOENT)
                && !Path::new("/proc/thread-self").exists() =>
        {
            open_cloexec(Path::new(&task_ns_path(name)))
        }
        r => r,
    }
}

/// `mount(2)` without a filesystem type or data: a bind mount (`source` given) or a
/// propagation change (`source` `None`).
pub(crate) fn mount(
    source: Option<&std::ffi::CStr>,
    target: &std::ffi::CStr,
    flags: libc::c_ulong,
) -> io::Result<()> {
    // SAFETY: NUL-terminated paths (or null for no source); no type or data.
    let r = unsafe {
        libc::mount(
            source.map_or(std::ptr::null(), std::ffi::CStr::as_ptr),
            target.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
