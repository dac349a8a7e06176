//! The x86_64 machine code of this module: [`clone3_on_stack`], the legacy `clone(2)` on a
//! new stack, and the task entry (`<anchor>_start`) every such task starts in.
//!
//! Only the register-level calls; what the arguments mean and how they are checked is in
//! `mod.rs`. The aarch64 twin is `aarch64.rs`.

use std::io;

use libc::{c_int, c_void, pid_t};

use super::anchor::task_start_anchor;
use super::args::clone_args;

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

#[inline(never)]
pub(super) unsafe fn legacy_clone(
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
