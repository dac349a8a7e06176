//! A seccomp filter that refuses `clone3` with `ENOSYS`, as Docker's and containerd's default
//! profiles do: for the tests and the torture suite of the legacy `clone` fallback.

/// Installs, for every thread of the process, a filter that makes `clone3` fail with ENOSYS.
pub fn block_clone3() {
    const AUDIT_ARCH: u32 = if cfg!(target_arch = "x86_64") {
        0xc000_003e
    } else {
        0xc000_00b7
    };
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let load = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let filter = [
        stmt(load, 4), // seccomp_data.arch
        jeq(AUDIT_ARCH, 0, 3),
        stmt(load, 0), // seccomp_data.nr
        jeq(libc::SYS_clone3 as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
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
