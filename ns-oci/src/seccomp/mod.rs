//! `linux.seccomp` → a classic BPF program: the OCI profile compiler.
//!
//! The program checks the architecture first (each one listed gets its own section; any other
//! is killed), then, per section, each rule's system calls in order: a call without argument
//! conditions is one compare and one return; with conditions, the 64-bit arguments are
//! compared as two 32-bit halves and every condition must hold (the rule's conditions are
//! AND-ed, as libseccomp does for one rule). What matches no rule gets `defaultAction`.
//! Names this architecture does not have are skipped, as libseccomp skips them.

mod tables;

use libc::sock_filter;

use crate::error::{Error, Result};
use crate::spec::config::{Seccomp, SyscallArg};

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_BIT: u32 = 0x4000_0000;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

// BPF opcodes.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const AND_K: u16 = 0x54;
const RET_K: u16 = 0x06;
const JA: u16 = 0x05;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn action(name: &str, errno: Option<u32>, default_errno: Option<u32>) -> Result<u32> {
    let errno = errno.or(default_errno).unwrap_or(libc::EPERM as u32) & 0xffff;
    Ok(match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => RET_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS" => RET_KILL_PROCESS,
        "SCMP_ACT_TRAP" => RET_TRAP,
        "SCMP_ACT_ERRNO" => RET_ERRNO | errno,
        "SCMP_ACT_TRACE" => RET_TRACE | errno,
        "SCMP_ACT_ALLOW" => RET_ALLOW,
        "SCMP_ACT_LOG" => RET_LOG,
        "SCMP_ACT_NOTIFY" => {
            return Err(Error::new(
                "seccomp action SCMP_ACT_NOTIFY is not supported by ns-oci",
            ))
        }
        other => return Err(Error::new(format!("unknown seccomp action {other:?}"))),
    })
}

/// One architecture's section: its audit value, its table and the bit its numbers carry.
struct Arch {
    audit: u32,
    table: &'static [(&'static str, u32)],
    bit: u32,
}

fn arch(name: &str) -> Result<Option<Arch>> {
    Ok(Some(match name {
        "SCMP_ARCH_X86_64" => Arch {
            audit: AUDIT_ARCH_X86_64,
            table: tables::X86_64,
            bit: 0,
        },
        "SCMP_ARCH_X86" => Arch {
            audit: AUDIT_ARCH_I386,
            table: tables::I386,
            bit: 0,
        },
        "SCMP_ARCH_X32" => Arch {
            audit: AUDIT_ARCH_X86_64,
            table: tables::X86_64,
            bit: X32_BIT,
        },
        // Other architectures cannot run on this machine's kernel: nothing to filter.
        a if a.starts_with("SCMP_ARCH_") => return Ok(None),
        other => {
            return Err(Error::new(format!(
                "unknown seccomp architecture {other:?}"
            )))
        }
    }))
}

fn number(table: &[(&str, u32)], name: &str) -> Option<u32> {
    table
        .binary_search_by(|(n, _)| n.cmp(&name))
        .ok()
        .map(|i| table[i].1)
}

/// Compiles the profile.
pub fn compile(s: &Seccomp) -> Result<Vec<sock_filter>> {
    let default = action(&s.default_action, s.default_errno_ret, None)?;
    // The native architecture always, as libseccomp adds it to any list.
    let mut arches: Vec<Arch> = vec![Arch {
        audit: AUDIT_ARCH_X86_64,
        table: tables::X86_64,
        bit: 0,
    }];
    for a in s
        .architectures
        .iter()
        .filter(|a| a.as_str() != "SCMP_ARCH_X86_64")
    {
        if let Some(a) = arch(a)? {
            arches.push(a);
        }
    }
    let x32 = arches.iter().any(|a| a.bit == X32_BIT);
    // Sections by audit value: x86_64 and x32 share one (the x32 bit tells them apart).
    let mut audits: Vec<u32> = Vec::new();
    for a in &arches {
        if !audits.contains(&a.audit) {
            audits.push(a.audit);
        }
    }
    let mut sections = Vec::new();
    for audit in &audits {
        let mut body = vec![ins(LD_W_ABS, 0, 0, OFF_NR)];
        if *audit == AUDIT_ARCH_X86_64 && !x32 {
            // x32 calls, not asked for: killed, as a foreign architecture is.
            body.push(ins(JGE_K, 0, 1, X32_BIT));
            body.push(ins(RET_K, 0, 0, RET_KILL_PROCESS));
        }
        for a in arches.iter().filter(|a| a.audit == *audit) {
            for rule in &s.syscalls {
                let act = action(&rule.action, rule.errno_ret, s.default_errno_ret)?;
                if act == default && rule.args.is_empty() {
                    continue;
                }
                for name in &rule.names {
                    let Some(nr) = number(a.table, name) else {
                        continue;
                    };
                    rule_code(&mut body, nr | a.bit, &rule.args, act)?;
                }
            }
        }
        body.push(ins(RET_K, 0, 0, default));
        sections.push(body);
    }
    // The architecture dispatch: each section behind its compare, skipped (`ja`, whose
    // offset is not limited to a byte) when the architecture differs; none matched: kill.
    let mut prog = vec![ins(LD_W_ABS, 0, 0, OFF_ARCH)];
    for (audit, section) in audits.iter().zip(sections) {
        prog.push(ins(JEQ_K, 1, 0, *audit));
        prog.push(ins(JA, 0, 0, section.len() as u32));
        prog.extend(section);
    }
    prog.push(ins(RET_K, 0, 0, RET_KILL_PROCESS));
    if prog.len() > 4096 {
        return Err(Error::new(format!(
            "seccomp profile compiles to {} instructions (the kernel takes 4096)",
            prog.len()
        )));
    }
    Ok(prog)
}

/// One system call of a rule: `nr` compared, then its argument conditions, then the action.
/// The accumulator holds the number on entry and on exit.
fn rule_code(body: &mut Vec<sock_filter>, nr: u32, args: &[SyscallArg], act: u32) -> Result<()> {
    if args.is_empty() {
        body.push(ins(JEQ_K, 0, 1, nr));
        body.push(ins(RET_K, 0, 0, act));
        return Ok(());
    }
    // [jeq nr ? next : FAIL] checks... [ret act] FAIL: [ld nr]
    let mut checks: Vec<Vec<Cond>> = Vec::new();
    for a in args {
        if a.index > 5 {
            return Err(Error::new(format!("seccomp argument index {}", a.index)));
        }
        checks.push(conditions(a)?);
    }
    let mut block: Vec<Piece> = Vec::new();
    for conds in checks {
        for c in conds {
            block.extend(c.0);
        }
    }
    // Lay out: pieces are instructions whose false/true branches may name FAIL or NEXT.
    let len = block.len();
    // The block is followed by `ret act` then `ld nr` (FAIL).
    let fail_at = len + 1;
    body.push(ins(
        JEQ_K,
        0,
        u8::try_from(fail_at).map_err(|_| too_big())?,
        nr,
    ));
    for (i, p) in block.into_iter().enumerate() {
        let here = i + 1; // index after this instruction, counted from the block's start
        let to = |t: Target| -> Result<u8> {
            match t {
                Target::Next => Ok(0),
                Target::Fail => u8::try_from(fail_at - here).map_err(|_| too_big()),
                Target::Skip(n) => Ok(n),
            }
        };
        let (jt, jf) = (to(p.jt)?, to(p.jf)?);
        body.push(ins(p.code, jt, jf, p.k));
    }
    body.push(ins(RET_K, 0, 0, act));
    body.push(ins(LD_W_ABS, 0, 0, OFF_NR));
    Ok(())
}

fn too_big() -> Error {
    Error::new("a seccomp rule has too many argument conditions")
}

#[derive(Clone, Copy)]
enum Target {
    Next,
    Fail,
    Skip(u8),
}

struct Piece {
    code: u16,
    jt: Target,
    jf: Target,
    k: u32,
}

struct Cond(Vec<Piece>);

fn p(code: u16, jt: Target, jf: Target, k: u32) -> Piece {
    Piece { code, jt, jf, k }
}

fn load(k: u32) -> Piece {
    p(LD_W_ABS, Target::Next, Target::Next, k)
}

/// The pieces checking one argument condition; falling through means it holds.
fn conditions(a: &SyscallArg) -> Result<Vec<Cond>> {
    let lo_off = 16 + 8 * a.index;
    let hi_off = lo_off + 4;
    let (v_hi, v_lo) = ((a.value >> 32) as u32, a.value as u32);
    use Target::{Fail, Next, Skip};
    let pieces = match a.op.as_str() {
        "SCMP_CMP_EQ" => vec![
            load(hi_off),
            p(JEQ_K, Next, Fail, v_hi),
            load(lo_off),
            p(JEQ_K, Next, Fail, v_lo),
        ],
        "SCMP_CMP_NE" => vec![
            load(hi_off),
            p(JEQ_K, Next, Skip(2), v_hi),
            load(lo_off),
            p(JEQ_K, Fail, Next, v_lo),
        ],
        "SCMP_CMP_MASKED_EQ" => {
            let (m_hi, m_lo) = ((a.value >> 32) as u32, a.value as u32);
            let (e_hi, e_lo) = ((a.value_two >> 32) as u32, a.value_two as u32);
            vec![
                load(hi_off),
                p(AND_K, Next, Next, m_hi),
                p(JEQ_K, Next, Fail, e_hi),
                load(lo_off),
                p(AND_K, Next, Next, m_lo),
                p(JEQ_K, Next, Fail, e_lo),
            ]
        }
        // Unsigned 64-bit: the high halves decide unless equal.
        "SCMP_CMP_GT" | "SCMP_CMP_GE" => {
            let lo_op = if a.op == "SCMP_CMP_GT" { JGT_K } else { JGE_K };
            vec![
                load(hi_off),
                p(JGT_K, Skip(3), Next, v_hi),
                p(JEQ_K, Next, Fail, v_hi),
                load(lo_off),
                p(lo_op, Next, Fail, v_lo),
            ]
        }
        "SCMP_CMP_LT" | "SCMP_CMP_LE" => {
            // a < v  ⇔  !(a >= v);  a <= v  ⇔  !(a > v)
            let lo_op = if a.op == "SCMP_CMP_LT" { JGE_K } else { JGT_K };
            vec![
                load(hi_off),
                p(JGT_K, Fail, Next, v_hi),
                p(JEQ_K, Next, Skip(2), v_hi),
                load(lo_off),
                p(lo_op, Fail, Next, v_lo),
            ]
        }
        other => return Err(Error::new(format!("unknown seccomp operator {other:?}"))),
    };
    // A Skip(n) lands on the instruction n after the next: within this condition's pieces,
    // past its end means "holds". Make every jump past the end a plain fall-through by
    // ending with an always-true jump target: pad with a no-op jump.
    let mut v = pieces;
    v.push(p(JA, Next, Next, 0));
    Ok(vec![Cond(v)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_know_common_calls() {
        assert!(tables::X86_64.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(tables::I386.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(number(tables::X86_64, "read"), Some(0));
        assert_eq!(
            number(tables::X86_64, "execve"),
            Some(libc::SYS_execve as u32)
        );
        assert_eq!(number(tables::I386, "exit"), Some(1));
    }

    #[test]
    fn unknown_actions_and_operators_are_refused() {
        let mut s = Seccomp {
            default_action: "SCMP_ACT_NOPE".into(),
            ..Seccomp::default()
        };
        assert!(compile(&s).is_err());
        s.default_action = "SCMP_ACT_ALLOW".into();
        s.syscalls.push(crate::spec::config::SyscallRule {
            names: vec!["read".into()],
            action: "SCMP_ACT_ERRNO".into(),
            errno_ret: None,
            args: vec![SyscallArg {
                index: 0,
                value: 1,
                value_two: 0,
                op: "SCMP_CMP_BOGUS".into(),
            }],
        });
        assert!(compile(&s).is_err());
    }
}
