//! Namespace identity: the value [`NsId`] and Mesos's [`getns`].
//!
//! Ids are read from a descriptor or a `/proc` path with `stat`; this file knows nothing of
//! [`Namespace`](crate::Namespace) handles (their `id()` is in `namespace/identity.rs`).

use std::fmt;
use std::io::Write;
use std::os::fd::BorrowedFd;

use crate::error::{Context, Error, Op, Result, Subject};
use crate::kernel::single_supported;
use crate::ns_type::NsType;

/// The identity of one namespace.
///
/// Two handles, paths or processes refer to the same namespace exactly when their `NsId`s are
/// equal. The identity is the type and `(st_dev, st_ino)` of the namespace's nsfs file (from
/// `stat`/`fstat` of the file the link points to, so a bind mount of the file has the same
/// identity as the `/proc` link). Inode numbers *are* reused once a namespace dies, so compare
/// ids of namespaces you hold open. Where an id was read from a handle
/// ([`Namespace::id`](crate::Namespace::id)) on Linux 6.18 and later, it also carries the
/// 64-bit id from `NS_GET_ID`, which is never reused: [`NsId::unique_id`], and
/// [`NsId::same_namespace`] uses it when both sides have it. It is not part of equality,
/// so that an id from [`getns`] (one `stat`, no unique id) equals the id of a handle to the
/// same namespace.
///
/// `Display` writes the form of the `/proc/PID/ns` links, `net:[4026531833]`.
#[derive(Debug, Clone, Copy)]
pub struct NsId {
    ns_type: NsType,
    dev: u64,
    ino: u64,
    unique: Option<u64>,
}

impl NsId {
    /// Reads the identity of the namespace file behind `fd`, of type `ns_type`.
    pub(crate) fn of_fd(fd: BorrowedFd<'_>, ns_type: NsType) -> std::io::Result<NsId> {
        let (dev, ino) = ns_sys::fd::dev_ino(fd)?;
        let unique = ns_sys::nsfs::ns_get_id(fd).ok();
        Ok(NsId {
            ns_type,
            dev,
            ino,
            unique,
        })
    }

    /// The namespace's type.
    pub fn ns_type(&self) -> NsType {
        self.ns_type
    }

    /// The inode number: what Mesos's `getns` returned and what `lsns` shows in its NS column.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The device number of the nsfs filesystem.
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// The 64-bit id that is never reused (`NS_GET_ID`, Linux 6.18), for ids read from a
    /// handle ([`Namespace::id`](crate::Namespace::id)); `None` on older kernels and for ids
    /// from [`getns`].
    pub fn unique_id(&self) -> Option<u64> {
        self.unique
    }

    /// Whether both ids name the same namespace, also across the death of one of them: the
    /// never-reused ids decide when both are known, else the type and `(dev, ino)`, as `==`.
    pub fn same_namespace(&self, other: &NsId) -> bool {
        match (self.unique, other.unique) {
            (Some(a), Some(b)) => a == b && self.ns_type == other.ns_type,
            _ => self == other,
        }
    }

    fn key(&self) -> (NsType, u64, u64) {
        (self.ns_type, self.dev, self.ino)
    }
}

impl PartialEq for NsId {
    fn eq(&self, other: &NsId) -> bool {
        self.key() == other.key()
    }
}

impl Eq for NsId {}

impl std::hash::Hash for NsId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for NsId {
    fn partial_cmp(&self, other: &NsId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for NsId {
    fn cmp(&self, other: &NsId) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl fmt::Display for NsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:[{}]", self.ns_type.name().unwrap_or("?"), self.ino)
    }
}

/// Mesos `ns::getns`: the identity of the `ns_type` namespace of process `pid`.
///
/// One `stat` of `/proc/PID/ns/TYPE`, as cheap as asking for the file itself; the id it
/// returns has no [`NsId::unique_id`] (that needs a handle: `Namespace::of_pid(..)?.id()`).
/// Returns `Ok(None)` when the process does not exist or has exited (a zombie has no
/// namespaces any more), as Mesos does for a missing process.
///
/// ```
/// use ns_core::{getns, Namespace, NsType};
/// let me = std::process::id() as libc::pid_t;
/// let id = getns(me, NsType::NET)?.expect("we exist");
/// assert_eq!(id, Namespace::current(NsType::NET)?.id()?);
/// # Ok::<(), ns_core::Error>(())
/// ```
///
/// # Errors
/// [`Error::NotOneType`] unless `ns_type` is exactly one type; [`Error::Unsupported`] when the
/// kernel lacks the type; [`Error::Os`] when the file cannot be read (`EACCES` for a process
/// the caller may not inspect, which needs `CAP_SYS_PTRACE` or the same user).
pub fn getns(pid: libc::pid_t, ns_type: NsType) -> Result<Option<NsId>> {
    let context = || Context::new(Op::Identify, ns_type, Subject::Pid(pid));
    let name = single_supported(ns_type, context)?;
    // "/proc/<pid>/ns/<name>\0" on the stack: no allocation on the way to the system call.
    let mut path = [0u8; 48];
    let mut w = std::io::Cursor::new(&mut path[..]);
    write!(w, "/proc/{pid}/ns/{name}\0").map_err(|e| Error::os(context(), e))?;
    // SAFETY: an all-zero stat is valid storage for the kernel to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated (written above) and `st` is live and writable.
    if unsafe { libc::stat(path.as_ptr() as *const libc::c_char, &mut st) } != 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT | libc::ESRCH) => Ok(None),
            _ => Err(Error::os(context(), e)),
        };
    }
    // st_ino is 32 bits wide on some 32-bit targets; nsfs inode numbers fit.
    #[allow(clippy::useless_conversion)]
    let ino = u64::from(st.st_ino);
    Ok(Some(NsId {
        ns_type,
        dev: st.st_dev,
        ino,
        unique: None,
    }))
}
