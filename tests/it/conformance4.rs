//! Conformance builds for groups 3, 4, 6, 7, 11 and 13 of the behaviour list
//! (docs/conformance.md): COPY destinations against WORKDIR, directory and wildcard sources,
//! symlinks in the context, ownership of existing and created directories, --chmod on implied
//! parents, WORKDIR in scratch and on an existing directory, default user and groups,
//! ENTRYPOINT and RUN, failing RUN messages, mount values expanded from ARG/ENV, two bind
//! mounts, and context changes between builds. Each test reads the built image.

use kiln_testsupport::{EntryKind, Image, LayerEntry};

use crate::common::Fixture;

/// The topmost entry for `path`.
fn entry(image: &Image, path: &str) -> LayerEntry {
    image
        .entries()
        .expect("layers")
        .into_iter()
        .rev()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} not in any layer"))
}

fn text(image: &Image, path: &str) -> String {
    let bytes = image
        .file(path)
        .expect("read layers")
        .unwrap_or_else(|| panic!("{path} missing"));
    String::from_utf8_lossy(&bytes).into_owned()
}

fn paths_under(image: &Image, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = image
        .entries()
        .expect("layers")
        .into_iter()
        .filter(|e| e.path.starts_with(prefix))
        .map(|e| e.path)
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn copy_destinations_sources_and_symlinks() {
    let f = Fixture::empty();
    f.write("f.txt", "F")
        .write("dir/a", "A")
        .write("dir/sub/b", "B")
        .write("a.go", "a")
        .write("b.go", "b")
        .write("foo.go", "foo")
        .write("sub/one/dir2/foo", "one")
        .write("sub/two/other/foo", "two")
        .write("realdir/inner.txt", "inner")
        .write(
            "Dockerfile",
            "FROM @BASE@ AS base\n\
             WORKDIR /stagewd\n\
             RUN echo stage-root > /name.txt && echo stage-wd > /stagewd/name.txt\n\
             FROM @BASE@\n\
             ARG empty\n\
             COPY f.txt /sample/\n\
             WORKDIR /test1\n\
             WORKDIR test2\n\
             COPY f.txt $empty\n\
             COPY f.txt ./rel/\n\
             COPY f.txt ./bar/baz\n\
             COPY f.txt ../up.txt\n\
             COPY dir /d1/\n\
             COPY dir/ /d2/\n\
             COPY dir/. /d3/\n\
             COPY *.go /gos/\n\
             COPY f*.go /one.go\n\
             COPY sub/*/dir2/foo /wild/\n\
             COPY linkdir/inner.txt /through/\n\
             COPY lnk* /lnks/\n\
             COPY --from=base name.txt /fromroot.txt\n\
             WORKDIR /linkwd\n\
             COPY --link f.txt .\n",
        );
    std::os::unix::fs::symlink("realdir", f.ctx().join("linkdir")).expect("symlink");
    std::os::unix::fs::symlink("f.txt", f.ctx().join("lnkfile")).expect("symlink");
    let (image, out) = f.build_oci("img", &[]);
    // 6.12 step names: a named stage by name, an unnamed one as stage-N, FROM is step 1.
    let progress = out.progress();
    assert!(
        progress
            .iter()
            .any(|(_, l)| l.starts_with("[base 1/3] FROM ")),
        "{}",
        out.text()
    );
    assert!(
        progress
            .iter()
            .any(|(_, l)| l.starts_with("[stage-1 ") && l.ends_with("] COPY f.txt /sample/")),
        "{}",
        out.text()
    );

    // 3.1 trailing slash makes a directory.
    assert_eq!(entry(&image, "sample").kind, EntryKind::Dir);
    assert_eq!(text(&image, "sample/f.txt"), "F");
    // 3.2 empty destination is the WORKDIR; 3.3 relative destinations and WORKDIRs.
    assert_eq!(text(&image, "test1/test2/f.txt"), "F");
    assert_eq!(text(&image, "test1/test2/rel/f.txt"), "F");
    assert_eq!(entry(&image, "test1/test2/bar/baz").kind, EntryKind::File);
    assert_eq!(text(&image, "test1/up.txt"), "F");
    // 3.4 dir, dir/ and dir/. copy the contents.
    for d in ["d1", "d2", "d3"] {
        assert_eq!(
            paths_under(&image, &format!("{d}/")),
            [format!("{d}/a"), format!("{d}/sub"), format!("{d}/sub/b")],
            "{d}"
        );
    }
    // 3.5 wildcards: files, a single match to a file path, intermediate directories.
    assert_eq!(
        paths_under(&image, "gos/"),
        ["gos/a.go", "gos/b.go", "gos/foo.go"]
    );
    assert_eq!(text(&image, "one.go"), "foo");
    assert_eq!(paths_under(&image, "wild/"), ["wild/foo"]);
    assert_eq!(text(&image, "wild/foo"), "one");
    // 3.13 through a symlinked context dir; a wildcard matching a symlink copies the target.
    assert_eq!(text(&image, "through/inner.txt"), "inner");
    let l = entry(&image, "lnks/lnkfile");
    assert_eq!((l.kind, l.content.as_slice()), (EntryKind::File, &b"F"[..]));
    // 3.20 --from sources resolve from the stage's root, not its WORKDIR.
    assert_eq!(text(&image, "fromroot.txt"), "stage-root\n");
    // 4.4 COPY --link to `.` lands in the WORKDIR.
    assert_eq!(text(&image, "linkwd/f.txt"), "F");
}

#[test]
fn ownership_of_created_and_existing_directories_and_chmod() {
    let f = Fixture::empty();
    f.write("f.txt", "F").write("dir/a", "A").write(
        "Dockerfile",
        "FROM @BASE@ AS base\n\
         RUN mkdir /src && echo s > /src/s && chown 1000:50 /src/s\n\
         FROM @BASE@\n\
         RUN mkdir /ex && chown 7:8 /ex\n\
         COPY f.txt /ex/\n\
         COPY --chown=1234:5678 f.txt /ex/chowned.txt\n\
         COPY --chown=1234:5678 dir /newowned/deep/\n\
         COPY --from=base /src/s /kept/\n\
         COPY f.txt /made/\n\
         COPY --chmod=0600 f.txt /cm/deep/\n\
         COPY --chmod=777 f.txt /m777\n\
         COPY --chmod=0 f.txt /m0\n",
    );
    let (image, _) = f.build_oci("img", &[]);
    let ids = |p: &str| {
        let e = entry(&image, p);
        (e.uid, e.gid)
    };
    // 3.7 an existing dir keeps its owner, a created one is root, copied files keep theirs.
    assert_eq!(ids("ex"), (7, 8), "existing dir keeps its owner");
    assert_eq!(ids("ex/f.txt"), (0, 0), "context files are root's");
    assert_eq!(ids("made"), (0, 0), "created destination dir is root:root");
    assert_eq!(ids("kept/s"), (1000, 50), "--from keeps the source owner");
    assert_eq!(ids("kept"), (0, 0));
    // 3.8 --chown on new files and created dirs, not on the existing one.
    assert_eq!(ids("ex/chowned.txt"), (1234, 5678));
    for p in ["newowned", "newowned/deep", "newowned/deep/a"] {
        assert_eq!(ids(p), (1234, 5678), "{p}");
    }
    // 3.10 octal --chmod exactly; implied parent dirs.
    assert_eq!(entry(&image, "cm/deep/f.txt").mode, 0o600);
    assert_eq!(entry(&image, "m777").mode, 0o777);
    assert_eq!(entry(&image, "m0").mode, 0);
    assert_eq!(
        (entry(&image, "cm").mode, entry(&image, "cm/deep").mode),
        (0o600, 0o600),
        "implied parents get the --chmod mode"
    );
}

#[test]
fn workdir_in_scratch_and_on_an_existing_directory() {
    let f = Fixture::empty();
    f.write("Dockerfile", "FROM scratch\nWORKDIR /foo/bar\n");
    let (image, _) = f.build_oci("scratch", &[]);
    assert_eq!(entry(&image, "foo/bar").kind, EntryKind::Dir);
    assert_eq!(image.cfg("WorkingDir"), "/foo/bar");

    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN mkdir /ex && chown 7:8 /ex\nUSER nobody\nWORKDIR /ex\nWORKDIR /ex/new\n",
    );
    let (image, _) = f.build_oci("existing", &[]);
    let ex = entry(&image, "ex");
    assert_eq!(
        (ex.uid, ex.gid),
        (7, 8),
        "an existing WORKDIR keeps its owner"
    );
    let new = entry(&image, "ex/new");
    assert_eq!((new.uid, new.gid), (65534, 65534));
}

#[test]
fn users_entrypoint_and_shell_form() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\n\
         ENTRYPOINT [\"/bin/false\"]\n\
         RUN echo ran > /ran\n\
         RUN echo 'wheel:x:10:root' >> /etc/group\n\
         RUN id -u > /uid; id -g > /gid; id -G > /groups\n\
         USER 1234\n\
         RUN id -u > /tmp/uid2; id -g > /tmp/gid2; id -G > /tmp/groups2\n\
         USER root\n\
         ENTRYPOINT foo bar\n",
    );
    let (image, _) = f.build_oci("img", &[]);
    // 6.5 ENTRYPOINT never affects RUN.
    assert_eq!(text(&image, "ran"), "ran\n");
    // 6.8 default user root with the image's groups.
    assert_eq!(
        (
            text(&image, "uid"),
            text(&image, "gid"),
            text(&image, "groups")
        ),
        ("0\n".into(), "0\n".into(), "0 10\n".into())
    );
    // 6.10 an unknown uid runs with gid 0 and groups 0.
    assert_eq!(
        (
            text(&image, "tmp/uid2"),
            text(&image, "tmp/gid2"),
            text(&image, "tmp/groups2")
        ),
        ("1234\n".into(), "0\n".into(), "0\n".into())
    );
    // 6.1 shell-form ENTRYPOINT.
    assert_eq!(
        image.cfg("Entrypoint"),
        &serde_json::json!(["/bin/sh", "-c", "foo bar"])
    );
    assert_eq!(image.cfg("Cmd"), &serde_json::Value::Null);
}

#[test]
fn failing_and_invalid_json_runs_and_copy_of_a_url() {
    let f = Fixture::empty();
    let dest = format!("type=oci,dest={}", f.out("x.tar").display());
    f.write("Dockerfile", "FROM @BASE@\nRUN invalidcmd\n");
    f.build(&["-o", &dest])
        .fails_with(1)
        .shows("process \"/bin/sh -c invalidcmd\" did not complete successfully");
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN [\"echo\",\"hello\"]this is invalid\n",
    );
    f.build(&["-o", &dest])
        .fails_with(1)
        .shows("/bin/sh -c [\"echo\",\"hello\"]this is invalid");
    f.write(
        "Dockerfile",
        "FROM @BASE@\nCOPY https://example.invalid/x /x\n",
    );
    f.build(&["-o", &dest])
        .fails_with(1)
        .shows("source can't be a URL for COPY");
}

#[test]
fn mount_values_expand_and_two_binds_see_current_content() {
    let f = Fixture::empty();
    f.write("m.txt", "one\n").write(
        "Dockerfile",
        "ARG GT=/gt\n\
         FROM @BASE@ AS parent\n\
         ENV MT=/mnt-env\n\
         FROM parent\n\
         ARG GT\n\
         ARG CID=cid1\n\
         RUN --mount=type=cache,id=$CID,target=$MT echo hi > $MT/x && ls -d $MT > /mt\n\
         RUN --mount=type=cache,id=cid1,target=/other cat /other/x > /seen\n\
         RUN --mount=type=tmpfs,target=$GT grep ' /gt tmpfs ' /proc/mounts > /gtm\n\
         RUN --mount=target=/c1 --mount=target=/c2 cat /c1/m.txt /c2/m.txt > /both\n",
    );
    let (image, _) = f.build_oci("one", &[]);
    assert_eq!(
        text(&image, "mt"),
        "/mnt-env\n",
        "target from a parent's ENV"
    );
    assert_eq!(text(&image, "seen"), "hi\n", "id from an ARG");
    assert!(!text(&image, "gtm").is_empty(), "target from a global ARG");
    assert_eq!(text(&image, "both"), "one\none\n");
    f.write("m.txt", "two\n");
    let (image, _) = f.build_oci("two", &[]);
    assert_eq!(text(&image, "both"), "two\ntwo\n");
}

#[test]
fn context_changes_between_builds() {
    let f = Fixture::empty();
    f.write("thing/inner", "in")
        .write("src/need.txt", "need\n")
        .write("src/other.txt", "o")
        .write("unused.md", "u1")
        .write(
            "Dockerfile",
            "FROM @BASE@\nCOPY thing /thing\nCOPY src/*.txt /w/\n\
             RUN cat /w/need.txt > /needed && head -c 16 /dev/urandom | od -x > /rand\n",
        );
    let (image, _) = f.build_oci("one", &[]);
    assert_eq!(text(&image, "thing/inner"), "in");
    let rand1 = text(&image, "rand");
    // 13.4 a file no COPY uses (outside the wildcard's directory) leaves the RUN cached; a
    // wildcard-matched one does not. (kiln keys a wildcard on everything under its literal
    // prefix, so an unmatched file in src/ would re-run it: see docs/conformance.md.)
    f.write("unused.md", "u2");
    let (image, _) = f.build_oci("two", &[]);
    assert_eq!(
        text(&image, "rand"),
        rand1,
        "an unused file invalidated the RUN"
    );
    f.write("src/other.txt", "o2");
    let (image, _) = f.build_oci("three", &[]);
    assert_ne!(
        text(&image, "rand"),
        rand1,
        "a wildcard-matched change kept the RUN"
    );
    // 13.9 a path that changes from directory to file.
    std::fs::remove_dir_all(f.ctx().join("thing")).expect("rm");
    f.write("thing", "now a file");
    let (image, _) = f.build_oci("four", &[]);
    assert_eq!(text(&image, "thing"), "now a file");
    assert_eq!(text(&image, "needed"), "need\n");
    // 13.5 a rename that takes a file out of a wildcard fails the RUN that needs it.
    std::fs::rename(f.ctx().join("src/need.txt"), f.ctx().join("src/need.md")).expect("rename");
    let dest = format!("type=oci,dest={}", f.out("x.tar").display());
    f.build(&["-o", &dest]).fails_with(1).shows("need.txt");
}

/// A tar holding one file `name` with `data`.
fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path(name).expect("path");
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).expect("append");
    b.into_inner().expect("tar")
}

#[test]
fn add_wildcard_archives_dockerignored_dockerfile_and_flag_errors() {
    let f = Fixture::empty();
    std::fs::write(f.ctx().join("one.tar"), tar_of("a/one", b"1")).expect("write");
    std::fs::write(f.ctx().join("two.tar"), tar_of("b/two", b"2")).expect("write");
    f.write("keep.txt", "k")
        .write("docs/a.md", "a")
        .write("docs/b.txt", "b")
        .write(".dockerignore", "Dockerfile\n.dockerignore\n*.tar\n!one.tar\n!two.tar\n")
        .write(
            "Dockerfile",
            "FROM @BASE@ AS base\n\
             RUN mkdir -p /out/lib && echo data > /out/lib/f && ln -s /out/lib /abs && ln -s lib /out/rel\n\
             FROM @BASE@\n\
             ADD *.tar /dest/\n\
             ADD --exclude=*.md docs /docs/\n\
             COPY . /ctx/\n\
             COPY --from=base /abs/f /via-abs\n\
             COPY --from=base /out/rel/f /via-rel\n",
        );
    let (image, _) = f.build_oci("img", &[]);
    // 5.7 every matching archive is extracted.
    assert_eq!(text(&image, "dest/a/one"), "1");
    assert_eq!(text(&image, "dest/b/two"), "2");
    // 13.1 a .dockerignore listing Dockerfile and itself keeps them out of COPY.
    assert_eq!(
        paths_under(&image, "ctx/"),
        [
            "ctx/docs",
            "ctx/docs/a.md",
            "ctx/docs/b.txt",
            "ctx/keep.txt",
            "ctx/one.tar",
            "ctx/two.tar"
        ]
    );
    // 4.3 ADD honours --exclude.
    assert_eq!(paths_under(&image, "docs/"), ["docs/b.txt"]);
    // 3.14 COPY --from follows absolute and relative symlinks inside the stage.
    assert_eq!(text(&image, "via-abs"), "data\n");
    assert_eq!(text(&image, "via-rel"), "data\n");

    let dest = format!("type=oci,dest={}", f.out("x.tar").display());
    // 3.12 ADD's --chmod has COPY's error text.
    f.write("Dockerfile", "FROM @BASE@\nADD --chmod=64a keep.txt /x\n");
    f.build(&["-o", &dest])
        .fails_with(1)
        .shows("invalid chmod parameter: '64a'. it should be octal string and between 0 and 07777");
    // 5.10 --checksum needs an HTTP(S) or Git source.
    f.write(
        "Dockerfile",
        "FROM @BASE@\nADD --checksum=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef keep.txt /x\n",
    );
    f.build(&["-o", &dest])
        .fails_with(1)
        .shows("checksum requires HTTP(S) or Git sources");
    // 13.2 a .dockerignore of a lone `!` fails at once.
    f.write(".dockerignore", "!\n");
    f.write("Dockerfile", "FROM @BASE@\nCOPY keep.txt /x\n");
    f.build(&["-o", &dest])
        .fails_with(1)
        .shows("illegal exclusion pattern");
}
