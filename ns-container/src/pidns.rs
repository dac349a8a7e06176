//! Spawned processes that live in a pid namespace other than the caller's, so that waiting
//! for a namespace's init can reap what the caller's own spawns left in it.
//!
//! Every spawned process is the caller's child (`CLONE_PARENT`), also one spawned into a
//! container's pid namespace (an exec). When the container's init dies, the kernel kills
//! every process of its namespace and keeps the init from exiting until all of them are
//! reaped: those that are the caller's children only the caller can reap. A thread waiting
//! for the init would then wait on itself. So each handle of a process in a foreign pid
//! namespace is kept here (weakly) with its namespace and those above it, and a wait for an
//! init reaps, without blocking, every such process of that namespace (or one below it) that
//! has exited, keeping its status for its own handle. Only an init's handle waits so; while
//! the caller holds none (an agent executing into containers it did not start), nothing is
//! kept.
//!
//! No system call here runs between `clone` and `execve`; the registry's lock is taken
//! only for a push or a scan, never across a wait.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use ns_core::{Namespace, NsType};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// A pid namespace: (device, inode) of its nsfs file.
pub(crate) type NsKey = (u64, u64);

/// A spawned process as its handle and the registry share it.
#[derive(Debug)]
pub(crate) struct Reapable {
    pub(crate) pidfd: OwnedFd,
    /// The wait status, when something other than its own handle reaped it here.
    taken: Mutex<Option<libc::c_int>>,
    /// Its pid namespace first, then each one above it up to the caller's; empty when it was
    /// not registered.
    chain: Vec<NsKey>,
}

/// Every registered process whose handle still exists.
static LIVE: Mutex<Vec<Weak<Reapable>>> = Mutex::new(Vec::new());

/// Set in a closure child: the registry it copied may have been held, or half-changed, by
/// another thread of the caller at the fork, so this process never touches it.
static FORGOTTEN: AtomicBool = AtomicBool::new(false);

/// In a closure child: stop using the registry copied from the caller (async-signal-safe).
/// Its own spawns into pid namespaces are then not kept for their inits' waits.
pub(crate) fn forget_after_fork() {
    FORGOTTEN.store(true, Ordering::Relaxed);
}

/// How many handles of inits of pid namespaces the caller's spawns made exist, or are being
/// spawned. While there are none, nothing can wait for an init (only such a handle does), so
/// a process spawned into a foreign pid namespace needs no chain and is not kept: the five
/// system calls of its chain are saved on every exec into a container the caller did not
/// start itself.
static INIT_HANDLES: AtomicUsize = AtomicUsize::new(0);

/// Counts one init handle (see [`INIT_HANDLES`]), from before its spawn starts (so that no
/// process can enter its namespace unseen) until the handle is dropped.
#[derive(Debug)]
pub(crate) struct InitHandle(());

impl InitHandle {
    pub(crate) fn new() -> InitHandle {
        INIT_HANDLES.fetch_add(1, Ordering::SeqCst);
        InitHandle(())
    }
}

impl Drop for InitHandle {
    fn drop(&mut self) {
        INIT_HANDLES.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether any init handle exists (or is being spawned).
pub(crate) fn any_init_handle() -> bool {
    INIT_HANDLES.load(Ordering::SeqCst) > 0
}

impl Reapable {
    pub(crate) fn new(pidfd: OwnedFd, chain: Vec<NsKey>) -> Arc<Reapable> {
        Arc::new(Reapable {
            pidfd,
            taken: Mutex::new(None),
            chain,
        })
    }

    /// The status kept for this process by a wait for its namespace's init.
    pub(crate) fn taken(&self) -> Option<libc::c_int> {
        *lock(&self.taken)
    }

    /// Its own pid namespace, if registered.
    pub(crate) fn own_namespace(&self) -> Option<NsKey> {
        self.chain.first().copied()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The pid namespace of the process `pid` (held by `pidfd`) and every one above it that the
/// caller can see; empty if it cannot be read (or the process is already gone).
pub(crate) fn chain_of(pid: libc::pid_t, pidfd: &OwnedFd) -> Vec<NsKey> {
    let Ok(ns) = Namespace::of_pid(pid, NsType::PID) else {
        return Vec::new();
    };
    // The handle is the process's only if it still lives now (the pid was not reused).
    if ns_sys::pidfd_send_signal(pidfd.as_fd(), 0).is_err() {
        return Vec::new();
    }
    chain_from(&ns)
}

/// The pid namespace `ns` and every one above it that the caller can see (no `/proc`
/// needed: for a process spawned into a namespace the spawn holds a handle of).
pub(crate) fn chain_from(ns: &Namespace) -> Vec<NsKey> {
    chain_of_handle(ns.as_fd())
}

/// The same from a borrowed handle: `fstat` and `NS_GET_PARENT` per level, nothing else (it
/// runs on every spawn into a pid namespace).
fn chain_of_handle(ns: BorrowedFd<'_>) -> Vec<NsKey> {
    let mut chain = Vec::new();
    let mut parent: Option<OwnedFd> = None;
    loop {
        let fd = parent.as_ref().map_or(ns, AsFd::as_fd);
        let Some(key) = key_of(fd) else { break };
        chain.push(key);
        if chain.len() > 32 {
            break;
        }
        // EPERM at the root of the tree or above the caller's view.
        match ns_sys::nsfs::ns_get_parent(fd) {
            Ok(p) => parent = Some(p),
            Err(_) => break,
        }
    }
    chain
}

/// (device, inode) of an nsfs file.
fn key_of(fd: BorrowedFd<'_>) -> Option<NsKey> {
    ns_sys::fd::dev_ino(fd).ok()
}

/// Keeps `r` (weakly) for waits on the init of its namespace or one above it.
pub(crate) fn register(r: &Arc<Reapable>) {
    if r.chain.is_empty() || FORGOTTEN.load(Ordering::Relaxed) {
        return;
    }
    let mut live = lock(&LIVE);
    live.retain(|w| w.strong_count() > 0);
    live.push(Arc::downgrade(r));
}

/// Reaps, without waiting, every registered process but `own` that lives in the pid
/// namespace `ns` (or one below it) and has exited, keeping each status for its handle.
pub(crate) fn release(ns: NsKey, own: &Arc<Reapable>) {
    if FORGOTTEN.load(Ordering::Relaxed) {
        return;
    }
    let candidates: Vec<Arc<Reapable>> = lock(&LIVE)
        .iter()
        .filter_map(Weak::upgrade)
        .filter(|r| !Arc::ptr_eq(r, own) && r.chain.contains(&ns))
        .collect();
    for r in candidates {
        // Held across the reap, so that the process's own handle, seeing ECHILD, finds the
        // status here.
        let mut slot = lock(&r.taken);
        if slot.is_some() {
            continue;
        }
        let options = libc::WEXITED | libc::WNOHANG | libc::__WALL;
        if let Ok(Some(info)) = ns_sys::pidfd_wait(r.pidfd.as_fd(), options) {
            *slot = Some(crate::sys::wait_status(&info));
        }
    }
}
