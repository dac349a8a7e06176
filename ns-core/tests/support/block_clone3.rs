//! A seccomp filter that refuses `clone3` with `ENOSYS`, as Docker's and containerd's default
//! profiles do: for the tests and the torture suite of the legacy `clone` fallback.

/// Installs, for every thread of the process, a filter that makes `clone3` fail with ENOSYS.
pub fn block_clone3() {
    let filter = ns_container::seccomp::deny(&[libc::SYS_clone3], libc::ENOSYS).unwrap();
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: a valid filter program that lives across the call; TSYNC applies it to every
    // thread of this process.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_TSYNC,
                &prog,
            ),
            0,
            "{}",
            std::io::Error::last_os_error()
        );
    }
}
