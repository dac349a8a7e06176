//! `kill`, `pause` and `resume`.

use super::{f, parse, Global};
use crate::container;
use crate::error::{Error, Result};
use crate::state::{Container, Status};

pub fn kill(global: &Global, args: &[String]) -> Result<i32> {
    let p = parse(args, &[f(&["all", "a"])])?;
    let c = Container::load(&global.root, p.id()?)?;
    let sig = container::signal(p.args.get(1).map(String::as_str).unwrap_or("SIGTERM"))?;
    container::kill(&c, sig, p.flag("all"))?;
    Ok(0)
}

pub fn pause(global: &Global, args: &[String], frozen: bool) -> Result<i32> {
    let p = parse(args, &[])?;
    let c = Container::load(&global.root, p.id()?)?;
    match (c.status(), frozen) {
        (Status::Running, true) | (Status::Paused, false) => {}
        (s, true) => return Err(Error::new(format!("container not running: {}", s.as_str()))),
        (s, false) => return Err(Error::new(format!("container not paused: {}", s.as_str()))),
    }
    crate::cgroups::freeze(&c.saved.cgroups, frozen)?;
    Ok(0)
}
