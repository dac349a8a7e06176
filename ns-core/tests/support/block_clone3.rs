//! A seccomp filter that refuses `clone3` with `ENOSYS`, as Docker's and containerd's default
//! profiles do: for the tests and the torture suite of the legacy `clone` fallback.

/// Installs, for every thread of the process, a filter that makes `clone3` fail with ENOSYS.
pub fn block_clone3() {
    let filter = ns_container::seccomp::deny(&[libc::SYS_clone3], libc::ENOSYS).unwrap();
    // SAFETY: a prctl on this process.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
        0
    );
    // TSYNC applies it to every thread of this process.
    ns_sys::task::seccomp_set_mode_filter(&filter, libc::SECCOMP_FILTER_FLAG_TSYNC).unwrap();
}
