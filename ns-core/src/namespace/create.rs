//! [`Namespace::create`]: a new namespace of one type, made by a short-lived thread so that
//! the caller's own namespaces never change.
//!
//! The only place in the handle's folder that creates namespaces; user and PID namespaces,
//! which need a new process, are refused here and made by `ns-container`.

use super::Namespace;
use crate::error::{Context, Error, Op, Result, Subject};
use crate::kernel::nstypes;
use crate::ns_type::NsType;
use crate::sys;

impl Namespace {
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
}
