//! How a runner recognises namespaces: their (device, inode) keys, the label a message names
//! one by, and the types a thread may move between. The bottom of the runner: no thread
//! state here.

use std::os::fd::{AsRawFd, OwnedFd};

use ns_core::{Namespace, NsType};

use crate::error::{Error, Result};

pub(super) const STARTING: &str = "starting a namespace runner";

/// The types a runner thread can move between. User and time namespaces cannot be entered by
/// one thread of a multithreaded process.
pub(super) const RUNNABLE: [NsType; 6] = [
    NsType::NET,
    NsType::UTS,
    NsType::IPC,
    NsType::CGROUP,
    NsType::MNT,
    NsType::PID,
];

/// `(dev, ino)` of a namespace handle: its identity for as long as it is held open (one
/// `fstat`; the never-reused `NS_GET_ID` is not needed while the handle pins it).
pub(super) fn key_of(ns: &Namespace) -> Result<(u64, u64)> {
    ns_sys::fd::dev_ino(std::os::fd::AsFd::as_fd(ns)).map_err(|e| {
        Error::Core(ns_core::Error::os(
            ns_core::Context::new(ns_core::Op::Identify, ns.ns_type(), ns.origin().clone()),
            e,
        ))
    })
}

/// What a job's namespace is called in messages, built only when a message is needed.
#[derive(Clone, Copy)]
pub(super) struct Label {
    pub(super) ns_type: NsType,
    pub(super) ino: Option<u64>,
}

impl Label {
    pub(super) fn of(ns: &Namespace) -> Label {
        Label {
            ns_type: ns.ns_type(),
            ino: key_of(ns).ok().map(|(_, ino)| ino),
        }
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.ns_type.name().unwrap_or("?");
        match self.ino {
            Some(ino) => write!(f, "{name} namespace {name}:[{ino}]"),
            None => f.write_str("a namespace"),
        }
    }
}

/// `(dev, ino)` of the calling thread's namespace of type `t` (pid: for its children), read
/// through the thread's own `/proc/thread-self/ns` directory, opened when it started: the
/// mount namespace a closure runs in may have no `/proc`, or one of another pid namespace.
pub(super) fn current_key(ns_dir: &OwnedFd, t: NsType) -> std::io::Result<(u64, u64)> {
    let name = match t {
        NsType::PID => c"pid_for_children",
        NsType::NET => c"net",
        NsType::UTS => c"uts",
        NsType::IPC => c"ipc",
        NsType::CGROUP => c"cgroup",
        _ => c"mnt",
    };
    // SAFETY: an all-zero stat is valid storage for fstatat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated name relative to a live directory descriptor.
    if unsafe { libc::fstatat(ns_dir.as_raw_fd(), name.as_ptr(), &mut st, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.st_dev, st.st_ino))
}

/// Opens a directory as a handle (`O_PATH`).
pub(super) fn open_dir(path: &std::ffi::CStr) -> std::io::Result<OwnedFd> {
    crate::sys::open_cloexec(path, libc::O_PATH | libc::O_DIRECTORY)
}
