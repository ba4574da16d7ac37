//! The inspection commands: `kiln parse`, `kiln outline`, `kiln targets`, `kiln lint`, and
//! the build checks' output shared with `kiln build` (`--check` or not). None of them needs
//! a registry except `kiln build --check`, which knows base images' ENV.

use std::path::Path;
use std::process::ExitCode;

use kiln_frontend::lint::LintReport;
use kiln_frontend::FrontendError;

use crate::cli::{Format, InspectArgs, TargetArgs};
use crate::report::source_error;

/// A Dockerfile read from disk: the name to show and its text.
struct Source {
    name: String,
    text: String,
}

fn read(path: &Path) -> Result<Source, ExitCode> {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => Ok(Source {
            name,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }),
        Err(e) => {
            eprintln!("ERROR: failed to read dockerfile: open {name}: {e}");
            Err(ExitCode::from(1))
        }
    }
}

/// Prints a frontend error with its snippet; exit code 1.
fn fail(src: &Source, e: &FrontendError) -> ExitCode {
    let msg = source_error(&src.name, &src.text, e.span(), &e.to_string(), e.help());
    eprintln!("ERROR: {}", msg.trim_end());
    ExitCode::from(1)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn out(text: &str) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: cannot write output: {e}");
            ExitCode::from(1)
        }
    }
}

fn json<T: serde::Serialize>(value: &T) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(s) => out(&format!("{s}\n")),
        Err(e) => {
            eprintln!("ERROR: cannot encode JSON: {e}");
            ExitCode::from(1)
        }
    }
}

/// `kiln parse`: the syntax tree as JSON.
pub(crate) fn parse(args: &InspectArgs) -> ExitCode {
    let src = match read(&args.dockerfile()) {
        Ok(s) => s,
        Err(c) => return c,
    };
    match kiln_frontend::parse(&src.text) {
        Ok(df) => json(&df),
        Err(e) => fail(&src, &FrontendError::Parse(e)),
    }
}

/// `kiln outline`.
pub(crate) fn outline(args: &TargetArgs) -> ExitCode {
    let opts = match args.lower_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return ExitCode::from(2);
        }
    };
    let src = match read(&args.inspect.dockerfile()) {
        Ok(s) => s,
        Err(c) => return c,
    };
    match kiln_frontend::outline::outline(&src.text, &opts) {
        Ok(o) if args.inspect.format == Format::Json => json(&o),
        Ok(o) => out(&o.to_text()),
        Err(e) => fail(&src, &e),
    }
}

/// `kiln targets`.
pub(crate) fn targets(args: &InspectArgs) -> ExitCode {
    let src = match read(&args.dockerfile()) {
        Ok(s) => s,
        Err(c) => return c,
    };
    match kiln_frontend::outline::targets(&src.text) {
        Ok(t) if args.format == Format::Json => json(&t),
        Ok(t) => out(&t.to_text()),
        Err(e) => fail(&src, &e),
    }
}

/// `kiln lint`: exit code 1 for errors and, with `# check=error=true`, for any warning.
pub(crate) fn lint(args: &TargetArgs) -> ExitCode {
    let opts = match args.lower_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return ExitCode::from(2);
        }
    };
    let src = match read(&args.inspect.dockerfile()) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let report = match kiln_frontend::lint::lint(&src.text, &opts, None) {
        Ok(r) => r,
        Err(e) => return fail(&src, &e),
    };
    if args.inspect.format == Format::Json {
        let code = json(&report);
        return if report.error().is_some() {
            ExitCode::from(1)
        } else {
            code
        };
    }
    let code = out(&check_text(&src.name, &src.text, &report));
    match report.error() {
        Some(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::from(1)
        }
        None => code,
    }
}

/// What `docker build --check` prints: a summary line, then every warning with its rule,
/// URL, `Dockerfile:LINE: detail` and the snippet.
pub(crate) fn check_text(name: &str, text: &str, report: &LintReport) -> String {
    let n = report.warnings.len();
    let mut out = match n {
        0 => "Check complete, no warnings found.\n".to_string(),
        1 => "Check complete, 1 warning has been found!\n".to_string(),
        n => format!("Check complete, {n} warnings have been found!\n"),
    };
    for w in &report.warnings {
        out.push_str(&format!("\nWARNING: {} - {}\n", w.rule_name, w.url));
        out.push_str(&source_error(name, text, Some(w.span), &w.detail, None));
    }
    out
}

/// What `kiln build` prints before building when checks fire (BuildKit's short form).
pub(crate) fn build_warnings(report: &LintReport) -> String {
    let n = report.warnings.len();
    if n == 0 {
        return String::new();
    }
    let mut out = if n == 1 {
        " 1 warning found:\n".to_string()
    } else {
        format!(" {n} warnings found:\n")
    };
    for w in &report.warnings {
        out.push_str(&format!(" - {}\n", w.short()));
    }
    out
}
