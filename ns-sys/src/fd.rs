//! Descriptor calls that a freshly cloned child needs before `execve`: `close_range(2)` and
//! `getdents64(2)`, which libc does not wrap everywhere, and a file's identity by `fstat(2)`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `close_range(2)` flag: mark the descriptors close-on-exec instead of closing them (5.11).
pub const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
/// `close_range(2)` flag: unshare the descriptor table first (5.9).
pub const CLOSE_RANGE_UNSHARE: libc::c_uint = 1 << 1;

/// Calls `close_range(2)` (Linux 5.9): closes (or with [`CLOSE_RANGE_CLOEXEC`], 5.11, marks
/// close-on-exec) every descriptor from `first` to `last`. Older kernels fail with `ENOSYS`
/// (or `EINVAL` for an unknown flag).
///
/// # Safety
/// Without [`CLOSE_RANGE_CLOEXEC`] this closes descriptors that `OwnedFd`s, `File`s or other
/// owners elsewhere in the program may still hold, which breaks I/O safety: use it only in a
/// process (a freshly cloned child) where nothing else will use those descriptors again.
pub unsafe fn close_range(
    first: libc::c_uint,
    last: libc::c_uint,
    flags: libc::c_uint,
) -> io::Result<()> {
    // SAFETY: plain system call; no memory is passed. The caller upholds the contract above.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    crate::abi::cvt(ret).map(drop)
}

/// Whether `close_range(2)` takes [`CLOSE_RANGE_CLOEXEC`] (Linux 5.11), asked with a call
/// on a range past any descriptor number, which changes nothing.
pub fn close_range_cloexec_usable() -> bool {
    // SAFETY: marks close-on-exec (never closes) a range that holds no descriptor.
    unsafe { close_range(u32::MAX - 1, u32::MAX, CLOSE_RANGE_CLOEXEC) }.is_ok()
}

/// Calls `getdents64(2)`: reads directory entries of `dir` into `buf` (as `struct
/// linux_dirent64` records) and returns how many bytes it filled; 0 at the end.
pub fn getdents64(dir: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into the live buffer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            dir.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    crate::abi::cvt(ret).map(|n| n as usize)
}

/// `(st_dev, st_ino)` of the file behind `fd`: one `fstat(2)`, nothing allocated (a child may
/// call it between `clone` and `execve`). A namespace file's identity while it is held open.
pub fn dev_ino(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `st` is writable storage for one stat structure.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded and filled the structure.
    let st = unsafe { st.assume_init() };
    // st_ino is 32 bits wide on some 32-bit targets.
    #[allow(clippy::useless_conversion)]
    Ok((st.st_dev, u64::from(st.st_ino)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsFd;

    #[test]
    fn dev_ino_tells_two_opens_of_a_file_from_another_file() {
        let a = File::open("/proc/self/exe").unwrap();
        let b = File::open("/proc/self/exe").unwrap();
        let c = File::open("/").unwrap();
        assert_eq!(dev_ino(a.as_fd()).unwrap(), dev_ino(b.as_fd()).unwrap());
        assert_ne!(dev_ino(a.as_fd()).unwrap(), dev_ino(c.as_fd()).unwrap());
        // SAFETY: a number no descriptor has.
        let none = unsafe { BorrowedFd::borrow_raw(1 << 30) };
        assert_eq!(dev_ino(none).unwrap_err().raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn close_range_cloexec_marks_descriptors() {
        let f = File::open("/proc/self/status").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f) as libc::c_uint;
        // SAFETY: clearing and reading a descriptor flag of our own file.
        unsafe { libc::fcntl(fd as i32, libc::F_SETFD, 0) };
        // SAFETY: only marks the test's own descriptor close-on-exec.
        unsafe { close_range(fd, fd, CLOSE_RANGE_CLOEXEC) }.unwrap();
        // SAFETY: as above.
        let flags = unsafe { libc::fcntl(fd as i32, libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }

    #[test]
    fn getdents64_lists_a_directory() {
        let dir = File::open("/proc/self").unwrap();
        let mut buf = [0u8; 8192];
        let mut names = Vec::new();
        loop {
            let n = getdents64(dir.as_fd(), &mut buf).unwrap();
            if n == 0 {
                break;
            }
            let mut off = 0;
            while off < n {
                let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
                let name = &buf[off + 19..off + reclen];
                let end = name.iter().position(|b| *b == 0).unwrap();
                names.push(String::from_utf8_lossy(&name[..end]).into_owned());
                off += reclen;
            }
        }
        assert!(names.iter().any(|n| n == "status"), "{names:?}");
        assert!(names.iter().any(|n| n == "ns"), "{names:?}");
    }
}
