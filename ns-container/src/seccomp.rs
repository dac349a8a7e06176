//! A small builder of classic BPF seccomp filters for
//! [`NsCommand::seccomp_filter`](crate::NsCommand::seccomp_filter): enough for a deny list;
//! use a library such as libseccomp for anything richer and hand its program to the same
//! method.

/// The `AUDIT_ARCH_*` value of the architecture this crate is built for.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The most instructions the kernel takes in one filter (`BPF_MAXINSNS`).
pub const MAX_INSTRUCTIONS: usize = 4096;

/// A filter that makes each system call in `syscalls` (numbers, `libc::SYS_*`) fail with
/// `errno` and allows every other one of this architecture. System calls of another
/// architecture (32-bit entry points such as x86's `int 0x80`, and the x32 ABI) fail with
/// `ENOSYS`, so that none of the listed calls can be reached under another number.
///
/// ```
/// let filter = ns_container::seccomp::deny(&[libc::SYS_uname, libc::SYS_ptrace], libc::EPERM)?;
/// assert!(filter.len() > 4);
/// // errno 0 would make a denied call return 0 without running: refused.
/// assert!(ns_container::seccomp::deny(&[libc::SYS_uname], 0).is_err());
/// # Ok::<(), ns_container::Error>(())
/// ```
///
/// # Errors
/// [`Error::Invalid`](crate::Error::Invalid) for an `errno` outside 1..=4095 (the kernel
/// keeps 12 bits of it, and 0 would fake success), a negative system call number, or more
/// system calls than fit in [`MAX_INSTRUCTIONS`].
pub fn deny(syscalls: &[libc::c_long], errno: i32) -> crate::error::Result<Vec<libc::sock_filter>> {
    let invalid = |reason: String| crate::error::Error::Invalid {
        what: "building a seccomp deny filter".to_owned(),
        reason,
    };
    if !(1..=4095).contains(&errno) {
        return Err(invalid(format!("errno {errno} is not between 1 and 4095")));
    }
    if let Some(nr) = syscalls.iter().find(|nr| u32::try_from(**nr).is_err()) {
        return Err(invalid(format!("{nr} is not a system call number")));
    }
    // Arch check (3), number load (1), x32 check (2), two per call, the final allow.
    if 7 + 2 * syscalls.len() > MAX_INSTRUCTIONS {
        return Err(invalid(format!(
            "{} system calls do not fit in {MAX_INSTRUCTIONS} instructions",
            syscalls.len()
        )));
    }
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let jeq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let fail = |e: i32| {
        stmt(
            ret,
            libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA),
        )
    };
    let mut program = vec![
        stmt(ld, ARCH_OFFSET),
        jump(jeq, AUDIT_ARCH, 1, 0),
        fail(libc::ENOSYS),
        stmt(ld, NR_OFFSET),
    ];
    if cfg!(target_arch = "x86_64") {
        // x32 system calls share the x86_64 audit arch and set bit 30 of the number.
        let jge = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
        program.push(jump(jge, 0x4000_0000, 0, 1));
        program.push(fail(libc::ENOSYS));
    }
    for nr in syscalls {
        program.push(jump(jeq, *nr as u32, 0, 1));
        program.push(fail(errno));
    }
    program.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
    Ok(program)
}
