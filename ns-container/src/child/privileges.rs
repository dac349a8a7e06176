//! Stage 4, privileges and confinement: the process's session, resource limits and OOM
//! score (while still privileged), the bounding set, securebits, keeping capabilities
//! across the uid change, then the capability sets, ambient capabilities, `no_new_privs` and
//! umask. All with raw system calls on prepared values.

use super::*;

/// What the child's privileges become; every field prepared by the caller. A set given as
/// `None` is left as the kernel leaves it.
#[derive(Clone, Copy)]
pub(crate) struct Privileges {
    /// `setsid()`.
    pub setsid: bool,
    /// A descriptor number in the child to make the controlling terminal (`TIOCSCTTY`), or -1.
    pub ctty: c_int,
    /// `(resource, soft, hard)` for `prlimit`.
    pub rlimits: *const (c_int, u64, u64),
    pub rlimits_len: usize,
    /// The text for `/proc/self/oom_score_adj`.
    pub oom_score_adj: Buf,
    pub bounding: Option<u64>,
    pub effective: Option<u64>,
    pub permitted: Option<u64>,
    pub inheritable: Option<u64>,
    pub ambient: Option<u64>,
    /// The highest capability number the kernel knows.
    pub cap_last: u32,
    pub securebits: Option<c_int>,
    pub no_new_privs: bool,
    pub umask: Option<libc::mode_t>,
}

impl Privileges {
    fn sets_caps(&self) -> bool {
        self.effective.is_some() || self.permitted.is_some() || self.inheritable.is_some()
    }
}

/// The OOM score, written through the spawn's `/proc` descriptor (closed right after, before
/// the container's paths are touched).
pub(super) fn oom_score_adj(plan: &Plan<'_>) -> Result<(), Failure> {
    let p = &plan.privileges;
    if p.oom_score_adj.is_some() {
        write_proc_self(plan.proc_fd, c"self/oom_score_adj", p.oom_score_adj)
            .map_err(|e| (Step::OomScoreAdj, 0, e))?;
    }
    Ok(())
}

/// Before the credentials change: session and terminal, limits, OOM score, bounding set,
/// securebits, and keeping the permitted capabilities across the uid change when sets are
/// asked for.
pub(super) fn before_credentials(plan: &Plan<'_>) -> Result<(), Failure> {
    let p = &plan.privileges;
    // SAFETY: setsid, ioctl and prlimit with prepared integer arguments and live buffers.
    // (Or the program's process does, created by the trampoline.)
    unsafe {
        if p.setsid && !plan.trampoline.session && libc::setsid() < 0 {
            return Err((Step::Session, 0, errno()));
        }
        if p.ctty >= 0 && !plan.trampoline.session && libc::ioctl(p.ctty, libc::TIOCSCTTY, 0) != 0 {
            return Err((Step::Session, p.ctty, errno()));
        }
    }
    if !p.rlimits.is_null() {
        // SAFETY: the caller prepared `rlimits_len` entries at `rlimits`.
        let limits = unsafe { std::slice::from_raw_parts(p.rlimits, p.rlimits_len) };
        for (resource, soft, hard) in limits {
            ns_sys::task::set_rlimit(*resource, *soft, *hard)
                .map_err(|e| (Step::Rlimit, *resource, os_errno(&e)))?;
        }
    }
    if plan.trampoline.caps {
        // The trampoline sets them after entering the user namespace.
        return Ok(());
    }
    if let Some(bounding) = p.bounding {
        for cap in 0..=p.cap_last {
            if bounding.checked_shr(cap).unwrap_or(0) & 1 == 0 {
                // SAFETY: prctl with integer arguments.
                let r = unsafe {
                    libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0)
                };
                if r != 0 {
                    return Err((Step::Capabilities, cap as i32, errno()));
                }
            }
        }
    }
    // Securebits need CAP_SETPCAP, which a uid change takes away, and some of them
    // (SECBIT_NO_SETUID_FIXUP, SECBIT_KEEP_CAPS) are about that change: set them first.
    // Keeping capabilities across the change is SECBIT_KEEP_CAPS itself, which the kernel
    // clears at execve.
    let keep_caps = p.sets_caps() && (plan.uid.is_some() || plan.gid.is_some());
    if let Some(asked) = p.securebits {
        let bits = first_securebits(asked, keep_caps);
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong, 0, 0, 0) } != 0 {
            return Err((Step::Securebits, asked, errno()));
        }
    } else if keep_caps {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
            return Err((Step::Capabilities, 0, errno()));
        }
    }
    Ok(())
}

/// `SECBIT_KEEP_CAPS` (`linux/securebits.h`): the same bit `PR_SET_KEEPCAPS` sets.
const SECBIT_KEEP_CAPS: c_int = 1 << 4;
/// `SECBIT_KEEP_CAPS_LOCKED`.
const SECBIT_KEEP_CAPS_LOCKED: c_int = 1 << 5;
/// `SECBIT_NO_CAP_AMBIENT_RAISE` and its lock: they would stop the ambient step, so they
/// are set after it.
const SECBIT_AMBIENT_BITS: c_int = (1 << 6) | (1 << 7);

/// The securebits set before the credentials change: those asked, but not the ones that
/// would stop the ambient step (set afterwards), and with `SECBIT_KEEP_CAPS` when
/// capabilities must survive the change (unless the caller locked it as asked).
fn first_securebits(asked: c_int, keep_caps: bool) -> c_int {
    let mut bits = asked & !SECBIT_AMBIENT_BITS;
    if keep_caps && asked & SECBIT_KEEP_CAPS_LOCKED == 0 {
        bits |= SECBIT_KEEP_CAPS;
    }
    bits
}

/// After the ambient step: the securebits that would have stopped it (set as asked, which
/// needs `CAP_SETPCAP` in the effective set), and `SECBIT_KEEP_CAPS`, if it was added for
/// the credentials change, cleared again (`PR_SET_KEEPCAPS`, no privilege needed; a closure
/// does not `execve`, which would clear it).
fn final_securebits(plan: &Plan<'_>) -> Result<(), Failure> {
    let p = &plan.privileges;
    let keep_caps = p.sets_caps() && (plan.uid.is_some() || plan.gid.is_some());
    let asked = p.securebits.unwrap_or(0);
    let added_keep_caps = keep_caps && asked & SECBIT_KEEP_CAPS == 0;
    if added_keep_caps && asked & SECBIT_KEEP_CAPS_LOCKED == 0 {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) } != 0 {
            return Err((Step::Capabilities, 0, errno()));
        }
    }
    if asked & SECBIT_AMBIENT_BITS != 0 {
        // SAFETY: prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_SET_SECUREBITS, asked as libc::c_ulong, 0, 0, 0) };
        if r != 0 {
            return Err((Step::Securebits, asked, errno()));
        }
    }
    Ok(())
}

/// After the credentials change: the capability sets, ambient capabilities, the securebits
/// that had to wait for them, `no_new_privs` and umask.
pub(super) fn after_credentials(plan: &Plan<'_>) -> Result<(), Failure> {
    let p = &plan.privileges;
    if p.sets_caps() && !plan.trampoline.caps {
        set_caps(p).map_err(|e| (Step::Capabilities, 0, e))?;
    }
    if let (Some(ambient), false) = (p.ambient, plan.trampoline.caps) {
        // SAFETY: prctl with integer arguments.
        let cleared = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        if cleared != 0 {
            return Err((Step::Capabilities, 0, errno()));
        }
        for cap in 0..=p.cap_last {
            if ambient.checked_shr(cap).unwrap_or(0) & 1 == 1 {
                // SAFETY: prctl with integer arguments.
                let r = unsafe {
                    libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                        libc::c_ulong::from(cap),
                        0,
                        0,
                    )
                };
                if r != 0 {
                    return Err((Step::Capabilities, cap as i32, errno()));
                }
            }
        }
    }
    if !plan.trampoline.caps {
        final_securebits(plan)?;
    }
    // SAFETY: prctl and umask with integer arguments.
    unsafe {
        if p.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err((Step::NoNewPrivs, 0, errno()));
        }
        if let Some(mask) = p.umask {
            libc::umask(mask);
        }
    }
    Ok(())
}

/// `capset` with the effective, permitted and inheritable sets asked for. A set not asked
/// for keeps its current value (read with `capget` first), except that an effective set not
/// asked for loses what the new permitted set drops (the kernel refuses an effective
/// capability that is not permitted).
fn set_caps(p: &Privileges) -> Result<(), c_int> {
    let data = ns_sys::cred::capget().map_err(|e| os_errno(&e))?;
    let [e0, p0, i0, e1, p1, i1] = data;
    let join = |lo: u32, hi: u32| u64::from(lo) | u64::from(hi).checked_shl(32).unwrap_or(0);
    let perm = p.permitted.unwrap_or(join(p0, p1));
    let eff = p.effective.unwrap_or(join(e0, e1) & perm);
    let inh = p.inheritable.unwrap_or(join(i0, i1));
    let low = |v: u64| (v & 0xffff_ffff) as u32;
    let high = |v: u64| v.checked_shr(32).unwrap_or(0) as u32;
    let data = [
        low(eff),
        low(perm),
        low(inh),
        high(eff),
        high(perm),
        high(inh),
    ];
    ns_sys::cred::capset(&data).map_err(|e| os_errno(&e))
}

/// Writes prepared text to a file under the caller's `/proc` (`self/...`).
fn write_proc_self(proc_fd: c_int, path: &std::ffi::CStr, value: Buf) -> Result<(), c_int> {
    // SAFETY: a NUL-terminated path under the prepared /proc descriptor.
    let fd = unsafe { libc::openat(proc_fd, path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    let r = write_all(fd, value.bytes());
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    r
}
