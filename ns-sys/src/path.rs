//! Resolving paths under a chosen root: `openat2(2)` (Linux 5.6) with `struct open_how`
//! (`include/uapi/linux/openat2.h`) and its `RESOLVE_*` flags, and `readlinkat(2)` of a
//! link held by an `O_PATH` descriptor. They allocate nothing, so a freshly cloned child
//! may use them between `clone` and `execve`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub use libc::open_how;

/// Resolve every path component as if `dirfd` were the root: absolute links and `..` never
/// leave it (`RESOLVE_IN_ROOT`).
pub const RESOLVE_IN_ROOT: u64 = 0x10;
/// Refuse magic links (`/proc/PID/fd/N`, `/proc/PID/exe`, ...) anywhere in the path.
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
/// Refuse every symbolic link.
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
/// Refuse to cross a mount point.
pub const RESOLVE_NO_XDEV: u64 = 0x01;

/// `openat2(2)` (Linux 5.6): opens `path` relative to `dirfd` with `flags`, `mode` and
/// `resolve` (`RESOLVE_*`). Older kernels (and seccomp filters that do not know it) answer
/// `ENOSYS`. Pass `O_CLOEXEC` in `flags`: the descriptor is returned as an [`OwnedFd`].
pub fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
    resolve: u64,
) -> io::Result<OwnedFd> {
    // SAFETY: an all-zero open_how is valid; the fields are set below.
    let mut how: open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        u64::from(mode)
    } else {
        0
    };
    how.resolve = resolve;
    // SAFETY: a NUL-terminated path and a live open_how of the size passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd.as_raw_fd(),
            path.as_ptr(),
            &how as *const open_how,
            std::mem::size_of::<open_how>(),
        )
    };
    let fd = crate::abi::cvt(ret)?;
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `readlinkat(2)` of the symbolic link `link` refers to (opened with `O_PATH |
/// O_NOFOLLOW`): its text into `buf`, returning the length (not NUL-terminated; a text as
/// long as `buf` may be cut short, which the caller tells by the length).
pub fn readlink_fd(link: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: an empty path names `link` itself; the kernel writes at most `buf.len()` bytes.
    let ret = unsafe {
        libc::readlinkat(
            link.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
        )
    };
    crate::abi::cvt(ret as libc::c_long).map(|n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn openat2_keeps_absolute_links_and_dotdot_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink("../../../..", dir.path().join("up")).unwrap();
        let root: OwnedFd = std::fs::File::open(dir.path()).unwrap().into();
        let flags = libc::O_PATH | libc::O_CLOEXEC;
        let open = |p: &CStr| openat2(root.as_fd(), p, flags, 0, RESOLVE_IN_ROOT);
        let same = |a: &OwnedFd, b: &std::path::Path| {
            let st = nix_stat(a);
            let m = std::fs::metadata(b).unwrap();
            use std::os::unix::fs::MetadataExt;
            st == (m.dev(), m.ino())
        };
        assert!(same(&open(c"link").unwrap(), &dir.path().join("etc")));
        assert!(same(&open(c"up").unwrap(), dir.path()));
        assert!(same(&open(c"/link").unwrap(), &dir.path().join("etc")));
        let magic = openat2(
            root.as_fd(),
            c"/proc/self/fd/0",
            flags,
            0,
            RESOLVE_NO_MAGICLINKS,
        );
        assert_eq!(magic.unwrap_err().raw_os_error(), Some(libc::ELOOP));
        let mut buf = [0u8; 64];
        let link = openat2(
            root.as_fd(),
            c"link",
            flags | libc::O_NOFOLLOW,
            0,
            RESOLVE_IN_ROOT,
        )
        .unwrap();
        let n = readlink_fd(link.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"/etc");
    }

    fn nix_stat(fd: &OwnedFd) -> (u64, u64) {
        // SAFETY: an all-zero stat is valid storage for fstat to fill.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes only into `st`.
        assert_eq!(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) }, 0);
        (st.st_dev, st.st_ino)
    }
}
