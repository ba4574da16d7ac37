//! Parse throughput: generates a 10 000-line Dockerfile (stages, ARG/ENV/LABEL, long RUN
//! continuations with apt-get lists, COPY/WORKDIR/EXPOSE, heredocs when the parser accepts
//! them) and reports `kiln_frontend::parse` speed in MB/s, the median of several runs.
//!
//! Run with `cargo run --release --example parse_bench -p kiln-frontend [-- RUNS [OUT_FILE]]`;
//! OUT_FILE, if given, receives the generated Dockerfile. Not a test: `cargo test` only
//! builds it.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

const LINES: usize = 10_000;

/// One block of instructions (a stage's worth), numbered so stages and values differ.
fn block(out: &mut String, n: usize, heredocs: bool) {
    let _ = writeln!(out, "# stage {n}: build step with its own tools");
    let _ = writeln!(
        out,
        "FROM --platform=$BUILDPLATFORM debian:bookworm-slim AS stage{n}"
    );
    let _ = writeln!(out, "ARG VERSION_{n}=1.{n}.0 CHANNEL=stable");
    let _ = writeln!(out, "ENV APP_HOME=/opt/app{n} \\");
    let _ = writeln!(out, "    PATH=/opt/app{n}/bin:$PATH \\");
    let _ = writeln!(out, "    LANG=C.UTF-8");
    let _ = writeln!(
        out,
        "LABEL org.opencontainers.image.version=\"${{VERSION_{n}}}\" stage=\"{n}\""
    );
    let _ = writeln!(out, "RUN set -eux; \\");
    let _ = writeln!(out, "\tapt-get update; \\");
    let _ = writeln!(out, "\tapt-get install -y --no-install-recommends \\");
    for pkg in [
        "ca-certificates",
        "curl",
        "git",
        "gnupg",
        "make",
        "xz-utils",
    ] {
        let _ = writeln!(out, "\t\t{pkg} \\");
    }
    let _ = writeln!(out, "\t; \\");
    let _ = writeln!(out, "# a comment inside the continuation");
    let _ = writeln!(out, "\trm -rf /var/lib/apt/lists/*");
    let _ = writeln!(out, "WORKDIR $APP_HOME");
    let _ = writeln!(
        out,
        "COPY --chown=1000:1000 --chmod=644 [\"src/{n}\", \"./src/\"]"
    );
    if heredocs {
        let _ = writeln!(out, "COPY <<EOF /etc/app{n}.conf");
        let _ = writeln!(out, "name = stage{n}");
        let _ = writeln!(out, "version = ${{VERSION_{n}}}");
        let _ = writeln!(out, "EOF");
    } else {
        let _ = writeln!(
            out,
            "RUN printf 'name = stage{n}\\nversion = %s\\n' \"$VERSION_{n}\" > /etc/app{n}.conf"
        );
    }
    let _ = writeln!(out, "RUN --mount=type=cache,target=/root/.cache \\");
    let _ = writeln!(out, "    make -C src/{n} build && make -C src/{n} install");
    let _ = writeln!(out, "EXPOSE {} {}/udp", 8000 + n % 1000, 9000 + n % 1000);
    let _ = writeln!(out, "USER app:app");
    let _ = writeln!(
        out,
        "HEALTHCHECK --interval=30s --timeout=5s CMD curl -fs http://localhost/ || exit 1"
    );
    let _ = writeln!(
        out,
        "CMD [\"/opt/app{n}/bin/server\", \"--port\", \"{}\"]",
        8000 + n % 1000
    );
    let _ = writeln!(out);
}

fn generate(heredocs: bool) -> String {
    let mut out = String::from("# syntax=docker/dockerfile:1\nARG BASE=debian\n");
    let mut n = 0;
    while out.lines().count() < LINES {
        block(&mut out, n, heredocs);
        n += 1;
    }
    // Trim to exactly LINES lines, ending at a blank line between blocks when possible.
    let cut: Vec<&str> = out.lines().take(LINES).collect();
    let mut text = cut.join("\n");
    text.push('\n');
    text
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    let out_file = args.next();

    let heredocs = kiln_frontend::parse("FROM scratch\nCOPY <<EOF /a\nx\nEOF\n").is_ok();
    let mut text = generate(heredocs);
    // The cut may split a block; drop trailing lines until the file parses.
    while let Err(e) = kiln_frontend::parse(&text) {
        let mut lines: Vec<&str> = text.lines().collect();
        if lines.len() < LINES - 40 {
            eprintln!("parse_bench: the generated Dockerfile does not parse: {e}");
            std::process::exit(1);
        }
        lines.pop();
        text = lines.join("\n");
        text.push('\n');
    }
    if let Some(path) = out_file {
        if let Err(e) = std::fs::write(&path, &text) {
            eprintln!("parse_bench: cannot write {path}: {e}");
            std::process::exit(1);
        }
    }

    let instructions = match kiln_frontend::parse(&text) {
        Ok(df) => df.instructions.len(),
        Err(e) => {
            eprintln!("parse_bench: {e}");
            std::process::exit(1);
        }
    };
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let parsed = kiln_frontend::parse(&text);
        let took = start.elapsed();
        std::hint::black_box(&parsed);
        times.push(took);
    }
    times.sort();
    let median = times[times.len() / 2];
    let mb = text.len() as f64 / 1e6;
    println!(
        "parse_bench: {} lines, {} bytes, {} instructions, heredocs {}",
        text.lines().count(),
        text.len(),
        instructions,
        if heredocs {
            "included"
        } else {
            "not supported, replaced by RUN printf"
        }
    );
    println!(
        "parse_bench: median of {} runs {:.2} ms (min {:.2} ms, max {:.2} ms): {:.1} MB/s",
        times.len(),
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        mb / median.as_secs_f64()
    );
}
