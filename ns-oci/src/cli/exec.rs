//! `exec`: a new process in a running container's namespaces, cgroups and confinement.

use std::path::PathBuf;

use ns_container::NsCommand;
use ns_core::Target;

use super::{f, parse_in_order, v, Global, Opt};
use crate::error::{Error, Result};
use crate::spec::{self, config::Process};
use crate::state::{Container, Status};

const OPTS: &[Opt] = &[
    v(&["console-socket"]),
    v(&["cwd"]),
    v(&["env", "e"]),
    f(&["tty", "t"]),
    v(&["user", "u"]),
    v(&["additional-gids", "g"]),
    v(&["process", "p"]),
    f(&["detach", "d"]),
    v(&["pid-file"]),
    v(&["process-label"]),
    v(&["apparmor"]),
    f(&["no-new-privs"]),
    v(&["cap", "c"]),
    v(&["preserve-fds"]),
    v(&["cgroup"]),
    f(&["ignore-paused"]),
];

pub fn exec(global: &Global, args: &[String]) -> Result<i32> {
    let p = parse_in_order(args, OPTS)?;
    let c = Container::load(&global.root, p.id()?)?;
    match c.status() {
        Status::Stopped => return Err(Error::new("cannot exec in a stopped container")),
        Status::Paused if !p.flag("ignore-paused") => {
            return Err(Error::new("cannot exec in a paused container"))
        }
        _ => {}
    }
    let config = spec::load(&c.saved.bundle)?;
    let process = process_of(&p, &config)?;
    let program = process
        .args
        .first()
        .ok_or_else(|| Error::new("exec args cannot be empty"))?
        .clone();
    let types = c.namespace_types();
    let target = Target::pin(c.saved.pid, types)?;
    if !c.alive() {
        return Err(Error::new("cannot exec in a stopped container"));
    }
    let mut cmd = NsCommand::new(&program);
    cmd.enter(&target, types);
    spec::apply_process(&mut cmd, &process, &c.saved.rootfs)?;
    // In the foreground with a terminal and no console socket, hold the master here.
    let mut relay = None;
    if process.terminal && p.value("console-socket").is_none() && !p.flag("detach") {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let size = process
            .console_size
            .as_ref()
            .map(|s| (s.height as u16, s.width as u16));
        cmd.terminal(std::os::fd::OwnedFd::from(theirs), size);
        relay = Some(ours);
    } else {
        crate::container::terminal(
            &mut cmd,
            &process,
            p.value("console-socket").map(std::path::Path::new),
        )?;
    }
    if let Some(s) = config.linux.as_ref().and_then(|l| l.seccomp.as_ref()) {
        cmd.seccomp_filter(crate::seccomp::compile(s)?);
    }
    if let Some(n) = p.value("preserve-fds") {
        let n: i32 = n
            .parse()
            .map_err(|_| Error::new(format!("invalid --preserve-fds {n:?}")))?;
        for fd in 3..3 + n {
            // SAFETY: borrowing a descriptor the runtime was given, to duplicate it.
            let owned = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
            cmd.fd(fd, owned);
        }
    }
    // In the container's cgroups from its creation: it runs nothing outside them.
    let dirs: Vec<PathBuf> = c
        .saved
        .cgroups
        .iter()
        .filter(|d| d.exists())
        .cloned()
        .collect();
    let dirs = crate::cgroups::sub_cgroups(&dirs, p.values("cgroup"))?;
    crate::cgroups::place(&mut cmd, &dirs);
    let mut child = cmd.spawn()?;
    if let Some(path) = p.value("pid-file") {
        crate::container::write_pid_file(&PathBuf::from(path), child.pid())?;
    }
    if p.flag("detach") {
        return Ok(0);
    }
    if let Some(sock) = relay {
        let master = ns_container::receive_terminal(&sock)?;
        super::create::copy_terminal(master);
    }
    let status = child
        .wait()
        .map_err(|e| Error::new(format!("waiting: {e}")))?;
    Ok(status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    }))
}

/// The process to run: `--process`, else the configuration's with the command line's
/// arguments and overrides.
fn process_of(p: &super::Parsed, config: &spec::Config) -> Result<Process> {
    if let Some(path) = p.value("process") {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::new(format!("reading the process file {path}: {e}")))?;
        return serde_json::from_str(&text)
            .map_err(|e| Error::new(format!("parsing the process file {path}: {e}")));
    }
    let mut process = config.process.clone().unwrap_or_default();
    process.terminal = p.flag("tty");
    process.args = p.args[1..].to_vec();
    if let Some(cwd) = p.value("cwd") {
        process.cwd = cwd.to_owned();
    }
    for kv in p.values("env") {
        let key = kv.split('=').next().unwrap_or(kv);
        process.env.retain(|e| e.split('=').next() != Some(key));
        process.env.push(kv.clone());
    }
    if let Some(user) = p.value("user") {
        let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
        process.user.uid = uid
            .parse()
            .map_err(|_| Error::new(format!("invalid --user {user:?}")))?;
        process.user.gid = gid
            .parse()
            .map_err(|_| Error::new(format!("invalid --user {user:?}")))?;
    }
    for g in p.values("additional-gids") {
        process.user.additional_gids.push(
            g.parse()
                .map_err(|_| Error::new(format!("invalid --additional-gids {g:?}")))?,
        );
    }
    if p.flag("no-new-privs") {
        process.no_new_privileges = true;
    }
    if let Some(profile) = p.value("apparmor") {
        process.apparmor_profile = Some(profile.to_owned());
    }
    let caps = p.values("cap");
    if !caps.is_empty() {
        let set = process.capabilities.get_or_insert_with(Default::default);
        for list in [
            &mut set.bounding,
            &mut set.effective,
            &mut set.permitted,
            &mut set.inheritable,
            &mut set.ambient,
        ] {
            let l = list.get_or_insert_with(Vec::new);
            l.extend(caps.iter().cloned());
        }
    }
    Ok(process)
}
