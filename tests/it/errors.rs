//! Bad input and failing builds: exit code 1 (2 for usage errors), a first error line that says
//! what and where, never a panic.

use crate::common::{kiln, shared, Fixture};

fn oci_out(f: &Fixture<'_>) -> String {
    format!("type=oci,dest={}", f.out("image.tar").display())
}

#[test]
fn missing_dockerfile_fails_with_one_line() {
    let f = Fixture::empty();
    f.write("hello.txt", "hi\n");
    let out = f.build(&["-o", &oci_out(&f)]);
    out.fails_with(1).error_line_names(&["Dockerfile"]);
    assert!(!f.out("image.tar").exists(), "no output for a failed build");

    let out = f.build(&["-f", "nope.Dockerfile", "-o", &oci_out(&f)]);
    out.fails_with(1).error_line_names(&["nope.Dockerfile"]);
}

#[test]
fn unknown_instruction_names_file_and_line() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN true\nFNTRYPOINT [\"/bin/sh\"]\n",
    );
    f.build(&["-o", &oci_out(&f)])
        .fails_with(1)
        .error_line_names(&["Dockerfile:3", "FNTRYPOINT"]);
}

#[test]
fn copy_of_missing_file_names_the_file() {
    let f = Fixture::empty();
    f.write("Dockerfile", "FROM scratch\nCOPY nothere.txt /\n");
    let out = f.build(&["-o", &oci_out(&f)]);
    out.fails_with(1)
        .error_line_names(&["nothere.txt"])
        .shows("Dockerfile:2");
}

#[test]
fn copy_of_dockerignored_file_fails_like_a_missing_one() {
    let f = Fixture::empty();
    f.write("Dockerfile", "FROM scratch\nCOPY ignored.txt /\n");
    f.write("ignored.txt", "you cannot see me\n");
    f.write(".dockerignore", "ignored.txt\n");
    let out = f.build(&["-o", &oci_out(&f)]);
    out.fails_with(1)
        .error_line_names(&["ignored.txt"])
        .shows("Dockerfile:2");
}

#[test]
fn base_image_missing_from_registry_names_the_reference() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @REGISTRY@/does-not-exist:1.0\nRUN true\n",
    );
    let out = f.build(&["-o", &oci_out(&f)]);
    out.fails_with(1).error_line_names(&["does-not-exist"]);
    // Sanity: the registry in the reference is the live one, so this is "not found", not "down".
    assert_eq!(shared().registry.v2_status().expect("registry up"), 200);
}

#[test]
fn failing_run_shows_command_exit_code_and_last_output() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN echo first-line; echo last-line; exit 3\nRUN echo never-runs\n",
    );
    let out = f.build(&["-o", &oci_out(&f)]);
    out.fails_with(1)
        .shows("echo first-line")
        .shows("last-line");
    let line = out.error_line();
    assert!(
        line.contains("exit code: 3") || (line.contains("exit") && line.contains('3')),
        "error line {line:?} lacks the exit code\n{}",
        out.text()
    );
    let ran_later = out.progress().into_iter().any(|(_, l)| {
        l.split_once(' ')
            .is_some_and(|(t, rest)| t.parse::<f64>().is_ok() && rest == "never-runs")
    });
    assert!(
        !ran_later,
        "the step after the failing RUN ran\n{}",
        out.text()
    );
    assert!(!f.out("image.tar").exists(), "no output for a failed build");
}

#[test]
fn usage_errors_exit_2() {
    let f = Fixture::empty();
    f.write("Dockerfile", "FROM scratch\n");
    let ctx = f.ctx().display().to_string();
    for args in [
        vec!["build".to_string()],
        vec!["build".into(), "--progress=sparkly".into(), ctx.clone()],
        vec![
            "build".into(),
            "--network=bridge-of-sighs".into(),
            ctx.clone(),
        ],
        vec!["build".into(), "--no-such-flag".into(), ctx.clone()],
        vec!["frobnicate".into()],
    ] {
        let out = kiln(&args);
        out.fails_with(2);
        assert!(
            !out.stderr().trim().is_empty(),
            "usage error without a message: {args:?}"
        );
    }
}

/// A registry nobody listens on: a clear error naming the reference, exit 1, in seconds
/// (a few retries with backoff, not a hang).
#[test]
fn unreachable_registry_fails_naming_the_reference() {
    let f = Fixture::empty();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    f.write(
        "Dockerfile",
        &format!("FROM 127.0.0.1:{port}/nobody/home:1\nRUN true\n"),
    );
    let started = std::time::Instant::now();
    let out = f.build(&["-o", &oci_out(&f)]);
    out.fails_with(1)
        .error_line_names(&[&format!("127.0.0.1:{port}/nobody/home:1")]);
    assert!(
        out.text().to_lowercase().contains("connect"),
        "{}",
        out.text()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// A registry serving a layer whose bytes do not match its digest (its storage was
/// tampered with): the build fails naming the digest, the bad bytes never enter the store,
/// and the store keeps working for the next build.
#[test]
fn corrupt_layer_from_the_registry_is_refused_and_not_stored() {
    let registry = kiln_testsupport::Registry::start(kiln_testsupport::RegistryAuth::None)
        .expect("start registry");
    let base = kiln_testsupport::busybox_image(&registry).expect("push busybox");
    // Find the layer blob in the registry's storage and overwrite it (same size).
    let blobs = registry.dir().join("data/docker/registry/v2/blobs/sha256");
    let mut layer = None;
    for prefix in std::fs::read_dir(&blobs).expect("blobs").flatten() {
        for blob in std::fs::read_dir(prefix.path()).expect("prefix").flatten() {
            let data = blob.path().join("data");
            let len = std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0);
            if len > 100_000 {
                layer = Some((blob.file_name().to_string_lossy().into_owned(), data, len));
            }
        }
    }
    let (hex, data, len) = layer.expect("the busybox layer blob");
    let len = usize::try_from(len).expect("size");
    std::fs::write(&data, vec![0x42u8; len]).expect("corrupt the blob");

    let f = Fixture::empty();
    f.write("Dockerfile", &format!("FROM {base}\nRUN true\n"));
    let out = f.build(&["-o", &oci_out(&f)]);
    out.fails_with(1);
    assert!(out.text().contains(&hex[..12]), "{}", out.text());
    assert!(
        out.text().to_lowercase().contains("digest"),
        "{}",
        out.text()
    );
    let stored = f.root().join("content/blobs/sha256").join(&hex);
    assert!(
        !stored.exists(),
        "a blob that failed verification was stored"
    );

    // The same store builds a good image afterwards.
    f.write("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n");
    f.build(&["-o", &oci_out(&f)]).ok();
}

/// `-f -`: the Dockerfile is read from stdin (and called `Dockerfile` in messages).
#[test]
fn dockerfile_from_stdin() {
    let f = Fixture::empty();
    f.write("hello.txt", "hi\n");
    let run = |dockerfile: &str| {
        assert_cmd::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args([
                "build",
                "--progress=plain",
                "--root",
                &f.root().display().to_string(),
                "-f",
                "-",
                "-o",
                &oci_out(&f),
                &f.ctx().display().to_string(),
            ])
            .write_stdin(dockerfile.to_string())
            .output()
            .expect("run kiln")
    };
    let out = run("FROM scratch\nCOPY hello.txt /\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("load build definition from Dockerfile"),
        "{err}"
    );
    let image = kiln_testsupport::Image::from_oci_tar(&f.out("image.tar")).expect("read image");
    assert_eq!(
        image.file("hello.txt").expect("read"),
        Some(b"hi\n".to_vec())
    );
    let out = run("FROM scratch\nFNTRYPOINT x\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Dockerfile:2"), "{err}");
}
