//! Stage 3, credentials: supplementary groups, gid, uid, and the parent-death signal, with
//! raw system calls for the calling task only.

use super::*;

/// Groups, gid, uid, with raw system calls: glibc's wrappers would signal "threads" this
/// task does not have, under a lock another thread of the caller may hold (see
/// `ns_sys::cred`).
pub(super) fn credentials(plan: &Plan<'_>) -> Result<(), Failure> {
    if plan.set_groups {
        // SAFETY: the caller prepared `groups_len` ids at `groups`.
        let groups = unsafe { std::slice::from_raw_parts(plan.groups, plan.groups_len) };
        ns_sys::cred::setgroups(groups).map_err(|e| (Step::Groups, 0, os_errno(&e)))?;
    }
    if let Some(gid) = plan.gid {
        ns_sys::cred::setgid(gid).map_err(|e| (Step::Gid, gid as i32, os_errno(&e)))?;
    }
    if let Some(uid) = plan.uid {
        // As std does: root dropping to another user also drops supplementary groups
        // (decided by the caller: in an entered user namespace root's uid may be unmapped).
        if plan.drop_groups {
            let _ = ns_sys::cred::setgroups(&[]);
        }
        ns_sys::cred::setuid(uid).map_err(|e| (Step::Uid, uid as i32, os_errno(&e)))?;
    }
    Ok(())
}

/// Sets the parent-death signal (after setuid, which would clear it), then makes sure the
/// parent did not die before that: if the calling process is already gone, the signal would
/// never come, so the child gives up instead (`ESRCH`).
pub(super) fn parent_death_signal(plan: &Plan<'_>) -> Result<(), c_int> {
    // SAFETY: prctl with a plain integer argument.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, plan.pdeathsig as libc::c_ulong) } != 0 {
        return Err(errno());
    }
    if caller_gone(plan, 0) {
        return Err(libc::ESRCH);
    }
    Ok(())
}
