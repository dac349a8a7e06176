//! `unshare`: run a program in new namespaces, like util-linux `unshare(1)` (a subset of it).
//!
//! ```text
//! cargo run -p ns-container --example unshare -- [-m] [-u] [-i] [-n] [-p] [-C] [-U] [-T] [-f]
//!     [-r] [--mount-proc[=DIR]] [--propagation private|shared|slave|unchanged]
//!     [--root DIR] [--wd DIR] [--setuid UID] [--setgid GID] [--kill-child] [--] [PROGRAM [ARGS...]]
//! ```
//!
//! As util-linux does: without a program it runs `$SHELL` (or `/bin/sh`); a new mount
//! namespace gets private propagation unless `--propagation` says otherwise; `--mount-proc`
//! implies `-m` and mounts a fresh `proc`; `-r` maps the caller to root in the new user
//! namespace (and denies `setgroups`); `--root` changes the root with `chroot`; the exit
//! status of the program is passed on. The program always runs in a new process (util-linux's
//! `-f`), so that it is inside every new namespace including the pid namespace; `-f` is
//! accepted for compatibility.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use ns_container::{Mount, NsCommand, Propagation, RootMode};
use ns_core::NsType;

struct Options {
    types: NsType,
    map_root: bool,
    mount_proc: Option<PathBuf>,
    propagation: Option<Option<Propagation>>,
    root: Option<PathBuf>,
    wd: Option<PathBuf>,
    uid: Option<u32>,
    gid: Option<u32>,
    kill_child: bool,
    program: Vec<OsString>,
}

const USAGE: &str = "Usage:
 unshare [options] [--] [PROGRAM [ARGS...]]

Run a program with some namespaces unshared from the parent.

Options:
 -m, --mount                  unshare mounts namespace
 -u, --uts                    unshare UTS namespace (hostname etc)
 -i, --ipc                    unshare System V IPC namespace
 -n, --net                    unshare network namespace
 -p, --pid                    unshare pid namespace
 -U, --user                   unshare user namespace
 -C, --cgroup                 unshare cgroup namespace
 -T, --time                   unshare time namespace
 -f, --fork                   fork before launching PROGRAM (always done)
 -r, --map-root-user          map current user to root (implies --user)
     --mount-proc[=DIR]       mount proc filesystem first (implies --mount)
     --propagation slave|shared|private|unchanged
                              modify mount propagation in mount namespace
     --kill-child             when dying, kill the forked child
 -R, --root DIR               run the command with root directory set to DIR
 -w, --wd DIR                 change working directory to DIR
 -S, --setuid UID             set uid in entered namespace
 -G, --setgid GID             set gid in entered namespace
 -h, --help                   display this help";

/// What the command line asks for, or help.
enum Parsed {
    Run(Options),
    Help,
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, lexopt::Error> {
    use lexopt::prelude::*;
    let mut o = Options {
        types: NsType::empty(),
        map_root: false,
        mount_proc: None,
        propagation: None,
        root: None,
        wd: None,
        uid: None,
        gid: None,
        kill_child: false,
        program: Vec::new(),
    };
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('m') | Long("mount") => o.types |= NsType::MNT,
            Short('u') | Long("uts") => o.types |= NsType::UTS,
            Short('i') | Long("ipc") => o.types |= NsType::IPC,
            Short('n') | Long("net") => o.types |= NsType::NET,
            Short('p') | Long("pid") => o.types |= NsType::PID,
            Short('C') | Long("cgroup") => o.types |= NsType::CGROUP,
            Short('U') | Long("user") => o.types |= NsType::USER,
            Short('T') | Long("time") => o.types |= NsType::TIME,
            Short('f') | Long("fork") => {}
            Short('r') | Long("map-root-user") => {
                o.types |= NsType::USER;
                o.map_root = true;
            }
            Long("mount-proc") => {
                o.types |= NsType::MNT;
                // Its value is optional, so only attached (`--mount-proc=DIR`).
                let dir = parser.optional_value().unwrap_or_else(|| "/proc".into());
                o.mount_proc = Some(dir.into());
            }
            Long("propagation") => {
                let value: String = parser.value()?.parse()?;
                o.propagation = Some(match value.as_str() {
                    "private" => Some(Propagation::Private),
                    "shared" => Some(Propagation::Shared),
                    "slave" => Some(Propagation::Slave),
                    "unchanged" => None,
                    other => return Err(format!("unsupported propagation mode: {other}").into()),
                })
            }
            Short('R') | Long("root") => o.root = Some(parser.value()?.into()),
            Short('w') | Long("wd") => o.wd = Some(parser.value()?.into()),
            Short('S') | Long("setuid") => o.uid = Some(parser.value()?.parse()?),
            Short('G') | Long("setgid") => o.gid = Some(parser.value()?.parse()?),
            Long("kill-child") => o.kill_child = true,
            Short('h') | Long("help") => return Ok(Parsed::Help),
            Value(program) => {
                o.program.push(program);
                o.program.extend(parser.raw_args()?);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    if o.program.is_empty() {
        o.program
            .push(std::env::var_os("SHELL").unwrap_or_else(|| "/bin/sh".into()));
    }
    Ok(Parsed::Run(o))
}

fn run(o: Options) -> Result<u8, Box<dyn std::error::Error>> {
    let mut command = NsCommand::new(&o.program[0]);
    command.args(&o.program[1..]).unshare(o.types);
    if o.map_root {
        // SAFETY: getuid/getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        command
            .uid_map(0, uid, 1)
            .gid_map(0, gid, 1)
            .setgroups_deny(true);
    }
    if o.types.contains(NsType::MNT) {
        // util-linux's default for a new mount namespace is private propagation.
        match o.propagation.unwrap_or(Some(Propagation::Private)) {
            Some(p) => {
                command.propagation(p);
            }
            None if o.mount_proc.is_some() || o.root.is_some() => {
                return Err("--propagation unchanged cannot go with --mount-proc or --root".into())
            }
            None => {}
        }
    }
    if let Some(dir) = &o.root {
        command.root(dir).root_mode(RootMode::Chroot);
    }
    if let Some(dir) = o.mount_proc {
        // util-linux mounts it after the root changes: with --root, DIR is the new root's.
        let target = match &o.root {
            Some(root) => root.join(dir.strip_prefix("/").unwrap_or(&dir)),
            None => dir,
        };
        command.mount(Mount::proc(target));
    }
    if let Some(dir) = &o.wd {
        command.current_dir(dir);
    }
    if let Some(gid) = o.gid {
        command.gid(gid);
    }
    if let Some(uid) = o.uid {
        command.uid(uid);
    }
    if o.kill_child {
        command.parent_death_signal(libc::SIGKILL);
    }
    let status = command.status()?;
    Ok(
        match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(code), _) => code as u8,
            (None, Some(sig)) => 128 + sig as u8,
            _ => 1,
        },
    )
}

fn main() -> ExitCode {
    let options = match parse(std::env::args_os().skip(1)) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("unshare: {e}\nTry 'unshare --help' for more information.");
            return ExitCode::from(1);
        }
    };
    match run(options) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("unshare: {e}");
            ExitCode::from(1)
        }
    }
}
