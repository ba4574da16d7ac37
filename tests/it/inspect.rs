//! `kiln parse`, `kiln outline`, `kiln targets`, `kiln lint` and `kiln build --check`: what
//! they print and their exit codes.

use crate::common::{kiln, Fixture};

const MULTI: &str = "# syntax=docker/dockerfile:1\n\
# GO_VERSION Go release\n\
ARG GO_VERSION=1.22\n\
# builder Compiles the app\n\
FROM golang:${GO_VERSION} AS builder\n\
RUN --mount=type=secret,id=token,required=true go build\n\
\n\
# app The runtime image\n\
FROM scratch AS app\n\
COPY --from=builder /out /app\n";

fn args(f: &Fixture<'_>, cmd: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    v.push(f.ctx().display().to_string());
    v
}

#[test]
fn parse_prints_the_ast_as_json() {
    let f = Fixture::empty();
    f.write("Dockerfile", "FROM scratch\nCOPY a /b\n");
    let out = kiln(&args(&f, &["parse", "--format", "json"]));
    out.ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout()).unwrap();
    assert_eq!(v["instructions"][1]["keyword"], "COPY");
    assert_eq!(v["instructions"][1]["original"], "COPY a /b");

    f.write("Dockerfile", "FROM scratch\nFNTRYPOINT x\n");
    kiln(&args(&f, &["parse"]))
        .fails_with(1)
        .error_line_names(&["Dockerfile:2", "unknown instruction: FNTRYPOINT"]);
}

#[test]
fn targets_and_outline_of_a_multi_stage_file() {
    let f = Fixture::empty();
    f.write("Dockerfile", MULTI);
    let out = kiln(&args(&f, &["targets"]));
    out.ok();
    assert_eq!(
        out.stdout(),
        "TARGET        DESCRIPTION\nbuilder       Compiles the app\napp (default) The runtime image\n"
    );
    let out = kiln(&args(&f, &["targets", "--format", "json"]));
    out.ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout()).unwrap();
    assert_eq!(v["targets"][1]["default"], true);

    let out = kiln(&args(
        &f,
        &[
            "outline",
            "--target",
            "builder",
            "--build-arg",
            "GO_VERSION=1.21",
        ],
    ));
    out.ok();
    assert_eq!(
        out.stdout(),
        "TARGET:      builder\n\
         DESCRIPTION: Compiles the app\n\
         \n\
         BUILD ARG    VALUE   DESCRIPTION\n\
         GO_VERSION   1.21    Go release\n\
         \n\
         SECRET   REQUIRED\n\
         token    true\n\
         \n"
    );
    let out = kiln(&args(&f, &["outline", "--format", "json"]));
    out.ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout()).unwrap();
    assert_eq!(v["name"], "app");
    assert_eq!(v["args"][0]["value"], "1.22");
    assert_eq!(v["secrets"][0]["name"], "token");

    kiln(&args(&f, &["outline", "--target", "buildr"]))
        .fails_with(1)
        .error_line_names(&["target stage \"buildr\" could not be found (did you mean builder?)"]);
}

#[test]
fn lint_prints_warnings_and_exits_by_check_directive() {
    let f = Fixture::empty();
    let body = "FROM scratch as base\nMAINTAINER me\n";
    f.write("Dockerfile", body);
    let out = kiln(&args(&f, &["lint"]));
    out.ok();
    let s = out.stdout();
    assert!(
        s.starts_with("Check complete, 2 warnings have been found!\n"),
        "{s}"
    );
    assert!(
        s.contains("\nWARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/\n"),
        "{s}"
    );
    assert!(
        s.contains("Dockerfile:1: 'as' and 'FROM' keywords' casing do not match"),
        "{s}"
    );
    assert!(s.contains("FROM scratch as base"), "snippet: {s}");
    assert!(
        s.contains("Dockerfile:2: Maintainer instruction is deprecated in favor of using label"),
        "{s}"
    );

    let out = kiln(&args(&f, &["lint", "--format", "json"]));
    out.ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout()).unwrap();
    assert_eq!(v["warnings"][1]["ruleName"], "MaintainerDeprecated");
    assert_eq!(v["warnings"][1]["startLine"], 2);

    f.write("Dockerfile", &format!("# check=error=true\n{body}"));
    let out = kiln(&args(&f, &["lint"]));
    out.fails_with(1);
    assert!(
        out.stderr()
            .contains("ERROR: lint violation found for rules: FromAsCasing, MaintainerDeprecated"),
        "{}",
        out.stderr()
    );

    f.write(
        "Dockerfile",
        &format!("# check=skip=all;error=true\n{body}"),
    );
    let out = kiln(&args(&f, &["lint"]));
    out.ok();
    assert_eq!(out.stdout(), "Check complete, no warnings found.\n");

    f.write("Dockerfile", "FROM scratch\nCOPY\n");
    kiln(&args(&f, &["lint"])).fails_with(1);
}

#[test]
fn build_check_lints_without_building() {
    let f = Fixture::empty();
    let body = "FROM @BASE@ AS base\nWORKDIR app\nCMD [\"sh\"]\n";
    f.write("Dockerfile", body);
    let out = f.build(&[
        "--check",
        "-o",
        &format!("type=oci,dest={}", f.out("i.tar").display()),
    ]);
    out.ok();
    assert!(
        out.stdout()
            .starts_with("Check complete, 1 warning has been found!"),
        "{}",
        out.stdout()
    );
    assert!(
        out.stdout().contains("WARNING: WorkdirRelativePath"),
        "{}",
        out.stdout()
    );
    assert!(!f.out("i.tar").exists(), "--check builds nothing");

    f.write("Dockerfile", &format!("# check=error=true\n{body}"));
    let out = f.build(&["--check"]);
    out.fails_with(1);
    assert!(
        out.stderr()
            .contains("lint violation found for rules: WorkdirRelativePath"),
        "{}",
        out.stderr()
    );
}

#[test]
fn build_prints_warnings_and_fails_before_building_with_error_true() {
    let f = Fixture::empty();
    f.write("a.txt", "a\n");
    let body = "FROM scratch as base\nCOPY a.txt /\n";
    f.write("Dockerfile", body);
    let dest = format!("type=oci,dest={}", f.out("i.tar").display());
    let out = f.build(&["-o", &dest]);
    out.ok();
    assert!(
        out.stderr().contains(" 1 warning found:\n - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)\n"),
        "{}",
        out.stderr()
    );
    assert!(f.out("i.tar").exists());

    f.write("Dockerfile", &format!("# check=error=true\n{body}"));
    let dest2 = format!("type=oci,dest={}", f.out("j.tar").display());
    let out = f.build(&["-o", &dest2]);
    out.fails_with(1);
    assert!(
        out.stderr()
            .contains("lint violation found for rules: FromAsCasing"),
        "{}",
        out.stderr()
    );
    assert!(
        !f.out("j.tar").exists(),
        "no build when a check is an error"
    );
}
