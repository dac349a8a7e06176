//! Stage 2, descriptors: every inherited descriptor from 3 up marked close-on-exec, the
//! given ones put at their numbers, the spawn's own closed before a closure runs.

use super::*;

/// Most descriptors the child can be given (stdio included).
pub(crate) const MAX_MOVES: usize = 64;

/// Closes this task's copies of the spawn's own descriptors (but the status pipe) before a
/// closure runs.
pub(super) fn close_internal_fds(plan: &Plan<'_>) {
    let report = report(plan);
    let kernel_made = [
        report.intermediate_pidfd.load(Ordering::Acquire),
        report.pid_stage_pidfd.load(Ordering::Acquire),
    ];
    for fd in plan.internal_fds.iter().chain(&kernel_made) {
        if *fd >= 0 {
            // SAFETY: closing this task's copies of the spawn's own descriptors.
            unsafe { libc::close(*fd) };
        }
    }
}

/// Marks every descriptor from 3 up close-on-exec: `close_range(CLOSE_RANGE_CLOEXEC)` (5.11),
/// else a walk of `/proc/self/fd`.
pub(super) fn cloexec_from_3(proc_fd: c_int) -> Result<(), c_int> {
    // SAFETY: with CLOSE_RANGE_CLOEXEC nothing is closed; the flags change only at exec.
    if unsafe { ns_sys::close_range(3, u32::MAX, ns_sys::fd::CLOSE_RANGE_CLOEXEC) }.is_ok() {
        return Ok(());
    }
    cloexec_by_listing(proc_fd)
}

/// The same for kernels before 5.11: list `/proc/self/fd` and mark each descriptor.
pub(super) fn cloexec_by_listing(proc_fd: c_int) -> Result<(), c_int> {
    // SAFETY: opening a directory through the prepared /proc descriptor.
    let dir = unsafe {
        libc::openat(
            proc_fd,
            c"self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return Err(errno());
    }
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `dir` stays open until it is closed below.
        let listed = ns_sys::fd::getdents64(unsafe { BorrowedFd::borrow_raw(dir) }, &mut buf);
        let n = match listed {
            Ok(n) if n > 0 => n,
            done => {
                // SAFETY: closing the directory opened above.
                unsafe { libc::close(dir) };
                return done
                    .map(drop)
                    .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
            }
        };
        let mut records = buf.get(..n).unwrap_or(&[]);
        // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name...
        while let Some(&[lo, hi]) = records.get(16..18) {
            let reclen = usize::from(u16::from_ne_bytes([lo, hi]));
            let Some(record) = records.get(..reclen).filter(|_| reclen > 19) else {
                break;
            };
            if let Some(fd) = parse_fd(record.get(19..).unwrap_or(&[])) {
                if fd >= 3 && fd != dir {
                    // SAFETY: setting a descriptor flag; a stale number only fails with EBADF.
                    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
                }
            }
            records = records.get(reclen..).unwrap_or(&[]);
        }
    }
}

/// The descriptor number a `/proc/self/fd` entry names (`"."` and `".."` name none).
pub(super) fn parse_fd(name: &[u8]) -> Option<c_int> {
    let mut fd: c_int = 0;
    let mut digits = false;
    for b in name {
        match *b {
            b'0'..=b'9' => {
                digits = true;
                fd = fd
                    .checked_mul(10)?
                    .checked_add(c_int::from(b.saturating_sub(b'0')))?;
            }
            _ => break,
        }
    }
    digits.then_some(fd)
}

/// Puts each given descriptor at its number in the child, clearing close-on-exec there. All
/// sources are first copied above every target (`move_floor`), so moves cannot overwrite
/// each other or the spawn's own descriptors, which the caller placed above it too.
pub(super) fn move_fds(plan: &Plan<'_>) -> Result<(), (i32, c_int)> {
    if plan.moves.is_null() || plan.moves_len == 0 {
        return Ok(());
    }
    // SAFETY: the caller prepared `moves_len` pairs at `moves`.
    let moves = unsafe { std::slice::from_raw_parts(plan.moves, plan.moves_len) };
    let mut tmp = [-1 as c_int; MAX_MOVES];
    for ((src, dst), slot) in moves.iter().zip(tmp.iter_mut()) {
        // SAFETY: duplicating a descriptor the caller prepared.
        let t = unsafe { libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, plan.move_floor) };
        if t < 0 {
            return Err((*dst, errno()));
        }
        *slot = t;
    }
    for ((_, dst), t) in moves.iter().zip(tmp.iter()) {
        // SAFETY: dup2 onto the wanted number; this clears close-on-exec there.
        if unsafe { libc::dup2(*t, *dst) } < 0 {
            return Err((*dst, errno()));
        }
    }
    Ok(())
}
