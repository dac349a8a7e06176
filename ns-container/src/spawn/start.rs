//! Starting the chain: the caller creates the intermediate (which creates the rest) and
//! learns each task's pidfd, also when a task was killed before it could report it.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use libc::{c_void, pid_t};

use super::arena::ReportPage;
use super::shape::Shape;
use super::spec::Spec;
use crate::child::{self, Plan};
use crate::error::{Error, Process, Result, Step};
use crate::sys::Stacks;

/// Creates the intermediate and waits (`CLONE_VFORK`) until it has exited; returns its pidfd.
pub(super) fn start_intermediate(
    spec: &Spec<'_>,
    shape: &Shape,
    plan: &Plan<'_>,
    report: &ReportPage,
    stacks: &Stacks,
    plan_ptr: *mut c_void,
) -> Result<Option<OwnedFd>> {
    let (stack, stack_size) = stacks.region(0);
    let mut flags =
        (libc::CLONE_VFORK | libc::CLONE_FILES | libc::CLONE_PIDFD | libc::CLONE_PARENT_SETTID)
            as u64;
    if !shape.intermediate_copies_memory {
        flags |= libc::CLONE_VM as u64;
    }
    let r = report.get();
    let mut args = ns_sys::clone_args {
        flags,
        pidfd: r.intermediate_pidfd.as_ptr() as u64,
        parent_tid: r.intermediate_pid.as_ptr() as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack,
        stack_size,
        ..Default::default()
    };
    // The intermediate runs `intermediate_main` on its own stack against the plan, both of
    // which outlive it (CLONE_VFORK: we wait here until it has exited).
    match child::clone_task(plan, &mut args, child::intermediate_main, plan_ptr) {
        // SAFETY: the clone succeeded, so the kernel installed this pidfd in our table for us.
        Ok(_) => Ok(Some(unsafe {
            OwnedFd::from_raw_fd(r.intermediate_pidfd.load(Ordering::Acquire))
        })),
        Err(errno) => Err(Error::Step {
            what: spec.what.clone(),
            process: Process::Caller,
            step: Step::CreateIntermediate,
            detail: 0,
            errno,
        }),
    }
}

/// Takes over the pidfd the kernel stored in the report page for a task of the spawn, only
/// with proof that the clone succeeded: the kernel writes the pidfd number early, before a
/// clone may still fail, and then the number is free for anyone else's next descriptor. The
/// proof is the PID the kernel stores on success (`CLONE_PARENT_SETTID`), or with the legacy
/// `clone`, which cannot do both, the PID the creator stored right after the call or the
/// task's own `CLONE_CHILD_SETTID` store (made when it first runs).
///
/// The legacy `clone` leaves one gap: a creator killed between the call's return and its
/// store, before the new task first ran (`creator_accounted` false: it neither finished nor
/// recorded a failure). The task then exists exactly if the stored number names a pidfd of a
/// child of this thread that is no task known already ([`recover_unproven`]); if that cannot
/// be told, `doubt` is set and the caller must not free memory such a task could run on.
pub(super) fn take_task(
    shape: &Shape,
    raw: RawFd,
    pid: pid_t,
    word: u32,
    creator_accounted: bool,
    known: &[pid_t],
    doubt: &mut bool,
) -> Option<OwnedFd> {
    if raw < 0 {
        return None;
    }
    let proven = pid > 0 || (!shape.clone3 && word != child::NOT_STARTED);
    if proven {
        // SAFETY: the kernel put this pidfd in our descriptor table for us; nobody else owns
        // it.
        return Some(unsafe { OwnedFd::from_raw_fd(raw) });
    }
    if shape.clone3 || creator_accounted {
        return None;
    }
    let found = recover_unproven(raw, known);
    *doubt |= found.is_none();
    found
}

/// See [`take_task`]: the kernel installs a successful clone's pidfd before the call returns,
/// and an unreaped child's PID cannot be reused, so a pidfd at `raw` whose process is a child
/// of this thread and not one of the `known` tasks is the new task's.
pub(super) fn recover_unproven(raw: RawFd, known: &[pid_t]) -> Option<OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor's flags; the number may name nothing.
    if unsafe { libc::fcntl(raw, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: only borrowed for the query; ownership is decided below.
    let pid = ns_core::pidfd_pid(unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) }).ok()?;
    let children = std::fs::read_to_string("/proc/thread-self/children").ok()?;
    let ours = children
        .split_whitespace()
        .filter_map(|p| p.parse::<pid_t>().ok())
        .any(|p| p == pid);
    if pid <= 0 || !ours || known.contains(&pid) {
        return None;
    }
    // SAFETY: as argued above, the kernel installed this pidfd for the new task.
    Some(unsafe { OwnedFd::from_raw_fd(raw) })
}

// Keep the atomics' layout promise visible: the kernel writes plain ints into these fields.
const _: () =
    assert!(std::mem::size_of::<AtomicI32>() == 4 && std::mem::size_of::<AtomicU32>() == 4);

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, AsRawFd, IntoRawFd};

    #[test]
    pub(super) fn an_unproven_pidfd_is_taken_only_for_a_new_child_of_this_thread() {
        // SAFETY: the child only _exits.
        let child = unsafe { libc::fork() };
        if child == 0 {
            // SAFETY: leaving the forked child.
            unsafe { libc::_exit(0) };
        }
        let pidfd = ns_sys::pidfd_open(child, 0).unwrap();
        let raw = pidfd.into_raw_fd();
        // A known task of the spawn is not taken for the unknown one.
        assert!(recover_unproven(raw, &[child]).is_none());
        // A pidfd of a child of this thread is.
        let taken = recover_unproven(raw, &[]).expect("a pidfd of our child");
        // Not a pidfd of a child: our own process, a plain file, a closed number.
        let me = ns_sys::pidfd_open(std::process::id() as pid_t, 0).unwrap();
        assert!(recover_unproven(me.as_raw_fd(), &[]).is_none());
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(recover_unproven(file.as_raw_fd(), &[]).is_none());
        let closed = file.as_raw_fd();
        drop(file);
        assert!(recover_unproven(closed, &[]).is_none());
        ns_sys::pidfd_wait(taken.as_fd(), libc::WEXITED).unwrap();
    }
}
