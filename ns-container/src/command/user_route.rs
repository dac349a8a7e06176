//! Which route a spawn's entry into the target's user namespace takes: through the
//! trampoline (the child keeps the caller's credentials and memory until it executes the
//! trampoline) or by the intermediate in its own copy of the caller's memory.

use ns_core::caps::{CapSet, Capability};
use ns_core::{EntryPlan, EntryStrategy, Namespace, NsType, Target, UserOrder};

use super::namespaces::entry_plan;
use super::settings::NsCommand;
use crate::error::{Error, Result};
use crate::spawn::{self, Spawned, Spec};

/// Whether `CAP_SYS_ADMIN`, effective in the calling thread, is still effective after it
/// executes a file without capabilities (the trampoline), which needs it to enter the user
/// namespace: as an ambient capability, or by root's rule (effective uid 0 in its user
/// namespace, no `SECBIT_NOROOT`, and in the bounding or inheritable set).
pub(super) fn sys_admin_survives_exec() -> bool {
    let has = |set| ns_core::caps::has_cap(None, set, Capability::CAP_SYS_ADMIN).unwrap_or(false);
    if has(CapSet::Ambient) {
        return true;
    }
    // SAFETY: geteuid and a prctl query have no preconditions.
    let (euid, securebits) = unsafe {
        (
            libc::geteuid(),
            libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0),
        )
    };
    const SECBIT_NOROOT: libc::c_int = 1;
    euid == 0
        && securebits >= 0
        && securebits & SECBIT_NOROOT == 0
        && (has(CapSet::Bounding) || has(CapSet::Inheritable))
}

/// Whether a spawn failed in the trampoline's own part, before the program was tried:
/// creating or executing the trampoline, or its entry into the user namespace.
pub(super) fn trampoline_failed(e: &Error) -> bool {
    matches!(
        e,
        Error::Step {
            step: crate::error::Step::Exec,
            detail: crate::child::EXEC_TRAMPOLINE,
            ..
        } | Error::Enter {
            process: crate::error::Process::Child,
            ..
        }
    )
}

/// The entry plan without the namespaces of `left_out` (entered elsewhere: the user
/// namespace by the trampoline, the pid namespace by the child for its children).
pub(super) fn entry_plan_without<'a>(
    target: Option<&'a (Target, NsType)>,
    namespaces: &'a [Namespace],
    strategy: EntryStrategy,
    left_out: NsType,
) -> Result<Option<EntryPlan<'a>>> {
    let mut handles: Vec<&Namespace> = namespaces
        .iter()
        .filter(|n| !left_out.contains(n.ns_type()))
        .collect();
    if handles.is_empty() {
        return match target {
            Some((target, types)) if !(*types - left_out).is_empty() => {
                Ok(Some(target.plan(*types - left_out, strategy)?))
            }
            _ => Ok(None),
        };
    }
    if let Some((target, types)) = target {
        for t in (*types - left_out).iter() {
            if let Some(ns) = target.namespace(t) {
                handles.push(ns);
            }
        }
    }
    Ok(Some(EntryPlan::from_namespaces(&handles)?))
}

impl NsCommand {
    /// Leaves the target's user namespace to the trampoline where it can take it (see
    /// `user_at_exec_possible`); refuses a spawn that a test hook requires to take it and
    /// would not.
    pub(super) fn choose_user_route<'a>(
        &'a self,
        spec: &mut Spec<'a>,
        invalid: &impl Fn(&str) -> Error,
    ) -> Result<()> {
        let enters_user = spec
            .entry
            .as_ref()
            .is_some_and(|p| p.types().contains(NsType::USER));
        if enters_user && self.user_at_exec_possible(spec.action_is_exec()) {
            match UserOrder::for_caller() {
                // The caller enters the rest with its own privilege first; the trampoline
                // then enters the user namespace alone.
                UserOrder::Last => {
                    if let Some(user) = self.entered_user_ns() {
                        spec.entry = entry_plan_without(
                            self.target.as_ref(),
                            &self.namespaces,
                            self.strategy,
                            NsType::USER,
                        )?;
                        spec.image_entry = Some(EntryPlan::from_namespaces(&[user])?);
                    }
                }
                // Without privilege the user namespace grants it: the trampoline makes the
                // whole entry, user namespace first.
                UserOrder::First => spec.image_entry = spec.entry.take(),
            }
        }
        if self.user_route == Some(true) && spec.image_entry.is_none() {
            return Err(invalid(
                "the user-namespace trampoline was required (a test hook) but this spawn \
                 would not use it",
            ));
        }
        Ok(())
    }

    /// Leaves the target's pid namespace to the child and the program's process to the
    /// trampoline where it can (see `pid_at_fork_possible`).
    pub(super) fn choose_pid_route<'a>(&'a self, spec: &mut Spec<'a>) -> Result<()> {
        let entered = |spec: &Spec<'_>| {
            spec.entry
                .as_ref()
                .map(EntryPlan::types)
                .unwrap_or(NsType::empty())
        };
        // The child enters the pid namespace after the intermediate's entry: with the user
        // namespace entered last there, the child would hold the container's credentials and
        // lack the privilege over a pid namespace owned outside it.
        let user_last_before =
            entered(spec).contains(NsType::USER) && UserOrder::for_caller() == UserOrder::Last;
        if entered(spec).contains(NsType::PID)
            && !user_last_before
            && self.pid_at_fork_possible(spec)
        {
            let mut left_out = NsType::PID;
            if spec.image_entry.is_some() {
                left_out |= NsType::USER;
            }
            spec.entry = entry_plan_without(
                self.target.as_ref(),
                &self.namespaces,
                self.strategy,
                left_out,
            )?;
            spec.pid_at_fork = entry_plan_without(
                self.target.as_ref(),
                &self.namespaces,
                self.strategy,
                NsType::all() - NsType::PID,
            )?;
        }
        Ok(())
    }

    /// Whether the child can enter the target's pid namespace for its children and leave the
    /// program's process to the trampoline: a program (not a closure) without `pre_exec`
    /// hooks (they run where the program would), no new pid namespace inside the target's,
    /// and the trampoline runs here.
    fn pid_at_fork_possible(&self, spec: &Spec<'_>) -> bool {
        spec.action_is_exec()
            && self.pre_exec.0.is_empty()
            && !self.unshare.contains(NsType::PID)
            && !self.relay_off
            && !self.pid_route_off
            // A held program outlives the spawn in a child with memory of its own.
            && self.hold.is_none()
            && crate::trampoline::usable()
    }

    /// Whether the program is executed through the trampoline as an exec relay: it comes
    /// from a filesystem the caller does not trust (a new root, or an entered mount
    /// namespace), where `#!/proc/self/exe` (or an ELF interpreter of that name) would
    /// otherwise run, and hold, the caller's own binary. Where the trampoline does not run
    /// (not x86_64, a policy against executing memfds) the program is executed directly.
    pub(super) fn relay_needed(&self, spec: &Spec<'_>) -> bool {
        let entered_mnt = spec
            .entry
            .as_ref()
            .is_some_and(|p| p.types().contains(NsType::MNT));
        spec.action_is_exec()
            && !self.relay_off
            && (self.root.is_some() || entered_mnt)
            && crate::trampoline::usable()
    }

    /// Spawns; when the trampoline's own part failed, once more on the copy path.
    pub(super) fn spawn_with_fallback<'a>(
        &'a self,
        spec: &mut Spec<'a>,
        doubt: &mut bool,
    ) -> Result<Spawned> {
        let spawned = spawn::spawn(spec, doubt);
        let through_image = spec.image_entry.is_some() || spec.pid_at_fork.is_some();
        if !through_image || *doubt || self.user_route.is_some() {
            return spawned;
        }
        let failed = match &spawned {
            Err(e) if spec.image_entry.is_some() => trampoline_failed(e),
            Err(Error::Step {
                step: crate::error::Step::Exec,
                detail: crate::child::EXEC_TRAMPOLINE,
                ..
            }) => true,
            _ => false,
        };
        match &spawned {
            Err(e) if failed => {
                if let Error::Step {
                    errno: libc::EACCES | libc::EPERM | libc::ENOSYS,
                    detail: crate::child::EXEC_TRAMPOLINE,
                    ..
                } = e
                {
                    // A policy refuses to execute it now: later spawns go straight to the
                    // copy path.
                    crate::trampoline::refused();
                }
                // Nothing of the spawn ran or remains (the child ended before executing
                // anything of the caller's): the copy path may work where the trampoline did
                // not (a policy against executing memfds since the probe, arguments that fit
                // once but not with the trampoline's added).
                spec.image_entry = None;
                spec.pid_at_fork = None;
                spec.entry = entry_plan(self.target.as_ref(), &self.namespaces, self.strategy)?;
                spawn::spawn(spec, doubt)
            }
            _ => spawned,
        }
    }

    /// Whether the target's user namespace can be left to the trampoline
    /// (`crate::trampoline`), so that no process of the spawn copies the caller's memory:
    /// a program (not a closure) is run, without `pre_exec` hooks or securebits; either the
    /// caller may enter every other namespace itself (it has `CAP_SYS_ADMIN`, so the user
    /// namespace goes last, `UserOrder::Last`), keeps that capability across `execve`, and
    /// enters no time namespace, or it lacks the privilege and the trampoline makes the whole
    /// entry (`UserOrder::First`); no new namespaces, maps, mounts, root, hostname or cgroup
    /// are asked for; at most `trampoline::MAX_GROUPS` groups; and the trampoline runs here.
    /// The trampoline then sets, after the user namespace, what the child would set with the
    /// container's credentials: groups, gid, uid, the capability sets, the working directory,
    /// the parent-death signal and the seccomp filter; the child sets the rest (limits, OOM
    /// score, session, `no_new_privs`, umask) before executing it.
    pub(super) fn user_at_exec_possible(&self, exec: bool) -> bool {
        // The trampoline sets the capability sets; securebits are the child's alone.
        let plain_privileges = self.privileges.securebits.is_none();
        let entered_time = self
            .target
            .as_ref()
            .is_some_and(|(_, types)| types.contains(NsType::TIME))
            || self.namespaces.iter().any(|n| n.ns_type() == NsType::TIME);
        exec && self.user_route != Some(false)
            && plain_privileges
            && self.pre_exec.0.is_empty()
            && self
                .groups
                .as_ref()
                .is_none_or(|g| g.len() <= crate::trampoline::MAX_GROUPS)
            && self.unshare.is_empty()
            && self.uid_map.is_empty()
            && self.gid_map.is_empty()
            && !self.setgroups_deny
            && self.time_offsets.is_empty()
            && self.hostname.is_none()
            && self.mounts.is_empty()
            && self.propagation.is_none()
            && self.root.is_none()
            && self.cgroup.is_none()
            && self.cgroups_v1.is_empty()
            && match UserOrder::for_caller() {
                // The intermediate enters the rest, a time namespace only in memory of its
                // own; the trampoline needs CAP_SYS_ADMIN for the user namespace.
                UserOrder::Last => !entered_time && sys_admin_survives_exec(),
                // The trampoline enters everything, in memory of its own.
                UserOrder::First => true,
            }
            && crate::trampoline::usable()
    }

    /// The user namespace the spawn enters: a handle given with `enter_ns`, else the
    /// target's.
    pub(super) fn entered_user_ns(&self) -> Option<&Namespace> {
        self.namespaces
            .iter()
            .find(|n| n.ns_type() == NsType::USER)
            .or_else(|| match &self.target {
                Some((target, types)) if types.contains(NsType::USER) => {
                    target.namespace(NsType::USER)
                }
                _ => None,
            })
    }
}
