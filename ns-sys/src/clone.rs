//! `clone3(2)` and its argument structure (`include/uapi/linux/sched.h`).

use std::io;

use libc::pid_t;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use libc::{c_int, c_void};

/// Size of the first published `struct clone_args` (Linux 5.3): up to `tls`.
pub const CLONE_ARGS_SIZE_VER0: usize = 64;
/// Size with `set_tid` and `set_tid_size` (Linux 5.5).
pub const CLONE_ARGS_SIZE_VER1: usize = 80;
/// Size with `cgroup` (Linux 5.7), needed for [`CLONE_INTO_CGROUP`](crate::CLONE_INTO_CGROUP).
pub const CLONE_ARGS_SIZE_VER2: usize = 88;

/// Arguments of `clone3(2)`, `struct clone_args` up to and including `cgroup`.
///
/// Pointers travel as `u64` (`__aligned_u64` in the uapi header). Unused fields must be zero:
/// build the structure with [`Default`] and set what you need.
#[repr(C, align(8))]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct clone_args {
    /// `CLONE_*` flags, including the 64-bit clone3-only ones.
    pub flags: u64,
    /// With `CLONE_PIDFD`: address of an `int` that receives the child's pidfd.
    pub pidfd: u64,
    /// With `CLONE_CHILD_SETTID`/`CLONE_CHILD_CLEARTID`: address in the child's memory.
    pub child_tid: u64,
    /// With `CLONE_PARENT_SETTID`: address of a `pid_t` in the caller's memory that receives
    /// the child's id, as seen from the caller's PID namespace.
    pub parent_tid: u64,
    /// Signal sent to the parent when the child exits (usually `SIGCHLD`). Must be 0 with
    /// `CLONE_PARENT` or `CLONE_THREAD`: the child then inherits the caller's exit signal.
    pub exit_signal: u64,
    /// Lowest address of the child's stack, or 0 to keep running on (a copy of) the caller's.
    pub stack: u64,
    /// Size of the stack at `stack`.
    pub stack_size: u64,
    /// With `CLONE_SETTLS`: the child's thread pointer.
    pub tls: u64,
    /// Address of an array of PIDs to give the child, one per PID namespace level (5.5).
    pub set_tid: u64,
    /// Number of entries at `set_tid`.
    pub set_tid_size: u64,
    /// With `CLONE_INTO_CGROUP`: a file descriptor of the cgroup v2 directory to start in (5.7).
    pub cgroup: u64,
}

/// Calls `clone3(2)` (Linux 5.3) with the whole [`clone_args`] structure.
///
/// Returns the child's PID (as seen from the caller's PID namespace) in the caller and `0` in
/// the child. Kernels that predate a field accept the larger structure as long as the fields
/// they do not know are zero; otherwise they fail with `E2BIG`. A kernel without `clone3`
/// fails with `ENOSYS`.
///
/// ```
/// use ns_sys::{clone3, clone_args};
///
/// let mut args = clone_args {
///     exit_signal: libc::SIGCHLD as u64,
///     ..Default::default()
/// };
/// # if !ns_sys::clone3_usable() { return Ok(()); }
/// // SAFETY: like fork: the child only calls _exit.
/// let pid = unsafe { clone3(&mut args) }?;
/// if pid == 0 {
///     // SAFETY: _exit is async-signal-safe.
///     unsafe { libc::_exit(7) };
/// }
/// let mut status = 0;
/// // SAFETY: waiting for our own child.
/// assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
/// assert_eq!(libc::WEXITSTATUS(status), 7);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Safety
/// The child starts as a copy of the calling *thread* only. Unless `args` asks for a new stack
/// and shares nothing, the child returns from this function on a copy of the caller's stack,
/// exactly like after `fork(2)`: in a multithreaded program it may only call async-signal-safe
/// functions until it calls `execve` or `_exit` (see `signal-safety(7)`). With `CLONE_VM` the
/// child shares the caller's memory; a new `stack` is then required, and since this wrapper
/// returns into the caller's code on that stack, `CLONE_VM` must not be used through it at all.
/// Every address in `args` must be valid for the kernel to write through.
pub unsafe fn clone3(args: &mut clone_args) -> io::Result<pid_t> {
    // SAFETY: `args` points to a live, properly aligned `clone_args` of the size we pass; the
    // caller upholds the contract about what the child may do.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *mut clone_args,
            std::mem::size_of::<clone_args>(),
        )
    };
    crate::cvt(ret).map(|pid| pid as pid_t)
}

/// Calls `clone3(2)` so that the new task starts on the stack described by `args` by calling
/// `entry(arg)`, and exits (`exit_group`) with its return value. Exists on x86_64 and
/// aarch64, where its small assembly entry is written; the rest of this crate builds on
/// every Linux target.
///
/// This is the form of `clone3` that works with `CLONE_VM`: the child never returns into the
/// caller's frames. Returns the child's PID (as seen from the caller's PID namespace), in the
/// caller only. The child's first frame is an assembly entry whose
/// return address is marked undefined (as in glibc's `clone`), so unwinders and backtraces
/// in the child stop there.
///
/// # Safety
/// `args.stack`/`args.stack_size` must describe a writable region that stays mapped for as
/// long as the task runs on it, 16-byte aligned at its top. `entry` must be async-signal-safe
/// when the task shares memory with a multithreaded process (`CLONE_VM`) or is a copy of one,
/// and must not touch the caller's stack. Every address in `args` must be valid for the
/// kernel to write through.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
pub unsafe fn clone3_on_stack(
    args: &mut clone_args,
    entry: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
) -> io::Result<pid_t> {
    let ret: libc::c_long;
    // SAFETY: the parent path is a plain syscall (rcx and r11 are clobbered by `syscall`);
    // the child path jumps to the task entry (`<anchor>_start`) on the new stack, which calls `entry`
    // with `arg` and exits without ever returning into the caller's frames. The caller
    // upholds the stack contract.
    unsafe {
        core::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "jmp {anchor}_start",
            "2:",
            anchor = sym task_start_anchor,
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args as *mut clone_args,
            in("rsi") std::mem::size_of::<clone_args>(),
            in("r12") entry,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        Err(io::Error::from_raw_os_error(-ret as i32))
    } else {
        Ok(ret as pid_t)
    }
}

// The first frame of every task: `entry(arg)` (in r12, r13), then exit_group with its result.
// Its return address is marked undefined, as glibc's clone does, so that unwinders and
// backtraces (a panic in a closure run by `clone`) stop here instead of walking off the top
// of the task's stack.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .text.{anchor}_start,\"ax\",@progbits",
    ".globl {anchor}_start",
    ".hidden {anchor}_start",
    ".type {anchor}_start,@function",
    "{anchor}_start:",
    ".cfi_startproc",
    ".cfi_undefined rip",
    "xor ebp, ebp",
    "and rsp, -16",
    "mov rdi, r13",
    "call r12",
    "mov edi, eax",
    "mov eax, {exit_group}",
    "syscall",
    "ud2",
    ".cfi_endproc",
    ".size {anchor}_start, .-{anchor}_start",
    ".popsection",
    exit_group = const libc::SYS_exit_group,
    anchor = sym task_start_anchor,
);

/// Never called: its symbol name, which the compiler makes unique to this copy of the crate
/// (its mangled name carries the crate's hash), names the task entry above
/// (`<anchor>_start`), so that two versions of this crate in one program link.
///
/// Public (hidden from the docs) and never inlined, so that its symbol is the one external
/// symbol of this crate: an empty function is otherwise inlinable across crates, an
/// optimised build of a crate calling [`clone3_on_stack`] then made its own internal copy,
/// which ThinLTO renamed (`<name>.llvm.<hash>`), and the inline assembly jumped to
/// `<name>.llvm.<hash>_start`, which nothing defines (a link error). The functions holding
/// that assembly are never inlined either, so it is only ever compiled here.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[doc(hidden)]
#[inline(never)]
pub extern "C" fn task_start_anchor() {}

/// Calls `clone3(2)` so that the new task starts on its own stack by calling `entry(arg)`;
/// see the x86_64 version.
///
/// # Safety
/// As for the x86_64 version.
#[cfg(target_arch = "aarch64")]
#[inline(never)]
pub unsafe fn clone3_on_stack(
    args: &mut clone_args,
    entry: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
) -> io::Result<pid_t> {
    let ret: libc::c_long;
    // SAFETY: as for x86_64: `svc #0` preserves every register but x0 in both tasks; the child
    // branches to the task entry, which calls `entry(arg)` and exits.
    unsafe {
        core::arch::asm!(
            "svc #0",
            "cbnz x0, 2f",
            "b {anchor}_start",
            "2:",
            anchor = sym task_start_anchor,
            in("x8") libc::SYS_clone3,
            inlateout("x0") args as *mut clone_args as libc::c_long => ret,
            in("x1") std::mem::size_of::<clone_args>(),
            in("x9") entry,
            in("x10") arg,
            options(nostack),
        );
    }
    if ret < 0 {
        Err(io::Error::from_raw_os_error(-ret as i32))
    } else {
        Ok(ret as pid_t)
    }
}

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".pushsection .text.{anchor}_start,\"ax\",@progbits",
    ".globl {anchor}_start",
    ".hidden {anchor}_start",
    ".type {anchor}_start,@function",
    "{anchor}_start:",
    ".cfi_startproc",
    ".cfi_undefined x30",
    "mov x29, xzr",
    "mov x30, xzr",
    "mov x0, x10",
    "blr x9",
    "mov x8, {exit_group}",
    "svc #0",
    "brk #1",
    ".cfi_endproc",
    ".size {anchor}_start, .-{anchor}_start",
    ".popsection",
    exit_group = const libc::SYS_exit_group,
    anchor = sym task_start_anchor,
);

/// Calls the legacy `clone(2)` system call so that the new task starts on its own stack by
/// calling `entry(arg)`, for kernels or sandboxes without `clone3` (Docker's and containerd's
/// default seccomp profiles make `clone3` fail with `ENOSYS`). x86_64 and aarch64.
///
/// Takes the same [`clone_args`] as [`clone3_on_stack`] and translates it: the exit signal
/// goes into the low byte of the flags, `CLONE_PIDFD` (5.2) makes the kernel store the pidfd
/// at `args.pidfd` (the legacy call passes it through the `parent_tid` slot, so it cannot be
/// combined with `CLONE_PARENT_SETTID`), `child_tid` works as for `clone3`. What the legacy
/// call cannot express fails with `EINVAL` before any system call: flags above 32 bits
/// (`CLONE_CLEAR_SIGHAND`, `CLONE_INTO_CGROUP`), `CLONE_NEWTIME` (its bit is part of the exit
/// signal byte), `set_tid`, `cgroup`, and `CLONE_PIDFD` together with `CLONE_PARENT_SETTID`.
///
/// # Safety
/// As for [`clone3_on_stack`].
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub unsafe fn clone_on_stack(
    args: &mut clone_args,
    entry: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
) -> io::Result<pid_t> {
    let pidfd = args.flags & crate::CLONE_PIDFD as u64 != 0;
    let settid = args.flags & crate::CLONE_PARENT_SETTID as u64 != 0;
    if args.flags > u64::from(u32::MAX)
        || args.flags & crate::CSIGNAL as u64 != 0
        || args.exit_signal > crate::CSIGNAL as u64
        || args.set_tid != 0
        || args.set_tid_size != 0
        || args.cgroup != 0
        || (pidfd && settid)
    {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let flags = (args.flags | args.exit_signal) as libc::c_ulong;
    let parent_tid = if pidfd { args.pidfd } else { args.parent_tid };
    let stack_top = args.stack.wrapping_add(args.stack_size);
    // SAFETY: forwarded from the caller, who upholds the stack and address contract.
    unsafe {
        legacy_clone(
            flags,
            stack_top,
            parent_tid,
            args.child_tid,
            args.tls,
            entry,
            arg,
        )
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(never)]
unsafe fn legacy_clone(
    flags: libc::c_ulong,
    stack_top: u64,
    parent_tid: u64,
    child_tid: u64,
    tls: u64,
    entry: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
) -> io::Result<pid_t> {
    let ret: libc::c_long;
    // SAFETY: as in `clone3_on_stack`: the child starts on `stack_top` and jumps to the task
    // entry, which never returns into the caller's frames. x86_64 argument order:
    // flags, stack, parent_tid, child_tid, tls.
    unsafe {
        core::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "jmp {anchor}_start",
            "2:",
            anchor = sym task_start_anchor,
            inlateout("rax") libc::SYS_clone => ret,
            in("rdi") flags,
            in("rsi") stack_top,
            in("rdx") parent_tid,
            in("r10") child_tid,
            in("r8") tls,
            in("r12") entry,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        Err(io::Error::from_raw_os_error(-ret as i32))
    } else {
        Ok(ret as pid_t)
    }
}

#[cfg(target_arch = "aarch64")]
#[inline(never)]
unsafe fn legacy_clone(
    flags: libc::c_ulong,
    stack_top: u64,
    parent_tid: u64,
    child_tid: u64,
    tls: u64,
    entry: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
) -> io::Result<pid_t> {
    let ret: libc::c_long;
    // SAFETY: as for x86_64. aarch64 argument order: flags, stack, parent_tid, tls, child_tid.
    unsafe {
        core::arch::asm!(
            "svc #0",
            "cbnz x0, 2f",
            "b {anchor}_start",
            "2:",
            anchor = sym task_start_anchor,
            in("x8") libc::SYS_clone,
            inlateout("x0") flags as libc::c_long => ret,
            in("x1") stack_top,
            in("x2") parent_tid,
            in("x3") tls,
            in("x4") child_tid,
            in("x9") entry,
            in("x10") arg,
            options(nostack),
        );
    }
    if ret < 0 {
        Err(io::Error::from_raw_os_error(-ret as i32))
    } else {
        Ok(ret as pid_t)
    }
}

/// Whether `clone3(2)` can be called here: `false` on kernels before 5.3 and where a seccomp
/// filter refuses it (Docker's and containerd's default profiles answer `ENOSYS`). Asks the
/// kernel with a deliberately invalid call that creates nothing (a zero-sized argument:
/// `EINVAL` when `clone3` exists).
///
/// ```
/// if !ns_sys::clone3_usable() {
///     eprintln!("clone3 refused here: spawning falls back to the legacy clone");
/// }
/// ```
pub fn clone3_usable() -> bool {
    // SAFETY: with size 0 the kernel rejects the call before reading any memory.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<clone_args>(), 0usize) };
    ret == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
}

/// Whether `clone3` takes `CLONE_INTO_CGROUP` (Linux 5.7), asked with a call that creates
/// nothing: the flag with a cgroup descriptor number that cannot be open (`INT_MAX`, above
/// any `RLIMIT_NOFILE`) fails with `EBADF` where the flag is known, `EINVAL` where it is not
/// (and whatever a seccomp filter says). The call shares the caller's memory
/// (`CLONE_VM | CLONE_VFORK`), so the kernel copies no page tables before it looks at the
/// descriptor. On targets without the task entry, `false`.
pub fn clone_into_cgroup_usable() -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let mut args = clone_args {
            flags: crate::CLONE_INTO_CGROUP,
            cgroup: i32::MAX as u64,
            ..Default::default()
        };
        matches!(probe_task(&mut args), Err(e) if e.raw_os_error() == Some(libc::EBADF))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Flags [`clone3_accepts`] refuses to try: they would make its task a thread of the caller,
/// a child of someone else, or have the kernel write where the probe does not expect.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const PROBE_REFUSED: u64 = (libc::CLONE_THREAD
    | libc::CLONE_SIGHAND
    | libc::CLONE_PARENT
    | libc::CLONE_SETTLS
    | libc::CLONE_PARENT_SETTID
    | libc::CLONE_CHILD_SETTID
    | libc::CLONE_CHILD_CLEARTID
    | libc::CLONE_PIDFD
    | libc::CLONE_VM
    | libc::CLONE_VFORK
    | libc::CLONE_PTRACE) as u64
    | crate::CLONE_INTO_CGROUP;

/// Whether `clone3` accepts `flags` (such as `CLONE_CLEAR_SIGHAND`, Linux 5.5) here, asked by
/// doing it: a task sharing the caller's memory (`CLONE_VM | CLONE_VFORK`, the caller waits)
/// starts on a small stack of its own, exits at once, and is reaped through its pidfd; every
/// signal is blocked meanwhile, so no handler of the caller runs on that stack. For flags no
/// invalid call can tell apart; costs one such task. Flags that would change what the task
/// is (`CLONE_THREAD`, `CLONE_PARENT`, `CLONE_SIGHAND`, `CLONE_SETTLS`, the tid and pidfd
/// flags, `CLONE_VM`/`CLONE_VFORK` themselves, `CLONE_PTRACE`, `CLONE_INTO_CGROUP`) are not
/// tried: the answer is `false`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn clone3_accepts(flags: u64) -> bool {
    if flags & PROBE_REFUSED != 0 {
        return false;
    }
    let mut args = clone_args {
        flags,
        ..Default::default()
    };
    probe_task(&mut args).is_ok()
}

/// Starts a task with `args` plus `CLONE_VM | CLONE_VFORK | CLONE_PIDFD` on a small stack of
/// its own, with every signal blocked, and reaps it: it only exits.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn probe_task(args: &mut clone_args) -> io::Result<()> {
    extern "C" fn exit_now(_: *mut c_void) -> c_int {
        0
    }
    // 16 KiB, 16-byte aligned at both ends.
    let mut stack = vec![0u128; 1024];
    let mut pidfd: c_int = -1;
    args.flags |= (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD) as u64;
    args.pidfd = &mut pidfd as *mut c_int as u64;
    args.stack = stack.as_mut_ptr() as u64;
    args.stack_size = (stack.len() * std::mem::size_of::<u128>()) as u64;
    args.exit_signal = 0;
    // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask write only to the sets
    // passed, and the old mask is put back below.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: the task runs `exit_now` (no memory touched) on `stack`, which outlives it: the
    // caller is suspended until the task exits (CLONE_VFORK); it inherits the full signal
    // mask. `pidfd` is live for the kernel to write.
    let started = unsafe { clone3_on_stack(args, exit_now, std::ptr::null_mut()) };
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    started?;
    // SAFETY: the kernel stored a new pidfd for the task just created.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) };
    // Reaped here, or already by someone else's wait: either way it is gone.
    let _ = crate::pidfd_wait(std::os::fd::AsFd::as_fd(&fd), libc::WEXITED | libc::__WALL);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    #[test]
    fn clone_args_matches_the_uapi_layout() {
        assert_eq!(size_of::<clone_args>(), CLONE_ARGS_SIZE_VER2);
        assert_eq!(align_of::<clone_args>(), 8);
        assert_eq!(offset_of!(clone_args, flags), 0);
        assert_eq!(offset_of!(clone_args, pidfd), 8);
        assert_eq!(offset_of!(clone_args, child_tid), 16);
        assert_eq!(offset_of!(clone_args, parent_tid), 24);
        assert_eq!(offset_of!(clone_args, exit_signal), 32);
        assert_eq!(offset_of!(clone_args, stack), 40);
        assert_eq!(offset_of!(clone_args, stack_size), 48);
        assert_eq!(offset_of!(clone_args, tls), 56);
        assert_eq!(offset_of!(clone_args, set_tid), CLONE_ARGS_SIZE_VER0);
        assert_eq!(offset_of!(clone_args, set_tid_size), 72);
        assert_eq!(offset_of!(clone_args, cgroup), CLONE_ARGS_SIZE_VER1);
    }

    #[test]
    fn clone3_forks_and_reports_the_child_pid() {
        let mut child_pid: pid_t = 0;
        let mut args = clone_args {
            flags: crate::CLONE_PARENT_SETTID as u64,
            parent_tid: &mut child_pid as *mut pid_t as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        };
        // SAFETY: a fork-like clone (no CLONE_VM, no new stack); the child only calls _exit.
        let pid = unsafe { clone3(&mut args) }.expect("clone3");
        if pid == 0 {
            // SAFETY: _exit is async-signal-safe and never returns.
            unsafe { libc::_exit(7) };
        }
        assert_eq!(child_pid, pid);
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 7);
    }

    #[test]
    fn clone3_rejects_an_exit_signal_with_clone_parent() {
        let mut args = clone_args {
            flags: crate::CLONE_PARENT as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        };
        // SAFETY: the kernel refuses these arguments before creating any child.
        let err = unsafe { clone3(&mut args) }.expect_err("clone3 must refuse");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}
