//! Where a command's time goes: with `NS_OCI_TIMING` set in its environment, each step's
//! wall time is written to stderr when the command ends (`cargo xtask bench` reads it for
//! its per-step breakdown of start-up).

use std::sync::Mutex;
use std::time::Instant;

static MARKS: Mutex<Vec<(&'static str, Instant)>> = Mutex::new(Vec::new());

fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("NS_OCI_TIMING").is_some())
}

/// Marks the end of step `name` (the step ran since the previous mark).
pub fn mark(name: &'static str) {
    if enabled() {
        if let Ok(mut m) = MARKS.lock() {
            m.push((name, Instant::now()));
        }
    }
}

/// Writes the steps, one `ns-oci-timing STEP MICROSECONDS` line each, from the first mark.
pub fn report() {
    if !enabled() {
        return;
    }
    let Ok(m) = MARKS.lock() else { return };
    for pair in m.windows(2) {
        let micros = pair[1].1.duration_since(pair[0].1).as_micros();
        eprintln!("ns-oci-timing {} {micros}", pair[1].0);
    }
}
