//! `ns-oci`: argument parsing and dispatch live in `ns_oci::cli`.

fn main() {
    std::process::exit(ns_oci::cli::main(std::env::args().collect()));
}
