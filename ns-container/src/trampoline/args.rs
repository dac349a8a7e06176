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
    pub strings: [CString; 15],
}

/// The capabilities the trampoline sets (see [`Args::capabilities`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Caps {
    /// The capabilities kept in the bounding set (the rest dropped).
    pub bounding: Option<u64>,
    pub effective: Option<u64>,
    pub permitted: Option<u64>,
    pub inheritable: Option<u64>,
    pub ambient: Option<u64>,
    /// Keep the permitted set across the uid change (`PR_SET_KEEPCAPS` until the sets are
    /// set).
    pub keep: bool,
}

/// The fork argument: the program's process is created by the trampoline, in the pid
/// namespace the child entered for its children, as the caller's child.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fork {
    /// A memfd of one page the trampoline maps shared: the kernel writes the new process's
    /// pid there (`CLONE_PARENT_SETTID`), where the caller reads it.
    pub page: RawFd,
    /// The caller's pid: the trampoline's parent while the caller lives.
    pub caller: libc::pid_t,
    /// The four-byte slot of the page the kernel writes the pid into (below 1024).
    pub slot: usize,
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
    /// `namespaces` (none: the exec relay, which enters no namespace), `status` and `caller` are
    /// descriptor numbers in the child.
    pub(crate) fn new(
        namespaces: &[(RawFd, libc::c_int)],
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
                text(
                    namespaces
                        .iter()
                        .flat_map(|(fd, nstype)| [fd.to_string(), nstype.to_string()])
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                text(status.to_string()),
                // None (-1): no check that the caller lives.
                text(if caller < 0 {
                    String::new()
                } else {
                    caller.to_string()
                }),
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
                CString::default(),
                CString::default(),
                CString::default(),
                CString::default(),
                CString::default(),
                CString::default(),
                text(candidates.to_string()),
            ],
        }
    }

    /// The program's process is created by the trampoline (see [`Fork`]).
    pub(crate) fn forking(mut self, fork: Fork) -> Args {
        self.strings[8] = CString::new(format!("{},{},{}", fork.page, fork.caller, fork.slot))
            .unwrap_or_default();
        self
    }

    /// The trampoline sets the capabilities after the credentials change (after entering
    /// the user namespace), as `child::privileges` would: the bounding set before the ids,
    /// the sets (kept across the uid change when `keep`) and the ambient set after them.
    pub(crate) fn capabilities(mut self, caps: Caps) -> Args {
        let num = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        self.strings[10] = CString::new(num(caps.bounding)).unwrap_or_default();
        let asked = [caps.effective, caps.permitted, caps.inheritable];
        if asked.iter().any(Option::is_some) {
            let mut which = 0u32;
            let mut words = Vec::new();
            for (bit, set) in asked.iter().enumerate() {
                if set.is_some() {
                    which |= 1 << bit;
                }
                let v = set.unwrap_or(0);
                words.push((v & 0xffff_ffff).to_string());
                words.push((v >> 32).to_string());
            }
            if caps.keep {
                which |= 8;
            }
            self.strings[11] =
                CString::new(format!("{which},{}", words.join(","))).unwrap_or_default();
        }
        if let Some(ambient) = caps.ambient {
            self.strings[12] = CString::new(format!("{},{}", ambient & 0xffff_ffff, ambient >> 32))
                .unwrap_or_default();
        }
        self
    }

    /// The program's process starts a session (and takes descriptor `ctty` as its
    /// controlling terminal): for a trampoline that creates that process.
    /// The working directory is tried before the credentials change too (`+` for `=`): see
    /// `NsCommand::chdir_before_credentials`.
    pub(crate) fn cwd_first(mut self, yes: bool) -> Args {
        if let (true, Some(s)) = (yes, self.strings.get_mut(4)) {
            let mut v = s.as_bytes().to_vec();
            if let Some(first @ b'=') = v.first_mut() {
                *first = b'+';
                *s = CString::new(v).unwrap_or_default();
            }
        }
        self
    }

    pub(crate) fn session(mut self, setsid: bool, ctty: Option<RawFd>) -> Args {
        self.strings[13] = match (setsid, ctty) {
            (_, Some(fd)) => CString::new(fd.to_string()).unwrap_or_default(),
            (true, None) => c"s".to_owned(),
            (false, None) => CString::default(),
        };
        self
    }

    /// The trampoline installs `filter` right before executing the program.
    pub(crate) fn filtered(mut self, filter: &[libc::sock_filter]) -> Args {
        let mut hex = String::with_capacity(filter.len() * 16);
        for f in filter {
            let mut bytes = [0u8; 8];
            bytes[..2].copy_from_slice(&f.code.to_ne_bytes());
            bytes[2] = f.jt;
            bytes[3] = f.jf;
            bytes[4..].copy_from_slice(&f.k.to_ne_bytes());
            for b in bytes {
                hex.push_str(&format!("{b:02x}"));
            }
        }
        self.strings[9] = CString::new(hex).unwrap_or_default();
        self
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
