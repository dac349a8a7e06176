//! `events`: the container's resource usage as runc prints it, once (`--stats`) or every
//! `--interval` until the container is gone.

use std::time::Duration;

use super::{f, parse, v, Global};
use crate::error::{Error, Result};
use crate::state::{Container, Status};

/// `5s`, `100ms`, `1m`, or seconds.
fn interval(s: &str) -> Result<Duration> {
    let bad = || Error::new(format!("invalid interval {s:?}"));
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs_f64(secs.max(0.001)))
}

/// An event line in runc's field order: type, id, then data.
fn event(kind: &str, id: &str, data: Option<serde_json::Value>) -> String {
    let head = format!(
        "{{\"type\":{},\"id\":{}",
        serde_json::Value::from(kind),
        serde_json::Value::from(id)
    );
    match data {
        Some(d) => format!("{head},\"data\":{d}}}"),
        None => format!("{head}}}"),
    }
}

/// One stats event, from the container's cgroup files.
fn stats(c: &Container) -> String {
    let read = |file: &str| -> Option<u64> {
        c.saved.cgroups.iter().find_map(|d| {
            std::fs::read_to_string(d.join(file))
                .ok()
                .and_then(|t| t.trim().parse().ok())
        })
    };
    let data = serde_json::json!({
        "cpu": { "usage": { "total": read("cpuacct.usage").unwrap_or(0) } },
        "memory": { "usage": {
            "usage": read("memory.usage_in_bytes").unwrap_or(0),
            "limit": read("memory.limit_in_bytes").unwrap_or(0),
            "max": read("memory.max_usage_in_bytes").unwrap_or(0),
        } },
        "pids": { "current": read("pids.current").unwrap_or(0),
                  "limit": read("pids.max").unwrap_or(0) },
    });
    event("stats", &c.saved.id, Some(data))
}

pub fn events(global: &Global, args: &[String]) -> Result<i32> {
    let p = parse(args, &[f(&["stats"]), v(&["interval"])])?;
    let id = p.id()?;
    let c = Container::load(&global.root, id)?;
    if c.status() == Status::Stopped {
        return Err(Error::new("container not running"));
    }
    if p.flag("stats") {
        println!("{}", stats(&c));
        return Ok(0);
    }
    let every = interval(p.value("interval").unwrap_or("5s"))?;
    let tick = every.min(Duration::from_millis(100));
    let mut kills = oom_kills(&c);
    let mut next = std::time::Instant::now();
    loop {
        let Ok(c) = Container::load(&global.root, id) else {
            return Ok(0);
        };
        // An OOM kill in the container is an event of its own.
        let now_kills = oom_kills(&c);
        if now_kills > kills {
            println!("{}", event("oom", &c.saved.id, None));
        }
        kills = now_kills;
        if c.status() == Status::Stopped {
            return Ok(0);
        }
        if std::time::Instant::now() >= next {
            println!("{}", stats(&c));
            next += every;
        }
        std::thread::sleep(tick);
    }
}

/// How many processes the kernel killed for memory in the container's cgroup (v1
/// `memory.oom_control`'s `oom_kill`, v2 `memory.events`' `oom_kill`).
fn oom_kills(c: &Container) -> u64 {
    c.saved
        .cgroups
        .iter()
        .find_map(|d| {
            ["memory.oom_control", "memory.events"]
                .iter()
                .find_map(|f| {
                    std::fs::read_to_string(d.join(f)).ok().and_then(|t| {
                        t.lines().find_map(|l| {
                            l.strip_prefix("oom_kill ")
                                .and_then(|n| n.trim().parse().ok())
                        })
                    })
                })
        })
        .unwrap_or(0)
}
