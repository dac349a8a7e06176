//! The descriptors of a spawn: the numbers the child is given are checked, and the spawn's
//! own descriptors (proc, cgroup, status and release pipes, the caller's pidfd, the
//! trampoline's) are opened close-on-exec and placed above all of them.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use libc::c_int;
use ns_core::NsType;

use super::errors::io_err;
use super::shape::Shape;
use super::spec::Spec;
use crate::child::{self, MAX_MOVES};
use crate::error::{Error, Process, Result, Step};
use crate::probes::close_range_cloexec_supported;
use crate::sys;

/// The soft `RLIMIT_NOFILE`: descriptor numbers must stay below it.
pub(super) fn open_file_limit() -> u64 {
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
pub(super) fn check_moves(spec: &Spec<'_>, invalid: impl Fn(String) -> Error) -> Result<c_int> {
    if spec.moves.len() > MAX_MOVES {
        return Err(invalid(format!(
            "at most {MAX_MOVES} descriptors can be given to the child"
        )));
    }
    if spec.moves.is_empty() {
        // Nothing to check: the spawn's own descriptors go where the kernel puts them (a
        // limit too low for them fails their creation, with its own error).
        return Ok(3);
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
pub(super) fn above(fd: OwnedFd, floor: c_int) -> io::Result<OwnedFd> {
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
pub(super) fn duplicate(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: the spec's descriptors stay open until the spawn returns.
    unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()
}

/// The spawn's own descriptors, each placed above every number the child is given.
#[derive(Default)]
pub(super) struct Descriptors {
    pub(super) proc_fd: Option<OwnedFd>,
    pub(super) cgroup_fd: Option<OwnedFd>,
    pub(super) cgroup_procs_fd: Option<OwnedFd>,
    /// The `tasks` files of the cgroup v1 directories, and their numbers for the plan.
    pub(super) cgroup_tasks: Vec<OwnedFd>,
    pub(super) cgroup_tasks_raw: Vec<RawFd>,
    pub(super) status_r: Option<OwnedFd>,
    pub(super) status_w: Option<OwnedFd>,
    pub(super) release_r: Option<OwnedFd>,
    pub(super) release_w: Option<OwnedFd>,
    pub(super) caller_pidfd: Option<OwnedFd>,
    pub(super) pause: Option<OwnedFd>,
    /// For the trampoline: the namespaces it enters (descriptor, `nstype`), and its
    /// executable.
    pub(super) image_ns: Vec<(OwnedFd, c_int)>,
    pub(super) trampoline: Option<OwnedFd>,
    /// For a trampoline that creates the program's process: the page the kernel writes its
    /// pid to (the process's fork board, or a memfd of one page of the spawn's own), and the
    /// slot of the board lent to the spawn.
    pub(super) fork_page: Option<OwnedFd>,
    pub(super) fork_slot: Option<super::board::Slot>,
    /// The hold socket (`Spec::hold`), duplicated above the child's numbers.
    pub(super) hold: Option<OwnedFd>,
    /// The console socket (`Spec::terminal`), the same way.
    pub(super) console: Option<OwnedFd>,
}

pub(super) fn raw(fd: &Option<OwnedFd>) -> RawFd {
    fd.as_ref().map(AsRawFd::as_raw_fd).unwrap_or(-1)
}

impl Descriptors {
    pub(super) fn open(spec: &Spec<'_>, shape: &Shape, floor: c_int) -> Result<Descriptors> {
        let what = spec.what.as_str();
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
        d.open_cgroup(spec, shape)?;
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
        // Every task checks it before going on, so that nothing starts for a caller that
        // died half-way. A child made by the caller itself that executes the trampoline to
        // create the program's process needs none: its creator is suspended until that
        // execve, and the trampoline checks the caller (it is its parent) once the program's
        // process exists.
        if !(shape.image_forks && !shape.intermediate && !shape.handshake) {
            // SAFETY: getpid has no preconditions.
            let me = unsafe { libc::getpid() };
            d.caller_pidfd = Some(
                ns_sys::pidfd_open(me, 0).map_err(io_err(what, "opening a pidfd of the caller"))?,
            );
        }
        if shape.trampoline {
            d.open_trampoline(spec)?;
        }
        if shape.image_forks {
            // SAFETY: getpid has no preconditions.
            let me = unsafe { libc::getpid() };
            if let Some((page, slot)) = super::board::lend(me) {
                (d.fork_page, d.fork_slot) = (Some(page), Some(slot));
            } else {
                d.fork_page =
                    Some(sys::page_memfd().map_err(io_err(what, "creating the fork page"))?);
            }
        }
        if let (Some(fd), true) = (spec.hold, shape.hold) {
            d.hold = Some(duplicate(fd).map_err(io_err(what, "duplicating the hold socket"))?);
        }
        if let Some((fd, _)) = spec.terminal {
            d.console =
                Some(duplicate(fd).map_err(io_err(what, "duplicating the console socket"))?);
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

    /// The cgroup directory for `CLONE_INTO_CGROUP`, or its `cgroup.procs` file.
    fn open_cgroup(&mut self, spec: &Spec<'_>, shape: &Shape) -> Result<()> {
        let what = spec.what.as_str();
        let invalid = |reason: &str| Error::Invalid {
            what: format!("spawning {what}"),
            reason: reason.to_owned(),
        };
        for dir in &spec.cgroups_v1 {
            let tasks = CString::new(dir.join("tasks").into_os_string().into_encoded_bytes())
                .map_err(|_| invalid("a cgroup path contains a NUL byte"))?;
            self.cgroup_tasks
                .push(crate::sys::open_cloexec(&tasks, libc::O_WRONLY).map_err(
                    crate::error::io_error(
                        format!("spawning {what} in cgroup {}", dir.display()),
                        "opening the cgroup's tasks file",
                    ),
                )?);
        }
        let Some(dir) = &spec.cgroup else {
            return Ok(());
        };
        let cdir = CString::new(dir.as_os_str().as_encoded_bytes())
            .map_err(|_| invalid("the cgroup path contains a NUL byte"))?;
        if !spec.cgroup_via_procs(shape.clone3) {
            self.cgroup_fd = Some(
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
            self.cgroup_procs_fd = Some(
                crate::sys::open_cloexec(&procs, libc::O_WRONLY)
                    .map_err(io_err(what, "opening cgroup.procs"))?,
            );
        }
        Ok(())
    }

    /// The target's user namespace (none for the exec relay) and the trampoline's image,
    /// for a spawn through it.
    fn open_trampoline(&mut self, spec: &Spec<'_>) -> Result<()> {
        let what = spec.what.as_str();
        // Raised above the floor with the others below.
        if let Some(plan) = &spec.image_entry {
            for step in plan.steps() {
                let fd = duplicate(step.fd)
                    .map_err(io_err(what, "duplicating a namespace descriptor"))?;
                self.image_ns.push((fd, step.nstype));
            }
        }
        self.trampoline = Some(crate::trampoline::image().map_err(|e| Error::Step {
            what: what.to_owned(),
            process: Process::Caller,
            step: Step::Exec,
            detail: child::EXEC_TRAMPOLINE,
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        })?);
        Ok(())
    }

    /// Places every descriptor at or above `floor`.
    pub(super) fn raise(&mut self, floor: c_int) -> io::Result<()> {
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
            &mut self.trampoline,
            &mut self.fork_page,
            &mut self.hold,
            &mut self.console,
        ] {
            if let Some(fd) = slot.take() {
                *slot = Some(above(fd, floor)?);
            }
        }
        self.cgroup_tasks = std::mem::take(&mut self.cgroup_tasks)
            .into_iter()
            .map(|fd| above(fd, floor))
            .collect::<io::Result<_>>()?;
        self.cgroup_tasks_raw = self.cgroup_tasks.iter().map(AsRawFd::as_raw_fd).collect();
        self.image_ns = std::mem::take(&mut self.image_ns)
            .into_iter()
            .map(|(fd, nstype)| Ok((above(fd, floor)?, nstype)))
            .collect::<io::Result<_>>()?;
        Ok(())
    }

    /// The descriptors a closure child closes before it runs the closure.
    pub(super) fn internal(&self) -> [RawFd; 10] {
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
