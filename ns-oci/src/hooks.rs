//! `hooks`: each hook runs as a program of the host with the container's state (JSON) on its
//! standard input, in order; one that fails (or outlives its `timeout`) fails the operation.

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
