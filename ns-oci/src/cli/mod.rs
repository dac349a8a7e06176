//! runc's command line: global options, then a command and its options (urfave/cli's rules:
//! `--flag value`, `--flag=value`, short aliases, options before the positional arguments).
//! One file per command; errors are printed (and logged with `--log`) as runc prints them,
//! and the exit status is 1.

mod create;
mod delete;
mod events;
mod exec;
mod info;

pub use info::{default_spec, rootless};
mod kill;
mod start;
mod state;
mod update;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Options every command sees.
#[derive(Debug, Clone)]
pub struct Global {
    pub root: PathBuf,
    pub log: Option<PathBuf>,
    pub log_json: bool,
    pub debug: bool,
}

/// A command's parsed options and positional arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    values: BTreeMap<&'static str, Vec<String>>,
    flags: Vec<&'static str>,
    pub args: Vec<String>,
}

impl Parsed {
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }
    pub fn values(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
    pub fn flag(&self, name: &str) -> bool {
        self.flags.contains(&name)
    }
    /// The first positional argument: the container id.
    pub fn id(&self) -> Result<&str> {
        self.args
            .first()
            .map(String::as_str)
            .ok_or_else(|| Error::new("container id cannot be empty"))
    }
}

/// An option: its names (the first is the key), and whether it takes a value.
pub struct Opt {
    pub names: &'static [&'static str],
    pub value: bool,
}

const fn v(names: &'static [&'static str]) -> Opt {
    Opt { names, value: true }
}

const fn f(names: &'static [&'static str]) -> Opt {
    Opt {
        names,
        value: false,
    }
}

/// Parses `args` against `opts`: options may follow positional arguments too (urfave/cli
/// moves them before), up to `--`.
pub fn parse(args: &[String], opts: &[Opt]) -> Result<Parsed> {
    parse_with(args, opts, false)
}

/// As [`parse`], but options stop at the first positional argument: `exec`, whose
/// arguments after the id are the program's.
pub fn parse_in_order(args: &[String], opts: &[Opt]) -> Result<Parsed> {
    parse_with(args, opts, true)
}

fn parse_with(args: &[String], opts: &[Opt], in_order: bool) -> Result<Parsed> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            p.args.extend(args[i + 1..].iter().cloned());
            break;
        }
        if !a.starts_with('-') || a == "-" {
            if in_order {
                p.args.extend(args[i..].iter().cloned());
                break;
            }
            p.args.push(a.clone());
            i += 1;
            continue;
        }
        let body = a.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        let opt = opts
            .iter()
            .find(|o| o.names.contains(&name))
            .ok_or_else(|| Error::new(format!("flag provided but not defined: -{name}")))?;
        let key = opt.names[0];
        if opt.value {
            let value = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    args.get(i)
                        .cloned()
                        .ok_or_else(|| Error::new(format!("flag needs an argument: -{name}")))?
                }
            };
            p.values.entry(key).or_default().push(value);
        } else if inline.as_deref().is_none_or(|v| v == "true") {
            p.flags.push(key);
        }
        i += 1;
    }
    Ok(p)
}

const GLOBAL: &[Opt] = &[
    v(&["root"]),
    v(&["log"]),
    v(&["log-format"]),
    v(&["criu"]),
    v(&["rootless"]),
    f(&["debug"]),
    f(&["systemd-cgroup"]),
    f(&["version", "v"]),
    f(&["help", "h"]),
];

const USAGE: &str = "ns-oci: an OCI runtime built on ns-container, with runc's command line

usage: ns-oci [global options] command [command options] [arguments...]

commands: create, start, run, state, kill, delete, list, ps, exec, pause, resume, spec,
          features, version

global options: --root DIR, --log FILE, --log-format text|json, --debug, --systemd-cgroup";

/// Runs the command line; returns the exit status.
pub fn main(argv: Vec<String>) -> i32 {
    let args = &argv[1.min(argv.len())..];
    let (global, rest) = match parse_global(args) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    match dispatch(&global, &rest) {
        Ok(code) => code,
        Err(e) => {
            report(&global, &e);
            // runc's exec tells its own failure (255) from the program's status.
            if rest.first().is_some_and(|c| c == "exec") {
                255
            } else {
                1
            }
        }
    }
}

fn parse_global(args: &[String]) -> Result<(Global, Vec<String>)> {
    let p = parse_in_order(args, GLOBAL)?;
    if p.flag("version") {
        return Ok((default_global(), vec!["version".to_owned()]));
    }
    if p.flag("help") && p.args.is_empty() {
        return Ok((default_global(), vec!["help".to_owned()]));
    }
    if p.flag("systemd-cgroup") {
        return Err(Error::new(
            "--systemd-cgroup is not supported by ns-oci: give cgroupsPath as a path",
        ));
    }
    let log_json = match p.value("log-format") {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => return Err(Error::new(format!("invalid log-format: {other}"))),
    };
    let root = match p.value("root") {
        Some(r) => PathBuf::from(r),
        None => default_root(),
    };
    let global = Global {
        root,
        log: p.value("log").map(PathBuf::from),
        log_json,
        debug: p.flag("debug"),
    };
    Ok((global, p.args))
}

fn default_global() -> Global {
    Global {
        root: default_root(),
        log: None,
        log_json: false,
        debug: false,
    }
}

/// `/run/ns-oci` for root; `$XDG_RUNTIME_DIR/ns-oci` (else `/tmp/ns-oci-UID`) otherwise.
fn default_root() -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/ns-oci");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("ns-oci"),
        _ => PathBuf::from(format!("/tmp/ns-oci-{uid}")),
    }
}

/// Prints the error on stderr and appends it to the log, as runc does.
fn report(global: &Global, e: &Error) {
    eprintln!("{e}");
    log(global, "error", &e.to_string());
}

/// Appends a line to `--log` (text or JSON).
pub fn log(global: &Global, level: &str, msg: &str) {
    let Some(path) = &global.log else {
        return;
    };
    let time = crate::state::now_rfc3339();
    let line = if global.log_json {
        serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
    } else {
        format!("time=\"{time}\" level={level} msg={msg:?}")
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

fn dispatch(global: &Global, rest: &[String]) -> Result<i32> {
    let Some(command) = rest.first() else {
        println!("{USAGE}");
        return Ok(0);
    };
    let args = &rest[1..];
    let known = [
        "create", "run", "start", "state", "list", "ps", "kill", "pause", "resume", "delete",
        "exec", "update", "events", "spec", "features", "version", "help",
    ];
    if !known.contains(&command.as_str()) && args.iter().any(|a| a == "--help" || a == "-h") {
        return Err(Error::new(format!("No help topic for '{command}'")));
    }
    if args.iter().any(|a| a == "--help" || a == "-h") && command != "exec" {
        println!("{USAGE}");
        return Ok(0);
    }
    if global.debug {
        log(global, "debug", &format!("{command} {}", args.join(" ")));
    }
    match command.as_str() {
        "create" => create::create(global, args),
        "run" => create::run(global, args),
        "start" => start::start(global, args),
        "state" => state::state(global, args),
        "list" => state::list(global, args),
        "ps" => state::ps(global, args),
        "kill" => kill::kill(global, args),
        "pause" => kill::pause(global, args, true),
        "resume" => kill::pause(global, args, false),
        "delete" => delete::delete(global, args),
        "exec" => exec::exec(global, args),
        "spec" => info::spec(args),
        "features" => info::features(),
        "version" => {
            println!(
                "ns-oci version {}\nspec: 1.0.2-dev",
                env!("CARGO_PKG_VERSION")
            );
            Ok(0)
        }
        "help" => {
            println!("{USAGE}");
            Ok(0)
        }
        "update" => update::update(global, args),
        "events" => events::events(global, args),
        "checkpoint" | "restore" => {
            Err(Error::new(format!("ns-oci does not support {command} yet")))
        }
        other => Err(Error::new(format!("No help topic for '{other}'"))),
    }
}
