//! `delete`.

use super::{f, parse, Global};
use crate::container;
use crate::error::Result;
use crate::state::{self, Container};

pub fn delete(global: &Global, args: &[String]) -> Result<i32> {
    let p = parse(args, &[f(&["force", "f"])])?;
    let force = p.flag("force");
    p.id()?;
    for id in &p.args {
        match Container::load(&global.root, id) {
            Ok(c) => container::delete(&c, force)?,
            Err(e) => {
                // A directory left by an aborted create holds no state: removed with --force.
                let dir = state::dir_of(&global.root, id);
                if force {
                    state::check_id(id)?;
                    let _ = std::fs::remove_dir_all(dir);
                } else {
                    return Err(e);
                }
            }
        }
    }
    Ok(0)
}
