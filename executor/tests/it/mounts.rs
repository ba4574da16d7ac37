//! RUN --mount: bind, cache, tmpfs, secret, ssh. Each test reads the produced layer.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use kiln_executor::{SecretSource, Session};
use kiln_ir::{CacheSharing, ContextEntry, ContextFiles, ExecMount, ExecOp, FileSource, LayerRef};

use crate::fixture::{mountinfo, tar_of, Fixture};

fn sh(script: &str, mounts: Vec<ExecMount>) -> ExecOp {
    let mut op = Fixture::op(&["sh", "-c", script]);
    op.mounts = mounts;
    op
}

/// Runs `op` with `sources`; panics on failure; returns (layer, stdout).
fn run(fx: &Fixture, op: &ExecOp, sources: &[FileSource]) -> (Option<LayerRef>, String) {
    let logs = Arc::new(crate::fixture::Logs::default());
    let io = kiln_ir::ExecIo {
        node: 0,
        progress: &*logs,
        cancel: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    let r = kiln_ir::Worker::exec(&fx.exec, &fx.base, op, sources, &io);
    match r {
        Ok(l) => (l, logs.stream(1)),
        Err(e) => panic!(
            "{:?}: {e}\nstdout: {}\nstderr: {}",
            op.args,
            logs.stream(1),
            logs.stream(2)
        ),
    }
}

fn run_err(fx: &Fixture, op: &ExecOp, sources: &[FileSource]) -> String {
    let logs = crate::fixture::Logs::default();
    let io = kiln_ir::ExecIo {
        node: 0,
        progress: &logs,
        cancel: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    match kiln_ir::Worker::exec(&fx.exec, &fx.base, op, sources, &io) {
        Ok(_) => panic!("{:?} should fail", op.args),
        Err(e) => format!("{e} {}", logs.stream(2)),
    }
}

fn paths(fx: &Fixture, layer: &Option<LayerRef>) -> Vec<String> {
    layer
        .as_ref()
        .map(|l| fx.entries(l).into_keys().collect())
        .unwrap_or_default()
}

/// Decompressed bytes of a layer blob.
fn raw(fx: &Fixture, layer: &LayerRef) -> Vec<u8> {
    let blob = fx.exec.store().read(&layer.blob).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&blob[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn bind(input: usize, source: &str, target: &str, readonly: bool) -> ExecMount {
    ExecMount::Bind {
        source_input: input,
        source: source.into(),
        target: target.into(),
        readonly,
    }
}

fn cache(id: &str, target: &str) -> ExecMount {
    ExecMount::Cache {
        id: id.into(),
        target: target.into(),
        sharing: CacheSharing::Shared,
        uid: 0,
        gid: 0,
        mode: 0o755,
        source_input: None,
        source: "/".into(),
        readonly: false,
    }
}

#[test]
fn bind_from_layers_read_only_and_rw_writes_discarded() {
    let fx = Fixture::new();
    let stage = fx.add_layer(&tar_of(&[
        ("src/", None),
        ("src/data/", None),
        ("src/data/f.txt", Some(b"from stage")),
    ]));
    let sources = [FileSource::Layers(vec![stage])];
    let op = sh(
        "cat /mnt/f.txt; echo; echo x > /mnt/new 2>/dev/null || echo read-only; echo o > /out",
        vec![bind(1, "/src/data", "/mnt", true)],
    );
    let (layer, out) = run(&fx, &op, &sources);
    assert_eq!(out, "from stage\nread-only\n");
    assert_eq!(
        paths(&fx, &layer),
        vec!["out"],
        "no mount point in the layer"
    );

    let op = sh(
        "echo new > /m/data/new && cat /m/data/new && echo changed > /m/data/f.txt",
        vec![bind(1, "/src", "/m", false)],
    );
    let (layer, out) = run(&fx, &op, &sources);
    assert_eq!(out, "new\n");
    assert_eq!(
        paths(&fx, &layer),
        Vec::<String>::new(),
        "rw writes stay out"
    );
    let op = sh(
        "cat /m/data/f.txt; test -e /m/data/new || echo gone",
        vec![bind(1, "/src", "/m", true)],
    );
    assert_eq!(run(&fx, &op, &sources).1, "from stagegone\n");
    // A mount point under a missing directory leaves no stub either.
    let op = sh(
        "cat /deep/er/f.txt >/dev/null; echo o > /out",
        vec![bind(1, "src/data", "/deep/er", true)],
    );
    assert_eq!(paths(&fx, &run(&fx, &op, &sources).0), vec!["out"]);
    // A single file as the source.
    let op = sh("cat /f", vec![bind(1, "/src/data/f.txt", "/f", true)]);
    assert_eq!(run(&fx, &op, &sources).1, "from stage");
}

#[test]
fn bind_from_context_hides_ignored_files() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "A").unwrap();
    std::fs::write(dir.path().join("ignored.txt"), "I").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/b"), "B").unwrap();
    let files = ContextFiles {
        root: dir.path().to_path_buf(),
        entries: ["a.txt", "sub", "sub/b"]
            .iter()
            .map(|p| ContextEntry {
                path: p.to_string(),
                is_dir: *p == "sub",
            })
            .collect(),
    };
    let sources = [FileSource::Context(Arc::new(files))];
    let op = sh(
        "cat /ctx/a.txt /ctx/sub/b; ls /ctx; echo z > /ctx/a.txt || echo ro; cat /s/b",
        vec![bind(1, "/", "/ctx", true), bind(1, "sub", "/s", true)],
    );
    let (layer, out) = run(&fx, &op, &sources);
    assert_eq!(out, "ABa.txt\nsub\nro\nB");
    assert_eq!(paths(&fx, &layer), Vec::<String>::new());
    let op = sh(
        "echo z > /ctx/a.txt; cat /ctx/a.txt",
        vec![bind(1, "/", "/ctx", false)],
    );
    assert_eq!(run(&fx, &op, &sources).1, "z\n");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
        "A"
    );
}

#[test]
fn cache_persists_across_runs_and_stays_out_of_layers() {
    let fx = Fixture::new();
    let op = sh(
        "echo 1 >> /root/.cache/count; cat /root/.cache/count; echo o > /out",
        vec![cache("/root/.cache", "/root/.cache")],
    );
    let (layer, out) = run(&fx, &op, &[]);
    assert_eq!(out, "1\n");
    assert_eq!(paths(&fx, &layer), vec!["out"]);
    let (_, out) = run(&fx, &op, &[]);
    assert_eq!(out, "1\n1\n", "the second run sees the first run's file");
    // Another id is another cache.
    let op = sh(
        "ls /root/.cache; echo end",
        vec![cache("other", "/root/.cache")],
    );
    assert_eq!(run(&fx, &op, &[]).1, "end\n");

    // uid, gid and mode of a new cache dir.
    let mut m = cache("owned", "/c");
    if let ExecMount::Cache { uid, gid, mode, .. } = &mut m {
        (*uid, *gid, *mode) = (1001, 1002, 0o751);
    }
    let out = run(&fx, &sh("ls -ldn /c", vec![m]), &[]).1;
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(&fields[..1], ["drwxr-x--x"], "{out}");
    assert_eq!(&fields[2..4], ["1001", "1002"], "{out}");

    // Locked and private sharing work alone too.
    for sharing in [CacheSharing::Locked, CacheSharing::Private] {
        let mut m = cache("/root/.cache", "/root/.cache");
        if let ExecMount::Cache { sharing: s, .. } = &mut m {
            *s = sharing;
        }
        assert_eq!(
            run(&fx, &sh("cat /root/.cache/count", vec![m]), &[]).1,
            "1\n1\n"
        );
    }
}

#[test]
fn cache_seeded_from_a_stage_and_source_escape_fails() {
    let fx = Fixture::new();
    let stage = fx.add_layer(&tar_of(&[
        ("seed/", None),
        ("seed/s.txt", Some(b"seeded")),
        ("evil", Some(b"@/bin")),
    ]));
    let sources = [FileSource::Layers(vec![stage])];
    let mut m = cache("seeded", "/c");
    if let ExecMount::Cache {
        source_input,
        source,
        ..
    } = &mut m
    {
        (*source_input, *source) = (Some(1), "/seed".into());
    }
    assert_eq!(run(&fx, &sh("cat /c/s.txt", vec![m]), &sources).1, "seeded");
    let mut m = cache("escape", "/c");
    if let ExecMount::Cache {
        source_input,
        source,
        ..
    } = &mut m
    {
        (*source_input, *source) = (Some(1), "/evil".into());
    }
    let err = run_err(&fx, &sh("ls /c", vec![m]), &sources);
    assert!(err.contains("resolves outside"), "{err}");
}

#[test]
fn tmpfs_is_mounted_and_not_in_the_layer() {
    let fx = Fixture::new();
    let op = sh(
        "grep ' /t tmpfs ' /proc/mounts | grep -o 'size=[0-9]*k'; echo x > /t/file; echo o > /out",
        vec![ExecMount::Tmpfs {
            target: "/t".into(),
            size: Some(1024 * 1024),
        }],
    );
    let (layer, out) = run(&fx, &op, &[]);
    assert_eq!(out, "size=1024k\n");
    assert_eq!(paths(&fx, &layer), vec!["out"]);
}

fn secret(id: &str, target: Option<&str>, env: Option<&str>, required: bool) -> ExecMount {
    ExecMount::Secret {
        id: id.into(),
        target: target.map(Into::into),
        env: env.map(Into::into),
        required,
        uid: 1000,
        gid: 50,
        mode: 0o440,
    }
}

#[test]
fn secrets_from_file_and_env_leave_no_trace() {
    let mut fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let file_value = "file-secret-5f2b9c";
    let env_value = "env-secret-8d1e07";
    std::fs::write(dir.path().join("s"), file_value).unwrap();
    // Only this test reads this variable.
    std::env::set_var("KILN_TEST_SECRET_ENV", env_value);
    fx.exec.set_session(Session {
        secrets: BTreeMap::from([
            ("f".to_string(), SecretSource::File(dir.path().join("s"))),
            (
                "e".to_string(),
                SecretSource::Env("KILN_TEST_SECRET_ENV".into()),
            ),
        ]),
        ssh: BTreeMap::new(),
    });
    let op = sh(
        "test \"$(cat /run/secrets/f)\" = file-secret-5f2b9c && echo file ok; \
         test \"$TOKEN\" = env-secret-8d1e07 && echo env ok; ls -ln /run/secrets/f; \
         echo x > /run/secrets/f 2>/dev/null || echo ro; test -e /run/secrets/opt || echo skipped; \
         cat /etc/e > /tmp/copy; echo o > /out",
        vec![
            secret("f", Some("/run/secrets/f"), None, true),
            secret("e", None, Some("TOKEN"), true),
            secret("e", Some("/etc/e"), None, false),
            secret("opt", Some("/run/secrets/opt"), None, false),
        ],
    );
    let (layer, out) = run(&fx, &op, &[]);
    assert!(out.starts_with("file ok\nenv ok\n"), "{out}");
    let ls: Vec<&str> = out.lines().nth(2).unwrap().split_whitespace().collect();
    assert_eq!((ls[0], ls[2], ls[3]), ("-r--r-----", "1000", "50"), "{out}");
    assert!(out.ends_with("ro\nskipped\n"), "{out}");
    let layer = layer.unwrap();
    assert_eq!(
        paths(&fx, &Some(layer.clone())),
        vec!["out", "tmp", "tmp/copy"]
    );
    let bytes = raw(&fx, &layer);
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(file_value));
    // The RUN copied the env secret into /tmp/copy itself: that is the command's doing.
    assert!(text.contains(env_value));
    // The kiln root (spec files, runs, cache) never holds the file secret.
    for e in walk(fx.root.path()) {
        if let Ok(b) = std::fs::read(&e) {
            assert!(
                !String::from_utf8_lossy(&b).contains(file_value),
                "{}",
                e.display()
            );
        }
    }
    let err = run_err(
        &fx,
        &sh("true", vec![secret("nope", None, None, true)]),
        &[],
    );
    assert!(err.contains("secret nope: not found"), "{err}");
    assert!(!mountinfo().contains("secrets"));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn ssh_socket_is_forwarded() {
    let mut fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let ssh = |required| ExecMount::Ssh {
        id: "default".into(),
        target: None,
        required,
        uid: 0,
        gid: 0,
        mode: 0o600,
    };
    let err = run_err(&fx, &sh("true", vec![ssh(true)]), &[]);
    assert!(err.contains("no SSH agent forwarded"), "{err}");
    let (_, out) = run(
        &fx,
        &sh("echo ${SSH_AUTH_SOCK:-unset}", vec![ssh(false)]),
        &[],
    );
    assert_eq!(out, "unset\n", "an optional missing agent is skipped");

    fx.exec.set_session(Session {
        secrets: BTreeMap::new(),
        ssh: BTreeMap::from([("default".to_string(), sock.clone())]),
    });
    let (layer, out) = run(
        &fx,
        &sh(
            "test -S $SSH_AUTH_SOCK && echo $SSH_AUTH_SOCK; echo o > /out",
            vec![ssh(true)],
        ),
        &[],
    );
    assert_eq!(out, "/run/buildkit/ssh_agent.0\n");
    assert_eq!(paths(&fx, &layer), vec!["out"]);
}
