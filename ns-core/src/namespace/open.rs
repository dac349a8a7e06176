//! Opening namespaces that exist: a namespace file by path, a process's by PID, the
//! calling thread's own and the one its next children get.
//!
//! Every constructor ends in `Namespace::from_open_fd` (in `mod.rs`), so nothing here wraps
//! an unchecked descriptor.

use std::path::{Path, PathBuf};

use super::Namespace;
use crate::error::{Context, Error, Op, Result, Subject};
use crate::kernel::nstypes;
use crate::ns_type::NsType;
use crate::sys;

impl Namespace {
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
}
