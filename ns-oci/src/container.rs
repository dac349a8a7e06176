//! The container lifecycle of the OCI runtime specification (runtime.md), usable without the
//! command line: create (set up, held before its program), start (let it go), kill, delete.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use ns_container::{Child, NsCommand};

use crate::error::{Error, Result};
use crate::spec::{self, Config};
use crate::state::{self, Container, Saved, Status};
use crate::{cgroups, hooks, seccomp};

/// How `create` sets a container up beyond its bundle.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub no_pivot: bool,
    pub pid_file: Option<PathBuf>,
    /// `--preserve-fds`: descriptors 3.. of the runtime handed to the container.
    pub preserve_fds: u32,
    /// `--console-socket`: where the master of the container's terminal goes.
    pub console_socket: Option<PathBuf>,
    /// Or a connected socket of the runtime's own (a foreground `run` with a terminal).
    pub console: Option<std::sync::Arc<OwnedFd>>,
}

/// With `process.terminal`, the container's terminal, its master sent to `console_socket`.
pub fn terminal(
    c: &mut NsCommand,
    process: &crate::spec::config::Process,
    console_socket: Option<&Path>,
) -> Result<()> {
    match (process.terminal, console_socket) {
        (false, None) => Ok(()),
        (false, Some(_)) => Err(Error::new(
            "cannot use console socket if runc will not detach or allocate tty",
        )),
        (true, None) => Err(Error::new(
            "cannot allocate tty if runc will detach without setting console socket",
        )),
        (true, Some(path)) => {
            let sock = UnixStream::connect(path).map_err(|e| {
                Error::new(format!(
                    "connecting to the console socket {}: {e}",
                    path.display()
                ))
            })?;
            let size = process
                .console_size
                .as_ref()
                .map(|s| (s.height as u16, s.width as u16));
            c.terminal(OwnedFd::from(sock), size);
            Ok(())
        }
    }
}

/// Creates container `id` from `bundle` under the state `root`: everything set up, its
/// program held until [`start`]. Returns the init's handle (the caller may drop it: the
/// container lives on) and its state.
pub fn create(
    root: &Path,
    id: &str,
    bundle: &Path,
    opts: &CreateOptions,
) -> Result<(Child, Container)> {
    state::check_id(id)?;
    std::fs::create_dir_all(root)
        .map_err(|e| Error::new(format!("creating the state root {}: {e}", root.display())))?;
    let dir = state::dir_of(root, id);
    if let Err(e) = std::fs::create_dir(&dir) {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            return Err(Error::new(format!("container with id exists: {id}")));
        }
        return Err(Error::new(format!("creating {}: {e}", dir.display())));
    }
    let bundle = bundle
        .canonicalize()
        .map_err(|e| Error::new(format!("bundle {}: {e}", bundle.display())));
    let result = bundle.and_then(|bundle| create_in(&dir, id, &bundle, opts));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn create_in(
    dir: &Path,
    id: &str,
    bundle: &Path,
    opts: &CreateOptions,
) -> Result<(Child, Container)> {
    // What the spawn asks of the kernel, asked meanwhile (joined before the spawn).
    let mut prepared_kernel = Some(std::thread::spawn(ns_container::prepare_spawning));
    crate::timing::mark("setup");
    let config = spec::load(bundle)?;
    spec::check_version(&config)?;
    crate::timing::mark("load");
    let linux = config.linux.clone().unwrap_or_default();
    let rel = cgroups::relative(linux.cgroups_path.as_deref(), id)?;
    // (What it made is removed again when it fails.)
    let dirs = cgroups::create(&rel, linux.resources.as_ref())?;
    crate::timing::mark("cgroups");
    let spawned = (|| -> Result<(Child, spec::Prepared)> {
        let options = spec::Options {
            no_pivot: opts.no_pivot,
            dev_dir: dir.join("dev"),
            cgroups: dirs.clone(),
        };
        let mut prepared = spec::command(&config, bundle, &options)?;
        let c = &mut prepared.command;
        if let Some(s) = &linux.seccomp {
            c.seccomp_filter(seccomp::compile(s)?);
        }
        preserve_fds(c, opts.preserve_fds)?;
        if let Some(process) = &config.process {
            match (&opts.console, process.terminal) {
                (Some(fd), true) => {
                    let size = process
                        .console_size
                        .as_ref()
                        .map(|s| (s.height as u16, s.width as u16));
                    c.terminal(fd.try_clone()?, size);
                }
                _ => terminal(c, process, opts.console_socket.as_deref())?,
            }
        }
        let listener = UnixListener::bind(state::exec_socket(dir))
            .map_err(|e| Error::new(format!("creating the exec socket: {e}")))?;
        c.hold_before_exec(OwnedFd::from(listener));
        cgroups::place(c, &dirs);
        crate::timing::mark("config");
        if let Some(t) = prepared_kernel.take() {
            let _ = t.join();
        }
        let child = c.spawn()?;
        Ok((child, prepared))
    })();
    let (mut child, prepared) = match spawned {
        Ok(pair) => pair,
        Err(e) => {
            cgroups::remove(&dirs);
            return Err(e);
        }
    };
    crate::timing::mark("spawn");
    let pid = child.pid();
    let made = (|| -> Result<Container> {
        let (_, start_time) = state::proc_stat(pid)
            .ok_or_else(|| Error::new("the container's init died during create"))?;
        let saved = Saved {
            oci_version: config.oci_version.clone(),
            id: id.to_owned(),
            pid,
            start_time,
            bundle: bundle.to_owned(),
            rootfs: prepared.rootfs.clone(),
            created: state::now_rfc3339(),
            // SAFETY: geteuid has no preconditions.
            owner: user_name(unsafe { libc::geteuid() }),
            annotations: config.annotations.clone(),
            cgroups: dirs.clone(),
            namespaces: namespace_names(&config),
            hooks: config.hooks.clone().filter(|h| {
                !(h.start_container.is_empty() && h.poststart.is_empty() && h.poststop.is_empty())
            }),
            hook_seccomp: config
                .hooks
                .as_ref()
                .filter(|h| !h.start_container.is_empty())
                .and(linux.seccomp.clone()),
        };
        Container::save(dir, &saved)?;
        crate::timing::mark("state");
        let container = Container {
            dir: dir.to_owned(),
            saved,
        };
        if let Some(h) = &config.hooks {
            let st = container.oci_state();
            hooks::run("prestart", &h.prestart, &st)?;
            hooks::run("createRuntime", &h.create_runtime, &st)?;
            hooks::run("createContainer", &h.create_container, &st)?;
        }
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, pid)?;
        }
        Ok(container)
    })();
    match made {
        Ok(container) => Ok((child, container)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            cgroups::remove(&dirs);
            Err(e)
        }
    }
}

/// `--preserve-fds N` (and `LISTEN_FDS`): descriptors 3 to 3+N-1 stay the container's.
fn preserve_fds(c: &mut NsCommand, n: u32) -> Result<()> {
    let listen: u32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for fd in 3..3 + n + listen {
        // SAFETY: borrowing a descriptor the runtime was given, to duplicate it.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd as i32) };
        let owned = borrowed
            .try_clone_to_owned()
            .map_err(|e| Error::new(format!("preserving descriptor {fd}: {e}")))?;
        c.fd(fd as i32, owned);
    }
    if listen > 0 {
        c.env("LISTEN_FDS", listen.to_string());
    }
    Ok(())
}

fn namespace_names(config: &Config) -> Vec<String> {
    config
        .linux
        .as_ref()
        .map(|l| {
            l.namespaces
                .iter()
                .filter(|n| n.path.as_deref().is_none_or(str::is_empty))
                .map(|n| n.kind.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_owned())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("tmp-ns-oci");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Error::new(format!("writing the pid file {}: {e}", path.display())))
}

/// Lets a created container's program go.
pub fn start(c: &Container) -> Result<()> {
    match c.status() {
        Status::Created => {}
        Status::Stopped => return Err(Error::new("cannot start a container that has stopped")),
        _ => return Err(Error::new("cannot start an already running container")),
    }
    if let Some(h) = &c.saved.hooks {
        if !h.start_container.is_empty() {
            let filter = match &c.saved.hook_seccomp {
                Some(s) => Some(seccomp::compile(s)?),
                None => None,
            };
            hooks::run_in_container(
                "startContainer",
                &h.start_container,
                &c.oci_state(),
                c.saved.pid,
                c.namespace_types(),
                filter.as_deref(),
            )?;
        }
    }
    let sock = state::exec_socket(&c.dir);
    UnixStream::connect(&sock).map_err(|e| Error::new(format!("starting the container: {e}")))?;
    let _ = std::fs::remove_file(&sock);
    if let Some(h) = &c.saved.hooks {
        let st = c.oci_state();
        // A failed poststart hook is a warning: the container runs.
        if let Err(e) = hooks::run("poststart", &h.poststart, &st) {
            eprintln!("{e}");
        }
    }
    Ok(())
}

/// Sends `signal` to the init, or to every process of the container.
pub fn kill(c: &Container, signal: i32, all: bool) -> Result<()> {
    // --all reaches what is left in the cgroup of a stopped container too (runc's rule).
    if c.status() == Status::Stopped && !all {
        return Err(Error::new("container not running"));
    }
    if all {
        for pid in cgroups::pids(&c.saved.cgroups) {
            // SAFETY: kill with plain integers.
            unsafe { libc::kill(pid, signal) };
        }
        return Ok(());
    }
    let pidfd = ns_sys::pidfd_open(c.saved.pid, 0)
        .map_err(|e| Error::new(format!("container not running: {e}")))?;
    // The pidfd names the process alive now: still the container's init?
    if !c.alive() {
        return Err(Error::new("container not running"));
    }
    ns_sys::pidfd_send_signal(pidfd.as_fd(), signal)
        .map_err(|e| Error::new(format!("signalling the container: {e}")))
}

/// Deletes the container: killed first when `force` (or when only created), its cgroups and
/// state removed, poststop hooks run.
pub fn delete(c: &Container, force: bool) -> Result<()> {
    let status = c.status();
    match status {
        Status::Stopped => {}
        Status::Created => kill_and_wait(c),
        _ if force => kill_and_wait(c),
        s => {
            return Err(Error::new(format!(
                "cannot delete container {} that is not stopped: {}",
                c.saved.id,
                s.as_str()
            )))
        }
    }
    cgroups::remove(&c.saved.cgroups);
    if let Some(h) = &c.saved.hooks {
        let mut st = c.oci_state();
        st["status"] = "stopped".into();
        if let Err(e) = hooks::run("poststop", &h.poststop, &st) {
            eprintln!("{e}");
        }
    }
    std::fs::remove_dir_all(&c.dir)
        .map_err(|e| Error::new(format!("removing {}: {e}", c.dir.display())))
}

fn kill_and_wait(c: &Container) {
    if cgroups::frozen(&c.saved.cgroups) {
        let _ = cgroups::freeze(&c.saved.cgroups, false);
    }
    for pid in cgroups::pids(&c.saved.cgroups) {
        // SAFETY: kill with plain integers.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    if c.alive() {
        if let Ok(pidfd) = ns_sys::pidfd_open(c.saved.pid, 0) {
            let _ = ns_sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        }
    }
    for _ in 0..2000 {
        if !c.alive() && cgroups::pids(&c.saved.cgroups).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A signal by name (`KILL`, `SIGKILL`) or number.
pub fn signal(name: &str) -> Result<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return Ok(n);
    }
    let n = name.trim_start_matches("SIG");
    Ok(match n {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return Err(Error::new(format!("unknown signal {name:?}"))),
    })
}
