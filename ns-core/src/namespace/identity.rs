//! [`Namespace::id`], and whether a user namespace is the caller's own.
//!
//! The handle's side of identity; the value [`NsId`] itself, and `getns`, which needs no
//! handle, are in `id.rs`.

use std::os::fd::AsFd;

use super::Namespace;
use crate::error::{Error, Op, Result};
use crate::id::NsId;
use crate::ns_type::NsType;

impl Namespace {
    /// The identity of this namespace.
    ///
    /// # Errors
    /// [`Error::Os`] if `fstat` fails, which does not happen for a valid handle.
    pub fn id(&self) -> Result<NsId> {
        NsId::of_fd(self.as_fd(), self.ns_type())
            .map_err(|e| Error::os(self.context(Op::Identify), e))
    }

    /// Whether this user namespace is the caller's own.
    ///
    /// Asked on every entry that names a user namespace, so first the cheap way: a `stat`
    /// through the calling thread's `/proc/thread-self/ns/user` link (no descriptor) against
    /// this handle's `fstat`. Both namespaces are alive (the caller's, and the one this handle
    /// holds), so the same device and inode are the same namespace. Where the link cannot be
    /// followed, the thread's namespace is opened.
    pub(crate) fn is_current_user_ns(&self) -> Result<bool> {
        if let Some(mine) = crate::sys::thread_user_ns_id() {
            let theirs = ns_sys::fd::dev_ino(self.as_fd())
                .map_err(|e| Error::os(self.context(Op::Identify), e))?;
            return Ok(theirs == mine);
        }
        let mine = Namespace::current(NsType::USER)?.id()?;
        Ok(self.id()? == mine)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_user_link_names_the_threads_own_user_namespace() {
        let mine = Namespace::current(NsType::USER).unwrap();
        let id = mine.id().unwrap();
        assert_eq!(crate::sys::thread_user_ns_id(), Some((id.dev(), id.ino())));
        assert!(mine.is_current_user_ns().unwrap());
    }
}
