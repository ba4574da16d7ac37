//! `kiln prune`: frees the store under `--root` (see `kiln_solver::gc`).

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use kiln_solver::gc::{self, format_size, PruneReport};

use crate::cli::PruneOptions;

/// Runs `kiln prune`.
pub(crate) fn run(opts: &PruneOptions) -> ExitCode {
    if !opts.force && !confirm(opts) {
        // Declining is not a failure: `docker builder prune` exits 0 too.
        eprintln!("prune not confirmed; nothing was removed (pass --force to skip the question)");
        return ExitCode::SUCCESS;
    }
    match gc::prune(&opts.root, &opts.gc) {
        Ok(report) => {
            print!("{}", summary(&report));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::from(1)
        }
    }
}

/// Asks on stderr, as `docker buildx prune` does; true on `y` or `yes`.
fn confirm(opts: &PruneOptions) -> bool {
    let what = if opts.gc.all {
        "all build cache"
    } else {
        "all dangling build cache"
    };
    eprint!("WARNING! This will remove {what}. Are you sure you want to continue? [y/N] ");
    let _ = std::io::stderr().flush();
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        eprintln!();
    }
    let mut line = String::new();
    if stdin.lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// What was removed, then `Total: <freed>`.
pub(crate) fn summary(report: &PruneReport) -> String {
    let mut out = String::new();
    if report.records > 0 {
        let _ = writeln!(out, "Deleted cache records: {}", report.records);
    }
    if !report.removed.is_empty() {
        let _ = writeln!(out, "{:<20} {:>7} {:>10}", "TYPE", "COUNT", "FREED");
        for (category, amount) in &report.removed {
            let _ = writeln!(
                out,
                "{:<20} {:>7} {:>10}",
                category.label(),
                amount.count,
                format_size(amount.size)
            );
        }
    }
    let _ = writeln!(out, "Total: {}", format_size(report.freed));
    out
}
