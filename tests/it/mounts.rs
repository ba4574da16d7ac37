//! RUN --mount end to end: bind (context, stage), cache across builds, tmpfs, secrets (file and
//! env, absent from every layer, the store and the logs), ssh. Each test reads the image.

use std::io::Read;
use std::path::Path;

use kiln_testsupport::{layer_entries, Image};

use crate::common::{Fixture, Outcome};

/// Paths of the last layer (the last RUN's).
fn last_layer_paths(image: &Image) -> Vec<String> {
    let blob = image.layers.last().expect("a layer");
    layer_entries(blob)
        .expect("layer entries")
        .into_iter()
        .map(|e| e.path.trim_end_matches('/').to_string())
        .collect()
}

fn decompressed(blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if blob.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .expect("gunzip");
    } else {
        out = blob.to_vec();
    }
    out
}

fn file(image: &Image, path: &str) -> String {
    let bytes = image
        .file(path)
        .expect("read layers")
        .unwrap_or_else(|| panic!("{path} missing"));
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn bind_from_context_and_stage_is_visible_but_not_in_the_layer() {
    let f = Fixture::empty();
    f.write("data/a.txt", "from context\n")
        .write("ignored.txt", "ignored\n")
        .write(".dockerignore", "ignored.txt\n")
        .write(
            "Dockerfile",
            "FROM @BASE@ AS stage\nRUN mkdir /out && echo from stage > /out/s.txt\n\
             FROM @BASE@\n\
             RUN --mount=target=/ctx cat /ctx/data/a.txt > /got-ctx; ls /ctx > /ls-ctx\n\
             RUN --mount=type=bind,from=stage,source=/out,target=/st cat /st/s.txt > /got-stage\n\
             RUN --mount=type=bind,source=data,target=/d,rw echo x > /d/new && cat /d/new > /rw-wrote\n\
             RUN --mount=type=bind,source=data,target=/d ls /d > /after-rw\n",
        );
    let (image, _) = f.build_oci("img", &[]);
    assert_eq!(file(&image, "got-ctx"), "from context\n");
    let ls = file(&image, "ls-ctx");
    assert!(ls.contains("data") && !ls.contains("ignored.txt"), "{ls}");
    assert_eq!(file(&image, "got-stage"), "from stage\n");
    assert_eq!(file(&image, "rw-wrote"), "x\n");
    assert_eq!(
        file(&image, "after-rw"),
        "a.txt\n",
        "rw writes are discarded"
    );
    assert_eq!(last_layer_paths(&image), vec!["after-rw"]);
    for p in ["ctx", "st", "d"] {
        assert!(image.file(p).expect("read").is_none(), "{p} leaked");
    }
    let entries = image.entries().expect("entries");
    assert!(
        !entries
            .iter()
            .any(|e| ["ctx", "st", "d", "d/new"].contains(&e.path.trim_end_matches('/'))),
        "no mount point or rw write reaches any layer"
    );

    // The bind mount's content is part of the RUN's key.
    f.write("data/a.txt", "changed\n");
    let (image, _) = f.build_oci("img2", &[]);
    assert_eq!(file(&image, "got-ctx"), "changed\n");
}

#[test]
fn cache_mount_persists_across_builds() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\nARG N\n\
         RUN --mount=type=cache,target=/var/cache/app echo $N >> /var/cache/app/log; \
         cat /var/cache/app/log > /seen\n",
    );
    let (image, _) = f.build_oci("one", &["--build-arg", "N=1"]);
    assert_eq!(file(&image, "seen"), "1\n");
    assert_eq!(last_layer_paths(&image), vec!["seen"]);
    let (image, _) = f.build_oci("two", &["--build-arg", "N=2"]);
    assert_eq!(
        file(&image, "seen"),
        "1\n2\n",
        "the second build sees the first's file"
    );
    assert_eq!(last_layer_paths(&image), vec!["seen"]);
    // --no-cache: the cache mount starts empty (BuildKit's testCacheMountModeNoCache) …
    let (image, _) = f.build_oci("three", &["--build-arg", "N=3", "--no-cache"]);
    assert_eq!(file(&image, "seen"), "3\n");
    // … and what that build wrote persists for the next cached build.
    let (image, _) = f.build_oci("four", &["--build-arg", "N=4"]);
    assert_eq!(file(&image, "seen"), "3\n4\n");
}

#[test]
fn tmpfs_mount_is_a_tmpfs_outside_the_layer() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN --mount=type=tmpfs,target=/scratch,size=2m \
         grep ' /scratch tmpfs ' /proc/mounts > /mounted; echo x > /scratch/f\n",
    );
    let (image, _) = f.build_oci("img", &[]);
    assert!(file(&image, "mounted").contains("size=2048k"));
    assert_eq!(last_layer_paths(&image), vec!["mounted"]);
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn secrets_from_file_and_env_never_reach_layers_store_or_logs() {
    let f = Fixture::empty();
    let file_value = "s3cr3t-from-file-81c4";
    let env_value = "s3cr3t-from-env-27fa";
    let secret_file = f.out("secret.txt");
    std::fs::create_dir_all(secret_file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&secret_file, file_value).expect("write secret");
    f.write(
        "Dockerfile",
        "FROM @BASE@\n\
         RUN --mount=type=secret,id=tok,mode=0440,uid=1000 \
         sha256sum /run/secrets/tok > /file-sum; ls -ln /run/secrets/tok > /perm; \
         echo file=$(cat /run/secrets/tok)\n\
         RUN --mount=type=secret,id=envtok,env=TOKEN \
         echo -n \"$TOKEN\" | sha256sum > /env-sum; echo \"len ${#TOKEN}\"; echo \"env=$TOKEN\"\n\
         RUN --mount=type=secret,id=absent echo optional > /optional\n",
    );
    let dir = f.out("img");
    let out = {
        // The env secret comes from kiln's environment.
        let output = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args([
                "build",
                "--progress=plain",
                "--root",
                &f.root().display().to_string(),
                "-o",
                &format!("type=oci,dest={},tar=false", dir.display()),
                "--secret",
                &format!("id=tok,src={}", secret_file.display()),
                "--secret",
                "id=envtok,env=KILN_E2E_SECRET",
                &f.ctx().display().to_string(),
            ])
            .env("KILN_E2E_SECRET", env_value)
            .env("NO_COLOR", "1")
            .output()
            .expect("run kiln");
        Outcome {
            args: Vec::new(),
            output,
        }
    };
    out.ok();
    let image = Image::from_oci_dir(&dir).expect("read OCI dir");
    // The Dockerfile never holds the values: the RUNs record their digests.
    let sum = |v: &str| kiln_oci::Digest::of(v.as_bytes()).hex().to_string();
    assert!(file(&image, "file-sum").starts_with(&sum(file_value)));
    assert!(file(&image, "env-sum").starts_with(&sum(env_value)));
    assert_eq!(file(&image, "optional"), "optional\n");
    let perm = file(&image, "perm");
    let fields: Vec<&str> = perm.split_whitespace().collect();
    assert_eq!((fields[0], fields[2]), ("-r--r-----", "1000"), "{perm}");
    assert!(out.text().contains("len 20"), "the RUN saw the env secret");
    // Values the RUNs print are masked in the progress output.
    assert!(out.text().contains("file=****"), "{}", out.text());
    assert!(out.text().contains("env=****"), "{}", out.text());
    for p in ["run/secrets/tok", "run/secrets", "run"] {
        assert!(
            image.file(p).expect("read").is_none(),
            "{p} leaked into a layer"
        );
    }
    for value in [file_value, env_value] {
        for blob in &image.layers {
            assert!(!contains(&decompressed(blob), value), "{value} in a layer");
        }
        assert!(
            !contains(image.config.to_string().as_bytes(), value),
            "in the config"
        );
        assert!(!out.text().contains(value), "{value} in the logs");
        for p in files_under(&f.root()).into_iter().chain(files_under(&dir)) {
            let bytes = std::fs::read(&p).unwrap_or_default();
            let bytes = if p.extension().is_none() && bytes.starts_with(&[0x1f, 0x8b]) {
                decompressed(&bytes)
            } else {
                bytes
            };
            assert!(!contains(&bytes, value), "{value} in {}", p.display());
        }
    }

    // A failing RUN that prints the value: masked in the error's output tail too.
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN --mount=type=secret,id=tok cat /run/secrets/tok; exit 3\n",
    );
    let out = f.build(&[
        "--secret",
        &format!("id=tok,src={}", secret_file.display()),
        "-o",
        &format!("type=oci,dest={}", f.out("y.tar").display()),
    ]);
    assert_eq!(out.code(), Some(1), "{}", out.text());
    assert!(out.text().contains("****"), "{}", out.text());
    assert!(!out.text().contains(file_value), "{}", out.text());

    // required=true without --secret fails.
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN --mount=type=secret,id=missing,required=true true\n",
    );
    let out = f.build(&["-o", &format!("type=oci,dest={}", f.out("x.tar").display())]);
    assert_ne!(out.code(), Some(0));
    assert!(
        out.text().contains("secret missing: not found"),
        "{}",
        out.text()
    );
}

#[test]
fn ssh_agent_socket_is_forwarded() {
    let f = Fixture::empty();
    let sock = f.out("agent.sock");
    std::fs::create_dir_all(sock.parent().expect("parent")).expect("mkdir");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind socket");
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN --mount=type=ssh test -S $SSH_AUTH_SOCK && echo $SSH_AUTH_SOCK > /sock\n",
    );
    let ssh = format!("default={}", sock.display());
    let (image, _) = f.build_oci("img", &["--ssh", &ssh]);
    assert_eq!(file(&image, "sock"), "/run/buildkit/ssh_agent.0\n");
    assert_eq!(last_layer_paths(&image), vec!["sock"]);

    // 7.10: the socket has the mount's owner and mode (default 0:0 0600), whatever the
    // host socket's are.
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    f.write(
        "Dockerfile",
        "FROM @BASE@\n\
         RUN --mount=type=ssh stat -c '%u %g %a' $SSH_AUTH_SOCK > /default\n\
         RUN --mount=type=ssh,uid=1000,gid=1001,mode=0640,target=/tmp/agent \
         stat -c '%u %g %a' /tmp/agent > /custom\n",
    );
    let (image, _) = f.build_oci("params", &["--ssh", &ssh]);
    assert_eq!(file(&image, "default"), "0 0 600\n");
    assert_eq!(file(&image, "custom"), "1000 1001 640\n");

    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN --mount=type=ssh,required=true true\n",
    );
    let out = f.build(&["-o", &format!("type=oci,dest={}", f.out("x.tar").display())]);
    assert_ne!(out.code(), Some(0));
    assert!(
        out.text().contains("no SSH agent forwarded"),
        "{}",
        out.text()
    );
}
