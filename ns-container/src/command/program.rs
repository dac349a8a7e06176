//! What the child runs and with what: program, arguments, `arg0`, environment, working
//! directory, stdio ([`Stdio`]) and descriptors given at chosen numbers, with std's names and
//! meanings, and the getters.

use std::ffi::{OsStr, OsString};
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

use super::settings::{NsCommand, Stdio};

impl NsCommand {
    /// The program, as given to [`NsCommand::new`].
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments (without the program or `arg0`).
    pub fn get_args(&self) -> impl Iterator<Item = &OsStr> {
        self.args.iter().map(OsString::as_os_str)
    }

    /// The environment changes: `(key, Some(value))` set, `(key, None)` removed, as std's
    /// `get_envs`.
    pub fn get_envs(&self) -> impl Iterator<Item = (&OsStr, Option<&OsStr>)> {
        self.env.iter().map(|(k, v)| (k.as_os_str(), v.as_deref()))
    }

    /// The working directory set with [`current_dir`](NsCommand::current_dir).
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    /// The child's `argv[0]`, instead of the program name (std's `CommandExt::arg0`).
    pub fn arg0(&mut self, arg0: impl AsRef<OsStr>) -> &mut NsCommand {
        self.arg0 = Some(arg0.as_ref().to_owned());
        self
    }

    /// Sets environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut NsCommand
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut NsCommand {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut NsCommand {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut NsCommand {
        self.env
            .insert(key.as_ref().to_owned(), Some(value.as_ref().to_owned()));
        self
    }

    /// Removes an environment variable for the child.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut NsCommand {
        self.env.insert(key.as_ref().to_owned(), None);
        self
    }

    /// Starts the child with no inherited environment: only what [`NsCommand::env`] sets
    /// (including what was set on the `Command`).
    pub fn env_clear(&mut self) -> &mut NsCommand {
        self.env_clear = true;
        self.env.retain(|_, v| v.is_some());
        self
    }

    /// The child's working directory, resolved inside its namespaces. Without it, a child
    /// that enters a mount namespace starts at that namespace's root, as with `nsenter`.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut NsCommand {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Changes to [`current_dir`](NsCommand::current_dir) before the credentials change as
    /// well (runc's order, which OCI runtimes follow): tried first with the spawn's own
    /// privileges, so the program may start in a directory its credentials could not enter
    /// (a root program without `CAP_DAC_OVERRIDE` in a directory of another owner); where
    /// that is refused or fails, tried again with the program's credentials, as without this
    /// option. Either way the directory is checked to be under the root. Off by default, as
    /// std's `Command` changes directory with the program's credentials only.
    pub fn chdir_before_credentials(&mut self, yes: bool) -> &mut NsCommand {
        self.cwd_first = yes;
        self
    }

    /// The child's stdin.
    pub fn stdin(&mut self, s: impl Into<Stdio>) -> &mut NsCommand {
        self.stdin = s.into();
        self
    }

    /// The child's stdout.
    pub fn stdout(&mut self, s: impl Into<Stdio>) -> &mut NsCommand {
        self.stdout = s.into();
        self
    }

    /// The child's stderr.
    pub fn stderr(&mut self, s: impl Into<Stdio>) -> &mut NsCommand {
        self.stderr = s.into();
        self
    }

    /// Gives the child `fd` as descriptor number `child_fd`. Every other descriptor above 2
    /// is closed in the child.
    ///
    /// `child_fd` must be below the open-file limit (`RLIMIT_NOFILE`, with some room left for
    /// the spawn's own descriptors) and given once (stdin, stdout and stderr count as 0, 1
    /// and 2); otherwise [`spawn`](NsCommand::spawn) fails with [`Error::Invalid`](crate::Error::Invalid) naming the
    /// number. Any number may clash with descriptors the spawn uses internally: those are
    /// moved out of the way first.
    pub fn fd(&mut self, child_fd: RawFd, fd: OwnedFd) -> &mut NsCommand {
        self.fds.push((child_fd, fd));
        self
    }
}
