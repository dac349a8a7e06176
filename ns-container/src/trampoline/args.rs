//! The trampoline's arguments: descriptor numbers, signal, directory and ids as decimal
//! strings, prepared by the caller before the spawn (the trampoline parses, never allocates).

use std::ffi::CString;
use std::os::fd::RawFd;

/// `argv[0]` of the trampoline.
pub(crate) const NAME: &std::ffi::CStr = c"ns-enter-user";

/// The most supplementary groups the trampoline sets (more go the copy path).
pub(crate) const MAX_GROUPS: usize = 64;

/// The trampoline's arguments before the PATH candidates and the program's `argv`.
pub(crate) struct Args {
    pub strings: [CString; 9],
}

/// The credentials the trampoline sets after entering the user namespace.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ids<'a> {
    pub groups: Option<&'a [libc::gid_t]>,
    /// Without `groups`: drop the supplementary groups, ignoring a refusal.
    pub drop_groups: bool,
    pub gid: Option<libc::gid_t>,
    pub uid: Option<libc::uid_t>,
}

impl Args {
    /// `user_ns` (none: the exec relay, which enters no namespace), `status` and `caller` are
    /// descriptor numbers in the child.
    pub(crate) fn new(
        user_ns: Option<RawFd>,
        status: RawFd,
        caller: RawFd,
        pdeathsig: libc::c_int,
        cwd: Option<&std::ffi::CStr>,
        ids: Ids<'_>,
        candidates: usize,
    ) -> Args {
        let text = |s: String| CString::new(s).unwrap_or_default();
        let groups = match ids.groups {
            None if ids.drop_groups => "!".to_owned(),
            None => "-".to_owned(),
            Some(g) => g
                .iter()
                .take(MAX_GROUPS)
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        };
        Args {
            strings: [
                text(user_ns.map(|fd| fd.to_string()).unwrap_or_default()),
                text(status.to_string()),
                text(caller.to_string()),
                text(pdeathsig.max(0).to_string()),
                // "=" and the directory, or nothing: an empty directory is refused by
                // chdir, as on the other paths, not taken for none.
                cwd.map(|d| {
                    let mut v = b"=".to_vec();
                    v.extend_from_slice(d.to_bytes());
                    CString::new(v).unwrap_or_default()
                })
                .unwrap_or_default(),
                text(groups),
                text(ids.gid.map(|g| g.to_string()).unwrap_or_default()),
                text(ids.uid.map(|u| u.to_string()).unwrap_or_default()),
                text(candidates.to_string()),
            ],
        }
    }

    /// The complete, NULL-terminated `argv` of the trampoline.
    pub(crate) fn argv(
        &self,
        candidates: &[*const libc::c_char],
        program_argv: &[*const libc::c_char],
    ) -> Vec<*const libc::c_char> {
        let mut v =
            Vec::with_capacity(1 + self.strings.len() + candidates.len() + program_argv.len());
        v.push(NAME.as_ptr());
        v.extend(self.strings.iter().map(|s| s.as_ptr()));
        // Both arrays end with their NULL; only the program's is kept.
        v.extend(candidates.iter().copied().take_while(|p| !p.is_null()));
        v.extend(program_argv.iter().copied());
        v
    }
}
