//! Stage 2, descriptors: the given ones put at their numbers, then every other inherited
//! descriptor from 3 up closed (a program's child keeps only what later stages use), the
//! spawn's own closed before a closure runs.

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

/// Descriptors the child keeps after [`close_inherited`] (stdio aside): the given ones at
/// their numbers and the spawn's own that later stages use.
const MAX_KEPT: usize = MAX_MOVES + 8;

/// Closes every descriptor from 3 up but the given ones (already at their numbers) and the
/// spawn's own that later stages need, before the child touches any path of the container:
/// an inherited directory (the caller's, the spawn's `/proc` or cgroup) would otherwise be
/// reachable as `/proc/self/fd/N` from the container's side, and through it the host. With
/// `close_range` (5.9) over the gaps between kept numbers, else a walk of `/proc/self/fd`.
pub(super) fn close_inherited(plan: &Plan<'_>) -> Result<(), c_int> {
    let mut kept = [c_int::MAX; MAX_KEPT];
    let mut n: usize = 0;
    let mut keep = |fd: c_int| {
        if fd >= 3 {
            if let Some(slot) = kept.get_mut(n) {
                *slot = fd;
                n = n.saturating_add(1);
            }
        }
    };
    if !plan.moves.is_null() {
        // SAFETY: the caller prepared `moves_len` pairs at `moves`.
        let moves = unsafe { std::slice::from_raw_parts(plan.moves, plan.moves_len) };
        for (_, dst) in moves {
            keep(*dst);
        }
    }
    for fd in [
        plan.hold_fd,
        plan.console_fd,
        plan.status_w,
        plan.caller_pidfd,
        plan.proc_fd,
        plan.trampoline.image,
        plan.trampoline.fork_page,
    ] {
        keep(fd);
    }
    for (fd, _) in plan.trampoline.namespaces {
        keep(fd);
    }
    let kept = kept.get_mut(..n).unwrap_or(&mut []);
    kept.sort_unstable();
    let mut from: c_int = 3;
    for fd in kept.iter().copied().chain(std::iter::once(c_int::MAX)) {
        if fd > from {
            let last = if fd == c_int::MAX {
                u32::MAX
            } else {
                fd.saturating_sub(1) as u32
            };
            // SAFETY: closing this task's descriptors in [from, last]; none is in use.
            if let Err(e) = unsafe { ns_sys::close_range(from as u32, last, 0) } {
                let err = e.raw_os_error().unwrap_or(libc::EIO);
                if err == libc::ENOSYS || err == libc::EINVAL || err == libc::EPERM {
                    return by_listing(plan.proc_fd, kept, Listed::Close);
                }
                return Err(err);
            }
        }
        from = fd.saturating_add(1);
    }
    Ok(())
}

/// Marks every descriptor from 3 up close-on-exec instead (for a child with `pre_exec`
/// hooks, which may use the caller's descriptors, as std's): `close_range(CLOSE_RANGE_CLOEXEC)`
/// (5.11), else a walk of `/proc/self/fd`.
pub(super) fn cloexec_from_3(proc_fd: c_int) -> Result<(), c_int> {
    // SAFETY: with CLOSE_RANGE_CLOEXEC nothing is closed; the flags change only at exec.
    if unsafe { ns_sys::close_range(3, u32::MAX, ns_sys::fd::CLOSE_RANGE_CLOEXEC) }.is_ok() {
        return Ok(());
    }
    by_listing(proc_fd, &[], Listed::MarkCloexec)
}

/// What [`by_listing`] does to each descriptor it lists.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Listed {
    Close,
    MarkCloexec,
}

/// For kernels before 5.9 (or a seccomp filter that refuses `close_range`): list
/// `/proc/self/fd` and close (or mark close-on-exec) each descriptor from 3 up that `kept`
/// does not name.
pub(super) fn by_listing(proc_fd: c_int, kept: &[c_int], what: Listed) -> Result<(), c_int> {
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
                if fd >= 3 && fd != dir && !kept.contains(&fd) {
                    // SAFETY: closing an inherited descriptor nothing of the spawn uses, or
                    // setting its flag; a stale number only fails with EBADF.
                    unsafe {
                        match what {
                            Listed::Close => libc::close(fd),
                            Listed::MarkCloexec => libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC),
                        }
                    };
                }
            }
            records = records.get(reclen..).unwrap_or(&[]);
        }
    }
}

/// Closes the spawn's `/proc` descriptor once the last stage that writes through it is done,
/// before any path of the container is touched.
pub(super) fn close_proc(plan: &Plan<'_>) {
    if plan.proc_fd >= 0 {
        // SAFETY: closing this task's copy of the spawn's /proc descriptor.
        unsafe { libc::close(plan.proc_fd) };
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
