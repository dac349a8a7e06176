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
    pub(crate) fn is_current_user_ns(&self) -> Result<bool> {
        let mine = Namespace::current(NsType::USER)?.id()?;
        Ok(self.id()? == mine)
    }
}
