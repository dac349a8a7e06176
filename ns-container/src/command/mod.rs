//! [`NsCommand`]: spawn a program into existing and new namespaces.
//!
//! The builder, one file per concern a caller configures; each setter only records what
//! was asked (checks that need the whole command wait for the spawn):
//!
//! | file | what a caller sets there |
//! |---|---|
//! | `program.rs` | program, arguments, environment, directory, stdio and given descriptors ([`Stdio`]) |
//! | `namespaces.rs` | targets and namespaces to enter, new namespaces, id maps, time offsets, hostname, uid/gid/groups |
//! | `finish.rs` | mounts, propagation, root, cgroup, parent-death signal, `kill_on_drop` |
//! | `privileges.rs` | session and terminal, limits, OOM score, capabilities, securebits, `no_new_privs`, umask, seccomp |
//! | `hooks.rs` | `pre_exec` hooks, the closure call of `spawn_fn`, the test hooks |
//! | `settings.rs` | the struct and its value types ([`Stdio`], [`Clock`], [`IdMap`], [`CgroupPlacement`]) |
//! | `launch.rs` | turning the command into a [`Spec`](crate::spawn::Spec) and spawning it |
//! | `user_route.rs` | whether the target's user namespace is left to the trampoline |
//!
//! `settings.rs` holds the struct, its constructor and the value types of its settings;
//! this file the endings (`spawn`, `spawn_fn`,
//! `output`, `status`). Nothing here makes a system call of its own: the spawn is
//! `crate::spawn`'s.

mod finish;
mod hooks;
mod launch;
mod namespaces;
mod privileges;
mod program;
mod settings;
mod user_route;

use std::process::{ExitStatus, Output};

use crate::error::{io_error, Result};
use crate::process::Child;
use crate::spawn::SpecAction;
pub use finish::receive_terminal;
use settings::StdioKind;
pub use settings::{CgroupPlacement, Clock, IdMap, NsCommand, Stdio};

impl NsCommand {
    /// Spawns the child and returns its handle.
    ///
    /// # Errors
    /// - [`Error::Invalid`](crate::Error::Invalid) for an inconsistent configuration (nothing is started);
    /// - [`Error::Enter`](crate::Error::Enter), [`Error::Step`](crate::Error::Step), [`Error::Exec`](crate::Error::Exec) when a step fails in a child
    ///   process, with the step and the kernel's errno; [`Error::Died`](crate::Error::Died) when the intermediate
    ///   or pid stage is killed half-way, or no child was created. A *child* killed before it
    ///   executes the program is not an error of the spawn: its handle is returned and
    ///   [`Child::wait`](crate::Child::wait) reports the signal (as for a program killed right after it
    ///   started; the two cannot be told apart from outside);
    /// - [`Error::Core`](crate::Error::Core) when pinning or opening namespaces fails.
    ///
    /// On error nothing is left behind: every process the spawn created has been reaped and
    /// every descriptor it opened closed. One exception, with the legacy `clone` only (where
    /// `clone3` is refused): a process of the spawn killed right after a `clone` returned,
    /// before the new task first ran, leaves that task's existence unprovable; the spawn then
    /// never frees or closes what such a task could use (the command's settings included:
    /// the command is left with its program and `kill_on_drop` only).
    pub fn spawn(&mut self) -> Result<Child> {
        self.launch(None, &mut false)
    }

    /// The closure ending of the builder: runs `f` in the child instead of a program, after
    /// the same setup (namespaces, id maps, hostname, cgroup, mounts and root, stdio and given
    /// descriptors, session, limits, credentials, capabilities, `pre_exec` hooks, seccomp),
    /// and exits with its return value (`_exit(f())`, low 8 bits). Program, arguments and
    /// environment are not used; the child keeps the caller's other descriptors, as after
    /// `fork` (they are not closed as for a program). [`clone`](crate::clone()) is this with
    /// a target and new namespaces only.
    ///
    /// ```no_run
    /// use ns_container::{Mount, NsCommand};
    /// use ns_core::NsType;
    ///
    /// // SAFETY: the closure only makes system calls.
    /// let mut child = unsafe {
    ///     NsCommand::new("sandboxed closure")
    ///         .unshare(NsType::MNT | NsType::PID | NsType::NET)
    ///         .mount(Mount::proc("/proc"))
    ///         .no_new_privs(true)
    ///         .spawn_fn(|| libc::getpid())
    /// }?;
    /// assert_eq!(child.wait()?.code(), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Safety
    /// As for [`clone`](crate::clone()): `f` runs in a copy of the calling process made by
    /// `clone`, like `fork`, so it may only do what is allowed after `fork` in a multithreaded
    /// program; no destructor runs in the child, not even of what `f` captured.
    ///
    /// # Errors
    /// As [`NsCommand::spawn`].
    pub unsafe fn spawn_fn<F>(&mut self, f: F) -> Result<Child>
    where
        F: FnMut() -> i32,
    {
        // On the heap, so that it can outlive this call if a task of the spawn might.
        let mut slot = Box::new(std::mem::ManuallyDrop::new(f));
        let action = SpecAction::Call {
            data: &mut **slot as *mut F as *mut libc::c_void,
            call: hooks::call_closure::<F>,
        };
        let mut doubt = false;
        let spawned = self.launch(Some(action), &mut doubt);
        if doubt {
            Box::leak(slot);
        } else {
            // The child has its own copy of `f` (and never drops it); ours is dropped here.
            // SAFETY: `slot` is not used again.
            unsafe { std::mem::ManuallyDrop::drop(&mut slot) };
        }
        spawned
    }

    /// Spawns the child with stdout and stderr piped and stdin from `/dev/null` (each unless
    /// set otherwise) and collects its output, like `Command::output`. Those defaults hold
    /// for this call only: the command's stdio is left as it was.
    ///
    /// # Errors
    /// As [`NsCommand::spawn`], plus reading and waiting.
    pub fn output(&mut self) -> Result<Output> {
        // The defaults hold for this call only, as std's: the command keeps its stdio.
        let stdin_default = matches!(self.stdin.0, StdioKind::Inherit);
        let stdout_default = matches!(self.stdout.0, StdioKind::Inherit);
        let stderr_default = matches!(self.stderr.0, StdioKind::Inherit);
        if stdin_default {
            self.stdin = Stdio::null();
        }
        if stdout_default {
            self.stdout = Stdio::piped();
        }
        if stderr_default {
            self.stderr = Stdio::piped();
        }
        let spawned = self.spawn();
        for (default, slot) in [
            (stdin_default, &mut self.stdin),
            (stdout_default, &mut self.stdout),
            (stderr_default, &mut self.stderr),
        ] {
            if default {
                *slot = Stdio::inherit();
            }
        }
        let what = self.program.to_string_lossy().into_owned();
        spawned?
            .wait_with_output()
            .map_err(io_error(format!("running {what}"), "collecting output"))
    }

    /// Spawns the child and waits for it, like `Command::status`.
    ///
    /// # Errors
    /// As [`NsCommand::spawn`], plus waiting.
    pub fn status(&mut self) -> Result<ExitStatus> {
        let what = self.program.to_string_lossy().into_owned();
        self.spawn()?
            .wait()
            .map_err(io_error(format!("running {what}"), "waiting"))
    }
}
