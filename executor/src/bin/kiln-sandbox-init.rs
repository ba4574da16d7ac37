//! The sandbox init as its own binary, for the executor's tests (kiln itself re-executes
//! `/proc/self/exe __sandbox-init`).

fn main() {
    kiln_executor::run_init_if_requested();
    eprintln!(
        "usage: kiln-sandbox-init {} <spec.json>",
        kiln_executor::INIT_SUBCOMMAND
    );
    std::process::exit(2);
}
