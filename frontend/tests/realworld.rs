//! Thirty real-world-style Dockerfiles (`testdata/realworld/<name>/Dockerfile`, written for
//! kiln in the style of the official images): each must parse and lower, and a readable
//! summary of its lowered graph must match a reviewed insta snapshot
//! (`frontend/tests/snapshots/realworld__<name>.snap`).
//! Each case also snapshots the outline of the default target and the list of targets
//! (`realworld__<name>-outline.snap`), as `kiln outline` / `kiln targets` compute them.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::PathBuf;

use kiln_frontend::outline::{outline, targets};
use kiln_frontend::{build_graph, ImageResolver, LowerOptions};
use kiln_ir::{ExecMount, FileAction, Graph, LayerDesc, Op, ResolvedImage, SourceOp};
use kiln_oci::{ContainerConfig, Digest, HistoryEntry, ImageConfig, RootFs};

/// Every reference resolves to the same small image: `PATH` and `CMD ["/bin/sh"]`, one
/// layer, digests derived from the reference so labels are stable.
struct FixedResolver;

impl ImageResolver for FixedResolver {
    fn resolve(&self, reference: &str) -> Result<ResolvedImage, String> {
        let layer = Digest::of(format!("layer {reference}").as_bytes());
        Ok(ResolvedImage {
            reference: reference.to_string(),
            manifest_digest: Digest::of(format!("manifest {reference}").as_bytes()),
            config_digest: Digest::of(format!("config {reference}").as_bytes()),
            config: ImageConfig {
                created: Some("2024-01-01T00:00:00Z".into()),
                architecture: "amd64".into(),
                os: "linux".into(),
                config: ContainerConfig {
                    env: Some(vec![
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                    ]),
                    cmd: Some(vec!["/bin/sh".into()]),
                    ..Default::default()
                },
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: vec![layer.clone()],
                },
                history: vec![HistoryEntry {
                    created_by: Some("base".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
            layers: vec![LayerDesc {
                digest: layer,
                size: 1,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            }],
        })
    }
}

fn dockerfile_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/realworld")
        .join(name)
        .join("Dockerfile")
}

/// One line per node (label and op), then per stage its config and history. Strings are
/// printed with `{:?}` so whitespace and quotes show exactly.
fn summary(g: &Graph) -> String {
    let mut out = String::new();
    writeln!(out, "target: stage {}", g.target).unwrap();
    writeln!(out, "nodes:").unwrap();
    for (id, node) in g.nodes.iter().enumerate() {
        writeln!(
            out,
            "  #{id} stage {} inputs {:?} {:?}",
            node.stage, node.inputs, node.name
        )
        .unwrap();
        match &node.op {
            Op::Source(SourceOp::Scratch) => writeln!(out, "    scratch").unwrap(),
            Op::Source(SourceOp::Image(img)) => {
                writeln!(out, "    image {}", img.reference).unwrap()
            }
            Op::Source(SourceOp::Context(c)) => writeln!(out, "    context {:?}", c.name).unwrap(),
            Op::Source(SourceOp::Http(h)) => writeln!(out, "    http {:?}", h.url).unwrap(),
            Op::Source(SourceOp::Git(g)) => writeln!(out, "    git {:?}", g.remote).unwrap(),
            Op::Exec(e) => {
                writeln!(out, "    exec args: {:?}", e.args).unwrap();
                writeln!(out, "    env: {:?}", e.env).unwrap();
                writeln!(out, "    cwd: {:?} user: {:?}", e.cwd, e.user).unwrap();
                writeln!(
                    out,
                    "    network: {:?} security: {:?}",
                    e.network, e.security
                )
                .unwrap();
                for m in &e.mounts {
                    writeln!(out, "    mount: {}", mount(m)).unwrap();
                }
            }
            Op::File(f) => {
                for a in &f.actions {
                    writeln!(out, "    {}", action(a)).unwrap();
                }
            }
        }
    }
    for (i, stage) in g.stages.iter().enumerate() {
        if i != g.target && !g.nodes.iter().any(|n| n.stage == i) {
            writeln!(out, "stage {i} {:?}: not needed by the target", stage.name).unwrap();
            continue;
        }
        writeln!(
            out,
            "stage {i} {:?}: base #{} last #{}",
            stage.name, stage.base, stage.last
        )
        .unwrap();
        let mut cfg = serde_json::to_value(&stage.config.config).unwrap();
        if let Some(map) = cfg.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
        let pretty = serde_json::to_string_pretty(&cfg).unwrap();
        writeln!(
            out,
            "  platform: {}/{}",
            stage.config.os, stage.config.architecture
        )
        .unwrap();
        if let Some(author) = &stage.config.author {
            writeln!(out, "  author: {author:?}").unwrap();
        }
        writeln!(out, "  config: {}", pretty.replace('\n', "\n  ")).unwrap();
        writeln!(out, "  history:").unwrap();
        for h in &stage.history {
            let layer = match h.node {
                Some(n) => format!("#{n}"),
                None => "empty".into(),
            };
            writeln!(out, "    - [{layer}] {:?}", h.created_by).unwrap();
        }
    }
    out
}

fn mount(m: &ExecMount) -> String {
    match m {
        ExecMount::Bind {
            source_input,
            source,
            target,
            readonly,
        } => format!("bind input {source_input} {source:?} -> {target:?} ro={readonly}"),
        ExecMount::Cache {
            id,
            target,
            sharing,
            source_input,
            source,
            readonly,
            uid,
            gid,
            mode,
        } => format!(
            "cache id={id:?} -> {target:?} sharing={sharing:?} from={source_input:?} \
             source={source:?} ro={readonly} uid={uid} gid={gid} mode={mode:o}"
        ),
        ExecMount::Tmpfs { target, size } => format!("tmpfs {target:?} size={size:?}"),
        ExecMount::Secret {
            id,
            target,
            env,
            required,
            ..
        } => format!("secret id={id:?} target={target:?} env={env:?} required={required}"),
        ExecMount::Ssh {
            id,
            target,
            required,
            ..
        } => format!("ssh id={id:?} target={target:?} required={required}"),
        ExecMount::File { target, data, mode } => {
            format!("file {target:?} mode={mode:o} data={data:?}")
        }
    }
}

fn action(a: &FileAction) -> String {
    match a {
        FileAction::Copy(c) => {
            let mut line = format!(
                "copy from input {} {:?} -> {:?} chown={:?} chmod={:?}",
                c.source_input,
                c.sources,
                c.dest,
                c.chown.as_ref().map(|o| (&o.user, &o.group)),
                c.chmod.map(|m| format!("{m:o}")),
            );
            // Flags only when set, so plain copies read as before.
            if let Some(m) = &c.chmod_symbolic {
                write!(line, " chmod_symbolic={m:?}").unwrap();
            }
            if !c.exclude.is_empty() {
                write!(line, " exclude={:?}", c.exclude).unwrap();
            }
            for (flag, set) in [
                ("parents", c.parents),
                ("link", c.link),
                ("unpack", c.unpack),
            ] {
                if set {
                    write!(line, " {flag}").unwrap();
                }
            }
            line
        }
        FileAction::Mkdir(m) => format!(
            "mkdir {:?} mode={:o} chown={:?}",
            m.path,
            m.mode,
            m.chown.as_ref().map(|o| (&o.user, &o.group))
        ),
        FileAction::Mkfile(m) => format!(
            "mkfile {:?} mode={:o} chown={:?} data={:?}",
            m.path,
            m.mode,
            m.chown.as_ref().map(|o| (&o.user, &o.group)),
            m.data
        ),
    }
}

/// The outline (of the default target) and the targets, with line numbers.
fn outline_summary(text: &str) -> String {
    let o = outline(text, &LowerOptions::default()).unwrap();
    let mut out = String::new();
    writeln!(out, "outline of {:?}: {:?}", o.name, o.description).unwrap();
    for a in &o.args {
        writeln!(
            out,
            "  arg {} = {:?} (line {}) {:?}",
            a.name, a.value, a.line, a.description
        )
        .unwrap();
    }
    for m in &o.secrets {
        writeln!(
            out,
            "  secret {:?} required={} (line {})",
            m.name, m.required, m.line
        )
        .unwrap();
    }
    for m in &o.ssh {
        writeln!(
            out,
            "  ssh {:?} required={} (line {})",
            m.name, m.required, m.line
        )
        .unwrap();
    }
    writeln!(out, "targets:").unwrap();
    for t in targets(text).unwrap().targets {
        writeln!(
            out,
            "  {:?}{} base {:?} platform {:?} (line {}) {:?}",
            t.name,
            if t.default { " (default)" } else { "" },
            t.base,
            t.platform,
            t.line,
            t.description
        )
        .unwrap();
    }
    out
}

/// Lowers `testdata/realworld/<name>/Dockerfile` and snapshots the graph summary as `<name>`
/// and the outline and targets as `<name>-outline`.
fn check(name: &str) {
    let path = dockerfile_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let g = build_graph(&text, &LowerOptions::default(), &FixedResolver)
        .unwrap_or_else(|e| panic!("{name}: does not lower: {e}"));
    insta::assert_snapshot!(name, summary(&g));
    insta::assert_snapshot!(format!("{name}-outline"), outline_summary(&text));
}

macro_rules! cases {
    ($($test:ident => $dir:literal;)*) => {
        $(
            #[test]
            fn $test() {
                check($dir);
            }
        )*

        /// Every directory of testdata/realworld has a case.
        #[test]
        fn every_directory_has_a_case() {
            let listed: std::collections::BTreeSet<&str> = [$($dir),*].into_iter().collect();
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/realworld");
            let mut on_disk = std::collections::BTreeSet::new();
            for entry in std::fs::read_dir(&root).unwrap() {
                let entry = entry.unwrap();
                if entry.path().join("Dockerfile").is_file() {
                    on_disk.insert(entry.file_name().to_string_lossy().into_owned());
                }
            }
            let on_disk: std::collections::BTreeSet<&str> =
                on_disk.iter().map(String::as_str).collect();
            assert_eq!(listed, on_disk);
            assert_eq!(listed.len(), 30);
        }
    };
}

cases! {
    alpine => "alpine";
    bash_shell => "bash-shell";
    busybox => "busybox";
    debian => "debian";
    dotnet => "dotnet";
    elasticsearch => "elasticsearch";
    go_scratch => "go-scratch";
    golang => "golang";
    gradle => "gradle";
    haproxy => "haproxy";
    httpd => "httpd";
    maven => "maven";
    memcached => "memcached";
    mysql => "mysql";
    nginx => "nginx";
    nginx_heredoc => "nginx-heredoc";
    node => "node";
    node_npm_ci => "node-npm-ci";
    onbuild_app => "onbuild-app";
    php => "php";
    postgres => "postgres";
    postgres_initdb => "postgres-initdb";
    python => "python";
    python_venv => "python-venv";
    rabbitmq => "rabbitmq";
    redis => "redis";
    ruby => "ruby";
    rust => "rust";
    ubuntu => "ubuntu";
    wordpress => "wordpress";
}
