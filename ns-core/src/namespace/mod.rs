//! [`Namespace`]: an owned handle to one namespace.
//!
//! `mod.rs` holds the handle itself: its fields, the check every constructor goes through
//! (nsfs magic, then the type), the accessors and std's descriptor conversions. The other
//! files each add one group of methods, and use only what is here and the files below this
//! folder (`thread_rules`, `id`, `kernel`, `sys`, `error`, `ns_type`):
//!
//! | file | methods |
//! |---|---|
//! | `open.rs` | opening existing namespaces: by path, by PID, the calling thread's |
//! | `create.rs` | [`Namespace::create`]: a new namespace, made on a short-lived thread |
//! | `identity.rs` | [`Namespace::id`] and whether a user namespace is the caller's own |
//! | `inspect.rs` | `ioctl_ns` questions: owner, parent, owner UID, PID translation |
//! | `enter.rs` | [`Namespace::enter`]: `setns(2)` of the calling thread |
//!
//! Nothing in this folder knows of [`Target`](crate::Target), persisting or names.

mod create;
mod enter;
mod identity;
mod inspect;
mod open;

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};

use crate::error::{Context, Error, Op, Result, Subject};
use crate::ns_type::NsType;
use crate::sys;

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
