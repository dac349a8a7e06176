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

fn usage() -> String {
    "usage: unshare [-m] [-u] [-i] [-n] [-p] [-C] [-U] [-T] [-f] [-r] [--mount-proc[=DIR]] \
     [--propagation private|shared|slave|unchanged] [--root DIR] [--wd DIR] [--setuid UID] \
     [--setgid GID] [--kill-child] [--] [PROGRAM [ARGS...]]"
        .to_owned()
}

fn parse(args: Vec<OsString>) -> Result<Options, String> {
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
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let Some(text) = arg.to_str() else {
            o.program.push(arg);
            o.program.extend(it);
            break;
        };
        let (flag, value) = match text.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (text.to_owned(), None),
        };
        let mut value_or_next = |what: &str| -> Result<String, String> {
            value
                .clone()
                .or_else(|| it.next().and_then(|v| v.into_string().ok()))
                .ok_or_else(|| format!("{what} needs a value\n{}", usage()))
        };
        let number = |v: String, what: &str| -> Result<u32, String> {
            v.parse()
                .map_err(|_| format!("{what} needs a number\n{}", usage()))
        };
        match flag.as_str() {
            "-m" | "--mount" => o.types |= NsType::MNT,
            "-u" | "--uts" => o.types |= NsType::UTS,
            "-i" | "--ipc" => o.types |= NsType::IPC,
            "-n" | "--net" => o.types |= NsType::NET,
            "-p" | "--pid" => o.types |= NsType::PID,
            "-C" | "--cgroup" => o.types |= NsType::CGROUP,
            "-U" | "--user" => o.types |= NsType::USER,
            "-T" | "--time" => o.types |= NsType::TIME,
            "-f" | "--fork" => {}
            "-r" | "--map-root-user" => {
                o.types |= NsType::USER;
                o.map_root = true;
            }
            "--mount-proc" => {
                o.types |= NsType::MNT;
                o.mount_proc = Some(value.clone().unwrap_or_else(|| "/proc".into()).into());
            }
            "--propagation" => {
                o.propagation = Some(match value_or_next("--propagation")?.as_str() {
                    "private" => Some(Propagation::Private),
                    "shared" => Some(Propagation::Shared),
                    "slave" => Some(Propagation::Slave),
                    "unchanged" => None,
                    other => return Err(format!("unknown propagation {other:?}\n{}", usage())),
                })
            }
            "-R" | "--root" => o.root = Some(value_or_next("--root")?.into()),
            "-w" | "--wd" => o.wd = Some(value_or_next("--wd")?.into()),
            "-S" | "--setuid" => o.uid = Some(number(value_or_next("--setuid")?, "--setuid")?),
            "-G" | "--setgid" => o.gid = Some(number(value_or_next("--setgid")?, "--setgid")?),
            "--kill-child" => o.kill_child = true,
            "-h" | "--help" => return Err(usage()),
            "--" => {
                o.program.extend(it);
                break;
            }
            f if f.starts_with('-') && f.len() > 1 && !f.starts_with("--") => {
                // Bundled flags such as -muinpf.
                for c in f.chars().skip(1) {
                    o.types |= match c {
                        'm' => NsType::MNT,
                        'u' => NsType::UTS,
                        'i' => NsType::IPC,
                        'n' => NsType::NET,
                        'p' => NsType::PID,
                        'C' => NsType::CGROUP,
                        'U' => NsType::USER,
                        'T' => NsType::TIME,
                        'f' => NsType::empty(),
                        'r' => {
                            o.map_root = true;
                            NsType::USER
                        }
                        _ => return Err(format!("unknown option -{c}\n{}", usage())),
                    };
                }
            }
            f if f.starts_with("--") => return Err(format!("unknown option {f}\n{}", usage())),
            _ => {
                o.program.push(arg);
                o.program.extend(it);
                break;
            }
        }
    }
    if o.program.is_empty() {
        o.program
            .push(std::env::var_os("SHELL").unwrap_or_else(|| "/bin/sh".into()));
    }
    Ok(o)
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
        // Mounted before the root changes, as the path is seen before it.
        command.mount(Mount::proc(dir));
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
    let args = std::env::args_os().skip(1).collect();
    let options = match parse(args) {
        Ok(o) => o,
        Err(msg) if msg == usage() => {
            println!("{msg}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("unshare: {msg}");
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
