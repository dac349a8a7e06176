//! `state`, `list` and `ps`.

use super::{f, parse, v, Global};
use crate::error::{Error, Result};
use crate::state::{Container, Status};

pub fn state(global: &Global, args: &[String]) -> Result<i32> {
    let p = parse(args, &[])?;
    let c = Container::load(&global.root, p.id()?)?;
    let text = serde_json::to_string_pretty(&c.report()).map_err(|e| Error::new(e.to_string()))?;
    println!("{text}");
    Ok(0)
}

fn all(global: &Global) -> Vec<Container> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir(&global.root) {
        for e in dir.flatten() {
            if let Some(id) = e.file_name().to_str() {
                if let Ok(c) = Container::load(&global.root, id) {
                    out.push(c);
                }
            }
        }
    }
    out.sort_by(|a, b| a.saved.id.cmp(&b.saved.id));
    out
}

pub fn list(global: &Global, args: &[String]) -> Result<i32> {
    let p = parse(args, &[v(&["format", "f"]), f(&["quiet", "q"])])?;
    let containers = all(global);
    if p.flag("quiet") {
        for c in &containers {
            println!("{}", c.saved.id);
        }
        return Ok(0);
    }
    match p.value("format").unwrap_or("table") {
        "json" => {
            let list: Vec<_> = containers.iter().map(Container::report).collect();
            println!(
                "{}",
                serde_json::to_string(&list).map_err(|e| Error::new(e.to_string()))?
            );
        }
        "table" => {
            println!("ID          PID         STATUS      BUNDLE      CREATED     OWNER");
            for c in &containers {
                let s = c.status();
                let pid = if s == Status::Stopped { 0 } else { c.saved.pid };
                println!(
                    "{:<12}{:<12}{:<12}{:<12}{:<12}{}",
                    c.saved.id,
                    pid,
                    s.as_str(),
                    c.saved.bundle.display(),
                    c.saved.created,
                    c.saved.owner
                );
            }
        }
        other => return Err(Error::new(format!("invalid format option: {other}"))),
    }
    Ok(0)
}

pub fn ps(global: &Global, args: &[String]) -> Result<i32> {
    // `ps ID [ps options...]`: what follows the id is ps's.
    let p = super::parse_in_order(args, &[v(&["format", "f"])])?;
    let c = Container::load(&global.root, p.id()?)?;
    let pids = crate::cgroups::pids(&c.saved.cgroups);
    match p.value("format").unwrap_or("table") {
        "json" => println!("{}", serde_json::Value::from(pids)),
        "table" => {
            let ps_args: Vec<&str> = if p.args.len() > 1 {
                p.args[1..].iter().map(String::as_str).collect()
            } else {
                vec!["-ef"]
            };
            let out = std::process::Command::new("ps")
                .args(&ps_args)
                .output()
                .map_err(|e| Error::new(format!("running ps: {e}")))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            let column = header
                .split_whitespace()
                .position(|h| h == "PID")
                .ok_or_else(|| Error::new("couldn't find PID field in ps output"))?;
            println!("{header}");
            for line in lines {
                let pid = line
                    .split_whitespace()
                    .nth(column)
                    .and_then(|p| p.parse().ok());
                if pid.is_some_and(|pid: i32| pids.contains(&pid)) {
                    println!("{line}");
                }
            }
        }
        other => return Err(Error::new(format!("invalid format option: {other}"))),
    }
    Ok(0)
}
