//! `linux.seccomp` → a classic BPF program: the OCI profile compiler.
//!
//! The program checks the architecture first (each one listed gets its own section; any other
//! is killed), then, per section, each rule's system calls in order: a call without argument
//! conditions is one compare and one return; with conditions, the 64-bit arguments are
//! compared as two 32-bit halves and every condition must hold (the rule's conditions are
//! AND-ed, as libseccomp does for one rule; a rule with two conditions on one argument is
//! split into one rule per condition, as runc does). A call newer than every call the
//! profile names gets `ENOSYS` (runc's stub), unless the default allows. What matches no
//! rule gets `defaultAction`.
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
        if default != RET_ALLOW {
            enosys_stub(&mut body, s, arches.iter().filter(|a| a.audit == *audit));
        }
        for a in arches.iter().filter(|a| a.audit == *audit) {
            for rule in &s.syscalls {
                let act = action(&rule.action, rule.errno_ret, s.default_errno_ret)?;
                if act == default && rule.args.is_empty() {
                    continue;
                }
                // Two conditions on one argument: each condition a rule of its own (any
                // one matches), as runc gives them to libseccomp; else all must hold.
                let mut indexes: Vec<u32> = rule.args.iter().map(|a| a.index).collect();
                indexes.sort_unstable();
                let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
                for name in &rule.names {
                    let Some(nr) = number(a.table, name) else {
                        continue;
                    };
                    if repeated {
                        for arg in &rule.args {
                            rule_code(&mut body, nr | a.bit, std::slice::from_ref(arg), act)?;
                        }
                    } else {
                        rule_code(&mut body, nr | a.bit, &rule.args, act)?;
                    }
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

/// `ENOSYS` for a system call newer than every call the profile names (runc's stub): a
/// program then falls back as on an older kernel (`clone3` to `clone`, `statx` to `stat`)
/// instead of taking the default action meant for calls the profile refuses. The
/// accumulator holds the number on entry and on exit.
fn enosys_stub<'a>(
    body: &mut Vec<sock_filter>,
    s: &Seccomp,
    arches: impl Iterator<Item = &'a Arch>,
) {
    let last = |a: &Arch| {
        s.syscalls
            .iter()
            .flat_map(|r| r.names.iter())
            .filter_map(|n| number(a.table, n))
            .max()
            .map(|nr| nr | a.bit)
    };
    let mut native = None;
    let mut x32 = None;
    for a in arches {
        if a.bit == X32_BIT {
            x32 = last(a);
        } else {
            native = last(a);
        }
    }
    let enosys = RET_ERRNO | libc::ENOSYS as u32;
    match (native, x32) {
        (Some(n), Some(x)) => {
            body.push(ins(JGE_K, 0, 1, X32_BIT));
            body.push(ins(JGT_K, 1, 2, x));
            body.push(ins(JGT_K, 0, 1, n));
            body.push(ins(RET_K, 0, 0, enosys));
        }
        (Some(n), None) => {
            // (x32 numbers, when x32 is not asked for, were killed above.)
            body.push(ins(JGT_K, 0, 1, n));
            body.push(ins(RET_K, 0, 0, enosys));
        }
        (None, Some(x)) => {
            body.push(ins(JGT_K, 0, 1, x));
            body.push(ins(RET_K, 0, 0, enosys));
        }
        (None, None) => {}
    }
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

    /// Runs the program on one call, as the kernel would: its return value.
    fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let word = |off: u32| -> u32 {
            match off {
                OFF_NR => nr,
                OFF_ARCH => arch,
                o if (16..64).contains(&o) => {
                    let a = args[((o - 16) / 8) as usize];
                    if (o - 16) % 8 == 0 {
                        a as u32
                    } else {
                        (a >> 32) as u32
                    }
                }
                o => panic!("load at {o}"),
            }
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            pc += 1;
            let jump = |cond: bool| if cond { i.jt as usize } else { i.jf as usize };
            match i.code {
                LD_W_ABS => acc = word(i.k),
                AND_K => acc &= i.k,
                JA => pc += i.k as usize,
                JEQ_K => pc += jump(acc == i.k),
                JGT_K => pc += jump(acc > i.k),
                JGE_K => pc += jump(acc >= i.k),
                RET_K => return i.k,
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    fn rule(
        names: &[&str],
        action: &str,
        errno: Option<u32>,
        args: &[(u32, u64)],
    ) -> crate::spec::config::SyscallRule {
        crate::spec::config::SyscallRule {
            names: names.iter().map(|n| n.to_string()).collect(),
            action: action.into(),
            errno_ret: errno,
            args: args
                .iter()
                .map(|&(index, value)| SyscallArg {
                    index,
                    value,
                    value_two: 0,
                    op: "SCMP_CMP_EQ".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn conditions_on_one_argument_are_alternatives_and_new_calls_get_enosys() {
        let s = Seccomp {
            default_action: "SCMP_ACT_ERRNO".into(),
            architectures: vec!["SCMP_ARCH_X86_64".into(), "SCMP_ARCH_X86".into()],
            syscalls: vec![
                rule(&["read", "write", "openat"], "SCMP_ACT_ALLOW", None, &[]),
                // Two conditions on argument 0: either one.
                rule(&["kill"], "SCMP_ACT_ALLOW", None, &[(0, 100), (0, 9001)]),
                // Conditions on two arguments: both.
                rule(&["tkill"], "SCMP_ACT_ALLOW", None, &[(0, 1), (1, 2)]),
            ],
            ..Seccomp::default()
        };
        let prog = compile(&s).unwrap();
        let x86_64 = |nr: i64, args: [u64; 6]| run(&prog, AUDIT_ARCH_X86_64, nr as u32, args);
        let eperm = RET_ERRNO | libc::EPERM as u32;
        let enosys = RET_ERRNO | libc::ENOSYS as u32;
        assert_eq!(x86_64(libc::SYS_read, [0; 6]), RET_ALLOW);
        assert_eq!(x86_64(libc::SYS_kill, [100, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x86_64(libc::SYS_kill, [9001, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x86_64(libc::SYS_kill, [5, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(x86_64(libc::SYS_tkill, [1, 2, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(x86_64(libc::SYS_tkill, [1, 3, 0, 0, 0, 0]), eperm);
        // Named or older than the newest named call: the default; newer: ENOSYS.
        assert_eq!(x86_64(libc::SYS_mount, [0; 6]), eperm);
        assert_eq!(x86_64(libc::SYS_clone3, [0; 6]), enosys);
        assert_eq!(x86_64(1000, [0; 6]), enosys);
        // The same for the other architecture, with its own numbers (openat: 295).
        assert_eq!(run(&prog, AUDIT_ARCH_I386, 3, [0; 6]), RET_ALLOW);
        assert_eq!(run(&prog, AUDIT_ARCH_I386, 21, [0; 6]), eperm);
        assert_eq!(run(&prog, AUDIT_ARCH_I386, 435, [0; 6]), enosys);
        // x32 not asked for: killed, as is an architecture not listed.
        assert_eq!(
            x86_64(libc::SYS_read | X32_BIT as i64, [0; 6]),
            RET_KILL_PROCESS
        );
        assert_eq!(run(&prog, 0xc000_00b7, 63, [0; 6]), RET_KILL_PROCESS);
        // A default that allows needs no stub.
        let allow = Seccomp {
            default_action: "SCMP_ACT_ALLOW".into(),
            ..s
        };
        let prog = compile(&allow).unwrap();
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 1000, [0; 6]), RET_ALLOW);
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
