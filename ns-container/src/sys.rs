//! Low-level pieces of the spawner: the `clone3` trampoline that starts a task on its own
//! stack, the stacks themselves, and small async-signal-safe helpers.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use libc::{c_int, c_void};
use ns_sys::clone_args;

/// Calls `clone3(2)` so that the new task starts on the stack described by `args` by calling
/// `entry(arg)`, and exits (`exit_group`) with its return value. Returns the child's PID (as
/// seen from the caller's PID namespace) or the negated errno, in the caller only: the child
/// never returns from here.
///
/// # Safety
/// `args.stack`/`args.stack_size` must describe a writable region that stays mapped for as
/// long as the task runs on it, 16-byte aligned at its top. `entry` must be async-signal-safe
/// when the task shares memory with a multithreaded process (`CLONE_VM`) or is a copy of one.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn clone3_on_stack(
    args: &mut clone_args,
    entry: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
) -> libc::c_long {
    let ret: libc::c_long;
    // SAFETY: the parent path is a plain syscall (rcx and r11 are clobbered by `syscall`);
    // the child path jumps to `ns_container_task_start` on the new stack, which calls `entry`
    // with `arg` and exits without ever returning into the caller's frames. The caller
    // upholds the stack contract.
    unsafe {
        core::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "jmp {start}",
            "2:",
            start = sym ns_container_task_start,
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
    ret
}

// The first frame of every task: `entry(arg)` (in r12, r13), then exit_group with its result.
// Its return address is marked undefined, as glibc's clone does, so that unwinders and
// backtraces (a panic in a closure run by `clone`) stop here instead of walking off the top
// of the task's stack.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .text.ns_container_task_start,\"ax\",@progbits",
    ".globl ns_container_task_start",
    ".hidden ns_container_task_start",
    ".type ns_container_task_start,@function",
    "ns_container_task_start:",
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
    ".size ns_container_task_start, .-ns_container_task_start",
    ".popsection",
    exit_group = const libc::SYS_exit_group,
);

#[cfg(target_arch = "x86_64")]
extern "C" {
    /// Defined by the `global_asm!` above; never called from Rust.
    fn ns_container_task_start();
}

/// See the x86_64 version.
///
/// # Safety
/// As for the x86_64 version.
#[cfg(target_arch = "aarch64")]
pub(crate) unsafe fn clone3_on_stack(
    args: &mut clone_args,
    entry: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
) -> libc::c_long {
    let ret: libc::c_long;
    // SAFETY: as for x86_64: `svc #0` preserves every register but x0 in both tasks; the child
    // branches to `ns_container_task_start`, which calls `entry(arg)` and exits.
    unsafe {
        core::arch::asm!(
            "svc #0",
            "cbnz x0, 2f",
            "b {start}",
            "2:",
            start = sym ns_container_task_start,
            in("x8") libc::SYS_clone3,
            inlateout("x0") args as *mut clone_args as libc::c_long => ret,
            in("x1") std::mem::size_of::<clone_args>(),
            in("x9") entry,
            in("x10") arg,
            options(nostack),
        );
    }
    ret
}

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".pushsection .text.ns_container_task_start,\"ax\",@progbits",
    ".globl ns_container_task_start",
    ".hidden ns_container_task_start",
    ".type ns_container_task_start,@function",
    "ns_container_task_start:",
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
    ".size ns_container_task_start, .-ns_container_task_start",
    ".popsection",
    exit_group = const libc::SYS_exit_group,
);

#[cfg(target_arch = "aarch64")]
extern "C" {
    /// Defined by the `global_asm!` above; never called from Rust.
    fn ns_container_task_start();
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!(
    "ns-container starts tasks on their own stacks with clone3 and supports x86_64 and aarch64"
);

/// Memory for the stacks of the tasks of one spawn, each above a guard page.
pub(crate) struct Stacks {
    base: *mut c_void,
    len: usize,
    regions: Vec<(u64, u64)>,
}

impl Stacks {
    /// Maps one region per size in `sizes` (rounded up to pages), each with a guard page below
    /// it. The memory is reserved lazily (`MAP_NORESERVE`): untouched pages cost nothing.
    pub(crate) fn new(sizes: &[usize]) -> io::Result<Stacks> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let round = |n: usize| n.div_ceil(page) * page;
        let len: usize = sizes.iter().map(|s| page + round(*s)).sum();
        // SAFETY: an anonymous private mapping; nothing else is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut stacks = Stacks {
            base,
            len,
            regions: Vec::with_capacity(sizes.len()),
        };
        let mut offset = 0;
        for size in sizes {
            let guard = base as usize + offset;
            // SAFETY: the guard page lies inside the mapping made above.
            if unsafe { libc::mprotect(guard as *mut c_void, page, libc::PROT_NONE) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let size = round(*size);
            stacks.regions.push(((guard + page) as u64, size as u64));
            offset += page + size;
        }
        Ok(stacks)
    }

    /// `(lowest address, size)` of stack `i`, as `clone_args` wants them.
    pub(crate) fn region(&self, i: usize) -> (u64, u64) {
        self.regions.get(i).copied().unwrap_or((0, 0))
    }
}

impl Drop for Stacks {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`, which no task uses any more.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// A pipe whose ends are close-on-exec.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two new descriptors that nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Blocks every signal in the calling thread and restores the previous mask when dropped.
pub(crate) struct SignalsBlocked {
    pub(crate) old: libc::sigset_t,
}

impl SignalsBlocked {
    pub(crate) fn new() -> SignalsBlocked {
        // SAFETY: sigfillset and pthread_sigmask write only to the sets passed.
        unsafe {
            let mut all = std::mem::zeroed::<libc::sigset_t>();
            let mut old = std::mem::zeroed::<libc::sigset_t>();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            SignalsBlocked { old }
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restoring the mask saved in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// Waits for a child and returns its raw wait status, retrying on `EINTR`.
pub(crate) fn waitpid(pid: libc::pid_t) -> io::Result<c_int> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r == pid {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// The PID behind a pidfd, from `/proc/self/fdinfo`; -1 once reaped.
pub(crate) fn pidfd_pid(pidfd: RawFd) -> io::Result<libc::pid_t> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{pidfd}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))
}
