//! Turning a command into a spawn: the strings the child needs (environment, PATH
//! candidates, argv), stdio and given descriptors, the prepared mounts and privileges, the
//! entry plan and the user-namespace route, then `crate::spawn` (once more on the copy path
//! when the trampoline is refused), and the [`Child`] handed back.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::process::{ChildStderr, ChildStdin, ChildStdout};

use ns_core::{NsType, Subject};

use super::namespaces::{entry_plan, map_text, offsets_text};
use super::settings::{CgroupPlacement, NsCommand, StdioKind};
use crate::child::{PreExecHooks, RootChange};
use crate::error::{io_error, Error, Result};
use crate::mounts::{PreparedMounts, Propagation, RootMode};
use crate::pidns::InitHandle;
use crate::process::Child;
use crate::spawn::{Spec, SpecAction};

impl NsCommand {
    /// Everything [`spawn`](NsCommand::spawn) and [`spawn_fn`](NsCommand::spawn_fn) share:
    /// a program (`closure` is `None`) or a closure. `doubt` is set when a task of the spawn
    /// may exist unseen (see `spawn::spawn`): then nothing it could read is ever freed, and
    /// the closure's data must not be either.
    pub(super) fn launch(
        &mut self,
        closure: Option<SpecAction>,
        doubt: &mut bool,
    ) -> Result<Child> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let what = self.program.to_string_lossy().into_owned();
        let invalid = |reason: &str| Error::Invalid {
            what: format!("spawning {what}"),
            reason: reason.to_owned(),
        };
        self.check_alone(&invalid)?;
        // Environment and PATH search, prepared here: the child cannot allocate.
        let exec = self.exec_strings(&invalid)?;
        let close_fds = closure.is_none();
        let action = closure.unwrap_or(exec);
        let stdio = self.open_stdio(&what)?;
        let privileges = self.privilege_spec(&stdio.moves, &invalid)?;
        let root = self.root.as_ref().map(|(dir, _)| dir.as_path());
        let mounts = PreparedMounts::prepare(&self.mounts, root).map_err(|r| invalid(&r))?;
        let hooks: *mut PreExecHooks = if self.pre_exec.0.is_empty() {
            std::ptr::null_mut()
        } else {
            &mut self.pre_exec.0
        };
        let mut spec = Spec {
            close_fds,
            privileges,
            pre_exec: hooks,
            ..self.spec(&what, action, &mounts, stdio.moves.clone(), &invalid)?
        };
        self.choose_user_route(&mut spec, &invalid)?;
        spec.relay = spec.image_entry.is_none() && self.relay_needed(&spec);
        self.choose_pid_route(&mut spec)?;

        // Counted before the spawn starts: see `crate::pidns::InitHandle`.
        let init_handle = self.unshare.contains(NsType::PID).then(InitHandle::new);
        let spawned = self.spawn_with_fallback(&mut spec, doubt);
        let StdioSetup {
            keep, parent_ends, ..
        } = stdio;
        if *doubt {
            // A task of the spawn may exist unseen and still read what the spec points to,
            // or use the descriptors it was given: none of it is ever freed or closed. The
            // command's own settings go with it, and the command starts over empty.
            std::mem::forget(spec);
            std::mem::forget(mounts);
            std::mem::forget(keep);
            let kill_on_drop = self.kill_on_drop;
            let fresh = NsCommand::new(&self.program);
            std::mem::forget(std::mem::replace(self, fresh));
            self.kill_on_drop = kill_on_drop;
        } else {
            drop(keep);
        }
        let spawned = spawned?;
        // A process in a pid namespace other than the caller's is kept for waits on that
        // namespace's init (see `crate::pidns`).
        let entered_pid = self
            .namespaces
            .iter()
            .find(|n| n.ns_type() == NsType::PID)
            .or_else(|| match &self.target {
                Some((t, types)) if types.contains(NsType::PID) => t.namespace(NsType::PID),
                _ => None,
            });
        let mut child = if entered_pid.is_some() || init_handle.is_some() {
            Child::in_pid_namespace(spawned.pid, spawned.pidfd, init_handle, entered_pid)
        } else {
            Child::new(spawned.pid, spawned.pidfd)
        };
        child.kill_on_drop(self.kill_on_drop);
        let [stdin, stdout, stderr] = parent_ends;
        child.stdin = stdin.map(ChildStdin::from);
        child.stdout = stdout.map(ChildStdout::from);
        child.stderr = stderr.map(ChildStderr::from);
        Ok(child)
    }

    /// The kernel parameters as paths under `/proc/sys` and their values.
    fn sysctl_paths(&self, invalid: &impl Fn(&str) -> Error) -> Result<Vec<(CString, Vec<u8>)>> {
        self.sysctls
            .iter()
            .map(|(key, value)| {
                let rel = if key.contains('/') {
                    key.clone()
                } else {
                    key.replace('.', "/")
                };
                if rel.is_empty()
                    || rel
                        .split('/')
                        .any(|c| c.is_empty() || c == "." || c == "..")
                {
                    return Err(invalid(&format!(
                        "the kernel parameter {key:?} is no name under /proc/sys"
                    )));
                }
                let path = CString::new(format!("/proc/sys/{rel}"))
                    .map_err(|_| invalid("a kernel parameter contains a NUL byte"))?;
                Ok((path, value.as_bytes().to_vec()))
            })
            .collect()
    }

    /// Refuses settings that are wrong on their own, before anything is prepared.
    fn check_alone(&self, invalid: &impl Fn(&str) -> Error) -> Result<()> {
        if self.program.as_bytes().contains(&0) {
            return Err(invalid("the program name contains a NUL byte"));
        }
        if let Some(filter) = &self.seccomp {
            if filter.is_empty() || filter.len() > crate::seccomp::MAX_INSTRUCTIONS {
                return Err(invalid(&format!(
                    "a seccomp filter of {} instructions (the kernel takes 1 to {})",
                    filter.len(),
                    crate::seccomp::MAX_INSTRUCTIONS
                )));
            }
        }
        if self
            .time_offsets
            .iter()
            .any(|(_, _, nanos)| *nanos >= 1_000_000_000)
        {
            return Err(invalid("time offset nanoseconds must be below one second"));
        }
        Ok(())
    }

    /// The program's environment, PATH candidates and argv, as the child executes them.
    fn exec_strings(&self, invalid: &impl Fn(&str) -> Error) -> Result<SpecAction> {
        let entry = |k: &OsStr, v: &OsStr| {
            let mut kv = Vec::with_capacity(k.len() + 1 + v.len() + 1);
            kv.extend_from_slice(k.as_bytes());
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).map_err(|_| invalid("an environment variable contains a NUL byte"))
        };
        let (envp, path) = if !self.env_clear && self.env.is_empty() {
            // The caller's environment as it is, in its order (as std passes it on).
            let mut path = None;
            let mut envp = Vec::new();
            for (k, v) in std::env::vars_os() {
                envp.push(entry(&k, &v)?);
                // The first, as the program's getenv sees it.
                if k == "PATH" && path.is_none() {
                    path = Some(v);
                }
            }
            (envp, path)
        } else {
            let mut env: BTreeMap<OsString, OsString> = if self.env_clear {
                BTreeMap::new()
            } else {
                std::env::vars_os().collect()
            };
            for (k, v) in &self.env {
                match v {
                    Some(v) => {
                        env.insert(k.clone(), v.clone());
                    }
                    None => {
                        env.remove(k);
                    }
                }
            }
            let envp = env
                .iter()
                .map(|(k, v)| entry(k, v))
                .collect::<Result<Vec<_>>>()?;
            (envp, env.remove(OsStr::new("PATH")))
        };
        let candidates = self.candidates(path.as_ref(), invalid)?;
        let mut argv = vec![cstring(
            self.arg0.as_deref().unwrap_or(&self.program),
            invalid,
        )?];
        for a in &self.args {
            argv.push(cstring(a, invalid)?);
        }
        Ok(SpecAction::Exec {
            candidates,
            argv,
            envp,
        })
    }

    /// The paths the child tries in turn: the program itself when it names a path, else
    /// each directory of the child's `PATH` (`/bin:/usr/bin` without one) joined with it.
    fn candidates(
        &self,
        path: Option<&OsString>,
        invalid: &impl Fn(&str) -> Error,
    ) -> Result<Vec<CString>> {
        let program = self.program.as_bytes();
        if program.contains(&b'/') {
            return Ok(vec![cstring(&self.program, invalid)?]);
        }
        let path = path
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_else(|| b"/bin:/usr/bin".to_vec());
        path.split(|b| *b == b':')
            .map(|dir| {
                let mut full = if dir.is_empty() {
                    b".".to_vec()
                } else {
                    dir.to_vec()
                };
                full.push(b'/');
                full.extend_from_slice(program);
                CString::new(full).map_err(|_| invalid("the program name contains a NUL byte"))
            })
            .collect()
    }

    /// Opens what stdio asks for and lists every descriptor the child is given: (source,
    /// number in the child).
    fn open_stdio(&self, what: &str) -> Result<StdioSetup> {
        let mut s = StdioSetup {
            keep: Vec::new(),
            moves: Vec::new(),
            parent_ends: [None, None, None],
        };
        for (n, stdio) in [&self.stdin, &self.stdout, &self.stderr]
            .into_iter()
            .enumerate()
        {
            let child_fd = n as RawFd;
            match &stdio.0 {
                StdioKind::Inherit => {}
                StdioKind::Null => {
                    let f = File::options()
                        .read(true)
                        .write(true)
                        .open("/dev/null")
                        .map_err(io_error(format!("spawning {what}"), "opening /dev/null"))?;
                    s.moves.push((f.as_raw_fd(), child_fd));
                    s.keep.push(f.into());
                }
                StdioKind::Piped => {
                    let (r, w) = crate::sys::pipe().map_err(io_error(
                        format!("spawning {what}"),
                        "creating a stdio pipe",
                    ))?;
                    let (ours, theirs) = if n == 0 { (w, r) } else { (r, w) };
                    s.moves.push((theirs.as_raw_fd(), child_fd));
                    s.keep.push(theirs);
                    s.parent_ends[n] = Some(ours);
                }
                StdioKind::Fd(fd) => s.moves.push((fd.as_raw_fd(), child_fd)),
            }
        }
        for (child_fd, fd) in &self.fds {
            s.moves.push((fd.as_raw_fd(), *child_fd));
        }
        Ok(s)
    }

    /// The spec of everything else the command asks for (privileges, hooks and `close_fds`
    /// are the caller's to fill in).
    fn spec<'a>(
        &'a self,
        what: &str,
        action: SpecAction,
        mounts: &'a PreparedMounts,
        moves: Vec<(RawFd, RawFd)>,
        invalid: &impl Fn(&str) -> Error,
    ) -> Result<Spec<'a>> {
        let root = match &self.root {
            Some((dir, mode)) => Some((
                cstring(dir.as_os_str(), invalid)?,
                match mode {
                    RootMode::PivotRoot => RootChange::Pivot,
                    RootMode::Chroot => RootChange::Chroot,
                },
            )),
            None => None,
        };
        let outside_root = match &self.root {
            Some((dir, RootMode::Chroot)) if self.unshare.contains(NsType::MNT) => {
                crate::mounts::full_pseudo_mounts_outside(dir)
            }
            _ => Vec::new(),
        };
        let outside_root_ptrs = outside_root.iter().map(|c| c.as_ptr()).collect();
        // A new mount namespace starts private, as util-linux `unshare` makes it: nothing the
        // child mounts reaches the caller's, nothing of the caller's reaches the child.
        let wants_mounts = self.unshare.contains(NsType::MNT);
        let propagation = self
            .propagation
            .or(wants_mounts.then_some(Propagation::Private))
            .map(Propagation::flag)
            .unwrap_or(0);
        let cwd = self
            .cwd
            .as_ref()
            .map(|c| cstring(c.as_os_str(), invalid))
            .transpose()?;
        Ok(Spec {
            what: what.to_owned(),
            subject: self
                .target
                .as_ref()
                .map(|(t, _)| Subject::Pid(t.pid()))
                .unwrap_or(Subject::None),
            entry: entry_plan(self.target.as_ref(), &self.namespaces, self.strategy)?,
            unshare: self.unshare,
            uid_map: map_text(&self.uid_map),
            gid_map: map_text(&self.gid_map),
            setgroups_deny: self.setgroups_deny,
            time_offsets: offsets_text(&self.time_offsets),
            hostname: self.hostname.as_ref().map(|h| h.as_bytes().to_vec()),
            propagation,
            mounts: &mounts.steps,
            mount_api: self.mount_api,
            resolve_walk: self.resolve_walk,
            dumpable: self.dumpable,
            relay: false,
            root,
            shared_mounts: self.shared_mounts,
            outside_root,
            outside_root_ptrs,
            cgroup: self.cgroup.clone(),
            cgroups_v1: self.cgroups_v1.clone(),
            cgroup_procs: match self.placement {
                CgroupPlacement::Auto => None,
                CgroupPlacement::CloneInto => Some(false),
                CgroupPlacement::ProcsFile => Some(true),
            },
            moves,
            close_fds: true,
            groups: self.groups.clone(),
            pgroup: self.pgroup,
            gid: self.gid,
            uid: self.uid,
            privileges: Default::default(),
            cwd,
            cwd_first: self.cwd_first,
            pdeathsig: self.pdeathsig.unwrap_or(0),
            pre_exec: std::ptr::null_mut(),
            seccomp: self.seccomp.as_deref(),
            action,
            pause: self
                .pause
                .as_ref()
                .map(|(fd, after)| (fd.as_raw_fd(), *after)),
            image_entry: None,
            pid_at_fork: None,
            hold: self.hold.as_ref().map(|fd| fd.as_raw_fd()),
            sysctls: self.sysctl_paths(invalid)?,
            read_only_root: self.read_only_root,
            terminal: self
                .terminal
                .as_ref()
                .map(|(fd, size)| (fd.as_raw_fd(), size.unwrap_or((0, 0)))),
            root_propagation: self.root_propagation.map(Propagation::flag).unwrap_or(0),
        })
    }
}

/// The child's stdio and given descriptors: what the spawn passes, what it keeps open until
/// the child has them, and the caller's ends of pipes.
struct StdioSetup {
    keep: Vec<OwnedFd>,
    moves: Vec<(RawFd, RawFd)>,
    parent_ends: [Option<OwnedFd>; 3],
}

fn cstring(s: &OsStr, invalid: &impl Fn(&str) -> Error) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| invalid("an argument contains a NUL byte"))
}
