//! `hooks`: each hook runs with the container's state (JSON) on its standard input, in
//! order; one that fails (or outlives its `timeout`) fails the operation. Most are programs
//! of the host; `startContainer` hooks run in the container (its namespaces and seccomp
//! filter), as the runtime spec asks.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::spec::config::Hook;

/// Runs `hooks` with `state` on their stdin.
pub fn run(name: &str, hooks: &[Hook], state: &serde_json::Value) -> Result<()> {
    let input = serde_json::to_vec(state).map_err(|e| Error::new(e.to_string()))?;
    for hook in hooks {
        run_one(name, hook, &input)?;
    }
    Ok(())
}

/// Runs `hooks` in the container whose init is `pid` (its namespaces `types`), under its
/// seccomp `filter`, with `state` on their stdin.
pub fn run_in_container(
    name: &str,
    hooks: &[Hook],
    state: &serde_json::Value,
    pid: i32,
    types: ns_core::NsType,
    filter: Option<&[libc::sock_filter]>,
) -> Result<()> {
    let input = serde_json::to_vec(state).map_err(|e| Error::new(e.to_string()))?;
    let target = ns_core::Target::pin(pid, types)?;
    for (i, hook) in hooks.iter().enumerate() {
        let fail = |what: String| {
            Error::new(format!(
                "error running hook #{i} ({name}, {}): {what}",
                hook.path
            ))
        };
        let mut c = ns_container::NsCommand::new(&hook.path);
        if let Some(arg0) = hook.args.first() {
            c.arg0(arg0);
        }
        c.args(hook.args.iter().skip(1))
            .env_clear()
            .stdin(ns_container::Stdio::piped())
            .stdout(ns_container::Stdio::null())
            .enter(&target, types)
            .kill_on_drop(true);
        for kv in &hook.env {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            c.env(k, v);
        }
        if let Some(f) = filter {
            c.seccomp_filter(f.to_vec());
        }
        let mut child = c.spawn().map_err(|e| fail(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(&input);
        }
        let deadline = deadline(hook);
        loop {
            if let Some(status) = child.try_wait().map_err(|e| fail(e.to_string()))? {
                if status.success() {
                    break;
                }
                return Err(fail(describe(status)));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail("timed out".to_owned()));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Ok(())
}

fn deadline(hook: &Hook) -> Option<Instant> {
    hook.timeout
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64))
}

/// An exit status as a person reads it: `exit status 3`, `signal: bad system call`.
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(sig) => {
            // SAFETY: strsignal returns a pointer to a static (or thread-local) string.
            let text = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(sig)) };
            format!("signal: {}", text.to_string_lossy().to_lowercase())
        }
        None => format!("exit status {}", status.code().unwrap_or(-1)),
    }
}

fn run_one(name: &str, hook: &Hook, input: &[u8]) -> Result<()> {
    let fail = |what: String| Error::new(format!("running {name} hook {}: {what}", hook.path));
    let mut c = Command::new(&hook.path);
    if let Some(arg0) = hook.args.first() {
        std::os::unix::process::CommandExt::arg0(&mut c, arg0);
    }
    c.args(hook.args.iter().skip(1))
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    for kv in &hook.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        c.env(k, v);
    }
    let mut child = c.spawn().map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may ignore its input and exit: a broken pipe is no failure.
        let _ = stdin.write_all(input);
    }
    let deadline = hook
        .timeout
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        if let Some(status) = child.try_wait().map_err(|e| fail(e.to_string()))? {
            if status.success() {
                return Ok(());
            }
            return Err(fail(format!("{status}")));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail("timed out".to_owned()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
