//! What an error is about: the operation ([`Op`]), the namespace types and the subject
//! ([`Subject`]), which together make the first half of every message ([`Context`]).
//!
//! Plain data with its `Display`; it knows nothing of causes and makes no system calls.

use std::fmt;
use std::path::PathBuf;

use crate::ns_type::NsType;

/// What was being done when an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// Naming a type ([`nsname`](crate::nsname)).
    Name,
    /// Finding out which types the kernel supports.
    Detect,
    /// Opening a namespace file or handle.
    Open,
    /// Reading a namespace's identity.
    Identify,
    /// Asking the kernel about a namespace (`ioctl_ns`).
    Inspect,
    /// Translating a PID between PID namespaces.
    Translate,
    /// Pinning a process (pidfd, then its namespace files).
    Pin,
    /// Moving the calling thread (or its future children) into namespaces.
    Enter,
    /// Moving back to the namespaces the thread was in before a failed entry.
    Restore,
    /// Creating new namespaces.
    Create,
    /// Bind-mounting a namespace file onto a path.
    Persist,
    /// Unmounting a persisted namespace file.
    Unpersist,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Name => "naming",
            Op::Detect => "detecting support for",
            Op::Open => "opening",
            Op::Identify => "identifying",
            Op::Inspect => "inspecting",
            Op::Translate => "translating a pid with",
            Op::Pin => "pinning",
            Op::Enter => "entering",
            Op::Restore => "restoring",
            Op::Create => "creating",
            Op::Persist => "persisting",
            Op::Unpersist => "unpersisting",
        })
    }
}

/// Whose namespace, or which file, an operation was about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Subject {
    /// Nothing in particular.
    None,
    /// A namespace file at a path.
    Path(PathBuf),
    /// A process, by PID (as seen from the caller's PID namespace).
    Pid(libc::pid_t),
    /// The calling thread's own namespaces.
    CallingThread,
    /// A handle that was made from a file descriptor.
    Fd(std::os::fd::RawFd),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::None => Ok(()),
            Subject::Path(p) => write!(f, " at {}", p.display()),
            Subject::Pid(pid) => write!(f, " of pid {pid}"),
            Subject::CallingThread => f.write_str(" of the calling thread"),
            Subject::Fd(fd) => write!(f, " from fd {fd}"),
        }
    }
}

/// The operation, namespace types and subject of an error: the first half of its message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Context {
    /// What was being done.
    pub op: Op,
    /// The namespace types involved (may be empty when unknown).
    pub ns: NsType,
    /// Whose namespace or which file.
    pub subject: Subject,
}

impl Context {
    /// Builds a context.
    pub fn new(op: Op, ns: NsType, subject: Subject) -> Context {
        Context { op, ns, subject }
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}{}", self.op, self.ns.describe(), self.subject)
    }
}
