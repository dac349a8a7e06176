//! `ns-oci`: argument parsing and dispatch live in `ns_oci::cli`.

fn main() {
    ns_oci::timing::mark("main");
    let code = ns_oci::cli::main(std::env::args().collect());
    ns_oci::timing::report();
    std::process::exit(code);
}
