//! `kiln du`: what the store under `--root` holds, per kind, and what `kiln prune` would free.

use std::fmt::Write as _;
use std::process::ExitCode;

use kiln_solver::gc::{self, format_size, Usage};

use crate::cli::{DuArgs, Format};

/// Runs `kiln du`.
pub(crate) fn run(args: &DuArgs) -> ExitCode {
    let usage = match gc::du(&args.root()) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return ExitCode::from(1);
        }
    };
    let text = match args.format {
        Format::Text => table(&usage),
        Format::Json => match serde_json::to_string_pretty(&usage) {
            Ok(t) => t + "\n",
            Err(e) => {
                eprintln!("ERROR: {e}");
                return ExitCode::from(1);
            }
        },
    };
    print!("{text}");
    ExitCode::SUCCESS
}

/// A `docker system df`-style table.
pub(crate) fn table(usage: &Usage) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>7} {:>10} {:>12}",
        "TYPE", "COUNT", "SIZE", "RECLAIMABLE"
    );
    for row in &usage.rows {
        let _ = writeln!(
            out,
            "{:<20} {:>7} {:>10} {:>12}",
            row.category.label(),
            row.total.count,
            format_size(row.total.size),
            format_size(row.reclaimable.size)
        );
    }
    let _ = writeln!(
        out,
        "{:<20} {:>7} {:>10} {:>12}",
        "Total",
        "",
        format_size(usage.total),
        format_size(usage.reclaimable)
    );
    let _ = writeln!(out, "Cache records: {}", usage.records);
    if usage.live_leases > 0 {
        let _ = writeln!(out, "Builds running: {}", usage.live_leases);
    }
    out
}
