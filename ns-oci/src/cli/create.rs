//! `create` and `run`.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::{f, parse, v, Global, Opt};
use crate::container::{self, CreateOptions};
use crate::error::{Error, Result};

const OPTS: &[Opt] = &[
    v(&["bundle", "b"]),
    v(&["console-socket"]),
    v(&["pid-file"]),
    v(&["preserve-fds"]),
    f(&["no-pivot"]),
    f(&["no-new-keyring"]),
    f(&["detach", "d"]),
    f(&["keep"]),
    f(&["no-subreaper"]),
];

fn options(args: &[String]) -> Result<(super::Parsed, PathBuf, CreateOptions)> {
    let p = parse(args, OPTS)?;
    let bundle = PathBuf::from(p.value("bundle").unwrap_or("."));
    let preserve_fds = match p.value("preserve-fds") {
        Some(n) => n
            .parse()
            .map_err(|_| Error::new(format!("invalid --preserve-fds {n:?}")))?,
        None => 0,
    };
    let opts = CreateOptions {
        no_pivot: p.flag("no-pivot"),
        pid_file: p.value("pid-file").map(PathBuf::from),
        preserve_fds,
        console_socket: p.value("console-socket").map(PathBuf::from),
        console: None,
    };
    Ok((p, bundle, opts))
}

/// Copies the runtime's stdin to the terminal and the terminal to its stdout, until the
/// program has closed its end.
pub(super) fn copy_terminal(master: OwnedFd) {
    let out = std::fs::File::from(master);
    if let Ok(input) = out.try_clone() {
        std::thread::spawn(move || {
            let mut input = input;
            let _ = std::io::copy(&mut std::io::stdin(), &mut input);
        });
    }
    let mut out = out;
    let _ = std::io::copy(&mut out, &mut std::io::stdout());
}

pub fn create(global: &Global, args: &[String]) -> Result<i32> {
    let (p, bundle, opts) = options(args)?;
    let id = p.id()?;
    let (child, _) = container::create(&global.root, id, &bundle, &opts)?;
    // The container outlives this process: its handle is dropped without a kill.
    drop(child);
    Ok(0)
}

pub fn run(global: &Global, args: &[String]) -> Result<i32> {
    let (p, bundle, mut opts) = options(args)?;
    let id = p.id()?;
    // In the foreground with a terminal and no console socket, the runtime holds the
    // terminal's master itself and copies between it and its own stdio, as runc does.
    let wants_tty = crate::spec::load(&bundle)
        .ok()
        .and_then(|c| c.process)
        .is_some_and(|pr| pr.terminal);
    let mut relay = None;
    if wants_tty && !p.flag("detach") && opts.console_socket.is_none() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        opts.console = Some(std::sync::Arc::new(OwnedFd::from(theirs)));
        relay = Some(ours);
    }
    let (mut child, c) = container::create(&global.root, id, &bundle, &opts)?;
    opts.console = None;
    let master = match &relay {
        Some(sock) => Some(ns_container::receive_terminal(sock)?),
        None => None,
    };
    if let Err(e) = container::start(&c) {
        let _ = container::delete(&c, true);
        return Err(e);
    }
    crate::timing::mark("start");
    if p.flag("detach") {
        return Ok(0);
    }
    if let Some(master) = master {
        copy_terminal(master);
    }
    let status = child
        .wait()
        .map_err(|e| Error::new(format!("waiting: {e}")))?;
    crate::timing::mark("program");
    let code = status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    });
    if !p.flag("keep") {
        container::delete(&c, true)?;
        crate::timing::mark("delete");
    }
    Ok(code)
}
