//! `nested`: a container inside a container, built with clone-after-setns.
//!
//! 1. Starts a "parent container": new pid, mount, uts, net and ipc namespaces (and, for a
//!    non-root user, a user namespace that maps the user to root).
//! 2. Spawns a "nested container" inside it: enters all of the parent container's namespaces,
//!    then creates its own pid and uts namespaces.
//! 3. Prints each process's pid on the host, in the parent container and in the nested one,
//!    its namespace ids and its hostname, and checks they are what they must be.
//! 4. Tears everything down (the parent container's pid namespace with `destroy`) and exits 0.
//!
//! ```text
//! cargo run -p ns-container --example nested
//! ```

use std::error::Error;
use std::process::ExitCode;

use ns_container::{destroy, Child, NsCommand};
use ns_core::{getns, Namespace, NsId, NsType, Target};

/// The namespace types the tree shows.
const SHOWN: [NsType; 5] = [
    NsType::PID,
    NsType::UTS,
    NsType::NET,
    NsType::MNT,
    NsType::USER,
];

struct Facts {
    name: &'static str,
    pid: libc::pid_t,
    nspid: Vec<libc::pid_t>,
    ids: Vec<(NsType, NsId)>,
    hostname: String,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nested: {e}");
            ExitCode::FAILURE
        }
    }
}

fn sleeper() -> NsCommand {
    let mut c = NsCommand::new("sleep");
    c.arg("600");
    c
}

fn run() -> Result<(), Box<dyn Error>> {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let rootless = uid != 0;
    let mut parent_types = NsType::PID | NsType::MNT | NsType::UTS | NsType::NET | NsType::IPC;
    let mut parent_cmd = sleeper();
    parent_cmd.hostname("parent-container");
    if rootless {
        parent_types |= NsType::USER;
        parent_cmd
            .uid_map(0, uid, 1)
            .gid_map(0, gid, 1)
            .setgroups_deny(true);
    }
    parent_cmd.unshare(parent_types);
    println!(
        "running as {}: parent container gets {}",
        if rootless {
            format!("uid {uid} (rootless)")
        } else {
            "root".to_owned()
        },
        parent_types
    );
    let mut parent = match parent_cmd.spawn() {
        Ok(p) => p,
        Err(e)
            if rootless
                && matches!(
                    e.raw_os_error(),
                    Some(libc::EPERM | libc::EACCES | libc::ENOSPC)
                ) =>
        {
            return Err(format!(
                "this system does not let unprivileged users create user namespaces \
                 (see kernel.unprivileged_userns_clone, user.max_user_namespaces or an LSM \
                 policy); run as root instead. The error was: {e}"
            )
            .into());
        }
        Err(e) => return Err(e.into()),
    };

    let result = inside(&parent, parent_types, rootless);
    if let Err(e) = &result {
        eprintln!("nested: {e}");
    }
    // Tear down: the parent container's pid namespace takes the nested container with it.
    let pidns = Namespace::of_pid(parent.pid(), NsType::PID)?;
    let killed = destroy(&pidns)?;
    parent.wait()?;
    println!("destroyed the parent container's pid namespace ({killed} process(es) killed)");
    result?;
    println!("all checks passed");
    Ok(())
}

fn inside(parent: &Child, parent_types: NsType, rootless: bool) -> Result<(), Box<dyn Error>> {
    // clone-after-setns: enter every namespace of the parent container, then make new pid and
    // uts namespaces inside it.
    let target = Target::pin(parent.pid(), parent_types)?;
    let mut nested = sleeper()
        .enter(&target, parent_types)
        .unshare(NsType::PID | NsType::UTS)
        .hostname("nested-container")
        .spawn()?;

    let shown = show_and_check(parent, &nested, rootless);
    nested.kill()?;
    nested.wait()?;
    shown
}

fn show_and_check(parent: &Child, nested: &Child, rootless: bool) -> Result<(), Box<dyn Error>> {
    let me = std::process::id() as libc::pid_t;
    let host = facts("host (this process)", me, rootless)?;
    let outer = facts("parent container", parent.pid(), rootless)?;
    let inner = facts("nested container", nested.pid(), rootless)?;
    print_tree(&[&host, &outer, &inner]);
    check(&host, &outer, &inner, nested.pid())
}

fn facts(name: &'static str, pid: libc::pid_t, rootless: bool) -> Result<Facts, Box<dyn Error>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let nspid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .ok_or("no NSpid line")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<Vec<libc::pid_t>, _>>()?;
    let mut ids = Vec::new();
    for t in SHOWN {
        ids.push((t, getns(pid, t)?.ok_or("process vanished")?));
    }
    let hostname = if pid == std::process::id() as libc::pid_t {
        own_hostname()
    } else {
        hostname_of(name, pid, rootless)?
    };
    Ok(Facts {
        name,
        pid,
        nspid,
        ids,
        hostname,
    })
}

fn own_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its whole length.
    unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Reads the hostname from inside the process's uts namespace (and, rootless, its user
/// namespace, which owns that uts namespace and grants the right to enter it).
fn hostname_of(name: &str, pid: libc::pid_t, rootless: bool) -> Result<String, Box<dyn Error>> {
    let mut types = NsType::UTS;
    if rootless {
        types |= NsType::USER;
    }
    let target = Target::pin(pid, types)?;
    let out = NsCommand::new("hostname").enter(&target, types).output()?;
    if !out.status.success() {
        return Err(format!(
            "hostname in {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn print_tree(levels: &[&Facts]) {
    for (depth, f) in levels.iter().enumerate() {
        let indent = "    ".repeat(depth);
        let branch = if depth == 0 { "" } else { "└── " };
        let pids: Vec<String> = ["host", "parent", "nested"]
            .iter()
            .zip(&f.nspid)
            .map(|(level, pid)| format!("{pid} ({level})"))
            .collect();
        println!("{indent}{branch}{} — hostname {:?}", f.name, f.hostname);
        println!("{indent}      pid {} = {}", f.pid, pids.join(" / "));
        let ids: Vec<String> = f.ids.iter().map(|(_, id)| id.to_string()).collect();
        println!("{indent}      {}", ids.join("  "));
    }
}

fn id_of(f: &Facts, t: NsType) -> NsId {
    f.ids
        .iter()
        .find(|(k, _)| *k == t)
        .map(|(_, id)| *id)
        .expect("every shown type is recorded")
}

fn check(
    host: &Facts,
    outer: &Facts,
    inner: &Facts,
    nested_pid: libc::pid_t,
) -> Result<(), Box<dyn Error>> {
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    expect(
        outer.nspid.len() == host.nspid.len() + 1,
        format!("parent container pid levels {:?}", outer.nspid),
    );
    expect(
        outer.nspid.last() == Some(&1),
        "the parent container's init is not pid 1 there".into(),
    );
    expect(
        inner.nspid.len() == host.nspid.len() + 2,
        format!("nested container pid levels {:?}", inner.nspid),
    );
    expect(
        inner.nspid.last() == Some(&1),
        "the nested container's init is not pid 1 there".into(),
    );
    for t in [NsType::PID, NsType::UTS] {
        expect(
            id_of(inner, t) != id_of(outer, t),
            format!("nested and parent share their {t}"),
        );
        expect(
            id_of(outer, t) != id_of(host, t),
            format!("parent and host share their {t}"),
        );
    }
    for t in [NsType::NET, NsType::MNT, NsType::USER] {
        expect(
            id_of(inner, t) == id_of(outer, t),
            format!("nested is not in the parent's {t}"),
        );
    }
    expect(
        id_of(outer, NsType::NET) != id_of(host, NsType::NET),
        "parent and host share their net namespace".into(),
    );
    // The nested pid namespace hangs below the parent container's.
    let nested_pidns = Namespace::of_pid(nested_pid, NsType::PID)?;
    let parent_of_nested = nested_pidns
        .parent()?
        .ok_or("nested pid namespace has no visible parent")?;
    expect(
        parent_of_nested.id()? == id_of(outer, NsType::PID),
        "nested pid namespace is not below the parent's".into(),
    );
    expect(
        outer.hostname == "parent-container",
        format!("parent hostname {:?}", outer.hostname),
    );
    expect(
        inner.hostname == "nested-container",
        format!("nested hostname {:?}", inner.hostname),
    );
    expect(
        host.hostname != inner.hostname,
        "the host's hostname changed".into(),
    );
    if problems.is_empty() {
        println!("checks: pid levels, namespace sharing, pid namespace parent, hostnames: ok");
        Ok(())
    } else {
        Err(format!("checks failed: {}", problems.join("; ")).into())
    }
}
