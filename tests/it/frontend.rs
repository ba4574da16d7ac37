//! The Dockerfile language end to end: behaviours that show in the produced image (ONBUILD,
//! SHELL, heredoc files, history texts, platform ARGs, ARG scoping in RUN's environment).

use kiln_testsupport::Image;
use serde_json::{json, Value};

use crate::common::Fixture;

/// Builds the fixture's Dockerfile to an OCI dir and reads the image back.
fn build(f: &Fixture<'_>, extra: &[&str]) -> Image {
    build_to(f, "image", extra)
}

/// Like [`build`], writing to the output directory `out` (one per build of a fixture).
fn build_to(f: &Fixture<'_>, out: &str, extra: &[&str]) -> Image {
    let dir = f.out(out);
    let dest = format!("type=oci,dest={},tar=false", dir.display());
    let mut args = vec!["-o", dest.as_str()];
    args.extend_from_slice(extra);
    f.build(&args).ok();
    let image = Image::from_oci_dir(&dir).expect("read OCI dir");
    image.check_diff_ids().expect("diff ids and history agree");
    image
}

fn text(image: &Image, path: &str) -> String {
    let bytes = image
        .file(path)
        .expect("read layers")
        .unwrap_or_else(|| panic!("{path} missing from the image"));
    String::from_utf8(bytes).expect("utf-8")
}

fn mode(image: &Image, path: &str) -> u32 {
    let path = path.trim_start_matches('/');
    image
        .entries()
        .expect("read layers")
        .into_iter()
        .rev()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} missing"))
        .mode
        & 0o7777
}

/// The history entries this build added (after the base's one entry), as
/// `(created_by, empty_layer)`.
fn history(image: &Image) -> Vec<(String, bool)> {
    image.config["history"]
        .as_array()
        .expect("history")
        .iter()
        .skip(1)
        .map(|h| {
            (
                h["created_by"].as_str().unwrap_or_default().to_string(),
                h["empty_layer"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

#[test]
fn onbuild_triggers_run_once_in_the_child_stage() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@ AS parent\n\
         ONBUILD RUN echo triggered >> /log\n\
         RUN echo parent >> /log\n\
         FROM parent AS child\n\
         RUN echo child >> /log\n\
         FROM child\n\
         RUN echo grandchild >> /log\n",
    );
    let image = build(&f, &[]);
    assert_eq!(
        text(&image, "/log"),
        "parent\ntriggered\nchild\ngrandchild\n"
    );
    assert_eq!(image.cfg("OnBuild"), &Value::Null);

    // The stage that declares the trigger does not run it and records it in its config.
    let f2 = Fixture::empty();
    f2.write(
        "Dockerfile",
        &std::fs::read_to_string(f.ctx().join("Dockerfile")).unwrap(),
    );
    let parent = build(&f2, &["--target", "parent"]);
    assert_eq!(text(&parent, "/log"), "parent\n");
    assert_eq!(
        parent.cfg("OnBuild"),
        &json!(["RUN echo triggered >> /log"])
    );
}

#[test]
fn shell_wraps_later_shell_forms_and_entrypoint_clears_inherited_cmd() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\n\
         RUN case $- in *e*) echo errexit > /before;; *) echo plain > /before;; esac\n\
         SHELL [\"/bin/sh\", \"-e\", \"-c\"]\n\
         RUN case $- in *e*) echo errexit > /after;; esac\n\
         ENTRYPOINT my entrypoint\n",
    );
    let image = build(&f, &[]);
    assert_eq!(text(&image, "/before"), "plain\n");
    assert_eq!(text(&image, "/after"), "errexit\n");
    assert_eq!(
        image.cfg("Entrypoint"),
        &json!(["/bin/sh", "-e", "-c", "my entrypoint"])
    );
    assert_eq!(image.cfg("Shell"), &json!(["/bin/sh", "-e", "-c"]));
    // busybox's CMD ["sh"] is inherited, and ENTRYPOINT clears it.
    assert_eq!(image.cfg("Cmd"), &Value::Null);
    let h = history(&image);
    assert_eq!(h[1], ("SHELL [/bin/sh -e -c]".to_string(), true));
    assert_eq!(
        h[2].0,
        "RUN /bin/sh -e -c case $- in *e*) echo errexit > /after;; esac # buildkit"
    );
}

#[test]
fn heredoc_files_and_scripts() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\n\
         ARG NAME=world\n\
         COPY <<EOF /expanded\n\
         hello ${NAME} \\$HOME \"q\"\n\
         EOF\n\
         COPY <<'EOF' /literal\n\
         hello ${NAME}\n\
         EOF\n\
         COPY --chmod=750 <<EOF <<EOF2 /dir/\n\
         one\n\
         EOF\n\
         two\n\
         EOF2\n\
         RUN <<EOF\n\
         echo \"run $NAME\" > /run-plain\n\
         EOF\n\
         RUN <<EOF\n\
         #!/bin/sh\n\
         echo \"shebang $0\" > /run-shebang\n\
         EOF\n\
         RUN cat <<EOF > /run-complex\n\
         x $NAME\n\
         EOF\n",
    );
    let image = build(&f, &[]);
    assert_eq!(text(&image, "/expanded"), "hello world $HOME \"q\"\n");
    assert_eq!(text(&image, "/literal"), "hello ${NAME}\n");
    assert_eq!(text(&image, "/dir/EOF"), "one\n");
    assert_eq!(text(&image, "/dir/EOF2"), "two\n");
    assert_eq!(mode(&image, "/dir/EOF"), 0o750);
    assert_eq!(text(&image, "/run-plain"), "run world\n");
    assert_eq!(text(&image, "/run-shebang"), "shebang /dev/pipes/EOF\n");
    assert_eq!(text(&image, "/run-complex"), "x world\n");
}

#[test]
fn history_texts_and_empty_layers() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\n\
         ARG foo=bar\n\
         ARG foo=bar2 bar=123\n\
         ENV A=1\n\
         LABEL l=v\n\
         EXPOSE 5000 1234/udp 2375\n\
         RUN echo x > /x\n\
         STOPSIGNAL SIGINT\n\
         VOLUME /data\n\
         HEALTHCHECK --interval=5s --retries=2 CMD true\n\
         USER 1000\n\
         WORKDIR /app\n",
    );
    let image = build(&f, &[]);
    let h = history(&image);
    let expect: Vec<(String, bool)> = [
        ("ARG foo=bar", true),
        ("ARG foo=bar2 bar=123", true),
        ("ENV A=1", true),
        ("LABEL l=v", true),
        ("EXPOSE [1234/udp 2375/tcp 5000/tcp]", true),
        (
            "RUN |2 foo=bar2 bar=123 /bin/sh -c echo x > /x # buildkit",
            false,
        ),
        ("STOPSIGNAL SIGINT", true),
        ("VOLUME [/data]", true),
        (
            "HEALTHCHECK &{[\"CMD-SHELL\" \"true\"] \"5s\" \"0s\" \"0s\" \"0s\" '\\x02'}",
            true,
        ),
        ("USER 1000", true),
        ("WORKDIR /app", false),
    ]
    .iter()
    .map(|(s, e)| (s.to_string(), *e))
    .collect();
    assert_eq!(h, expect);
    assert_eq!(image.cfg("StopSignal"), &json!("SIGINT"));
    assert_eq!(image.cfg("Volumes"), &json!({"/data": {}}));
    assert_eq!(
        image.cfg("ExposedPorts"),
        &json!({"1234/udp": {}, "2375/tcp": {}, "5000/tcp": {}})
    );
    assert_eq!(
        image.cfg("Healthcheck"),
        &json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000u64, "Retries": 2})
    );
    assert_eq!(image.cfg("User"), &json!("1000"));
    assert_eq!(image.cfg("WorkingDir"), &json!("/app"));
}

#[test]
fn platform_args_are_declared_per_stage() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "ARG BASE_IMAGE=@BASE@\n\
         FROM --platform=$BUILDPLATFORM ${BASE_IMAGE}\n\
         ARG TARGETARCH\n\
         ARG TARGETPLATFORM\n\
         RUN echo $TARGETARCH > /arch && echo $TARGETPLATFORM > /platform\n\
         RUN echo \"[$TARGETOS][$BUILDARCH]\" > /undeclared\n",
    );
    let image = build(&f, &[]);
    assert_eq!(text(&image, "/arch"), "amd64\n");
    assert_eq!(text(&image, "/platform"), "linux/amd64\n");
    assert_eq!(text(&image, "/undeclared"), "[][]\n");

    let bad = Fixture::empty();
    bad.write(
        "Dockerfile",
        "FROM --platform=linux/arm64 @BASE@\nRUN true\n",
    );
    bad.build(&[]).fails_with(1).shows("linux/arm64");
}

#[test]
fn arg_scoping_in_run_env_and_proxy_args() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "ARG GLOBAL=g\n\
         ARG UNUSED=u\n\
         FROM @BASE@\n\
         ARG GLOBAL\n\
         ARG NOVAL\n\
         ARG EMPTY=\n\
         ARG OVER=default\n\
         RUN env > /env\n",
    );
    let image = build(
        &f,
        &[
            "--build-arg",
            "OVER=cli",
            "--build-arg",
            "http_proxy=http://127.0.0.1:3128",
        ],
    );
    let env = text(&image, "/env");
    let lines: Vec<&str> = env.lines().collect();
    for want in [
        "GLOBAL=g",
        "EMPTY=",
        "OVER=cli",
        "http_proxy=http://127.0.0.1:3128",
        "HTTP_PROXY=http://127.0.0.1:3128",
    ] {
        assert!(lines.contains(&want), "{want} not in RUN env:\n{env}");
    }
    for absent in ["NOVAL", "UNUSED"] {
        assert!(
            !lines.iter().any(|l| l.starts_with(&format!("{absent}="))),
            "{absent} in RUN env:\n{env}"
        );
    }
    let h = history(&image);
    assert_eq!(
        h.last().unwrap().0,
        "RUN |4 GLOBAL=g NOVAL= EMPTY= OVER=cli /bin/sh -c env > /env # buildkit"
    );
    // Proxy values are in no history entry and not in the config.
    assert!(!image.config.to_string().contains("3128"));
}

#[test]
fn lowercase_and_symlinked_dockerfiles_are_found() {
    // Only `dockerfile` (lower case): used when `Dockerfile` is absent.
    let f = Fixture::empty();
    f.write("Dockerfile.tmp", "FROM @BASE@\nRUN echo lower > /which\n");
    std::fs::rename(f.ctx().join("Dockerfile.tmp"), f.ctx().join("dockerfile")).unwrap();
    let image = build(&f, &[]);
    assert_eq!(text(&image, "/which"), "lower\n");

    // `Dockerfile` wins over `dockerfile` when both exist.
    f.write("Dockerfile", "FROM @BASE@\nRUN echo upper > /which\n");
    let image = build_to(&f, "both", &[]);
    assert_eq!(text(&image, "/which"), "upper\n");

    // A `Dockerfile` that is a symlink (to a file in a subdirectory) is read through it.
    let f = Fixture::empty();
    f.write("Dockerfile.real", "FROM @BASE@\nRUN echo linked > /which\n");
    std::fs::create_dir(f.ctx().join("sub")).unwrap();
    std::fs::rename(
        f.ctx().join("Dockerfile.real"),
        f.ctx().join("sub/Dockerfile.real"),
    )
    .unwrap();
    std::os::unix::fs::symlink("sub/Dockerfile.real", f.ctx().join("Dockerfile")).unwrap();
    let image = build(&f, &[]);
    assert_eq!(text(&image, "/which"), "linked\n");
    // And with -f naming the symlink.
    let df = f.ctx().join("Dockerfile").display().to_string();
    let image = build_to(&f, "with-f", &["-f", &df]);
    assert_eq!(text(&image, "/which"), "linked\n");
}

/// The entry of `path` in the image's top-most layer that has it.
fn entry(image: &Image, path: &str) -> kiln_testsupport::LayerEntry {
    let path = path.trim_start_matches('/');
    image
        .entries()
        .expect("read layers")
        .into_iter()
        .rev()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} missing"))
}

#[test]
fn error_in_a_continued_instruction_shows_both_lines() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN echo first-part && \\\n  exit 3\nRUN true\n",
    );
    let out = f.build(&[]);
    out.fails_with(1);
    let err = out.stderr();
    let at = err
        .find("Dockerfile:2-3: ")
        .unwrap_or_else(|| panic!("no `Dockerfile:2-3:` in\n{err}"));
    let report = &err[at..];
    assert!(
        report.contains("2 │ ╭─▶ RUN echo first-part && \\"),
        "{report}"
    );
    assert!(report.contains("3 │ ├─▶   exit 3"), "{report}");
    assert!(!report.contains("4 │ ╭"), "{report}");
}

#[test]
fn heredoc_chown_shell_variables_fds_and_non_sh_shells() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\n\
         ARG OWNER=1234\n\
         COPY --chown=${OWNER}:55 <<EOF /owned\n\
         mine\n\
         EOF\n\
         RUN <<EOF\n\
         greeting=hello\n\
         name=\"$(echo shell)\"\n\
         echo \"$greeting $name ${OWNER}\" > /vars\n\
         EOF\n\
         RUN cat <<IN0 - /proc/self/fd/3 /proc/self/fd/4 3<<IN1 4<<IN2 > /fds\n\
         zero\n\
         IN0\n\
         three\n\
         IN1\n\
         four\n\
         IN2\n\
         RUN cat <<A > /a && \\\n  cat <<B > /b\n\
         first\n\
         A\n\
         second\n\
         B\n\
         SHELL [\"/bin/awk\"]\n\
         RUN <<EOF\n\
         BEGIN {\n\
         \tprint \"from awk\" > \"/awk-out\"\n\
         }\n\
         EOF\n",
    );
    let image = build(&f, &[]);
    let owned = entry(&image, "/owned");
    assert_eq!((owned.uid, owned.gid), (1234, 55));
    assert_eq!(owned.content, b"mine\n");
    assert_eq!(text(&image, "/vars"), "hello shell 1234\n");
    assert_eq!(text(&image, "/fds"), "zero\nthree\nfour\n");
    assert_eq!(text(&image, "/a"), "first\n");
    assert_eq!(text(&image, "/b"), "second\n");
    assert_eq!(text(&image, "/awk-out"), "from awk\n");
}

#[test]
fn onbuild_from_a_registry_image_runs_heredocs_and_adds_dependencies() {
    let parent = Fixture::empty();
    let name = format!("{}/onbuild-parent:1", parent.bases.registry.addr());
    parent.write(
        "Dockerfile",
        "FROM @BASE@\n\
         RUN echo parent > /log\n\
         ONBUILD RUN echo triggered >> /log\n\
         ONBUILD RUN <<EOF\n\
         n=$((1+2))\n\
         echo \"heredoc $n\" >> /log\n\
         EOF\n\
         ONBUILD COPY --from=assets /a /from-assets\n\
         ONBUILD COPY --from=@BASE@ /bin/busybox /copied-busybox\n\
         ONBUILD RUN --mount=from=assets,target=/in cat /in/a >> /log\n",
    );
    parent.build(&["--push", "-t", &name]).ok();
    let pushed = build(&parent, &[]);
    assert_eq!(text(&pushed, "/log"), "parent\n");
    let triggers = pushed.cfg("OnBuild").as_array().expect("OnBuild").clone();
    assert_eq!(triggers.len(), 5, "{triggers:?}");
    assert_eq!(triggers[0], json!("RUN echo triggered >> /log"));

    let child = Fixture::empty();
    child.write(
        "Dockerfile",
        &format!(
            "FROM @BASE@ AS assets\n\
             RUN echo asset > /a\n\
             FROM {name}\n\
             RUN echo child >> /log\n"
        ),
    );
    let image = build(&child, &[]);
    assert_eq!(
        text(&image, "/log"),
        "parent\ntriggered\nheredoc 3\nasset\nchild\n"
    );
    assert_eq!(text(&image, "/from-assets"), "asset\n");
    assert!(entry(&image, "/copied-busybox").content.len() > 100_000);
    // Not inherited further.
    assert_eq!(image.cfg("OnBuild"), &Value::Null);
}

/// `created` of every history entry after the base's one.
fn history_times(image: &Image) -> Vec<String> {
    image.config["history"]
        .as_array()
        .expect("history")
        .iter()
        .skip(1)
        .map(|h| h["created"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn source_date_epoch_sets_times_and_clamps_layer_mtimes() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "ARG SOURCE_DATE_EPOCH=1700000000\n\
         FROM @BASE@\n\
         ENV A=1\n\
         COPY old.txt new.txt /files/\n\
         RUN mkdir -p /made && echo x > /made/now\n",
    );
    f.write("old.txt", "old\n").write("new.txt", "new\n");
    let touch = |secs: &str, file: &str| {
        let st = std::process::Command::new("touch")
            .args([
                "-d",
                &format!("@{secs}"),
                &f.ctx().join(file).display().to_string(),
            ])
            .status()
            .expect("touch");
        assert!(st.success());
    };
    touch("500000000", "old.txt");
    touch("1800000000", "new.txt");

    // The global ARG default.
    let image = build(&f, &[]);
    assert_eq!(image.config["created"], json!("2023-11-14T22:13:20Z"));
    let times = history_times(&image);
    assert_eq!(times.len(), 3, "{times:?}");
    assert!(
        times.iter().all(|t| t == "2023-11-14T22:13:20Z"),
        "{times:?}"
    );
    assert_eq!(entry(&image, "/files/old.txt").mtime, 500_000_000);
    assert_eq!(entry(&image, "/files/new.txt").mtime, 1_700_000_000);
    assert_eq!(entry(&image, "/made/now").mtime, 1_700_000_000);
    assert_eq!(entry(&image, "/made").mtime, 1_700_000_000);

    // A build-arg overrides the default; the same cache serves both builds.
    let image = build_to(
        &f,
        "override",
        &["--build-arg", "SOURCE_DATE_EPOCH=1000000000"],
    );
    assert_eq!(image.config["created"], json!("2001-09-09T01:46:40Z"));
    assert!(history_times(&image)
        .iter()
        .all(|t| t == "2001-09-09T01:46:40Z"));
    assert_eq!(entry(&image, "/files/old.txt").mtime, 500_000_000);
    assert_eq!(entry(&image, "/files/new.txt").mtime, 1_000_000_000);
    assert_eq!(entry(&image, "/made/now").mtime, 1_000_000_000);

    // Without it, RUN's files keep the time they were written.
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN mkdir -p /made && echo x > /made/now\n",
    );
    let image = build_to(&f, "none", &[]);
    assert!(entry(&image, "/made/now").mtime > 1_700_000_000);
}

#[test]
fn cold_builds_with_the_same_source_date_epoch_give_the_same_digest() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\n\
         COPY a.txt /a.txt\n\
         RUN echo built > /b && mkdir /d && echo x > /d/tmp-file\n\
         RUN rm /d/tmp-file; touch /d/e\n",
    );
    f.write("a.txt", "a\n");
    let args = ["--build-arg", "SOURCE_DATE_EPOCH=1700000000"];
    let one = build_to(&f, "one", &args);
    // A fresh store: nothing cached, every RUN runs again (at another time).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let root2 = f.out("root2");
    let dir = f.out("two");
    let dest = format!("type=oci,dest={},tar=false", dir.display());
    let mut full = vec!["-o", dest.as_str()];
    full.extend_from_slice(&args);
    f.build_with_root(&root2, &full).ok();
    let two = Image::from_oci_dir(&dir).expect("read OCI dir");
    assert_eq!(one.config, two.config);
    for (i, (a, b)) in one.layers.iter().zip(&two.layers).enumerate() {
        if a != b {
            let ea = kiln_testsupport::layer_entries(a).unwrap();
            let eb = kiln_testsupport::layer_entries(b).unwrap();
            panic!("layer {i} differs:\n{ea:#?}\n{eb:#?}");
        }
    }
    assert_eq!(one.manifest_digest, two.manifest_digest);
}

#[test]
fn label_flag_lands_in_config_labels() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\nLABEL from.dockerfile=yes both=dockerfile\n",
    );
    let image = build(
        &f,
        &[
            "--label",
            "from.cli=1",
            "--label",
            "both=cli",
            "--label",
            "bare",
        ],
    );
    assert_eq!(
        image.cfg("Labels"),
        &json!({"from.dockerfile": "yes", "from.cli": "1", "both": "cli", "bare": ""})
    );
    // No history entry for build-option labels.
    assert_eq!(
        history(&image),
        vec![(
            "LABEL from.dockerfile=yes both=dockerfile".to_string(),
            true
        )]
    );
}

#[test]
fn scratch_image_with_only_env_has_platform_workdir_and_one_empty_history_entry() {
    let f = Fixture::empty();
    f.write("Dockerfile", "FROM scratch\nENV foo=bar\n");
    let dir = f.out("image");
    let dest = format!("type=oci,dest={},tar=false", dir.display());
    f.build(&["-o", &dest]).ok();
    let image = Image::from_oci_dir(&dir).expect("read OCI dir");
    assert_eq!(image.config["os"], json!("linux"));
    assert_eq!(image.config["architecture"], json!("amd64"));
    assert_eq!(image.cfg("WorkingDir"), &json!("/"));
    assert_eq!(
        image.config["rootfs"],
        json!({"type": "layers", "diff_ids": []})
    );
    let h = image.config["history"].as_array().expect("history");
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["created_by"], json!("ENV foo=bar"));
    assert_eq!(h[0]["empty_layer"], json!(true));
    assert!(image.layers.is_empty());
}

#[test]
fn changing_a_proxy_build_arg_keeps_run_cached() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN head -c 16 /dev/urandom | od -x > /random\n",
    );
    let first = build_to(&f, "one", &["--build-arg", "HTTP_PROXY=http://127.0.0.1:1"]);
    let out = f.build(&[
        "--build-arg",
        "HTTP_PROXY=http://127.0.0.1:2",
        "--build-arg",
        "no_proxy=x",
    ]);
    out.ok();
    assert!(
        out.progress().iter().any(|(_, l)| l == "CACHED"),
        "the RUN should be CACHED:\n{}",
        out.text()
    );
    let second = build_to(&f, "two", &["--build-arg", "HTTP_PROXY=http://127.0.0.1:3"]);
    assert_eq!(text(&first, "/random"), text(&second, "/random"));
    // A declared ARG that changes does rebuild.
    f.write(
        "Dockerfile",
        "FROM @BASE@\nARG V\nRUN head -c 16 /dev/urandom | od -x > /random\n",
    );
    let a = build_to(&f, "a", &["--build-arg", "V=1"]);
    let b = build_to(&f, "b", &["--build-arg", "V=2"]);
    assert_ne!(text(&a, "/random"), text(&b, "/random"));
}

#[test]
fn onbuild_run_cache_mount_shares_the_cache_with_later_runs() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@ AS parent\n\
         ONBUILD RUN --mount=type=cache,target=/cache echo from-trigger > /cache/f\n\
         FROM parent\n\
         RUN --mount=type=cache,target=/cache cat /cache/f > /seen\n",
    );
    let image = build(&f, &[]);
    assert_eq!(text(&image, "/seen"), "from-trigger\n");
    // The cache mount's contents are not in the image.
    assert!(image.file("/cache/f").expect("read layers").is_none());
}
