//! The aarch64 machine code of this module: [`clone3_on_stack`], the legacy `clone(2)` on a
//! new stack, and the task entry (`<anchor>_start`) every such task starts in.
//!
//! Only the register-level calls; what the arguments mean and how they are checked is in
//! `mod.rs`. The x86_64 twin is `x86_64.rs`.

use std::io;

use libc::{c_int, c_void, pid_t};

use super::anchor::task_start_anchor;
use super::args::clone_args;

/// Calls `clone3(2)` so that the new task starts on its own stack by calling `entry(arg)`;
/// see the x86_64 version.
///
/// # Safety
/// As for the x86_64 version.
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
