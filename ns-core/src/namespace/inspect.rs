//! What the kernel says about a namespace through `ioctl_ns(2)`: its owning user namespace,
//! its parent, the UID that owns a user namespace, and PIDs translated between PID
//! namespaces.
//!
//! Questions only: nothing here moves a thread or changes a namespace.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::Namespace;
use crate::error::{Error, Op, Result};
use crate::ns_type::NsType;

impl Namespace {
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
}
