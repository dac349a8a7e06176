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

/// One stats event, from the container's cgroup files.
fn stats(c: &Container) -> serde_json::Value {
    let read = |file: &str| -> Option<u64> {
        c.saved.cgroups.iter().find_map(|d| {
            std::fs::read_to_string(d.join(file))
                .ok()
                .and_then(|t| t.trim().parse().ok())
        })
    };
    serde_json::json!({
        "type": "stats",
        "id": c.saved.id,
        "data": {
            "cpu": { "usage": { "total": read("cpuacct.usage").unwrap_or(0) } },
            "memory": { "usage": {
                "usage": read("memory.usage_in_bytes").unwrap_or(0),
                "limit": read("memory.limit_in_bytes").unwrap_or(0),
                "max": read("memory.max_usage_in_bytes").unwrap_or(0),
            } },
            "pids": { "current": read("pids.current").unwrap_or(0),
                      "limit": read("pids.max").unwrap_or(0) },
        }
    })
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
    loop {
        let Ok(c) = Container::load(&global.root, id) else {
            return Ok(0);
        };
        if c.status() == Status::Stopped {
            return Ok(0);
        }
        println!("{}", stats(&c));
        std::thread::sleep(every);
    }
}
