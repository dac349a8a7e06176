//! `nsenter`: run a program in the namespaces of another process, like util-linux
//! `nsenter(1)` (a subset of it).
//!
//! ```text
//! cargo run -p ns-container --example nsenter -- -t PID [-a] [-m] [-u] [-i] [-n] [-p] [-C] [-U] [-T]
//!     [-S UID] [-G GID] [--preserve-credentials] [-F] [--] [PROGRAM [ARGS...]]
//! ```
//!
//! As util-linux does: without a program it runs `$SHELL` (or `/bin/sh`); entering a user
//! namespace sets uid and gid 0 unless `--preserve-credentials`; without `-F` the program runs
//! in a new child process (so that `-p` puts it in the target's pid namespace) and its exit
//! status is passed on; with `-F` this process enters the namespaces itself and executes the
//! program, which with `-p` only affects the program's children.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use ns_container::NsCommand;
use ns_core::{NsType, Target};

struct Options {
    target: libc::pid_t,
    all: bool,
    types: NsType,
    uid: Option<u32>,
    gid: Option<u32>,
    preserve: bool,
    no_fork: bool,
    program: Vec<OsString>,
}

fn usage() -> String {
    "usage: nsenter -t PID [-a] [-m] [-u] [-i] [-n] [-p] [-C] [-U] [-T] [-S UID] [-G GID] \
     [--preserve-credentials] [-F] [--] [PROGRAM [ARGS...]]"
        .to_owned()
}

fn parse(args: Vec<OsString>) -> Result<Options, String> {
    let mut o = Options {
        target: 0,
        all: false,
        types: NsType::empty(),
        uid: None,
        gid: None,
        preserve: false,
        no_fork: false,
        program: Vec::new(),
    };
    let mut it = args.into_iter();
    let number = |v: Option<OsString>, what: &str| -> Result<u32, String> {
        v.and_then(|v| v.to_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| format!("{what} needs a number\n{}", usage()))
    };
    while let Some(arg) = it.next() {
        let Some(text) = arg.to_str() else {
            o.program.push(arg);
            o.program.extend(it);
            break;
        };
        // Long options with '=' and short options with attached values.
        let (flag, value) = match text.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(OsString::from(v))),
            _ if text.len() > 2 && matches!(&text[..2], "-t" | "-S" | "-G") => {
                (text[..2].to_owned(), Some(OsString::from(&text[2..])))
            }
            _ => (text.to_owned(), None),
        };
        let mut value_or_next = || value.clone().or_else(|| it.next());
        match flag.as_str() {
            "-t" | "--target" => o.target = number(value_or_next(), "-t")? as libc::pid_t,
            "-a" | "--all" => o.all = true,
            "-m" | "--mount" => o.types |= NsType::MNT,
            "-u" | "--uts" => o.types |= NsType::UTS,
            "-i" | "--ipc" => o.types |= NsType::IPC,
            "-n" | "--net" => o.types |= NsType::NET,
            "-p" | "--pid" => o.types |= NsType::PID,
            "-C" | "--cgroup" => o.types |= NsType::CGROUP,
            "-U" | "--user" => o.types |= NsType::USER,
            "-T" | "--time" => o.types |= NsType::TIME,
            "-S" | "--setuid" => o.uid = Some(number(value_or_next(), "-S")?),
            "-G" | "--setgid" => o.gid = Some(number(value_or_next(), "-G")?),
            "--preserve-credentials" => o.preserve = true,
            "-F" | "--no-fork" => o.no_fork = true,
            "-h" | "--help" => return Err(usage()),
            "--" => {
                o.program.extend(it);
                break;
            }
            f if f.starts_with('-') && f.len() > 1 => {
                // Bundled flags such as -mun.
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
                        'a' => {
                            o.all = true;
                            NsType::empty()
                        }
                        'F' => {
                            o.no_fork = true;
                            NsType::empty()
                        }
                        _ => return Err(format!("unknown option -{c}\n{}", usage())),
                    };
                }
            }
            _ => {
                o.program.push(arg);
                o.program.extend(it);
                break;
            }
        }
    }
    if o.target <= 0 {
        return Err(format!("no target process given (-t PID)\n{}", usage()));
    }
    if o.all {
        o.types = ns_core::nstypes();
    }
    if o.program.is_empty() {
        o.program
            .push(std::env::var_os("SHELL").unwrap_or_else(|| "/bin/sh".into()));
    }
    Ok(o)
}

fn main() -> ExitCode {
    let opts = match parse(std::env::args_os().skip(1).collect()) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("nsenter: {msg}");
            return ExitCode::from(1);
        }
    };
    match run(opts) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("nsenter: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(o: Options) -> Result<u8, Box<dyn std::error::Error>> {
    let target = Target::pin(o.target, o.types)?;
    // Entering a user namespace makes us root there, as util-linux does.
    let entering_user = o.types.contains(NsType::USER)
        && target
            .plan(o.types, Default::default())?
            .types()
            .contains(NsType::USER);
    let (uid, gid) = if entering_user && !o.preserve {
        (o.uid.or(Some(0)), o.gid.or(Some(0)))
    } else {
        (o.uid, o.gid)
    };
    let mut command = Command::new(&o.program[0]);
    command.args(&o.program[1..]);
    if o.no_fork {
        target.enter(o.types)?;
        if let Some(gid) = gid {
            command.gid(gid);
        }
        if let Some(uid) = uid {
            // std drops supplementary groups when root switches uid.
            command.uid(uid);
        }
        return Err(command.exec().into());
    }
    let mut ns_command = NsCommand::new(&o.program[0]);
    ns_command.args(&o.program[1..]);
    ns_command.enter(&target, o.types);
    if let Some(gid) = gid {
        ns_command.gid(gid);
    }
    if let Some(uid) = uid {
        ns_command.uid(uid);
    }
    if uid.is_some() || gid.is_some() {
        ns_command.groups(&[]);
    }
    let status = ns_command.status()?;
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
