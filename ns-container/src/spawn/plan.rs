//! The plan: the one structure every task of the spawn runs against, filled in from the
//! spec, the shape, the descriptors and the arena before the first task starts.

use std::os::fd::AsRawFd;

use libc::{c_char, c_int};
use ns_core::NsType;

use super::arena::{pointers, ReportPage};
use super::descriptors::{raw, Descriptors};
use super::shape::Shape;
use super::spec::{Spec, SpecAction};
use crate::child::{self, Action, Buf, Plan};
use crate::probes::clear_sighand_supported;
use crate::sys::{SignalsBlocked, Stacks};

/// Whether the entry and the pid namespace for children are one `setns` each of the same
/// pidfd, which the child may then make as one call.
fn pid_joinable(spec: &Spec<'_>) -> bool {
    match (&spec.entry, &spec.pid_at_fork) {
        (Some(entry), Some(pid)) => {
            entry.uses_pidfd()
                && pid.uses_pidfd()
                && matches!((entry.steps(), pid.steps()), ([a], [b]) if a.fd == b.fd)
        }
        _ => false,
    }
}

/// Fills in the plan the tasks run against: one field each, in the order of `child::Plan`
/// (a long literal on purpose: it is the one place where each field is filled).
#[allow(clippy::too_many_arguments)]
pub(super) fn plan<'a>(
    spec: &'a Spec<'a>,
    shape: &Shape,
    report: &ReportPage,
    fds: &Descriptors,
    stacks: &Stacks,
    floor: c_int,
    blocked: &SignalsBlocked,
    strings: &Strings,
) -> Plan<'a> {
    let clear_sighand = shape.clone3 && clear_sighand_supported();
    let child_flags = child_flags(spec, shape, fds, clear_sighand);
    let sigmask = child_sigmask(spec, blocked);
    Plan {
        report: report.0,
        use_clone3: shape.clone3,
        entry: spec.entry,
        pid_stage: shape.pid_stage,
        pid_stage_stack: stacks.region(1),
        private_memory: shape.intermediate && shape.intermediate_copies_memory,
        pid_at_fork: spec.pid_at_fork,
        child_enters: shape.child_enters,
        pid_joined: shape.child_enters && pid_joinable(spec),
        hide_memory: shape.hide_memory,
        pause_fd: raw(&fds.pause),
        pause_after_child: spec.pause.map(|(_, after)| after).unwrap_or(false),
        child_flags,
        child_exit_signal: if shape.intermediate {
            0
        } else {
            libc::SIGCHLD as u64
        },
        child_stack: stacks.region(2),
        cgroup_fd: raw(&fds.cgroup_fd),
        await_child: shape.await_child,
        handshake: shape.handshake,
        proc_fd: raw(&fds.proc_fd),
        uid_map: spec.uid_map.as_deref().map(Buf::of).unwrap_or(Buf::NONE),
        gid_map: spec.gid_map.as_deref().map(Buf::of).unwrap_or(Buf::NONE),
        setgroups_deny: spec.setgroups_deny,
        cgroup_procs_fd: raw(&fds.cgroup_procs_fd),
        cgroup_tasks: fds.cgroup_tasks_raw.as_ptr(),
        cgroup_tasks_len: fds.cgroup_tasks_raw.len(),
        late_cgroupns: spec.late_cgroupns(),
        release_r: raw(&fds.release_r),
        release_w: raw(&fds.release_w),
        caller_pidfd: raw(&fds.caller_pidfd),
        status_w: raw(&fds.status_w),
        new_time: spec.unshare.contains(NsType::TIME),
        time_at_exec: !shape.child_copies_memory,
        time_offsets: spec
            .time_offsets
            .as_deref()
            .map(Buf::of)
            .unwrap_or(Buf::NONE),
        hostname: spec.hostname.as_deref().map(Buf::of).unwrap_or(Buf::NONE),
        propagation: spec.propagation,
        mounts: if spec.mounts.is_empty() {
            std::ptr::null()
        } else {
            spec.mounts.as_ptr()
        },
        mounts_len: spec.mounts.len(),
        new_mount_api: !spec.mounts.is_empty() && spec.mount_api.use_new(),
        resolve_walk: spec.resolve_walk,
        non_dumpable: (matches!(spec.action, SpecAction::Call { .. }) && !spec.dumpable)
            || shape.hold,
        dumpable: matches!(spec.action, SpecAction::Call { .. }) && spec.dumpable,
        after_fork: forget_after_fork,
        root_change: spec
            .root
            .as_ref()
            .map(|(_, change)| *change)
            .unwrap_or(child::RootChange::None),
        read_only_root: spec.read_only_root,
        become_ns_root: spec.becomes_ns_root(),
        root_propagation: spec.root_propagation,
        new_mount_ns: spec.unshare.contains(NsType::MNT),
        outside_root: spec.outside_root_ptrs.as_ptr(),
        outside_root_len: spec.outside_root_ptrs.len(),
        root: spec
            .root
            .as_ref()
            .map(|(path, _)| path.as_ptr())
            .unwrap_or(std::ptr::null()),
        moves: spec.moves.as_ptr(),
        moves_len: spec.moves.len(),
        move_floor: floor,
        close_fds: spec.close_fds,
        groups: spec
            .groups
            .as_deref()
            .map(|g| g.as_ptr())
            .unwrap_or(std::ptr::null()),
        groups_len: spec.groups.as_ref().map(Vec::len).unwrap_or(0),
        set_groups: spec.groups.is_some(),
        drop_groups: spec.drop_groups(),
        pgroup: spec.pgroup.unwrap_or(-1),
        gid: spec.gid,
        uid: spec.uid,
        privileges: spec.privileges.prepared(),
        cwd_first: spec.cwd_first,
        cwd: spec
            .cwd
            .as_ref()
            .map(|c| c.as_ptr())
            .unwrap_or(std::ptr::null()),
        pdeathsig: spec.pdeathsig,
        pre_exec: spec.pre_exec,
        hold_fd: raw(&fds.hold),
        console_fd: raw(&fds.console),
        winsize: spec.terminal.map(|(_, size)| size).unwrap_or((0, 0)),
        sysctls: if strings.sysctls.is_empty() {
            std::ptr::null()
        } else {
            strings.sysctls.as_ptr()
        },
        sysctls_len: strings.sysctls.len(),
        seccomp: spec
            .seccomp
            .map(|f| child::Filter {
                ptr: f.as_ptr(),
                len: f.len(),
            })
            .unwrap_or(child::Filter {
                ptr: std::ptr::null(),
                len: 0,
            }),
        seccomp_early: spec.seccomp.is_some() && !spec.privileges.no_new_privs,
        reset_handlers: !clear_sighand,
        sigpipe_default: matches!(spec.action, SpecAction::Exec { .. }),
        sigmask,
        internal_fds: fds.internal(),
        action: strings.action(spec),
        trampoline: strings.trampoline(fds),
    }
}

/// The child's `clone` flags: its new namespaces (a time namespace, and a cgroup namespace
/// rooted in the child's cgroup, are made by `unshare` in the child), pidfd and tid, and how
/// it shares the caller's memory and waits for its creator.
fn child_flags(spec: &Spec<'_>, shape: &Shape, fds: &Descriptors, clear_sighand: bool) -> u64 {
    let mut made_later = NsType::TIME;
    if spec.late_cgroupns() {
        made_later |= NsType::CGROUP;
    }
    let mut child_flags = (spec.unshare - made_later).bits() as u64
        | libc::CLONE_PIDFD as u64
        | libc::CLONE_PARENT_SETTID as u64;
    if shape.intermediate {
        child_flags |= libc::CLONE_PARENT as u64;
    }
    if !shape.child_copies_memory {
        child_flags |= libc::CLONE_VM as u64;
    }
    if shape.child_vfork {
        child_flags |= libc::CLONE_VFORK as u64;
    }
    if !shape.child_copies_memory {
        // The kernel clears the child's word when it stops using the shared memory.
        child_flags |= libc::CLONE_CHILD_CLEARTID as u64;
    }
    if fds.cgroup_fd.is_some() {
        child_flags |= ns_sys::CLONE_INTO_CGROUP;
    }
    if clear_sighand {
        child_flags |= ns_sys::CLONE_CLEAR_SIGHAND;
    }
    child_flags
}

/// The signal mask the child ends with: empty for a program, as std's `Command` gives it;
/// the caller's for a closure, as after `fork`.
fn child_sigmask(spec: &Spec<'_>, blocked: &SignalsBlocked) -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is a valid (empty) set, filled below.
    let mut sigmask: libc::sigset_t = unsafe { std::mem::zeroed() };
    match spec.action {
        // SAFETY: sigemptyset writes only to the set passed.
        SpecAction::Exec { .. } => unsafe {
            libc::sigemptyset(&mut sigmask);
        },
        SpecAction::Call { .. } => sigmask = blocked.old,
    }
    sigmask
}

/// What a closure child forgets of the caller's spawning state before its closure runs.
fn forget_after_fork() {
    super::hide::forget_after_fork();
    crate::pidns::forget_after_fork();
    super::board::forget_after_fork();
}

/// The null-terminated pointer arrays the child executes with (PATH candidates, argv, envp)
/// and the trampoline's argv, pointing into the spec's strings: built before the first task
/// starts, alive until the spawn returns (or never freed, in doubt).
pub(super) struct Strings {
    candidates: Vec<*const c_char>,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    /// Kept alive: `trampoline_argv` points into it.
    _trampoline_args: Option<crate::trampoline::Args>,
    trampoline_argv: Vec<*const c_char>,
    /// The same, its working directory argument empty.
    trampoline_argv_cwd_done: Vec<*const c_char>,
    flags: TrampolineFlags,
    /// The kernel parameters: (path, value) pointing into the spec.
    sysctls: Vec<(*const c_char, Buf)>,
}

/// What the trampoline does in the child's place (see `child::Trampoline`).
#[derive(Clone, Copy)]
struct TrampolineFlags {
    caps: bool,
    session: bool,
    filter: bool,
}

impl Strings {
    pub(super) fn new(spec: &Spec<'_>, shape: &Shape, fds: &Descriptors) -> Strings {
        let (candidates, argv, envp) = match &spec.action {
            SpecAction::Exec {
                candidates,
                argv,
                envp,
            } => (pointers(candidates), pointers(argv), pointers(envp)),
            SpecAction::Call { .. } => (Vec::new(), Vec::new(), Vec::new()),
        };
        // The trampoline's argv: its arguments (descriptor numbers as the child has them),
        // the PATH candidates, the program's argv.
        // With a user namespace the trampoline sets the ids and the directory after entering
        // it; as the exec relay it only executes the program (the child did the rest).
        let trampoline_args = match &spec.action {
            SpecAction::Exec { candidates: c, .. } if shape.trampoline => {
                let namespaces: Vec<(c_int, c_int)> = fds
                    .image_ns
                    .iter()
                    .map(|(fd, nstype)| (fd.as_raw_fd(), *nstype))
                    .collect();
                let enters = !namespaces.is_empty();
                Some(crate::trampoline::Args::new(
                    &namespaces,
                    raw(&fds.status_w),
                    // A held program's caller may be gone when it starts: no check.
                    if shape.hold {
                        -1
                    } else {
                        raw(&fds.caller_pidfd)
                    },
                    spec.pdeathsig,
                    // Changed where the program runs: after the user namespace, in the pid
                    // namespace the trampoline creates the program's process in.
                    if enters || shape.image_forks {
                        spec.cwd.as_deref()
                    } else {
                        None
                    },
                    if enters {
                        crate::trampoline::Ids {
                            groups: spec.groups.as_deref(),
                            drop_groups: spec.drop_groups(),
                            gid: spec.gid,
                            uid: spec.uid,
                        }
                    } else {
                        crate::trampoline::Ids::default()
                    },
                    c.len(),
                ))
            }
            _ => None,
        };
        let trampoline_args = match (trampoline_args, &fds.fork_page) {
            (Some(args), Some(page)) if shape.image_forks => {
                let fork = crate::trampoline::Fork {
                    page: page.as_raw_fd(),
                    // SAFETY: getpid has no preconditions.
                    caller: unsafe { libc::getpid() },
                    slot: fds.fork_slot.as_ref().map_or(0, super::board::Slot::index),
                };
                let p = &spec.privileges;
                Some(args.forking(fork).session(p.setsid, p.ctty))
            }
            (args, _) => args,
        }
        // The trampoline tries the directory before the credentials only where it sets them.
        .map(|args| args.cwd_first(spec.cwd_first && !fds.image_ns.is_empty()));
        // With a user namespace to enter, the capabilities are set after it; the filter is
        // installed by the trampoline wherever it enters or creates anything.
        let enters = !fds.image_ns.is_empty();
        let p = &spec.privileges;
        let caps = crate::trampoline::Caps {
            bounding: p.bounding,
            effective: p.effective,
            permitted: p.permitted,
            inheritable: p.inheritable,
            ambient: p.ambient,
            keep: (p.effective.is_some() || p.permitted.is_some() || p.inheritable.is_some())
                && (spec.uid.is_some() || spec.gid.is_some()),
        };
        let flags = TrampolineFlags {
            caps: enters && trampoline_args.is_some(),
            session: shape.image_forks && (p.setsid || p.ctty.is_some()),
            // Without no_new_privs the child installs it before dropping capabilities.
            filter: (enters || shape.image_forks)
                && spec.seccomp.is_some()
                && spec.privileges.no_new_privs,
        };
        let trampoline_args = trampoline_args.map(|args| {
            let args = if flags.caps {
                args.capabilities(caps)
            } else {
                args
            };
            match spec.seccomp {
                Some(filter) if flags.filter => args.filtered(filter),
                _ => args,
            }
        });
        let trampoline_argv = trampoline_args
            .as_ref()
            .map(|a| a.argv(&candidates, &argv))
            .unwrap_or_default();
        let mut trampoline_argv_cwd_done = trampoline_argv.clone();
        if let Some(cwd) = trampoline_argv_cwd_done.get_mut(5) {
            *cwd = c"".as_ptr();
        }
        Strings {
            candidates,
            argv,
            envp,
            _trampoline_args: trampoline_args,
            trampoline_argv,
            trampoline_argv_cwd_done,
            flags,
            sysctls: spec
                .sysctls
                .iter()
                .map(|(path, value)| (path.as_ptr(), Buf::of(value)))
                .collect(),
        }
    }

    fn action(&self, spec: &Spec<'_>) -> Action {
        match &spec.action {
            SpecAction::Exec { .. } => Action::Exec {
                candidates: self.candidates.as_ptr(),
                argv: self.argv.as_ptr(),
                envp: self.envp.as_ptr(),
            },
            SpecAction::Call { data, call } => Action::Call {
                data: *data,
                call: *call,
            },
        }
    }

    fn trampoline(&self, fds: &Descriptors) -> child::Trampoline {
        match &fds.trampoline {
            Some(image) if !self.trampoline_argv.is_empty() => child::Trampoline {
                image: image.as_raw_fd(),
                namespaces: {
                    let mut n = [(-1, 0); 8];
                    for (slot, (fd, nstype)) in n.iter_mut().zip(&fds.image_ns) {
                        *slot = (fd.as_raw_fd(), *nstype);
                    }
                    n
                },
                argv: self.trampoline_argv.as_ptr(),
                argv_cwd_done: self.trampoline_argv_cwd_done.as_ptr(),
                fork_page: raw(&fds.fork_page),
                caps: self.flags.caps,
                session: self.flags.session,
                filter: self.flags.filter,
            },
            _ => child::Trampoline::NONE,
        }
    }
}
