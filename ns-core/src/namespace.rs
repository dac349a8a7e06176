//! [`Namespace`]: an owned handle to one namespace.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Op, Result, Subject, ThreadRule};
use crate::sys;
use crate::{nstypes, NsType};

/// An owned handle to one namespace: an nsfs file descriptor (`O_CLOEXEC`) and its type.
///
/// Every constructor checks that the file really is a namespace file (`fstatfs` reports
/// `NSFS_MAGIC`) and finds its type with `NS_GET_NSTYPE`, so a handle is never a stray file
/// descriptor. Holding the handle keeps the namespace alive, even after every process in it
/// has exited.
///
/// Conversions follow std's fd types: [`AsFd`], [`AsRawFd`], `From<Namespace> for OwnedFd`
/// and [`TryFrom<OwnedFd>`] (fallible, because an arbitrary descriptor may be no namespace).
///
/// ```
/// use ns_core::{Namespace, NsType};
///
/// let mine = Namespace::current(NsType::NET)?;
/// let by_pid = Namespace::of_pid(std::process::id() as libc::pid_t, NsType::NET)?;
/// assert_eq!(mine.ns_type(), NsType::NET);
/// assert_eq!(mine.id()?, by_pid.id()?);
/// # Ok::<(), ns_core::Error>(())
/// ```
pub struct Namespace {
    fd: OwnedFd,
    ns_type: NsType,
    origin: Subject,
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace")
            .field("type", &self.ns_type.name().unwrap_or("?"))
            .field("fd", &self.fd.as_raw_fd())
            .field("origin", &self.origin)
            .finish()
    }
}

impl Namespace {
    /// Checks an open file and builds the handle. `expected` is the type the caller asked for.
    fn from_open_fd(fd: OwnedFd, expected: Option<NsType>, origin: Subject) -> Result<Namespace> {
        let context = || {
            Context::new(
                Op::Open,
                expected.unwrap_or(NsType::empty()),
                origin.clone(),
            )
        };
        let fs_type = sys::fs_type(fd.as_fd()).map_err(|e| Error::os(context(), e))?;
        if fs_type != ns_sys::nsfs::NSFS_MAGIC {
            return Err(Error::NotNamespace {
                context: context(),
                fs_type,
            });
        }
        let found = sys::nsfs_type(fd.as_fd()).map_err(|e| Error::os(context(), e))?;
        if let Some(expected) = expected {
            if found != expected {
                return Err(Error::WrongType {
                    context: context(),
                    found,
                });
            }
        }
        Ok(Namespace {
            fd,
            ns_type: found,
            origin,
        })
    }

    /// Opens the namespace file at `path` (a `/proc/PID/ns/*` link or a bind mount of one) and
    /// checks that it is a namespace of type `ns_type`.
    ///
    /// # Errors
    /// [`Error::NotOneType`] unless `ns_type` is one type; [`Error::Os`] when the file cannot
    /// be opened; [`Error::NotNamespace`] when it is no namespace file; [`Error::WrongType`]
    /// when it is a namespace of another type.
    pub fn open(path: impl AsRef<Path>, ns_type: NsType) -> Result<Namespace> {
        let path = path.as_ref();
        let origin = Subject::Path(path.to_owned());
        if !ns_type.is_single() {
            return Err(Error::NotOneType {
                context: Context::new(Op::Open, ns_type, origin),
                types: ns_type,
            });
        }
        let fd = sys::open_cloexec(path)
            .map_err(|e| Error::os(Context::new(Op::Open, ns_type, origin.clone()), e))?;
        Namespace::from_open_fd(fd, Some(ns_type), origin)
    }

    /// Opens the namespace file at `path`, whatever its type.
    ///
    /// # Errors
    /// As [`Namespace::open`], without the type checks.
    pub fn open_any(path: impl AsRef<Path>) -> Result<Namespace> {
        let path = path.as_ref();
        let origin = Subject::Path(path.to_owned());
        let fd = sys::open_cloexec(path)
            .map_err(|e| Error::os(Context::new(Op::Open, NsType::empty(), origin.clone()), e))?;
        Namespace::from_open_fd(fd, None, origin)
    }

    /// Opens the `ns_type` namespace of process `pid` (`/proc/PID/ns/NAME`).
    ///
    /// A PID names a process only until it is reaped and reused; to be sure you get the
    /// namespaces of the process you mean, pin it with [`Target`](crate::Target).
    ///
    /// # Errors
    /// [`Error::ProcessGone`] when there is no such process or it has exited;
    /// [`Error::Unsupported`] when the kernel lacks the type; [`Error::Os`] otherwise (`EACCES`
    /// for another user's process without `CAP_SYS_PTRACE`).
    pub fn of_pid(pid: libc::pid_t, ns_type: NsType) -> Result<Namespace> {
        let origin = Subject::Pid(pid);
        let context = || Context::new(Op::Open, ns_type, origin.clone());
        let Some(name) = ns_type.name() else {
            return Err(Error::NotOneType {
                context: context(),
                types: ns_type,
            });
        };
        let path = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        match sys::open_cloexec(&path) {
            Ok(fd) => Namespace::from_open_fd(fd, Some(ns_type), origin),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => {
                if !nstypes().contains(ns_type) {
                    Err(Error::Unsupported {
                        context: context(),
                        needs: format!("no {name} entry in /proc/self/ns"),
                    })
                } else {
                    Err(Error::ProcessGone { context: context() })
                }
            }
            Err(e) => Err(Error::os(context(), e)),
        }
    }

    /// Opens the calling thread's own `ns_type` namespace (`/proc/thread-self/ns/NAME`).
    ///
    /// For PID and time this is the namespace the thread itself lives in; see
    /// [`Namespace::for_children`] for the one its next children will get.
    ///
    /// # Errors
    /// [`Error::NotOneType`], [`Error::Unsupported`], or [`Error::Os`] when `/proc` is missing.
    pub fn current(ns_type: NsType) -> Result<Namespace> {
        Namespace::open_thread(ns_type, false)
    }

    /// Opens the PID or time namespace the calling thread's *next children* will be created
    /// in (`pid_for_children`, Linux 4.12; `time_for_children`, 5.6).
    ///
    /// # Errors
    /// [`Error::Invalid`] for other types; otherwise as [`Namespace::current`].
    pub fn for_children(ns_type: NsType) -> Result<Namespace> {
        Namespace::open_thread(ns_type, true)
    }

    fn open_thread(ns_type: NsType, for_children: bool) -> Result<Namespace> {
        let origin = Subject::CallingThread;
        let context = || Context::new(Op::Open, ns_type, origin.clone());
        let Some(name) = ns_type.name() else {
            return Err(Error::NotOneType {
                context: context(),
                types: ns_type,
            });
        };
        let name = if for_children {
            match ns_type {
                NsType::PID => "pid_for_children",
                NsType::TIME => "time_for_children",
                _ => {
                    return Err(Error::Invalid {
                        context: context(),
                        reason: "only pid and time namespaces have a separate namespace for \
                                 children"
                            .to_owned(),
                    })
                }
            }
        } else {
            name
        };
        match sys::open_thread_ns(name) {
            Ok(fd) => Namespace::from_open_fd(fd, Some(ns_type), origin),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(Error::Unsupported {
                context: context(),
                needs: format!("no {name} entry in /proc/thread-self/ns"),
            }),
            Err(e) => Err(Error::os(context(), e)),
        }
    }

    /// Creates a new namespace of one type and returns a handle to it, changing nothing of
    /// the caller: a short-lived thread of its own `unshare`s (with `CLONE_FS` for a mount
    /// namespace, so that it takes no other thread's root and working directory along),
    /// opens its new namespace and exits. The handle keeps the namespace alive: enter it with
    /// [`setns`](crate::setns), give it a name with [`named`](crate::named), or
    /// [`persist`](crate::persist) it. The new namespace is a child of the caller's user
    /// namespace; a new time namespace is the one the thread's children would have got. A
    /// new mount namespace has every mount made private (`MS_REC | MS_PRIVATE`, as
    /// `unshare(1)` does): mounts made in it stay in it, and it can be persisted in a
    /// directory of the caller's that is shared without reaching itself.
    ///
    /// ```
    /// # fn main() -> ns_core::Result<()> {
    /// use ns_core::{Namespace, NsType};
    /// # if !ns_core::caps::has_cap(None, ns_core::caps::CapSet::Effective,
    /// #     ns_core::caps::Capability::CAP_SYS_ADMIN).unwrap_or(false) { return Ok(()); }
    /// let fresh = Namespace::create(NsType::NET)?;
    /// assert_ne!(fresh.id()?, Namespace::current(NsType::NET)?.id()?);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::NotOneType`]; [`Error::Invalid`] for a user or PID namespace, which only a new
    /// process can create (use `ns-container`); [`Error::Os`] when the kernel refuses
    /// (`EPERM` without `CAP_SYS_ADMIN` over the caller's user namespace, `ENOSPC` at a
    /// `/proc/sys/user/max_*_namespaces` limit).
    pub fn create(ns_type: NsType) -> Result<Namespace> {
        let context = || Context::new(Op::Create, ns_type, Subject::CallingThread);
        let Some(name) = ns_type.name() else {
            return Err(Error::NotOneType {
                context: context(),
                types: ns_type,
            });
        };
        if ns_type.intersects(NsType::USER | NsType::PID) {
            return Err(Error::Invalid {
                context: context(),
                reason: "a new user or pid namespace needs a new process (ns_container::NsCommand \
                         with unshare)"
                    .to_owned(),
            });
        }
        let flags = if ns_type == NsType::MNT {
            libc::CLONE_NEWNS | libc::CLONE_FS
        } else {
            ns_type.bits()
        };
        let link = if ns_type == NsType::TIME {
            "time_for_children"
        } else {
            name
        };
        let made = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("ns-create".to_owned())
                .spawn_scoped(scope, || {
                    // SAFETY: CLONE_NEW* flags and CLONE_FS, which gives this thread, and
                    // only it, its own root and working directory; the thread ends right after.
                    unsafe { ns_sys::unshare(flags) }?;
                    if ns_type == NsType::MNT {
                        // Every mount private, so that nothing propagates in or out.
                        sys::mount(None, c"/", libc::MS_REC | libc::MS_PRIVATE)?;
                    }
                    sys::open_thread_ns(link)
                })
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(std::io::Error::other("panicked")))
                })
        });
        match made {
            Ok(Ok(fd)) => Namespace::from_open_fd(fd, Some(ns_type), Subject::CallingThread),
            Ok(Err(e))
                if e.raw_os_error() == Some(libc::EINVAL) && !nstypes().contains(ns_type) =>
            {
                Err(Error::Unsupported {
                    context: context(),
                    needs: format!("a kernel with {name} namespaces"),
                })
            }
            Ok(Err(e)) | Err(e) => Err(Error::os(context(), e)),
        }
    }

    /// Checks that `fd` is a namespace file and wraps it (the same as `TryFrom<OwnedFd>`).
    ///
    /// # Errors
    /// [`Error::NotNamespace`] when it is not, [`Error::Os`] when `fstatfs` fails.
    pub fn from_fd(fd: OwnedFd) -> Result<Namespace> {
        let origin = Subject::Fd(fd.as_raw_fd());
        Namespace::from_open_fd(fd, None, origin)
    }

    /// The namespace's type (found with `NS_GET_NSTYPE` when the handle was made).
    pub fn ns_type(&self) -> NsType {
        self.ns_type
    }

    /// Where the handle came from (path, PID, thread or fd), as error messages name it.
    pub fn origin(&self) -> &Subject {
        &self.origin
    }

    /// A second handle to the same namespace (`F_DUPFD_CLOEXEC`).
    ///
    /// # Errors
    /// [`Error::Os`] when the process is out of file descriptors.
    pub fn try_clone(&self) -> Result<Namespace> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| Error::os(self.context(Op::Open), e))?;
        Ok(Namespace {
            fd,
            ns_type: self.ns_type,
            origin: self.origin.clone(),
        })
    }

    pub(crate) fn context(&self, op: Op) -> Context {
        Context::new(op, self.ns_type, self.origin.clone())
    }

    /// Wraps a file descriptor returned by an nsfs ioctl.
    fn related(&self, fd: OwnedFd, what: NsType) -> Result<Namespace> {
        let origin = self.origin.clone();
        Namespace::from_open_fd(fd, Some(what), origin)
    }

    /// The user namespace that owns this namespace (`NS_GET_USERNS`, Linux 4.9).
    ///
    /// Returns `Ok(None)` when the owner lies outside the caller's user namespace (the
    /// kernel's `EPERM`), which is always the case for the initial user namespace.
    ///
    /// # Errors
    /// [`Error::Unsupported`] before Linux 4.9.
    pub fn owner(&self) -> Result<Option<Namespace>> {
        match ns_sys::nsfs::ns_get_userns(self.as_fd()) {
            Ok(fd) => self.related(fd, NsType::USER).map(Some),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(None),
            Err(e) => Err(self.ioctl_error(e, "NS_GET_USERNS needs Linux 4.9")),
        }
    }

    /// The parent of a PID or user namespace (`NS_GET_PARENT`, Linux 4.9).
    ///
    /// Returns `Ok(None)` at the root of the tree, or when the parent lies outside the
    /// caller's view (the kernel answers `EPERM` for both).
    ///
    /// # Errors
    /// [`Error::Invalid`] for other types, which have no parents; [`Error::Unsupported`]
    /// before Linux 4.9.
    pub fn parent(&self) -> Result<Option<Namespace>> {
        if !matches!(self.ns_type, NsType::PID | NsType::USER) {
            return Err(Error::Invalid {
                context: self.context(Op::Inspect),
                reason: "only pid and user namespaces have parents".to_owned(),
            });
        }
        match ns_sys::nsfs::ns_get_parent(self.as_fd()) {
            Ok(fd) => self.related(fd, self.ns_type).map(Some),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(None),
            Err(e) => Err(self.ioctl_error(e, "NS_GET_PARENT needs Linux 4.9")),
        }
    }

    /// The UID, in the caller's user namespace, of the process that created this user
    /// namespace (`NS_GET_OWNER_UID`, Linux 4.11). The overflow UID (65534) when that UID
    /// has no mapping in the caller's user namespace.
    ///
    /// # Errors
    /// [`Error::Invalid`] for other types; [`Error::Unsupported`] before Linux 4.11.
    pub fn owner_uid(&self) -> Result<libc::uid_t> {
        if self.ns_type != NsType::USER {
            return Err(Error::Invalid {
                context: self.context(Op::Inspect),
                reason: "only user namespaces have an owner uid".to_owned(),
            });
        }
        ns_sys::nsfs::ns_get_owner_uid(self.as_fd())
            .map_err(|e| self.ioctl_error(e, "NS_GET_OWNER_UID needs Linux 4.11"))
    }

    /// The PID, in the caller's PID namespace, of the process whose PID in this PID namespace
    /// is `pid` (`NS_GET_PID_FROM_PIDNS`, Linux 6.11).
    ///
    /// Returns `Ok(None)` when there is no such process, or it is not visible to the caller.
    ///
    /// # Errors
    /// [`Error::Invalid`] for other types; [`Error::Unsupported`] before Linux 6.11.
    pub fn pid_to_caller(&self, pid: libc::pid_t) -> Result<Option<libc::pid_t>> {
        self.translate(
            pid,
            ns_sys::nsfs::ns_get_pid_from_pidns,
            "NS_GET_PID_FROM_PIDNS",
        )
    }

    /// Like [`Namespace::pid_to_caller`], for the thread-group id of that task
    /// (`NS_GET_TGID_FROM_PIDNS`).
    ///
    /// # Errors
    /// As [`Namespace::pid_to_caller`].
    pub fn tgid_to_caller(&self, pid: libc::pid_t) -> Result<Option<libc::pid_t>> {
        self.translate(
            pid,
            ns_sys::nsfs::ns_get_tgid_from_pidns,
            "NS_GET_TGID_FROM_PIDNS",
        )
    }

    /// The PID in this PID namespace of the process whose PID in the caller's PID namespace is
    /// `pid` (`NS_GET_PID_IN_PIDNS`, Linux 6.11).
    ///
    /// Returns `Ok(None)` when there is no such process, or it does not live in this
    /// namespace or below it.
    ///
    /// # Errors
    /// As [`Namespace::pid_to_caller`].
    pub fn pid_from_caller(&self, pid: libc::pid_t) -> Result<Option<libc::pid_t>> {
        self.translate(
            pid,
            ns_sys::nsfs::ns_get_pid_in_pidns,
            "NS_GET_PID_IN_PIDNS",
        )
    }

    /// Like [`Namespace::pid_from_caller`], for the thread-group id of that task
    /// (`NS_GET_TGID_IN_PIDNS`).
    ///
    /// # Errors
    /// As [`Namespace::pid_to_caller`].
    pub fn tgid_from_caller(&self, pid: libc::pid_t) -> Result<Option<libc::pid_t>> {
        self.translate(
            pid,
            ns_sys::nsfs::ns_get_tgid_in_pidns,
            "NS_GET_TGID_IN_PIDNS",
        )
    }

    fn translate(
        &self,
        pid: libc::pid_t,
        call: fn(BorrowedFd<'_>, libc::pid_t) -> std::io::Result<libc::pid_t>,
        name: &str,
    ) -> Result<Option<libc::pid_t>> {
        if self.ns_type != NsType::PID {
            return Err(Error::Invalid {
                context: self.context(Op::Translate),
                reason: "pids can only be translated with a pid namespace".to_owned(),
            });
        }
        match call(self.as_fd(), pid) {
            Ok(pid) => Ok(Some(pid)),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => Err(Error::Unsupported {
                context: self.context(Op::Translate),
                needs: format!("{name} needs Linux 6.11"),
            }),
            Err(e) => Err(Error::os(self.context(Op::Translate), e)),
        }
    }

    fn ioctl_error(&self, e: std::io::Error, needs: &str) -> Error {
        if e.raw_os_error() == Some(libc::ENOTTY) {
            Error::Unsupported {
                context: self.context(Op::Inspect),
                needs: needs.to_owned(),
            }
        } else {
            Error::os(self.context(Op::Inspect), e)
        }
    }

    /// Moves the calling thread into this namespace with `setns(2)`.
    ///
    /// What moves depends on the type (see the guide's table): for net, uts, ipc, cgroup and
    /// mnt only the calling thread; for PID only the thread's future children
    /// (`pid_for_children`); for user and time the whole (necessarily single-threaded)
    /// process. Entering the user namespace the caller is already in does nothing (the kernel
    /// would refuse it with `EINVAL`). Entering a mount namespace sets the thread's root and
    /// working directory to that namespace's root.
    ///
    /// # Errors
    /// - [`Error::ThreadRule`] when the kernel's thread rules forbid it: a user or time
    ///   namespace from a multithreaded process, a mount namespace from a thread that shares
    ///   its filesystem state with other threads.
    /// - [`Error::Invalid`] for a PID namespace that is neither the caller's own nor below it.
    /// - [`Error::Os`] otherwise; `EPERM` lists the capabilities the caller lacks
    ///   (`CAP_SYS_ADMIN`, plus `CAP_SYS_CHROOT` for mnt).
    ///
    /// On error the thread's namespaces are unchanged.
    pub fn enter(&self) -> Result<()> {
        check_thread_rules(self.ns_type, || self.context(Op::Enter))?;
        if self.ns_type == NsType::USER && self.is_current_user_ns()? {
            return Ok(());
        }
        ns_sys::setns(self.as_fd(), self.ns_type.bits())
            .map_err(|e| enter_error(e, self.ns_type, self.context(Op::Enter)))
    }

    /// Whether this user namespace is the caller's own.
    pub(crate) fn is_current_user_ns(&self) -> Result<bool> {
        let mine = Namespace::current(NsType::USER)?.id()?;
        Ok(self.id()? == mine)
    }
}

/// Checks the rules that can be checked before calling `setns` for `types`.
pub(crate) fn check_thread_rules(types: NsType, context: impl Fn() -> Context) -> Result<()> {
    if !types.intersects(NsType::USER | NsType::TIME) {
        return Ok(());
    }
    let threads = sys::thread_count().map_err(|e| Error::os(context(), e))?;
    if threads > 1 {
        let rule = if types.contains(NsType::USER) {
            ThreadRule::UserNeedsSingleThread { threads }
        } else {
            ThreadRule::TimeNeedsSingleThread { threads }
        };
        return Err(Error::ThreadRule {
            context: context(),
            rule,
        });
    }
    Ok(())
}

/// Whether the calling thread shares its filesystem state (root, cwd) with another thread of
/// the process, which forbids entering a mount namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FsSharing {
    /// Not shared: mount namespaces may be entered.
    Private,
    /// Shared with at least one other thread; the process has this many threads.
    Shared(usize),
    /// Unknown: the kernel lacks `kcmp(2)` (`CONFIG_KCMP`).
    Unknown,
}

/// Finds out with `kcmp(KCMP_FS)` whether the calling thread shares its filesystem state.
///
/// This matters because `setns(pidfd, CLONE_NEWNS | …)` does not check it: the kernel works
/// on a private copy of the thread's fs state and then writes the new root and working
/// directory back into the *shared* one, moving the root of every thread that shares it. Only
/// `setns(fd, CLONE_NEWNS)` alone is refused with `EINVAL`.
pub(crate) fn fs_sharing() -> std::io::Result<FsSharing> {
    let threads = sys::thread_count()?;
    if threads <= 1 {
        return Ok(FsSharing::Private);
    }
    let me = sys::gettid();
    for entry in std::fs::read_dir("/proc/self/task")? {
        let Some(tid) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if tid == me {
            continue;
        }
        match ns_sys::ns::kcmp(me, tid, ns_sys::ns::KCMP_FS, 0, 0) {
            Ok(0) => return Ok(FsSharing::Shared(threads)),
            Ok(_) => {}
            // The thread exited meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(_) => return Ok(FsSharing::Unknown),
        }
    }
    Ok(FsSharing::Private)
}

/// Turns a failed `setns` into the most precise error.
pub(crate) fn enter_error(e: std::io::Error, types: NsType, context: Context) -> Error {
    let threads = || sys::thread_count().unwrap_or(0);
    match e.raw_os_error() {
        Some(libc::ESRCH) => Error::ProcessGone { context },
        Some(libc::EUSERS) if types.contains(NsType::TIME) => Error::ThreadRule {
            context,
            rule: ThreadRule::TimeNeedsSingleThread { threads: threads() },
        },
        Some(libc::EINVAL) if types == NsType::USER => Error::ThreadRule {
            context,
            rule: ThreadRule::UserNeedsSingleThread { threads: threads() },
        },
        Some(libc::EINVAL) if types == NsType::MNT && threads() > 1 => Error::ThreadRule {
            context,
            rule: ThreadRule::MountNeedsUnsharedFs { threads: threads() },
        },
        Some(libc::EINVAL) if types == NsType::PID => Error::Invalid {
            context,
            reason: "the pid namespace is neither the caller's own nor a descendant of it \
                     (EINVAL)"
                .to_owned(),
        },
        _ => Error::os(context, e),
    }
}

impl AsFd for Namespace {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Namespace {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl IntoRawFd for Namespace {
    fn into_raw_fd(self) -> RawFd {
        self.fd.into_raw_fd()
    }
}

impl From<Namespace> for OwnedFd {
    fn from(ns: Namespace) -> OwnedFd {
        ns.fd
    }
}

impl TryFrom<OwnedFd> for Namespace {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<Namespace> {
        Namespace::from_fd(fd)
    }
}
