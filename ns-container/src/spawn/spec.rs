//! The validated spec: everything one spawn needs, as the command prepared it, and the checks
//! that refuse what cannot work before anything starts. Plain data: no system call here.

use std::ffi::CString;
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

use libc::{c_int, c_void, pid_t};
use ns_core::{EntryPlan, NsType, Subject};

use crate::child::{self, Buf};
use crate::error::{Error, Result};
use crate::probes::{clone3_usable, into_cgroup_supported};

/// What to run in the child.
pub(crate) enum SpecAction {
    /// `execve` one of `candidates` with `argv` and `envp`.
    Exec {
        candidates: Vec<CString>,
        argv: Vec<CString>,
        envp: Vec<CString>,
    },
    /// Call `call(data)` and exit with its result. The child is a copy of the caller's memory.
    Call {
        data: *mut c_void,
        call: unsafe fn(*mut c_void) -> c_int,
    },
}

/// A complete description of one spawn.
pub(crate) struct Spec<'a> {
    /// The program or closure, for messages.
    pub what: String,
    /// Whose namespaces are entered, for messages.
    pub subject: Subject,
    pub entry: Option<EntryPlan<'a>>,
    pub unshare: NsType,
    pub uid_map: Option<Vec<u8>>,
    pub gid_map: Option<Vec<u8>>,
    pub setgroups_deny: bool,
    pub time_offsets: Option<Vec<u8>>,
    pub hostname: Option<Vec<u8>>,
    /// `MS_PRIVATE`/`MS_SLAVE`/`MS_SHARED` for `/` (recursively), or 0.
    pub propagation: libc::c_ulong,
    pub mounts: &'a [child::MountStep],
    pub mount_api: crate::mounts::MountApi,
    /// The program is executed through the trampoline as an exec relay (no user namespace
    /// to enter): its `/proc/self/exe` during that `execve` is the sealed image, never the
    /// caller's binary.
    pub relay: bool,
    /// A closure child stays dumpable (`NsCommand::dumpable`).
    pub dumpable: bool,
    /// See `NsCommand::resolve_by_walk_for_tests`.
    pub resolve_walk: bool,
    /// The new root and how to change to it.
    pub root: Option<(CString, child::RootChange)>,
    /// Mounts and the root change may be made in a mount namespace the child shares.
    pub shared_mounts: bool,
    /// For a `chroot` in a new mount namespace: the full procfs and sysfs mounts outside the
    /// new root, detached (or covered) before it, with pointers to them for the plan.
    #[allow(dead_code)] // owns the paths `outside_root_ptrs` points to
    pub outside_root: Vec<CString>,
    pub outside_root_ptrs: Vec<*const libc::c_char>,
    pub cgroup: Option<PathBuf>,
    /// `Some(true)`: write `cgroup.procs`; `Some(false)`: `CLONE_INTO_CGROUP`; `None`: by kernel.
    pub cgroup_procs: Option<bool>,
    /// Directories of cgroup v1 hierarchies the child joins itself (`tasks`).
    pub cgroups_v1: Vec<PathBuf>,
    pub moves: Vec<(RawFd, RawFd)>,
    pub close_fds: bool,
    pub groups: Option<Vec<libc::gid_t>>,
    /// `setpgid(0, pgroup)` in the child.
    pub pgroup: Option<pid_t>,
    pub gid: Option<libc::gid_t>,
    pub uid: Option<libc::uid_t>,
    pub privileges: PrivilegeSpec,
    pub cwd: Option<CString>,
    /// The directory is tried before the credentials change too (runc's order).
    pub cwd_first: bool,
    pub pdeathsig: c_int,
    /// `NsCommand::pre_exec` hooks (null for none): the child then runs on a copy of the
    /// caller's memory.
    pub pre_exec: *mut child::PreExecHooks,
    /// A seccomp filter installed last before `execve`.
    pub seccomp: Option<&'a [libc::sock_filter]>,
    pub action: SpecAction,
    /// See `NsCommand::pause_intermediate_for_tests`.
    pub pause: Option<(RawFd, bool)>,
    /// The `setns` calls the trampoline makes after `execve`, in memory of its own, instead
    /// of the intermediate (see `crate::trampoline`): the target's user namespace for a
    /// privileged caller (which enters the rest first), or the whole entry for a caller
    /// without privilege (user namespace first). `entry` then leaves them out.
    pub image_entry: Option<EntryPlan<'a>>,
    /// The target's pid namespace, entered by the child for its children; the trampoline
    /// then creates the program's process there (see `child::Plan::pid_at_fork`), and
    /// `entry` leaves the pid namespace out.
    pub pid_at_fork: Option<EntryPlan<'a>>,
    /// A listening socket the child waits on before executing the program
    /// (`NsCommand::hold_before_exec`).
    pub hold: Option<RawFd>,
    /// Kernel parameters: (path under `/proc/sys`, value).
    pub sysctls: Vec<(CString, Vec<u8>)>,
    /// The new root's own mount made read-only after the root change.
    pub read_only_root: bool,
    /// A connected console socket to send the terminal's master to, and the window size.
    pub terminal: Option<(RawFd, (u16, u16))>,
    /// The propagation of the new root, set after the root change (or 0).
    pub root_propagation: libc::c_ulong,
}

/// The child's session, limits and privileges (see `child::privileges`).
#[derive(Debug, Default, Clone)]
pub(crate) struct PrivilegeSpec {
    pub setsid: bool,
    pub ctty: Option<RawFd>,
    pub rlimits: Vec<(c_int, u64, u64)>,
    pub oom_score_adj: Option<Vec<u8>>,
    pub bounding: Option<u64>,
    pub effective: Option<u64>,
    pub permitted: Option<u64>,
    pub inheritable: Option<u64>,
    pub ambient: Option<u64>,
    pub securebits: Option<c_int>,
    pub no_new_privs: bool,
    pub umask: Option<libc::mode_t>,
}

impl Spec<'_> {
    /// The child takes the root ids of the user namespace it makes before its mount stage:
    /// it makes files there (mount points, links), which its unmapped ids could not own.
    pub(crate) fn becomes_ns_root(&self) -> bool {
        self.unshare.contains(NsType::USER) && self.uid_map.is_some() && !self.mounts.is_empty()
    }

    /// Whether taking those root ids changes the child's effective ids as the kernel sees
    /// them (the namespace's root is not the caller's own uid and gid): the kernel then marks
    /// the child's memory non-dumpable, which must not be the caller's.
    pub(crate) fn ns_root_changes_ids(&self) -> bool {
        // The id outside that `map` gives to 0 inside.
        fn root_of(map: Option<&[u8]>) -> Option<u32> {
            let text = std::str::from_utf8(map?).ok()?;
            text.lines().find_map(|l| {
                let f: Vec<u32> = l
                    .split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect();
                match f.as_slice() {
                    [inside, outside, count] if *inside == 0 && *count > 0 => Some(*outside),
                    _ => None,
                }
            })
        }
        // SAFETY: geteuid and getegid have no preconditions.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        self.becomes_ns_root()
            && (root_of(self.uid_map.as_deref()).is_some_and(|u| u != euid)
                || root_of(self.gid_map.as_deref()).is_some_and(|g| g != egid))
    }
}

impl PrivilegeSpec {
    pub(super) fn prepared(&self) -> child::Privileges {
        child::Privileges {
            setsid: self.setsid,
            ctty: self.ctty.unwrap_or(-1),
            rlimits: if self.rlimits.is_empty() {
                std::ptr::null()
            } else {
                self.rlimits.as_ptr()
            },
            rlimits_len: self.rlimits.len(),
            oom_score_adj: self
                .oom_score_adj
                .as_deref()
                .map(Buf::of)
                .unwrap_or(Buf::NONE),
            bounding: self.bounding,
            effective: self.effective,
            permitted: self.permitted,
            inheritable: self.inheritable,
            ambient: self.ambient,
            cap_last: crate::sys::cap_last(),
            securebits: self.securebits,
            no_new_privs: self.no_new_privs,
            umask: self.umask,
        }
    }
}

/// A started child.
pub(crate) struct Spawned {
    pub pid: pid_t,
    pub pidfd: OwnedFd,
}

impl Spec<'_> {
    /// Root (in the caller's user namespace) setting a uid and no groups drops them, as std
    /// does; decided here, since in an entered user namespace root's uid may be unmapped.
    pub(crate) fn drop_groups(&self) -> bool {
        // SAFETY: getuid has no preconditions.
        self.uid.is_some() && self.groups.is_none() && unsafe { libc::getuid() } == 0
    }

    pub(crate) fn action_is_exec(&self) -> bool {
        matches!(self.action, SpecAction::Exec { .. })
    }

    /// A new cgroup namespace is made by the child once it is in its cgroups, so that the
    /// namespace's root is the child's cgroup (at `clone` it would be the caller's: the
    /// kernel roots it before `CLONE_INTO_CGROUP` moves the child).
    pub(crate) fn late_cgroupns(&self) -> bool {
        self.unshare.contains(NsType::CGROUP)
            && (self.cgroup.is_some() || !self.cgroups_v1.is_empty())
    }

    pub(super) fn cgroup_via_procs(&self, clone3: bool) -> bool {
        self.cgroup.is_some()
            && self
                .cgroup_procs
                .unwrap_or(!(clone3 && into_cgroup_supported()))
    }
}

/// Refuses what cannot work before anything starts.
pub(super) fn check_spec(spec: &Spec<'_>) -> Result<()> {
    let what = spec.what.as_str();
    let invalid = |reason: &str| Error::Invalid {
        what: format!("spawning {what}"),
        reason: reason.to_owned(),
    };
    ns_core::check_types(spec.unshare, || {
        ns_core::Context::new(ns_core::Op::Create, spec.unshare, Subject::None)
    })?;
    // A hostname is set in a uts namespace of the child's: a new one, or one it enters (the
    // caller then asks to rename that namespace), never the caller's own.
    let enters_uts = [&spec.entry, &spec.image_entry]
        .iter()
        .any(|e| e.as_ref().is_some_and(|p| p.types().contains(NsType::UTS)));
    if spec.hostname.is_some() && !spec.unshare.contains(NsType::UTS) && !enters_uts {
        return Err(invalid(
            "a hostname needs a uts namespace of the child's (unshare or enter NsType::UTS)",
        ));
    }
    if spec.root.is_none() && (spec.read_only_root || spec.root_propagation != 0) {
        return Err(invalid(
            "read_only_root and root_propagation need a new root (NsCommand::root)",
        ));
    }
    if let Some(fd) = spec.hold {
        // A descriptor that is no listening socket would fail the accept only after spawn
        // returned: refused before anything starts.
        let mut listening: c_int = 0;
        let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into a live integer on a descriptor the spec borrows.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ACCEPTCONN,
                (&mut listening as *mut c_int).cast(),
                &mut len,
            )
        };
        if r != 0 || listening == 0 {
            return Err(invalid(
                "hold_before_exec needs a listening socket (bound, then listen)",
            ));
        }
    }
    // chroot changes only the child's own root; pivot_root and mounts change a namespace.
    let pivot = matches!(spec.root, Some((_, child::RootChange::Pivot)));
    let touches_mounts = spec.propagation != 0 || !spec.mounts.is_empty() || pivot;
    if touches_mounts && !spec.unshare.contains(NsType::MNT) && !spec.shared_mounts {
        return Err(invalid(
            "mounts, propagation and pivot_root need a new mount namespace (unshare NsType::MNT), \
             or NsCommand::mounts_in_shared_namespace",
        ));
    }
    if pivot && spec.propagation == libc::MS_SHARED {
        return Err(invalid(
            "pivot_root refuses a shared root: Propagation::Shared cannot go with \
             RootMode::PivotRoot (use Private or Slave, or RootMode::Chroot)",
        ));
    }
    // A chroot in a new mount namespace detaches the host's procfs and sysfs and moves the
    // root onto `/`: with `/` shared, both would reach the caller's namespace.
    let chroot = matches!(spec.root, Some((_, child::RootChange::Chroot)));
    if chroot && spec.unshare.contains(NsType::MNT) && spec.propagation == libc::MS_SHARED {
        return Err(invalid(
            "Propagation::Shared cannot go with RootMode::Chroot in a new mount namespace: \
             detaching the host's /proc and moving the root would reach the caller's \
             namespace (use Private or Slave)",
        ));
    }
    let flagged_tree = spec
        .mounts
        .iter()
        .position(|m| m.attr_recursive && m.remount != 0);
    if let Some(index) = flagged_tree {
        if !spec.mount_api.use_new() {
            return Err(Error::Unsupported {
                what: format!("spawning {what}"),
                needs: format!(
                    "mount {index} is a recursive bind mount with flags (read-only, nosuid, \
                     ...): mount(2) would set them on its top mount only, the new mount API \
                     (Linux 5.12, mount_setattr with AT_RECURSIVE) sets them on every mount \
                     below it; make it .recursive(false) or .flags_on_top_only(), or use MountApi::New"
                ),
            });
        }
    }
    if spec.time_offsets.is_some() && !spec.unshare.contains(NsType::TIME) {
        return Err(invalid(
            "time offsets need a new time namespace (unshare NsType::TIME)",
        ));
    }
    if (spec.uid_map.is_some() || spec.gid_map.is_some() || spec.setgroups_deny)
        && !spec.unshare.contains(NsType::USER)
    {
        return Err(invalid(
            "id maps and setgroups need a new user namespace (unshare NsType::USER)",
        ));
    }
    if spec.cgroup.is_some() && spec.cgroup_procs == Some(false) && !clone3_usable() {
        return Err(Error::Unsupported {
            what: format!("spawning {what}"),
            needs: "CgroupPlacement::CloneInto needs clone3 (Linux 5.3), which this kernel \
                    or a seccomp filter refuses; use CgroupPlacement::ProcsFile"
                .to_owned(),
        });
    }
    Ok(())
}
