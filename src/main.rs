//! The `kiln` command: a daemonless Dockerfile image builder.
//!
//! `main` first gives the executor a chance to run as the RUN sandbox's init (kiln
//! re-executes itself for that, before any thread exists), then parses flags and runs the
//! subcommand on a tokio runtime.

mod build;
mod cli;
mod contexts;
mod du;
mod epoch;
mod image;
mod inspect;
mod progress;
mod prune;
mod remote_cache;
mod report;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;

use crate::build::Shared;
use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    // Must run before tokio starts threads: the sandbox init has to be single-threaded.
    kiln_executor::run_init_if_requested();

    let cli = Cli::parse();
    tracing_subscriber::fmt()
        // Warnings (registry retries, skipped device nodes or xattrs) show by default.
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KILN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Parse(args) => inspect::parse(&args),
        Command::Outline(args) => inspect::outline(&args),
        Command::Targets(args) => inspect::targets(&args),
        Command::Lint(args) => inspect::lint(&args),
        Command::Du(args) => {
            if let Some(code) = kiln_executor::run_in_user_namespace() {
                return ExitCode::from(u8::try_from(code).unwrap_or(1));
            }
            du::run(&args)
        }
        Command::Prune(args) => {
            let opts = match args.resolve() {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("ERROR: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Some(code) = kiln_executor::run_in_user_namespace() {
                return ExitCode::from(u8::try_from(code).unwrap_or(1));
            }
            prune::run(&opts)
        }
        Command::Build(args) => {
            // Non-root: re-run this command as root of a new user namespace (rootless).
            if let Some(code) = kiln_executor::run_in_user_namespace() {
                return ExitCode::from(u8::try_from(code).unwrap_or(1));
            }
            let opts = match args.resolve() {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("ERROR: {e}");
                    return ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("ERROR: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            let code = runtime.block_on(build_with_cancel(opts));
            // Blocking workers of a cancelled build are already being killed; don't wait long.
            runtime.shutdown_timeout(std::time::Duration::from_secs(2));
            code
        }
    }
}

/// Runs a build; Ctrl-C (SIGINT) or SIGTERM cancels it, killing every running sandbox.
async fn build_with_cancel(opts: cli::BuildOptions) -> ExitCode {
    let shared = Arc::new(Shared {
        cancel: Arc::new(AtomicBool::new(false)),
    });
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ERROR: cannot install the SIGTERM handler: {e}");
            return ExitCode::from(1);
        }
    };
    let result = tokio::select! {
        r = build::run(opts, shared.clone()) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
        _ = term.recv() => None,
    };
    match result {
        Some(Ok(())) => ExitCode::SUCCESS,
        Some(Err(f)) => {
            eprintln!("ERROR: {}", f.0.trim_end());
            ExitCode::from(1)
        }
        None => {
            shared.cancel.store(true, Ordering::SeqCst);
            kiln_executor::cancel_all();
            eprintln!("ERROR: build canceled");
            ExitCode::from(130)
        }
    }
}
