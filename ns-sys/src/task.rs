//! Calls a task makes on itself while it becomes a program: `execveat(2)`, a seccomp filter,
//! resource limits, `pivot_root(2)`, and a futex wait. Raw system calls: no glibc state, no
//! allocation, so they may be made between `clone` and `execve`.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::AtomicU32;

use libc::c_char;

/// Calls `execveat(2)`: executes the file `path` relative to `dirfd` (with `AT_EMPTY_PATH`
/// and an empty `path`, the file `dirfd` is open on, such as a memfd). Returns only on
/// failure, with the error.
///
/// # Safety
/// `argv` and `envp` must be NULL-terminated arrays of NUL-terminated strings, alive across
/// the call.
pub unsafe fn execveat(
    dirfd: RawFd,
    path: &CStr,
    argv: *const *const c_char,
    envp: *const *const c_char,
    flags: libc::c_int,
) -> io::Error {
    // SAFETY: the caller upholds the contract on `argv` and `envp`; `path` is NUL-terminated.
    unsafe { libc::syscall(libc::SYS_execveat, dirfd, path.as_ptr(), argv, envp, flags) };
    io::Error::last_os_error()
}

/// Installs a seccomp filter program on the calling thread (`seccomp(2)` with
/// `SECCOMP_SET_MODE_FILTER` and `flags`, such as `SECCOMP_FILTER_FLAG_TSYNC`). The thread
/// needs `no_new_privs` or `CAP_SYS_ADMIN`.
pub fn seccomp_set_mode_filter(
    filter: &[libc::sock_filter],
    flags: libc::c_ulong,
) -> io::Result<()> {
    let len =
        u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog {
        len,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: the program points into `filter`, alive across the call; the kernel copies it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    crate::abi::cvt(ret).map(drop)
}

/// Sets the calling process's resource limit `resource` (`prlimit64(2)` on itself).
pub fn set_rlimit(resource: libc::c_int, soft: u64, hard: u64) -> io::Result<()> {
    let new = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: prlimit64 on this process with a live, initialised structure.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            0,
            resource,
            &new as *const libc::rlimit64,
            std::ptr::null_mut::<libc::rlimit64>(),
        )
    };
    crate::abi::cvt(ret).map(drop)
}

/// Calls `pivot_root(2)`: makes `new_root` the root of the calling task's mount namespace
/// and puts the old root at `put_old` (both may be `"."` when the working directory is the
/// new root).
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: two NUL-terminated paths.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    crate::abi::cvt(ret).map(drop)
}

/// Waits (`FUTEX_WAIT`, shared: no `FUTEX_PRIVATE_FLAG`, so wakes by the kernel or another
/// process sharing the page reach it) while `word` holds `expected`. Returns at once if it
/// does not; may also return early (a signal, a spurious wake): callers loop.
pub fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: a futex wait on a live, aligned word; no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

/// The kernel's `getcwd(2)` into `buf`, returning the path's length with its NUL. Unlike
/// glibc's `getcwd`, it hands back a directory outside the caller's root as the kernel names
/// it, with an `(unreachable)` prefix instead of a leading `/`; `ERANGE` when `buf` is too
/// small.
pub fn getcwd(buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into the live buffer.
    let ret = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    crate::abi::cvt(ret).map(|n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getcwd_names_the_directory_with_its_nul() {
        let mut buf = [0u8; 4096];
        let n = getcwd(&mut buf).unwrap();
        let here = std::env::current_dir().unwrap();
        assert_eq!(&buf[..n - 1], here.as_os_str().as_encoded_bytes());
        assert_eq!(buf[n - 1], 0);
        let mut tiny = [0u8; 1];
        assert_eq!(
            getcwd(&mut tiny).unwrap_err().raw_os_error(),
            Some(libc::ERANGE)
        );
    }

    #[test]
    fn execveat_of_a_missing_file_reports_enoent() {
        let argv: [*const c_char; 1] = [std::ptr::null()];
        // SAFETY: NULL-terminated (empty) arrays.
        let e = unsafe {
            execveat(
                libc::AT_FDCWD,
                c"/nonexistent/x",
                argv.as_ptr(),
                argv.as_ptr(),
                0,
            )
        };
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn an_empty_or_oversized_filter_is_refused() {
        assert_eq!(
            seccomp_set_mode_filter(&[], 0).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
        let huge = vec![
            libc::sock_filter {
                code: 0,
                jt: 0,
                jf: 0,
                k: 0
            };
            70_000
        ];
        assert_eq!(
            seccomp_set_mode_filter(&huge, 0)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EINVAL)
        );
    }

    #[test]
    fn futex_wait_returns_when_the_word_differs() {
        futex_wait(&AtomicU32::new(1), 0);
    }

    #[test]
    fn set_rlimit_to_the_current_limit_works() {
        let mut cur = libc::rlimit64 {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit64 into a live structure.
        assert_eq!(
            unsafe { libc::getrlimit64(libc::RLIMIT_NOFILE, &mut cur) },
            0
        );
        set_rlimit(
            libc::RLIMIT_NOFILE as libc::c_int,
            cur.rlim_cur,
            cur.rlim_max,
        )
        .unwrap();
    }
}
