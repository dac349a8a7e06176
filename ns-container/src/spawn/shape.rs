//! The shape of a spawn: which processes it needs and which of them get their own memory,
//! decided from the spec and the kernel's probed features. Plain decisions: no system call.

use ns_core::{EntryPlan, NsType};

use super::spec::{Spec, SpecAction};
use crate::probes::{clone3_usable, time_switch_at_exec};

/// How each process of a spawn is created; decided from the spec and the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// An intermediate exists (there is something to enter, or a handshake to do).
    pub intermediate: bool,
    /// The intermediate has its own copy of memory (and makes it non-dumpable first); see
    /// [`Shape::of`] for when and why.
    pub intermediate_copies_memory: bool,
    /// A pid stage exists.
    pub pid_stage: bool,
    /// The child has its own copy of memory: it runs a closure, it must move itself into a
    /// new time namespace (kernels before 6.0 do not move it at `execve`), or, without an
    /// intermediate, it changes ids, runs hooks or sets an OOM score (see [`Shape::of`]).
    pub child_copies_memory: bool,
    /// The creator waits, suspended, until the child has exec'd or failed (`CLONE_VFORK`).
    pub child_vfork: bool,
    /// The child waits for its creator to write id maps or its cgroup.
    pub handshake: bool,
    /// The creator waits on the child's `CLONE_CHILD_CLEARTID` word after the handshake.
    pub await_child: bool,
    /// The child reports on a status pipe (it has its own memory and is not vfork'd, or it
    /// executes the trampoline: then the status pipe is a socket pair over which the child
    /// hands the pipe it makes itself).
    pub status_pipe: bool,
    /// A task sharing the caller's memory lives in a target's pid namespace (the child, or
    /// the pid stage) during the spawn: the caller's memory is made non-dumpable meanwhile
    /// (see `hide.rs`).
    pub hide_memory: bool,
    /// Every task is created with `clone3` (else the legacy `clone`).
    pub clone3: bool,
    /// The child executes the user-namespace trampoline, which enters the target's user
    /// namespace in memory of its own and reports on the status pipe.
    pub trampoline: bool,
    /// The trampoline creates the program's process in the target's pid namespace, which the
    /// child entered for its children (`Spec::pid_at_fork`); the spawn's `Child` is that
    /// process, and the child (the trampoline) is reaped like a helper.
    pub image_forks: bool,
    /// The child makes the entry itself (no intermediate): it stays in the caller's pid
    /// namespace anyway (`image_forks`), creates no namespace, waits for no handshake.
    pub child_enters: bool,
    /// The child waits before `execve` for a later process (`Spec::hold`): it has memory of
    /// its own and says on the status channel when it waits.
    pub hold: bool,
}

impl Shape {
    /// The processes of a spawn share the caller's memory wherever that is safe, and get
    /// their own copy where it is not:
    /// - entering a time namespace: the kernel refuses it to a process that shares its
    ///   memory (`EUSERS`);
    /// - entering a target's user namespace: the kernel would allow it, but the task then
    ///   holds the container's credentials, and the container's root (who has
    ///   `CAP_SYS_PTRACE` over them and can see the child in the container's pid namespace)
    ///   could open `/proc/PID/mem` of a task sharing the caller's memory and write into the
    ///   caller, keeping that access past `execve`; and committing credentials of a user
    ///   namespace owned by another uid marks the shared memory non-dumpable for good;
    /// - changing uid or gid in the child: the kernel marks the memory of a task whose
    ///   effective ids change non-dumpable, which would be the caller's;
    /// - setting `oom_score_adj` in a child that is not a vfork child: the kernel gives the
    ///   new score to every process sharing the child's memory.
    ///
    /// A user namespace left to the trampoline (`Spec::image_entry`) is not entered here:
    /// the trampoline enters it after `execve`, in memory of its own (with every other
    /// namespace, for a caller without privilege). A target's pid namespace left to the
    /// child (`Spec::pid_at_fork`) or to the trampoline puts no task on the caller's memory
    /// there: the trampoline creates the program's process in it, from memory of its own,
    /// and the caller's memory needs no hiding.
    ///
    /// With an intermediate, the intermediate takes the copy (made non-dumpable before it
    /// enters anything, so that the container cannot read it either) and the child shares
    /// it; without one, the child takes it.
    pub(crate) fn of(spec: &Spec<'_>) -> Shape {
        let entered = spec
            .entry
            .as_ref()
            .map(EntryPlan::types)
            .unwrap_or(NsType::empty());
        let hold = spec.hold.is_some() && matches!(spec.action, SpecAction::Exec { .. });
        // A held child outlives the spawn like a closure child: memory of its own.
        let call = matches!(spec.action, SpecAction::Call { .. }) || hold;
        let closure = matches!(spec.action, SpecAction::Call { .. });
        let image_forks = (spec.pid_at_fork.is_some()
            || spec
                .image_entry
                .as_ref()
                .is_some_and(|p| p.types().contains(NsType::PID)))
            && !call;
        let trampoline = (spec.image_entry.is_some() || spec.relay || image_forks) && !closure;
        let clone3 = clone3_usable();
        let handshake = spec.uid_map.is_some()
            || spec.gid_map.is_some()
            || spec.setgroups_deny
            || spec.cgroup_via_procs(clone3);
        // With the pid namespace left to the child and the trampoline, a child that creates
        // nothing and waits for nothing can enter the rest itself: one task fewer.
        let child_enters = image_forks
            && !entered.is_empty()
            && !entered.contains(NsType::TIME)
            && spec.unshare.is_empty()
            && !handshake
            && spec.pause.is_none();
        let intermediate =
            (!entered.is_empty() && !child_enters) || handshake || spec.pause.is_some();
        // Changing ids marks the task's memory non-dumpable, and hooks may write to it:
        // neither may be the caller's. (The trampoline changes ids in memory of its own.)
        let new_ids = (!trampoline && (spec.uid.is_some() || spec.gid.is_some()))
            || !spec.pre_exec.is_null()
            || spec.ns_root_changes_ids();
        let child_vfork = !handshake && !call;
        // A new oom_score_adj reaches every process sharing the memory of a task that is
        // not a vfork child: it may not be the caller's.
        let shared_oom_score = spec.privileges.oom_score_adj.is_some() && !child_vfork;
        let intermediate_copies_memory = intermediate
            && (entered.intersects(NsType::USER | NsType::TIME) || new_ids || shared_oom_score);
        let child_copies_memory = call
            || (spec.unshare.contains(NsType::TIME) && !time_switch_at_exec())
            || ((new_ids || shared_oom_score) && !intermediate);
        let pid_stage = entered.contains(NsType::PID) && spec.unshare.contains(NsType::PID);
        // (With an intermediate that copies, the tasks after it share that non-dumpable
        // copy, not the caller's memory.)
        let hide_memory = entered.contains(NsType::PID)
            && !intermediate_copies_memory
            && (pid_stage || !child_copies_memory);
        Shape {
            hide_memory,
            intermediate,
            intermediate_copies_memory,
            pid_stage,
            child_copies_memory,
            child_vfork,
            handshake,
            await_child: handshake && !child_copies_memory,
            status_pipe: (child_copies_memory && !child_vfork) || trampoline,
            clone3,
            trampoline,
            image_forks,
            child_enters,
            hold,
        }
    }
}
