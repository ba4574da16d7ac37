//! Outline and targets of multi-stage Dockerfiles with description comments, as
//! `docker buildx build --call=outline|targets` prints them.

use kiln_frontend::outline::{outline, targets};
use kiln_frontend::LowerOptions;

const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1

# GO_VERSION Version of Go to build with
ARG GO_VERSION=1.22
# unrelated comment
ARG UNUSED=x
ARG BASE=golang:${GO_VERSION}

# builder Compiles the binary
FROM ${BASE} AS builder
# CGO Whether to link against libc
ARG CGO=0
ARG GOFLAGS
RUN --mount=type=secret,id=netrc,required=true --mount=type=ssh go build ./...

# tests Runs the test suite
FROM builder AS tests
RUN --mount=type=secret,target=/run/secrets/aws go test ./...

# release The final image
FROM scratch AS release
# PORT Port the server listens on
ARG PORT=8080
COPY --from=builder /out/app /app
"#;

#[test]
fn outline_of_the_default_target() {
    let o = outline(DOCKERFILE, &LowerOptions::default()).unwrap();
    assert_eq!(o.name, "release");
    assert_eq!(o.description, "The final image");
    let args: Vec<(&str, &str, &str, usize)> = o
        .args
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                a.value.as_str(),
                a.description.as_str(),
                a.line,
            )
        })
        .collect();
    assert_eq!(
        args,
        vec![
            ("GO_VERSION", "1.22", "Version of Go to build with", 4),
            ("BASE", "golang:1.22", "", 7),
            ("CGO", "0", "Whether to link against libc", 12),
            ("GOFLAGS", "", "", 13),
            ("PORT", "8080", "Port the server listens on", 23),
        ]
    );
    let secrets: Vec<(&str, bool)> = o
        .secrets
        .iter()
        .map(|s| (s.name.as_str(), s.required))
        .collect();
    assert_eq!(
        secrets,
        vec![("netrc", true)],
        "tests is not needed by release"
    );
    let ssh: Vec<&str> = o.ssh.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(ssh, vec!["default"]);

    assert_eq!(
        o.to_text(),
        "TARGET:      release\n\
         DESCRIPTION: The final image\n\
         \n\
         BUILD ARG    VALUE         DESCRIPTION\n\
         GO_VERSION   1.22          Version of Go to build with\n\
         BASE         golang:1.22   \n\
         CGO          0             Whether to link against libc\n\
         GOFLAGS                    \n\
         PORT         8080          Port the server listens on\n\
         \n\
         SECRET   REQUIRED\n\
         netrc    true\n\
         \n\
         SSH       REQUIRED\n\
         default   \n\
         \n"
    );
}

#[test]
fn outline_of_another_target_with_build_args() {
    let opts = LowerOptions {
        target: Some("tests".into()),
        build_args: [("GO_VERSION".to_string(), "1.21".to_string())].into(),
        ..Default::default()
    };
    let o = outline(DOCKERFILE, &opts).unwrap();
    assert_eq!(o.name, "tests");
    assert_eq!(o.description, "Runs the test suite");
    let args: Vec<(&str, &str)> = o
        .args
        .iter()
        .map(|a| (a.name.as_str(), a.value.as_str()))
        .collect();
    assert_eq!(
        args,
        vec![
            ("GO_VERSION", "1.21"),
            ("BASE", "golang:1.21"),
            ("CGO", "0"),
            ("GOFLAGS", "")
        ]
    );
    let secrets: Vec<&str> = o.secrets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        secrets,
        vec!["netrc", "aws"],
        "own secret plus the base stage's"
    );

    let e = outline(
        DOCKERFILE,
        &LowerOptions {
            target: Some("test".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "target stage \"test\" could not be found (did you mean tests?)"
    );
}

#[test]
fn outline_json_and_redeclared_global_arg() {
    let text = "# V the version\nARG V=1\nFROM scratch\nARG V\nCOPY a /\n";
    let o = outline(text, &LowerOptions::default()).unwrap();
    let v = serde_json::to_value(&o).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "args": [{"name": "V", "description": "the version", "value": "1",
                      "span": {"start": 16, "end": 23}, "line": 2}]
        })
    );
    assert_eq!(
        o.to_text(),
        "BUILD ARG   VALUE   DESCRIPTION\nV           1       the version\n\n"
    );
}

#[test]
fn targets_list_every_stage() {
    let t = targets(DOCKERFILE).unwrap();
    let got: Vec<(&str, bool, &str, &str)> = t
        .targets
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.default,
                t.description.as_str(),
                t.base.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("builder", false, "Compiles the binary", "${BASE}"),
            ("tests", false, "Runs the test suite", "builder"),
            ("release", true, "The final image", "scratch"),
        ]
    );
    assert_eq!(
        t.to_text(),
        "TARGET            DESCRIPTION\n\
         builder           Compiles the binary\n\
         tests             Runs the test suite\n\
         release (default) The final image\n"
    );
    let t = targets("FROM scratch\nFROM scratch AS Named\n").unwrap();
    assert_eq!(
        t.to_text(),
        "TARGET          DESCRIPTION\n                \nnamed (default) \n"
    );
    let t = targets("FROM scratch\n").unwrap();
    assert_eq!(t.to_text(), "TARGET    DESCRIPTION\n(default) \n");
}
