//! `lsns`: list the namespaces of every process, like util-linux `lsns(8)`.
//!
//! ```text
//! cargo run -p ns-core --example lsns -- [-n] [-r|--raw] [-t TYPE]... [-o COLUMNS]
//! ```
//!
//! Columns: NS, TYPE, NPROCS, PID, PPID, UID, USER, COMMAND, PATH, PNS (parent namespace),
//! ONS (owning user namespace). The default is NS,TYPE,NPROCS,PID,USER,COMMAND. As util-linux
//! 2.38 does, it lists namespaces that have processes, counts processes (not threads), shows
//! the lowest PID of each namespace, and skips processes it may not inspect.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;

use ns_core::{getns, Namespace, NsId, NsType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Ns,
    Type,
    Nprocs,
    Pid,
    Ppid,
    Uid,
    User,
    Command,
    Path,
    Pns,
    Ons,
}

const COLUMNS: [(Column, &str, bool); 11] = [
    // (column, header, right-aligned)
    (Column::Ns, "NS", true),
    (Column::Type, "TYPE", false),
    (Column::Nprocs, "NPROCS", true),
    (Column::Pid, "PID", true),
    (Column::Ppid, "PPID", true),
    (Column::Uid, "UID", true),
    (Column::User, "USER", false),
    (Column::Command, "COMMAND", false),
    (Column::Path, "PATH", false),
    (Column::Pns, "PNS", true),
    (Column::Ons, "ONS", true),
];

struct Options {
    headings: bool,
    raw: bool,
    types: NsType,
    columns: Vec<Column>,
}

const USAGE: &str = "Usage:
 lsns [options]

List system namespaces.

Options:
 -n, --noheadings       don't print headings
 -o, --output <list>    define which output columns to use (+list adds to the default)
 -r, --raw              use the raw output format
 -t, --type <name>      namespace type (mnt, net, ipc, user, pid, uts, cgroup, time)
 -h, --help             display this help

Available output columns:
 NS, TYPE, NPROCS, PID, PPID, UID, USER, COMMAND, PATH, PNS, ONS";

/// What the command line asks for, or help.
enum Parsed {
    Run(Options),
    Help,
}

fn parse_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Parsed, lexopt::Error> {
    use lexopt::prelude::*;
    let mut opts = Options {
        headings: true,
        raw: false,
        types: NsType::empty(),
        columns: vec![
            Column::Ns,
            Column::Type,
            Column::Nprocs,
            Column::Pid,
            Column::User,
            Column::Command,
        ],
    };
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('n') | Long("noheadings") => opts.headings = false,
            Short('r') | Long("raw") => opts.raw = true,
            Short('t') | Long("type") => {
                let name: String = parser.value()?.parse()?;
                opts.types |= ns_core::nstype(&name).map_err(|e| e.to_string())?;
            }
            Short('o') | Long("output") => {
                let v: String = parser.value()?.parse()?;
                let list = v.strip_prefix('+');
                let mut cols = if list.is_some() {
                    opts.columns.clone()
                } else {
                    Vec::new()
                };
                for name in list.unwrap_or(&v).split(',') {
                    let col = COLUMNS
                        .iter()
                        .find(|(_, h, _)| h.eq_ignore_ascii_case(name.trim()))
                        .map(|(c, _, _)| *c)
                        .ok_or_else(|| format!("unknown column: {name}"))?;
                    cols.push(col);
                }
                opts.columns = cols;
            }
            Short('h') | Long("help") => return Ok(Parsed::Help),
            _ => return Err(arg.unexpected()),
        }
    }
    if opts.types.is_empty() {
        opts.types = NsType::all();
    }
    Ok(Parsed::Run(opts))
}

/// One process as /proc shows it.
struct Process {
    pid: libc::pid_t,
    ppid: libc::pid_t,
    uid: u32,
}

/// One namespace, with the processes in it.
struct Row {
    id: NsId,
    nprocs: usize,
    lowest: Process,
}

fn read_process(pid: libc::pid_t) -> Option<Process> {
    let uid = fs::metadata(format!("/proc/{pid}")).ok()?.uid();
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
    Some(Process { pid, ppid, uid })
}

fn command(pid: libc::pid_t) -> String {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    if words.is_empty() {
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim_end().to_owned())
            .unwrap_or_default()
    } else {
        words.join(" ")
    }
}

fn user_name(uid: u32) -> String {
    let mut pw = std::mem::MaybeUninit::<libc::passwd>::zeroed();
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut result = std::ptr::null_mut();
    // SAFETY: every pointer refers to live storage of the advertised size.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            pw.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc == 0 && !result.is_null() {
        // SAFETY: getpwuid_r succeeded, so pw_name points to a NUL-terminated string in `buf`.
        unsafe { CStr::from_ptr((*result).pw_name) }
            .to_string_lossy()
            .into_owned()
    } else {
        uid.to_string()
    }
}

/// The inode of a related namespace (parent or owner), or 0 when there is none to see.
fn related_ino(pid: libc::pid_t, ns_type: NsType, parent: bool) -> u64 {
    let Ok(ns) = Namespace::of_pid(pid, ns_type) else {
        return 0;
    };
    let related = if parent {
        if !matches!(ns_type, NsType::PID | NsType::USER) {
            return 0;
        }
        ns.parent()
    } else {
        ns.owner()
    };
    match related {
        Ok(Some(r)) => r.id().map(|id| id.ino()).unwrap_or(0),
        _ => 0,
    }
}

fn collect(types: NsType) -> Vec<Row> {
    let mut rows: BTreeMap<NsId, Row> = BTreeMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<libc::pid_t> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let Some(proc_) = read_process(pid) else {
            continue;
        };
        for t in types.iter() {
            // Processes we may not inspect, or that exited meanwhile, are skipped.
            let Ok(Some(id)) = getns(pid, t) else {
                continue;
            };
            let row = rows.entry(id).or_insert_with(|| Row {
                id,
                nprocs: 0,
                lowest: Process {
                    pid: proc_.pid,
                    ppid: proc_.ppid,
                    uid: proc_.uid,
                },
            });
            row.nprocs += 1;
        }
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    rows.sort_by_key(|r| r.id.ino());
    rows
}

fn cell(row: &Row, col: Column) -> String {
    let pid = row.lowest.pid;
    let t = row.id.ns_type();
    match col {
        Column::Ns => row.id.ino().to_string(),
        Column::Type => t.name().unwrap_or("?").to_owned(),
        Column::Nprocs => row.nprocs.to_string(),
        Column::Pid => pid.to_string(),
        Column::Ppid => row.lowest.ppid.to_string(),
        Column::Uid => row.lowest.uid.to_string(),
        Column::User => user_name(row.lowest.uid),
        Column::Command => command(pid),
        Column::Path => format!("/proc/{pid}/ns/{}", t.name().unwrap_or("?")),
        Column::Pns => related_ino(pid, t, true).to_string(),
        Column::Ons => related_ino(pid, t, false).to_string(),
    }
}

/// Raw output escapes what would break the columns, as libsmartcols does: `\x20` for a space.
fn raw_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn render(opts: &Options) -> String {
    let rows = collect(opts.types);
    let spec: Vec<(Column, &str, bool)> = opts
        .columns
        .iter()
        .filter_map(|c| COLUMNS.iter().find(|(k, _, _)| k == c).copied())
        .collect();
    let mut table: Vec<Vec<String>> = Vec::new();
    if opts.headings {
        table.push(spec.iter().map(|(_, h, _)| (*h).to_owned()).collect());
    }
    for row in &rows {
        table.push(spec.iter().map(|(c, _, _)| cell(row, *c)).collect());
    }
    let mut out = String::new();
    if opts.raw {
        for line in &table {
            let cells: Vec<String> = line.iter().map(|c| raw_escape(c)).collect();
            out.push_str(&cells.join(" "));
            out.push('\n');
        }
        return out;
    }
    let widths: Vec<usize> = (0..spec.len())
        .map(|i| {
            table
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in &table {
        let mut text = String::new();
        for (i, value) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let pad = widths[i].saturating_sub(value.chars().count());
            if spec[i].2 {
                text.push_str(&" ".repeat(pad));
                text.push_str(value);
            } else {
                text.push_str(value);
                if !last {
                    text.push_str(&" ".repeat(pad));
                }
            }
            if !last {
                text.push(' ');
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

fn main() -> ExitCode {
    match parse_args(std::env::args_os().skip(1)) {
        Ok(Parsed::Run(opts)) => {
            print!("{}", render(&opts));
            ExitCode::SUCCESS
        }
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lsns: {e}\nTry 'lsns --help' for more information.");
            ExitCode::from(1)
        }
    }
}
