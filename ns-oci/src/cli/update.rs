//! `update`: new limits for a running (or paused) container's cgroups, from `--resources`
//! (a file, or `-` for stdin) and runc's flags.

use super::{parse, v, Global, Opt};
use crate::error::{Error, Result};
use crate::spec::config::{Cpu, Memory, Pids, Resources};
use crate::state::{Container, Status};

const OPTS: &[Opt] = &[
    v(&["resources", "r"]),
    v(&["blkio-weight"]),
    v(&["cpu-period"]),
    v(&["cpu-quota"]),
    v(&["cpu-share"]),
    v(&["cpu-rt-period"]),
    v(&["cpu-rt-runtime"]),
    v(&["cpuset-cpus"]),
    v(&["cpuset-mems"]),
    v(&["kernel-memory"]),
    v(&["kernel-memory-tcp"]),
    v(&["memory"]),
    v(&["memory-reservation"]),
    v(&["memory-swap"]),
    v(&["pids-limit"]),
    v(&["l3-cache-schema"]),
    v(&["mem-bw-schema"]),
];

/// A size as runc takes it: bytes, or with a k, m, g, t suffix (powers of 1024); -1 for none.
fn bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.trim_end_matches("ib").trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| Error::new(format!("invalid value {s:?}")))?;
    Ok((n * mult as f64) as i64)
}

fn int<T: std::str::FromStr>(s: &str) -> Result<T> {
    s.trim()
        .parse()
        .map_err(|_| Error::new(format!("invalid value {s:?}")))
}

pub fn update(global: &Global, args: &[String]) -> Result<i32> {
    let p = parse(args, OPTS)?;
    let c = Container::load(&global.root, p.id()?)?;
    if c.status() == Status::Stopped {
        return Err(Error::new("container not running"));
    }
    let mut r: Resources = match p.value("resources") {
        Some("-") => serde_json::from_reader(std::io::stdin())
            .map_err(|e| Error::new(format!("reading resources from stdin: {e}")))?,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::new(format!("reading {path}: {e}")))?;
            serde_json::from_str(&text).map_err(|e| Error::new(format!("parsing {path}: {e}")))?
        }
        None => Resources::default(),
    };
    let mem = r.memory.get_or_insert_with(Memory::default);
    if let Some(v) = p.value("memory") {
        mem.limit = Some(bytes(v)?);
    }
    if let Some(v) = p.value("memory-reservation") {
        mem.reservation = Some(bytes(v)?);
    }
    if let Some(v) = p.value("memory-swap") {
        mem.swap = Some(bytes(v)?);
    }
    if let Some(v) = p.value("kernel-memory") {
        mem.kernel = Some(bytes(v)?);
    }
    if let Some(v) = p.value("kernel-memory-tcp") {
        mem.kernel_tcp = Some(bytes(v)?);
    }
    let cpu = r.cpu.get_or_insert_with(Cpu::default);
    if let Some(v) = p.value("cpu-period") {
        cpu.period = Some(int(v)?);
    }
    if let Some(v) = p.value("cpu-quota") {
        cpu.quota = Some(int(v)?);
    }
    if let Some(v) = p.value("cpu-share") {
        cpu.shares = Some(int(v)?);
    }
    if let Some(v) = p.value("cpu-rt-period") {
        cpu.realtime_period = Some(int(v)?);
    }
    if let Some(v) = p.value("cpu-rt-runtime") {
        cpu.realtime_runtime = Some(int(v)?);
    }
    if let Some(v) = p.value("cpuset-cpus") {
        cpu.cpus = Some(v.to_owned());
    }
    if let Some(v) = p.value("cpuset-mems") {
        cpu.mems = Some(v.to_owned());
    }
    if let Some(v) = p.value("pids-limit") {
        r.pids = Some(Pids { limit: int(v)? });
    }
    if let Some(v) = p.value("blkio-weight") {
        r.block_io = Some(serde_json::json!({ "weight": int::<u64>(v)? }));
    }
    if p.value("l3-cache-schema").is_some() || p.value("mem-bw-schema").is_some() {
        return Err(Error::new("Intel RDT is not supported by ns-oci"));
    }
    crate::cgroups::update(&c.saved.cgroups, &r)?;
    Ok(0)
}
