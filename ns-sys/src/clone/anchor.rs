//! The symbol that names the task entry of `clone3_on_stack` and `clone_on_stack`.
//!
//! The per-architecture files define the entry as `<anchor>_start` in `global_asm!` and jump
//! to it by name; this file only provides the anchor. It must stay public and never inlined
//! (see below).

/// Never called: its symbol name, which the compiler makes unique to this copy of the crate
/// (its mangled name carries the crate's hash), names the task entry that `x86_64.rs` and
/// `aarch64.rs` define (`<anchor>_start`), so that two versions of this crate in one program
/// link.
///
/// Public (hidden from the docs) and never inlined, so that its symbol is the one external
/// symbol of this crate: an empty function is otherwise inlinable across crates, an
/// optimised build of a crate calling [`clone3_on_stack`](super::clone3_on_stack) then made
/// its own internal copy, which ThinLTO renamed (`<name>.llvm.<hash>`), and the inline assembly jumped to
/// `<name>.llvm.<hash>_start`, which nothing defines (a link error). The functions holding
/// that assembly are never inlined either, so it is only ever compiled here.
#[doc(hidden)]
#[inline(never)]
pub extern "C" fn task_start_anchor() {}
