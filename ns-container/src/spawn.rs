//! The caller's side of a spawn: decide which processes are needed, prepare everything the
//! children will use, start the chain, collect the outcome and clean up on every error path.
//!
//! The chain, for a spawn that enters namespaces E of a target and creates new ones N:
//!
//! ```text
//! caller ──clone3(VFORK|FILES)──▶ intermediate: setns(E)
//!                                   └─clone3(PARENT|VFORK|FILES)──▶ pid stage   (only if pid ∈ E and pid ∈ N)
//!                                        └─clone3(PARENT|N)──▶ child: setup, then execve / closure
//! ```
//!
//! When the target's user namespace is left to the trampoline (`Spec::user_at_exec`), E
//! lacks it and the child's `execve` is an `execveat` of the trampoline, which enters it and
//! then executes the program (see `crate::trampoline`).
//!
//! Every process is created with `CLONE_PARENT` (or by the caller itself), so all of them are
//! the caller's children: the caller reaps the intermediate and pid stage through their
//! pidfds, and the child is waitable like any other. Each creator is suspended until the
//! process it created has exited or exec'd (`CLONE_VFORK`, or, when it must write the child's
//! id maps first, the child's `CLONE_CHILD_CLEARTID` word), so when the caller's `clone3`
//! returns, everything but the child is done and no task still runs on the caller's memory.
//! With nothing to enter and no id maps to write, the caller creates the child itself: one
//! `clone3(CLONE_VM|CLONE_VFORK)`, like `posix_spawn`. Where `clone3` is refused (kernels
//! before 5.3, seccomp profiles that answer `ENOSYS`), every task is created with the legacy
//! `clone` instead, decided once by asking the kernel.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU8, Ordering};

use libc::{c_char, c_int, c_void, pid_t};
use ns_core::{EntryPlan, KernelVersion, NsType, Subject};

use crate::child::{self, Action, Buf, Plan, Report, Task, MAX_MOVES, RECORD_FAILED, RECORD_READY};
use crate::error::{io_error, Error, Process, Result, Step};
use crate::sys::{self, SignalsBlocked, Stacks};

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
    pub mount_api: crate::MountApi,
    /// The new root and how to change to it.
    pub root: Option<(CString, child::RootChange)>,
    pub cgroup: Option<PathBuf>,
    /// `Some(true)`: write `cgroup.procs`; `Some(false)`: `CLONE_INTO_CGROUP`; `None`: by kernel.
    pub cgroup_procs: Option<bool>,
    pub moves: Vec<(RawFd, RawFd)>,
    pub close_fds: bool,
    pub groups: Option<Vec<libc::gid_t>>,
    /// `setpgid(0, pgroup)` in the child.
    pub pgroup: Option<pid_t>,
    pub gid: Option<libc::gid_t>,
    pub uid: Option<libc::uid_t>,
    pub privileges: PrivilegeSpec,
    pub cwd: Option<CString>,
    pub pdeathsig: c_int,
    /// `NsCommand::pre_exec` hooks (null for none): the child then runs on a copy of the
    /// caller's memory.
    pub pre_exec: *mut child::PreExecHooks,
    /// A seccomp filter installed last before `execve`.
    pub seccomp: Option<&'a [libc::sock_filter]>,
    pub action: SpecAction,
    /// See `NsCommand::pause_intermediate_for_tests`.
    pub pause: Option<(RawFd, bool)>,
    /// The target's user namespace, entered by the trampoline after `execve` instead of by
    /// the intermediate (see `crate::trampoline`); `entry` then leaves it out.
    pub user_at_exec: Option<RawFd>,
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

impl PrivilegeSpec {
    fn prepared(&self) -> child::Privileges {
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
    /// Every task is created with `clone3` (else the legacy `clone`).
    pub clone3: bool,
    /// The child executes the user-namespace trampoline, which enters the target's user
    /// namespace in memory of its own and reports on the status pipe.
    pub trampoline: bool,
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
    /// A user namespace left to the trampoline (`Spec::user_at_exec`) is not entered here:
    /// the trampoline enters it after `execve`, in memory of its own.
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
        let call = matches!(spec.action, SpecAction::Call { .. });
        let trampoline = spec.user_at_exec.is_some() && !call;
        let clone3 = clone3_usable();
        let handshake = spec.uid_map.is_some()
            || spec.gid_map.is_some()
            || spec.setgroups_deny
            || spec.cgroup_via_procs(clone3);
        let intermediate = !entered.is_empty() || handshake || spec.pause.is_some();
        // Changing ids marks the task's memory non-dumpable, and hooks may write to it:
        // neither may be the caller's. (The trampoline changes ids in memory of its own.)
        let new_ids =
            (!trampoline && (spec.uid.is_some() || spec.gid.is_some())) || !spec.pre_exec.is_null();
        let child_vfork = !handshake && !call;
        // A new oom_score_adj reaches every process sharing the memory of a task that is
        // not a vfork child: it may not be the caller's.
        let shared_oom_score = spec.privileges.oom_score_adj.is_some() && !child_vfork;
        let intermediate_copies_memory = intermediate
            && (entered.intersects(NsType::USER | NsType::TIME) || new_ids || shared_oom_score);
        let child_copies_memory = call
            || (spec.unshare.contains(NsType::TIME) && !time_switch_at_exec())
            || ((new_ids || shared_oom_score) && !intermediate);
        Shape {
            intermediate,
            intermediate_copies_memory,
            pid_stage: entered.contains(NsType::PID) && spec.unshare.contains(NsType::PID),
            child_copies_memory,
            child_vfork,
            handshake,
            await_child: handshake && !child_copies_memory,
            status_pipe: (child_copies_memory && !child_vfork) || trampoline,
            clone3,
            trampoline,
        }
    }
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

    fn cgroup_via_procs(&self, clone3: bool) -> bool {
        self.cgroup.is_some()
            && self
                .cgroup_procs
                .unwrap_or(!(clone3 && into_cgroup_supported()))
    }
}

/// Whether `clone3` can be used, asked of the kernel once per process.
pub(crate) fn clone3_usable() -> bool {
    static CELL: AtomicU8 = AtomicU8::new(0);
    probed(&CELL, ns_sys::clone3_usable)
}

/// A feature asked of the kernel once per process (by trying it: a version number says
/// nothing of backports, gVisor or a seccomp profile), the answer kept. Kept without a lock:
/// a lock that another thread holds while it probes would stay held forever in a child
/// forked at that moment (threads that ask at once may each probe, for the same answer).
pub(crate) fn probed(cell: &AtomicU8, probe: impl FnOnce() -> bool) -> bool {
    match cell.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let yes = probe();
            cell.store(if yes { 1 } else { 2 }, Ordering::Relaxed);
            yes
        }
    }
}

fn into_cgroup_supported() -> bool {
    static CELL: AtomicU8 = AtomicU8::new(0);
    probed(&CELL, ns_sys::clone_into_cgroup_usable)
}

fn clear_sighand_supported() -> bool {
    static CELL: AtomicU8 = AtomicU8::new(0);
    probed(&CELL, || {
        ns_sys::clone3_accepts(ns_sys::CLONE_CLEAR_SIGHAND)
    })
}

fn close_range_cloexec_supported() -> bool {
    static CELL: AtomicU8 = AtomicU8::new(0);
    probed(&CELL, ns_sys::close_range_cloexec_usable)
}

/// Since Linux 6.0 `execve` moves a task into its `time_for_children` namespace, so a child
/// that shares its creator's memory can create a time namespace for the program it runs.
/// The one feature still told by the version: it is a change of behaviour at `execve`, which
/// only running a program in a new time namespace could show (and then the fallback, a
/// child with its own memory, is correct everywhere, only slower).
fn time_switch_at_exec() -> bool {
    KernelVersion::at_least(6, 0)
}

/// The `MAP_SHARED` page the tasks report to.
struct ReportPage(*mut Report);

impl ReportPage {
    fn new() -> io::Result<ReportPage> {
        // SAFETY: an anonymous shared mapping, big enough for one Report.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let page = ReportPage(p as *mut Report);
        page.reset();
        Ok(page)
    }

    /// Zeroes the page and marks the descriptor slots empty and the tasks not started.
    fn reset(&self) {
        // SAFETY: the page is mapped and no task of an earlier spawn uses it any more.
        unsafe { std::ptr::write_bytes(self.0 as *mut u8, 0, std::mem::size_of::<Report>()) };
        let report = self.get();
        for fd in [
            &report.intermediate_pidfd,
            &report.pid_stage_pidfd,
            &report.child_pidfd,
        ] {
            fd.store(-1, Ordering::Relaxed);
        }
        report
            .child_word
            .store(child::NOT_STARTED, Ordering::Relaxed);
        report
            .pid_stage_word
            .store(child::NOT_STARTED, Ordering::Relaxed);
    }

    fn get(&self) -> &Report {
        // SAFETY: the page stays mapped for the lifetime of `self`.
        unsafe { &*self.0 }
    }
}

impl Drop for ReportPage {
    fn drop(&mut self) {
        // SAFETY: unmapping the page mapped in `new`; no task uses it any more.
        unsafe { libc::munmap(self.0 as *mut c_void, 4096) };
    }
}

fn io_err(what: &str, op: &'static str) -> impl FnOnce(io::Error) -> Error {
    io_error(format!("spawning {what}"), op)
}

/// Null-terminated array of pointers into `strings`.
fn pointers(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The soft `RLIMIT_NOFILE`: descriptor numbers must stay below it.
fn open_file_limit() -> u64 {
    // SAFETY: an all-zero rlimit is valid storage for getrlimit to fill.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: getrlimit writes only to the structure passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return 1024;
    }
    rl.rlim_cur
}

/// Checks the numbers the child is to receive descriptors at and returns the lowest number
/// above all of them (at least 3): the spawn's own descriptors and the child's temporary
/// copies go there, so that no move can land on them.
fn check_moves(spec: &Spec<'_>, invalid: impl Fn(String) -> Error) -> Result<c_int> {
    if spec.moves.len() > MAX_MOVES {
        return Err(invalid(format!(
            "at most {MAX_MOVES} descriptors can be given to the child"
        )));
    }
    let limit = open_file_limit();
    let mut floor: c_int = 3;
    for (i, (_, dst)) in spec.moves.iter().enumerate() {
        if *dst < 0 || *dst as u64 >= limit {
            return Err(invalid(format!(
                "descriptor number {dst} for the child is not between 0 and the open-file \
                 limit (RLIMIT_NOFILE {limit})"
            )));
        }
        if spec.moves[..i].iter().any(|(_, d)| d == dst) {
            return Err(invalid(format!(
                "descriptor number {dst} is given to the child twice"
            )));
        }
        floor = floor.max(dst + 1);
    }
    // Room for the temporary copies and the spawn's own descriptors above the floor.
    let needed = floor as u64 + spec.moves.len() as u64 + 16;
    if needed > limit {
        return Err(invalid(format!(
            "descriptor numbers up to {} leave no room below the open-file limit \
             (RLIMIT_NOFILE {limit}) for the spawn's own descriptors",
            floor - 1
        )));
    }
    Ok(floor)
}

/// Moves a descriptor of the spawn to a number at or above `floor`.
fn above(fd: OwnedFd, floor: c_int) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() >= floor {
        return Ok(fd);
    }
    // SAFETY: duplicating a descriptor we own.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// A close-on-exec copy of `fd`, a descriptor the spec borrows (a `Target`'s, a test's),
/// open for the whole spawn.
fn duplicate(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: the spec's descriptors stay open until the spawn returns.
    unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()
}

/// The spawn's own descriptors, each placed above every number the child is given.
#[derive(Default)]
struct Descriptors {
    proc_fd: Option<OwnedFd>,
    cgroup_fd: Option<OwnedFd>,
    cgroup_procs_fd: Option<OwnedFd>,
    status_r: Option<OwnedFd>,
    status_w: Option<OwnedFd>,
    release_r: Option<OwnedFd>,
    release_w: Option<OwnedFd>,
    caller_pidfd: Option<OwnedFd>,
    pause: Option<OwnedFd>,
    /// For the trampoline: the user namespace, and the trampoline's executable.
    user_ns: Option<OwnedFd>,
    trampoline: Option<OwnedFd>,
}

fn raw(fd: &Option<OwnedFd>) -> RawFd {
    fd.as_ref().map(AsRawFd::as_raw_fd).unwrap_or(-1)
}

impl Descriptors {
    fn open(spec: &Spec<'_>, shape: &Shape, floor: c_int) -> Result<Descriptors> {
        let what = spec.what.as_str();
        let invalid = |reason: &str| Error::Invalid {
            what: format!("spawning {what}"),
            reason: reason.to_owned(),
        };
        let mut d = Descriptors::default();
        let needs_proc = spec.uid_map.is_some()
            || spec.gid_map.is_some()
            || spec.setgroups_deny
            || spec.unshare.contains(NsType::TIME)
            || spec.privileges.oom_score_adj.is_some()
            || (spec.close_fds && !close_range_cloexec_supported());
        if needs_proc {
            d.proc_fd = Some(
                crate::sys::open_cloexec(c"/proc", libc::O_PATH | libc::O_DIRECTORY)
                    .map_err(io_err(what, "opening /proc"))?,
            );
        }
        if let Some(dir) = &spec.cgroup {
            let cdir = CString::new(dir.as_os_str().as_encoded_bytes())
                .map_err(|_| invalid("the cgroup path contains a NUL byte"))?;
            if !spec.cgroup_via_procs(shape.clone3) {
                d.cgroup_fd = Some(
                    crate::sys::open_cloexec(&cdir, libc::O_RDONLY | libc::O_DIRECTORY)
                        .map_err(io_err(what, "opening the cgroup"))?,
                );
            } else {
                let procs = CString::new(
                    dir.join("cgroup.procs")
                        .into_os_string()
                        .into_encoded_bytes(),
                )
                .map_err(|_| invalid("the cgroup path contains a NUL byte"))?;
                d.cgroup_procs_fd = Some(
                    crate::sys::open_cloexec(&procs, libc::O_WRONLY)
                        .map_err(io_err(what, "opening cgroup.procs"))?,
                );
            }
        }
        if shape.trampoline {
            // The status pipe is made by the child, in its own descriptor table, and its read
            // end comes back over this socket: a write end in ours would be copied by any
            // other thread's fork, and the spawn would wait for end-of-file until that
            // unrelated process exits.
            let (ours, childs) =
                sys::seqpacket_pair().map_err(io_err(what, "creating the status socket"))?;
            (d.status_r, d.status_w) = (Some(ours), Some(childs));
        } else if shape.status_pipe {
            let (r, w) = sys::pipe().map_err(io_err(what, "creating the status pipe"))?;
            (d.status_r, d.status_w) = (Some(r), Some(w));
        }
        if shape.handshake {
            let (r, w) = sys::pipe().map_err(io_err(what, "creating the release pipe"))?;
            (d.release_r, d.release_w) = (Some(r), Some(w));
        }
        {
            // Every task checks it before going on, so that nothing starts for a caller that
            // died half-way.
            // SAFETY: getpid has no preconditions.
            let me = unsafe { libc::getpid() };
            d.caller_pidfd = Some(
                ns_sys::pidfd_open(me, 0).map_err(io_err(what, "opening a pidfd of the caller"))?,
            );
        }
        if shape.trampoline {
            // Raised above the floor with the others below.
            let user_ns = spec.user_at_exec.unwrap_or(-1);
            d.user_ns = Some(
                duplicate(user_ns)
                    .map_err(io_err(what, "duplicating the user namespace descriptor"))?,
            );
            d.trampoline = Some(crate::trampoline::image().map_err(|e| Error::Step {
                what: what.to_owned(),
                process: Process::Caller,
                step: Step::Exec,
                detail: child::EXEC_TRAMPOLINE,
                errno: e.raw_os_error().unwrap_or(libc::EIO),
            })?);
        }
        if let Some((fd, _)) = spec.pause {
            d.pause =
                Some(duplicate(fd).map_err(io_err(what, "duplicating the pause descriptor"))?);
        }
        d.raise(floor).map_err(io_err(
            what,
            "moving the spawn's descriptors above the child's",
        ))?;
        Ok(d)
    }

    /// Places every descriptor at or above `floor`.
    fn raise(&mut self, floor: c_int) -> io::Result<()> {
        for slot in [
            &mut self.proc_fd,
            &mut self.cgroup_fd,
            &mut self.cgroup_procs_fd,
            &mut self.status_r,
            &mut self.status_w,
            &mut self.release_r,
            &mut self.release_w,
            &mut self.caller_pidfd,
            &mut self.pause,
            &mut self.user_ns,
            &mut self.trampoline,
        ] {
            if let Some(fd) = slot.take() {
                *slot = Some(above(fd, floor)?);
            }
        }
        Ok(())
    }

    /// The descriptors a closure child closes before it runs the closure.
    fn internal(&self) -> [RawFd; 10] {
        [
            raw(&self.proc_fd),
            raw(&self.cgroup_fd),
            raw(&self.cgroup_procs_fd),
            raw(&self.status_r),
            raw(&self.release_r),
            raw(&self.release_w),
            raw(&self.caller_pidfd),
            raw(&self.pause),
            -1,
            -1,
        ]
    }
}

/// Refuses what cannot work before anything starts.
fn check_spec(spec: &Spec<'_>) -> Result<()> {
    let what = spec.what.as_str();
    let invalid = |reason: &str| Error::Invalid {
        what: format!("spawning {what}"),
        reason: reason.to_owned(),
    };
    ns_core::check_types(spec.unshare, || {
        ns_core::Context::new(ns_core::Op::Create, spec.unshare, Subject::None)
    })?;
    if spec.hostname.is_some() && !spec.unshare.contains(NsType::UTS) {
        return Err(invalid(
            "a hostname needs a new uts namespace (unshare NsType::UTS)",
        ));
    }
    // chroot changes only the child's own root; pivot_root and mounts change a namespace.
    let pivot = matches!(spec.root, Some((_, child::RootChange::Pivot)));
    let touches_mounts = spec.propagation != 0 || !spec.mounts.is_empty() || pivot;
    if touches_mounts && !spec.unshare.contains(NsType::MNT) {
        return Err(invalid(
            "mounts, propagation and pivot_root need a new mount namespace (unshare NsType::MNT)",
        ));
    }
    if pivot && spec.propagation == libc::MS_SHARED {
        return Err(invalid(
            "pivot_root refuses a shared root: Propagation::Shared cannot go with \
             RootMode::PivotRoot (use Private or Slave, or RootMode::Chroot)",
        ));
    }
    let flagged_tree = spec
        .mounts
        .iter()
        .position(|m| m.recursive && m.remount != 0);
    if let Some(index) = flagged_tree {
        if !spec.mount_api.use_new() {
            return Err(Error::Unsupported {
                what: format!("spawning {what}"),
                needs: format!(
                    "mount {index} is a recursive bind mount with flags (read-only, nosuid, \
                     ...): mount(2) would set them on its top mount only, the new mount API \
                     (Linux 5.12, mount_setattr with AT_RECURSIVE) sets them on every mount \
                     below it; make it .recursive(false) or use MountApi::New"
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

/// Runs one spawn. `doubt` is set when a task of the spawn may exist that cannot be found
/// (see `take_task`): it may still read anything the spec points to, so the caller must
/// never free that.
pub(crate) fn spawn(spec: &Spec<'_>, doubt: &mut bool) -> Result<Spawned> {
    let what = spec.what.as_str();
    check_spec(spec)?;
    let floor = check_moves(spec, |reason| Error::Invalid {
        what: format!("spawning {what}"),
        reason,
    })?;
    let shape = Shape::of(spec);
    let fds = Descriptors::open(spec, &shape, floor)?;
    let child_stack = if matches!(spec.action, SpecAction::Call { .. }) {
        8 << 20
    } else {
        256 << 10
    };
    let arena =
        Arena::take(child_stack).map_err(io_err(what, "mapping the stacks and the report page"))?;
    let (report, stacks) = (&arena.report, &arena.stacks);

    // Pointer arrays into the spec's strings, alive until this function returns.
    let (candidates, argv, envp) = match &spec.action {
        SpecAction::Exec {
            candidates,
            argv,
            envp,
        } => (pointers(candidates), pointers(argv), pointers(envp)),
        SpecAction::Call { .. } => (Vec::new(), Vec::new(), Vec::new()),
    };
    // The trampoline's argv: its arguments (descriptor numbers as the child has them), the
    // PATH candidates, the program's argv.
    let trampoline_args = match (&spec.action, &fds.user_ns) {
        (SpecAction::Exec { candidates: c, .. }, Some(user_ns)) if shape.trampoline => {
            Some(crate::trampoline::Args::new(
                user_ns.as_raw_fd(),
                raw(&fds.status_w),
                raw(&fds.caller_pidfd),
                spec.pdeathsig,
                spec.cwd.as_deref(),
                crate::trampoline::Ids {
                    groups: spec.groups.as_deref(),
                    drop_groups: spec.drop_groups(),
                    gid: spec.gid,
                    uid: spec.uid,
                },
                c.len(),
            ))
        }
        _ => None,
    };
    let trampoline_argv = trampoline_args
        .as_ref()
        .map(|a| a.argv(&candidates, &argv))
        .unwrap_or_default();
    let trampoline = match (&fds.trampoline, &fds.user_ns) {
        (Some(image), Some(user_ns)) if !trampoline_argv.is_empty() => child::Trampoline {
            image: image.as_raw_fd(),
            user_ns: user_ns.as_raw_fd(),
            argv: trampoline_argv.as_ptr(),
        },
        _ => child::Trampoline::NONE,
    };
    let action = match &spec.action {
        SpecAction::Exec { .. } => Action::Exec {
            candidates: candidates.as_ptr(),
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
        },
        SpecAction::Call { data, call } => Action::Call {
            data: *data,
            call: *call,
        },
    };

    let blocked = SignalsBlocked::new();
    let plan = Box::new(plan(
        spec, &shape, report, &fds, stacks, floor, &blocked, action, trampoline,
    ));
    let plan_ptr = &*plan as *const Plan<'_> as *mut c_void;

    // Start the chain. When this returns, every process but the child has exited, and the
    // child no longer runs on the caller's memory.
    let started = if shape.intermediate {
        start_intermediate(spec, &shape, &plan, report, stacks, plan_ptr)
    } else {
        // The caller creates the child itself; failures land in the report page.
        let _ = child::create_child(&plan, Task::Caller);
        Ok(None)
    };
    let Descriptors {
        status_r, status_w, ..
    } = fds;
    // The caller's copy of the write end: the child has its own.
    drop(status_w);

    let outcome;
    (outcome, *doubt) = match started {
        Ok(intermediate) => collect(spec, &shape, report, intermediate, status_r.as_ref()),
        Err(e) => (Err(e), false),
    };
    drop(blocked);
    if *doubt {
        // A task of the spawn may exist that cannot be found (see `take_task`): it may still
        // run on the plan, its stack and the report page, so they are never freed.
        std::mem::forget(plan);
        std::mem::forget(arena);
        std::mem::forget(candidates);
        std::mem::forget(argv);
        std::mem::forget(envp);
        std::mem::forget(trampoline_args);
        std::mem::forget(trampoline_argv);
    } else {
        drop(plan);
        arena.give_back();
    }
    outcome
}

/// The stacks and the report page of a spawn, kept by each thread for its next spawn:
/// mapping, guarding and unmapping them every time costs page faults and, in a multithreaded
/// caller, a TLB shootdown on every core that ran the process. Nothing uses them once a
/// spawn has returned (every task is gone or off the caller's memory).
struct Arena {
    stacks: Stacks,
    report: ReportPage,
    child_stack: usize,
    /// A private page holding 1, which the kernel zeroes in any copy of this process
    /// (`MADV_WIPEONFORK`, Linux 4.14): a forked copy shares the report page (`MAP_SHARED`)
    /// with us and must map its own. Null where the kernel cannot mark it; then nothing is
    /// kept.
    marker: *mut u8,
}

impl Drop for Arena {
    fn drop(&mut self) {
        if !self.marker.is_null() {
            // SAFETY: unmapping the marker page mapped in `Arena::new`.
            unsafe { libc::munmap(self.marker as *mut c_void, 4096) };
        }
    }
}

std::thread_local! {
    static ARENA: std::cell::Cell<Option<Arena>> = const { std::cell::Cell::new(None) };
}

impl Arena {
    fn take(child_stack: usize) -> io::Result<Arena> {
        // A thread whose thread-locals are being torn down maps a fresh arena.
        let kept = ARENA.try_with(std::cell::Cell::take).ok().flatten();
        if let Some(arena) = kept {
            // SAFETY: the marker page stays mapped for the arena's lifetime.
            let ours = !arena.marker.is_null() && unsafe { *arena.marker } == 1;
            if ours && arena.child_stack == child_stack {
                arena.report.reset();
                return Ok(arena);
            }
            // Another size, or a forked copy's mappings: ours to drop only.
        }
        Arena::new(child_stack)
    }

    fn new(child_stack: usize) -> io::Result<Arena> {
        // SAFETY: an anonymous private mapping of one page.
        let marker = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        let marker = if marker == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else if unsafe {
            // SAFETY: advising on the page just mapped.
            libc::madvise(marker, 4096, libc::MADV_WIPEONFORK)
        } != 0
        {
            // SAFETY: unmapping the page just mapped.
            unsafe { libc::munmap(marker, 4096) };
            std::ptr::null_mut()
        } else {
            let marker = marker as *mut u8;
            // SAFETY: the page is mapped and writable.
            unsafe { *marker = 1 };
            marker
        };
        Ok(Arena {
            stacks: Stacks::new(&[64 << 10, 64 << 10, child_stack])?,
            report: ReportPage::new()?,
            child_stack,
            marker,
        })
    }

    fn give_back(self) {
        if self.marker.is_null() {
            return;
        }
        // A thread whose thread-locals are being torn down just drops it.
        let _ = ARENA.try_with(|kept| kept.set(Some(self)));
    }
}

/// Fills in the plan the tasks run against.
#[allow(clippy::too_many_arguments)]
fn plan<'a>(
    spec: &'a Spec<'a>,
    shape: &Shape,
    report: &ReportPage,
    fds: &Descriptors,
    stacks: &Stacks,
    floor: c_int,
    blocked: &SignalsBlocked,
    action: Action,
    trampoline: child::Trampoline,
) -> Plan<'a> {
    let mut child_flags = (spec.unshare - NsType::TIME).bits() as u64
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
    let clear_sighand = shape.clone3 && clear_sighand_supported();
    if clear_sighand {
        child_flags |= ns_sys::CLONE_CLEAR_SIGHAND;
    }
    // SAFETY: an all-zero sigset_t is a valid (empty) set, filled below.
    let mut sigmask: libc::sigset_t = unsafe { std::mem::zeroed() };
    match spec.action {
        // A program starts with no signal blocked, as std's Command does.
        // SAFETY: sigemptyset writes only to the set passed.
        SpecAction::Exec { .. } => unsafe {
            libc::sigemptyset(&mut sigmask);
        },
        // A closure continues with the caller's mask, as after fork.
        SpecAction::Call { .. } => sigmask = blocked.old,
    }
    Plan {
        report: report.0,
        use_clone3: shape.clone3,
        entry: spec.entry,
        pid_stage: shape.pid_stage,
        pid_stage_stack: stacks.region(1),
        private_memory: shape.intermediate && shape.intermediate_copies_memory,
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
        root_change: spec
            .root
            .as_ref()
            .map(|(_, change)| *change)
            .unwrap_or(child::RootChange::None),
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
        cwd: spec
            .cwd
            .as_ref()
            .map(|c| c.as_ptr())
            .unwrap_or(std::ptr::null()),
        pdeathsig: spec.pdeathsig,
        pre_exec: spec.pre_exec,
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
        reset_handlers: !clear_sighand,
        sigpipe_default: matches!(spec.action, SpecAction::Exec { .. }),
        sigmask,
        internal_fds: fds.internal(),
        action,
        trampoline,
    }
}

/// Creates the intermediate and waits (`CLONE_VFORK`) until it has exited; returns its pidfd.
fn start_intermediate(
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
fn take_task(
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
fn recover_unproven(raw: RawFd, known: &[pid_t]) -> Option<OwnedFd> {
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

/// Reaps a task of the spawn through its pidfd; `None` when it exited with status 0 (or was
/// reaped by someone else, which leaves its fate to the report page).
fn reap(pidfd: &OwnedFd) -> Option<String> {
    match ns_sys::pidfd_wait(pidfd.as_fd(), libc::WEXITED | libc::__WALL) {
        Ok(Some(info)) => {
            let status = sys::wait_status(&info);
            (!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0))
                .then(|| describe_status(status))
        }
        Ok(None) => None,
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => None,
        Err(e) => Some(format!("could not be waited for: {e}")),
    }
}

/// Reaps the intermediate processes, waits for the child to get past its setup, and turns the
/// report into a result. On any failure the child, if it exists, is killed and reaped.
fn collect(
    spec: &Spec<'_>,
    shape: &Shape,
    page: &ReportPage,
    intermediate: Option<OwnedFd>,
    status_r: Option<&OwnedFd>,
) -> (Result<Spawned>, bool) {
    let report = page.get();
    let what = spec.what.as_str();
    let failed_early = || report.failed.load(Ordering::Acquire) == 1;
    // A task that ended without its "done" mark did not finish, whatever its exit status
    // said (or if something else reaped it and no status is left).
    let unfinished = |done: &AtomicU32, status: Option<String>| -> Option<String> {
        if done.load(Ordering::Acquire) == 1 || failed_early() {
            return status;
        }
        Some(status.unwrap_or_else(|| "ended before finishing (reaped by someone else)".into()))
    };
    let mut died: Option<(Process, String)> = None;
    if let Some(pidfd) = &intermediate {
        let status = unfinished(&report.intermediate_done, reap(pidfd));
        died = status.map(|s| (Process::Intermediate, s));
    }
    let known = [
        report.intermediate_pid.load(Ordering::Acquire),
        report.pid_stage_pid.load(Ordering::Acquire),
    ];
    let mut doubt = false;
    let pid_stage = take_task(
        shape,
        report.pid_stage_pidfd.load(Ordering::Acquire),
        report.pid_stage_pid.load(Ordering::Acquire),
        report.pid_stage_word.load(Ordering::Acquire),
        failed_early() || report.intermediate_done.load(Ordering::Acquire) == 1,
        &known,
        &mut doubt,
    );
    if let Some(pidfd) = &pid_stage {
        if died.is_some() {
            // The intermediate died while the pid stage ran: stop it before it creates more.
            let _ = ns_sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        }
        let status = unfinished(&report.pid_stage_done, reap(pidfd));
        if died.is_none() {
            died = status.map(|s| (Process::PidStage, s));
        }
    }
    let creator_done = if shape.pid_stage {
        &report.pid_stage_done
    } else {
        &report.intermediate_done
    };
    let pidfd = take_task(
        shape,
        report.child_pidfd.load(Ordering::Acquire),
        report.child_pid.load(Ordering::Acquire),
        report.child_word.load(Ordering::Acquire),
        !shape.intermediate || failed_early() || creator_done.load(Ordering::Acquire) == 1,
        &known,
        &mut doubt,
    );

    // A child with its own memory tells us on the status pipe when it is past its setup: a
    // ready record before its closure, a failure record, or end-of-file at exec. Its pidfd
    // ends the wait if it dies first, whoever else holds the pipe.
    // The trampoline writes its failures only there (it has no access to the report page).
    // Its pipe's read end was sent over the status socket before the child executed it, so
    // it is queued by now (the child's creator waited for that exec), unless the child died
    // first.
    let mut child_record = None;
    let mut received = None;
    if let (true, Some(socket)) = (shape.trampoline, status_r) {
        if report.failed.load(Ordering::Acquire) == 0 && died.is_none() {
            match sys::receive_fd(socket) {
                Ok(fd) => received = fd,
                Err(e) => died = Some((Process::Child, format!("status socket: {e}"))),
            }
        }
    }
    let status_r = if shape.trampoline {
        received.as_ref()
    } else {
        status_r
    };
    if let (Some(r), Some(child)) = (status_r, pidfd.as_ref()) {
        if report.failed.load(Ordering::Acquire) == 0 && died.is_none() {
            match await_status(r, child) {
                Ok(Some(rec)) if rec[0] == RECORD_READY => {}
                Ok(Some(rec)) if rec[0] == RECORD_FAILED => child_record = Some(rec),
                Ok(_) => {}
                Err(e) => died = Some((Process::Child, format!("status pipe: {e}"))),
            }
        }
    }

    let error = if report.failed.load(Ordering::Acquire) == 1 {
        Some(report_error(spec, report))
    } else if let Some(rec) = child_record {
        Some(record_error(spec, &rec))
    } else if let Some((process, status)) = died {
        Some(Error::Died {
            what: what.to_owned(),
            process,
            status,
        })
    } else if pidfd.is_none() {
        Some(Error::Died {
            what: what.to_owned(),
            process: if shape.intermediate {
                Process::Intermediate
            } else {
                Process::Caller
            },
            status: "no child was created".to_owned(),
        })
    } else {
        None
    };

    let child_pid = |pidfd: &OwnedFd| -> io::Result<pid_t> {
        match report.child_pid.load(Ordering::Acquire) {
            // The pid stage saw the child's PID in the target's PID namespace.
            pid if pid > 0 && !shape.pid_stage => Ok(pid),
            _ => ns_core::pidfd_pid(pidfd.as_fd()),
        }
    };

    // The child's PID; if it cannot be read, the spawn fails like any other.
    let (error, pid) = match (error, pidfd.as_ref().map(child_pid)) {
        (None, Some(Ok(pid))) => (None, pid),
        (None, Some(Err(source))) => (Some(io_err(what, "reading the child's pid")(source)), 0),
        (error, _) => (error, 0),
    };
    // A child that shares the caller's memory must be off it before the caller frees the plan
    // and the stacks: its CLONE_CHILD_CLEARTID word says when (at once on success).
    let child_has_own_memory =
        shape.child_copies_memory || (shape.intermediate && shape.intermediate_copies_memory);
    let shares_memory = !child_has_own_memory;
    let result = match (error, pidfd) {
        (None, Some(pidfd)) => {
            if shares_memory {
                child::await_child(report);
            }
            Ok(Spawned { pid, pidfd })
        }
        (error, pidfd) => {
            if let Some(pidfd) = pidfd {
                let _ = ns_sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                if shares_memory {
                    child::await_child(report);
                }
                let _ = ns_sys::pidfd_wait(pidfd.as_fd(), libc::WEXITED | libc::__WALL);
            }
            Err(error.unwrap_or_else(|| Error::Died {
                what: what.to_owned(),
                process: Process::Child,
                status: "no child was created".to_owned(),
            }))
        }
    };
    (result, doubt)
}

/// Waits for a record on the status pipe, end-of-file, or the child's death.
fn await_status(r: &OwnedFd, child: &OwnedFd) -> io::Result<Option<child::Record>> {
    loop {
        let mut fds = [
            libc::pollfd {
                fd: r.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: child.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: polling two live pollfd structures.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if fds[0].revents != 0 {
            return read_record(r);
        }
        if fds[1].revents != 0 {
            // Dead: whatever it wrote before dying is in the pipe already.
            set_nonblocking(r)?;
            return match read_record(r) {
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(None),
                other => other,
            };
        }
    }
}

pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: reading and setting the status flags of a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

pub(crate) fn read_record(r: &OwnedFd) -> io::Result<Option<child::Record>> {
    let mut rec: child::Record = [0; 5];
    let size = std::mem::size_of::<child::Record>();
    let mut got = 0;
    while got < size {
        // SAFETY: reading into the live record buffer, past what was already read.
        let n = unsafe {
            libc::read(
                r.as_raw_fd(),
                (rec.as_mut_ptr() as *mut u8).add(got) as *mut c_void,
                size - got,
            )
        };
        if n == 0 {
            return Ok(None);
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        got += n as usize;
    }
    Ok(Some(rec))
}

fn report_error(spec: &Spec<'_>, report: &Report) -> Error {
    failure_error(
        spec,
        report.task.load(Ordering::Relaxed),
        report.step.load(Ordering::Relaxed),
        report.detail.load(Ordering::Relaxed),
        report.errno.load(Ordering::Relaxed),
    )
}

/// The error for a failure record of the status pipe: (kind, task, step, detail, errno).
/// Only the child and the trampoline write there, and both write the same record.
fn record_error(spec: &Spec<'_>, rec: &child::Record) -> Error {
    let [_, _, step, detail, errno] = *rec;
    failure_error(
        spec,
        child::Task::Child as u32,
        step,
        detail as i32,
        errno as i32,
    )
}

fn failure_error(spec: &Spec<'_>, task: u32, step: u32, detail: i32, errno: i32) -> Error {
    let process = match task {
        1 => Process::Intermediate,
        2 => Process::PidStage,
        3 => Process::Child,
        _ => Process::Caller,
    };
    let step = Step::from_u32(step).unwrap_or(Step::CreateChild);
    match step {
        Step::EnterNamespaces => Error::Enter {
            what: spec.what.clone(),
            process,
            cause: ns_core::Error::entering(
                errno,
                NsType::from_bits_truncate(detail),
                spec.subject.clone(),
            ),
        },
        Step::Exec if detail != child::EXEC_TRAMPOLINE => Error::Exec {
            program: spec.what.clone(),
            errno,
        },
        step => Error::Step {
            what: spec.what.clone(),
            process,
            step,
            detail,
            errno,
        },
    }
}

pub(crate) fn describe_status(status: c_int) -> String {
    if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else {
        format!("wait status {status:#x}")
    }
}

// Keep the atomics' layout promise visible: the kernel writes plain ints into these fields.
const _: () =
    assert!(std::mem::size_of::<AtomicI32>() == 4 && std::mem::size_of::<AtomicU32>() == 4);

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    #[test]
    fn an_unproven_pidfd_is_taken_only_for_a_new_child_of_this_thread() {
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
