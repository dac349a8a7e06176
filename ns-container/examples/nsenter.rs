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

const USAGE: &str = "Usage:
 nsenter -t PID [options] [--] [PROGRAM [ARGS...]]

Run a program with namespaces of other processes.

Options:
 -a, --all                   enter all namespaces
 -t, --target PID            target process to get namespaces from
 -m, --mount                 enter mount namespace
 -u, --uts                   enter UTS namespace (hostname etc)
 -i, --ipc                   enter System V IPC namespace
 -n, --net                   enter network namespace
 -p, --pid                   enter pid namespace
 -C, --cgroup                enter cgroup namespace
 -U, --user                  enter user namespace
 -T, --time                  enter time namespace
 -S, --setuid UID            set uid in entered namespace
 -G, --setgid GID            set gid in entered namespace
     --preserve-credentials  do not touch uids or gids
 -F, --no-fork               do not fork before exec'ing PROGRAM
 -h, --help                  display this help";

/// What the command line asks for, or help.
enum Parsed {
    Run(Options),
    Help,
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, lexopt::Error> {
    use lexopt::prelude::*;
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
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('t') | Long("target") => o.target = parser.value()?.parse()?,
            Short('a') | Long("all") => o.all = true,
            Short('m') | Long("mount") => o.types |= NsType::MNT,
            Short('u') | Long("uts") => o.types |= NsType::UTS,
            Short('i') | Long("ipc") => o.types |= NsType::IPC,
            Short('n') | Long("net") => o.types |= NsType::NET,
            Short('p') | Long("pid") => o.types |= NsType::PID,
            Short('C') | Long("cgroup") => o.types |= NsType::CGROUP,
            Short('U') | Long("user") => o.types |= NsType::USER,
            Short('T') | Long("time") => o.types |= NsType::TIME,
            Short('S') | Long("setuid") => o.uid = Some(parser.value()?.parse()?),
            Short('G') | Long("setgid") => o.gid = Some(parser.value()?.parse()?),
            Long("preserve-credentials") => o.preserve = true,
            Short('F') | Long("no-fork") => o.no_fork = true,
            Short('h') | Long("help") => return Ok(Parsed::Help),
            Value(program) => {
                o.program.push(program);
                o.program.extend(parser.raw_args()?);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    if o.target <= 0 {
        return Err("no target process given (-t PID)".into());
    }
    if o.all {
        o.types = ns_core::nstypes();
    }
    if o.program.is_empty() {
        o.program
            .push(std::env::var_os("SHELL").unwrap_or_else(|| "/bin/sh".into()));
    }
    Ok(Parsed::Run(o))
}

fn main() -> ExitCode {
    let opts = match parse(std::env::args_os().skip(1)) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("nsenter: {e}\nTry 'nsenter --help' for more information.");
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
    // Like util-linux, supplementary groups are dropped only where the user namespace
    // allows setgroups (a namespace made with `unshare --map-root-user` denies it).
    let setgroups_denied = entering_user
        && std::fs::read_to_string(format!("/proc/{}/setgroups", target.pid()))
            .is_ok_and(|s| s.trim() == "deny");
    if (uid.is_some() || gid.is_some()) && !setgroups_denied {
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
