//! `start`.

use super::{parse, Global};
use crate::container;
use crate::error::Result;
use crate::state::Container;

pub fn start(global: &Global, args: &[String]) -> Result<i32> {
    let p = parse(args, &[])?;
    let c = Container::load(&global.root, p.id()?)?;
    container::start(&c)?;
    Ok(0)
}
