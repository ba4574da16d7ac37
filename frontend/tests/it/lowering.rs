//! Lowering checked field by field with the fake resolver.

use std::collections::BTreeMap;

use kiln_frontend::{build_graph, FrontendError, LowerOptions};
use kiln_ir::{FileAction, Graph, NetworkMode, Op, SourceOp};

use crate::fake::FakeResolver;

fn graph(text: &str) -> Graph {
    build_graph(text, &LowerOptions::default(), &FakeResolver::default()).unwrap()
}

fn graph_with(
    text: &str,
    args: &[(&str, &str)],
    target: Option<&str>,
) -> Result<Graph, FrontendError> {
    let build_args: BTreeMap<String, String> = args
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    build_graph(
        text,
        &LowerOptions {
            build_args,
            target: target.map(String::from),
            ..Default::default()
        },
        &FakeResolver::default(),
    )
}

fn history(g: &Graph) -> Vec<String> {
    g.stages[g.target]
        .history
        .iter()
        .map(|h| h.created_by.clone())
        .collect()
}

fn exec(g: &Graph, node: usize) -> &kiln_ir::ExecOp {
    match &g.nodes[node].op {
        Op::Exec(e) => e,
        other => panic!("node {node} is {other:?}"),
    }
}

#[test]
fn single_stage_labels_and_history() {
    let g = graph("FROM busybox\nRUN echo hi\nCOPY file /dst\nCMD echo bye\n");
    assert_eq!(g.nodes.len(), 4); // image, run, context, copy
    assert!(g.nodes[0]
        .name
        .starts_with("[1/3] FROM docker.io/library/busybox:latest@sha256:"));
    assert_eq!(g.nodes[1].name, "[2/3] RUN echo hi");
    assert_eq!(g.nodes[2].name, "[internal] load build context");
    assert_eq!(g.nodes[3].name, "[3/3] COPY file /dst");
    assert_eq!(g.nodes[3].inputs, vec![1, 2]);
    assert_eq!(
        history(&g),
        vec![
            "RUN /bin/sh -c echo hi # buildkit",
            "COPY file /dst # buildkit",
            r#"CMD ["/bin/sh" "-c" "echo bye"]"#,
        ]
    );
    let h = &g.stages[0].history;
    assert_eq!(h[0].node, Some(1));
    assert_eq!(h[2].node, None);
    assert_eq!(h[0].comment.as_deref(), Some("buildkit.dockerfile.v0"));
    let e = exec(&g, 1);
    assert_eq!(e.args, vec!["/bin/sh", "-c", "echo hi"]);
    assert_eq!(e.cwd, "/");
    assert_eq!(e.user, "");
    assert_eq!(e.env, vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
    let cfg = &g.stages[0].config;
    assert_eq!(
        cfg.config.cmd.as_deref(),
        Some(&["/bin/sh".to_string(), "-c".into(), "echo bye".into()][..])
    );
    assert_eq!(cfg.created, None);
    assert_eq!(cfg.history.len(), 1, "base history kept as is");
}

#[test]
fn run_history_lists_args_in_effect() {
    let g = graph("FROM busybox\nARG a=1 b=2\nARG c\nRUN make\n");
    assert_eq!(
        history(&g)[2],
        "RUN |3 a=1 b=2 c= /bin/sh -c make # buildkit"
    );
    assert_eq!(history(&g)[0], "ARG a=1 b=2");
    assert_eq!(history(&g)[1], "ARG c");
    // ARGs reach RUN's env; an ARG without a value does not.
    let env = &exec(&g, 1).env;
    assert!(env.contains(&"a=1".to_string()) && env.contains(&"b=2".to_string()));
    assert!(!env.iter().any(|e| e.starts_with("c=")));
}

#[test]
fn global_args_only_in_from_unless_redeclared() {
    let text = "ARG TAG=1\nARG OTHER=x\nFROM busybox:$TAG\nARG TAG\nRUN echo $TAG $OTHER\n";
    let g = graph(text);
    assert!(g.nodes[0].name.contains("busybox:1@"));
    let e = exec(&g, 1);
    assert!(e.env.contains(&"TAG=1".to_string()));
    assert!(!e.env.iter().any(|v| v.starts_with("OTHER=")));
    // Build args override the global default and the redeclared one.
    let g = graph_with(text, &[("TAG", "2")], None).unwrap();
    assert!(g.nodes[0].name.contains("busybox:2@"));
    assert!(exec(&g, 1).env.contains(&"TAG=2".to_string()));
}

#[test]
fn env_sees_previous_values_only() {
    let g = graph("FROM busybox\nENV a=1\nENV a=2 b=$a\nRUN true\n");
    let env = &g.stages[0].config.config.env;
    let env = env.as_ref().unwrap();
    assert!(env.contains(&"a=2".to_string()) && env.contains(&"b=1".to_string()));
    assert_eq!(history(&g)[1], "ENV a=2 b=1");
}

#[test]
fn path_added_when_base_has_none_and_scratch_config() {
    let g = graph("FROM nopath\nRUN true\n");
    let env = g.stages[0].config.config.env.clone().unwrap();
    assert_eq!(
        env,
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    );
    let g = graph("FROM scratch\nENV foo=bar\n");
    let c = &g.stages[0].config;
    assert_eq!((c.os.as_str(), c.architecture.as_str()), ("linux", "amd64"));
    assert_eq!(c.config.working_dir.as_deref(), Some("/"));
    assert_eq!(c.rootfs.diff_ids.len(), 0);
    assert_eq!(history(&g), vec!["ENV foo=bar"]);
    assert!(matches!(g.nodes[0].op, Op::Source(SourceOp::Scratch)));
}

#[test]
fn workdir_mkdir_and_relative_paths() {
    let g = graph("FROM busybox\nUSER app\nWORKDIR /test1\nWORKDIR test2\nCOPY a ./\nRUN pwd\n");
    match &g.nodes[2].op {
        Op::File(f) => match &f.actions[0] {
            FileAction::Mkdir(m) => {
                assert_eq!(m.path, "/test1/test2");
                assert_eq!(m.mode, 0o755);
                assert_eq!(m.chown.as_ref().map(|c| c.user.as_str()), Some("app"));
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert_eq!(g.nodes[1].name, "[2/5] WORKDIR /test1");
    let copy = g.nodes.iter().find_map(|n| match &n.op {
        Op::File(f) => match &f.actions[0] {
            FileAction::Copy(c) => Some(c.clone()),
            _ => None,
        },
        _ => None,
    });
    assert_eq!(copy.unwrap().dest, "/test1/test2/");
    let run = g.nodes.iter().find_map(|n| match &n.op {
        Op::Exec(e) => Some(e.clone()),
        _ => None,
    });
    let run = run.unwrap();
    assert_eq!(
        (run.cwd.as_str(), run.user.as_str()),
        ("/test1/test2", "app")
    );
    assert_eq!(history(&g)[1], "WORKDIR /test1");
    assert_eq!(g.stages[0].history[1].node, Some(1));
}

#[test]
fn inherited_workdir_and_user() {
    let g = graph("FROM withwd\nRUN true\n");
    let e = exec(&g, 1);
    assert_eq!((e.cwd.as_str(), e.user.as_str()), ("/srv", "nobody"));
}

#[test]
fn multi_stage_names_targets_and_reachability() {
    let text = "FROM busybox AS base\nRUN a\nFROM busybox AS unused\nRUN b\nFROM base AS Final\nCOPY --from=0 /x /y\nRUN c\n";
    let g = graph(text);
    assert_eq!(g.target, 2);
    // The unused stage has no nodes.
    assert!(g.nodes.iter().all(|n| n.stage != 1));
    assert!(g.nodes[0].name.starts_with("[base 1/2] FROM "));
    assert_eq!(g.nodes[1].name, "[base 2/2] RUN a");
    assert_eq!(g.nodes[2].name, "[final 1/2] COPY --from=0 /x /y");
    assert_eq!(g.nodes[2].inputs, vec![1, 1]);
    assert_eq!(g.stages[2].base, 1);
    assert_eq!(
        history(&g),
        vec!["COPY /x /y # buildkit", "RUN /bin/sh -c c # buildkit"]
    );
    // --target, case-insensitively.
    let g = graph_with(text, &[], Some("UNUSED")).unwrap();
    assert_eq!(g.target, 1);
    assert!(g.nodes.iter().all(|n| n.stage == 1));
    let e = graph_with(text, &[], Some("bsae")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "target stage \"bsae\" could not be found (did you mean base?)"
    );
}

#[test]
fn resolver_called_once_per_reference() {
    let r = FakeResolver::default();
    let text = "FROM busybox AS a\nFROM busybox AS b\nCOPY --from=alpine /x /x\nCOPY --from=alpine /y /y\nCOPY --from=a /z /z\n";
    let g = build_graph(text, &LowerOptions::default(), &r).unwrap();
    let calls = r.calls.borrow();
    assert_eq!(calls.get("busybox"), Some(&1));
    assert_eq!(calls.get("alpine"), Some(&1));
    let images = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Source(SourceOp::Image(_))))
        .count();
    assert_eq!(
        images, 3,
        "one node per FROM image and one for the implicit alpine stage"
    );
}

#[test]
fn run_network_and_exec_form() {
    let g = graph("FROM busybox\nRUN --network=none [\"echo\", \"x\"]\nRUN --network=host true\n");
    let e = exec(&g, 1);
    assert_eq!(e.args, vec!["echo", "x"]);
    assert_eq!(e.network, NetworkMode::None);
    assert_eq!(exec(&g, 2).network, NetworkMode::Host);
    assert_eq!(history(&g)[0], "RUN echo x # buildkit");
}

#[test]
fn entrypoint_resets_inherited_cmd() {
    let g = graph("FROM busybox\nENTRYPOINT [\"/app\"]\n");
    assert_eq!(g.stages[0].config.config.cmd, None);
    let g = graph("FROM busybox\nCMD [\"x\"]\nENTRYPOINT [\"/app\"]\n");
    assert_eq!(g.stages[0].config.config.cmd, Some(vec!["x".to_string()]));
    let g = graph("FROM busybox\nSHELL [\"/bin/bash\", \"-eo\"]\nENTRYPOINT my entrypoint\n");
    assert_eq!(
        g.stages[0].config.config.entrypoint,
        Some(vec![
            "/bin/bash".into(),
            "-eo".into(),
            "my entrypoint".into()
        ])
    );
    assert_eq!(history(&g)[0], "SHELL [/bin/bash -eo]");
}

#[test]
fn errors_carry_spans() {
    let text = "FROM busybox\nCOPY --from=later /a /b\nFROM busybox AS later\n";
    let e = graph_with(text, &[], Some("later")).map(|_| ());
    assert!(e.is_ok(), "only the target's stages are dispatched");
    let e = graph_with(text, &[], Some("stage-0")).unwrap_err();
    assert!(e.to_string().starts_with("target stage"));
    let e = graph_with(
        "FROM busybox\nCOPY --from=later /a /b\nFROM busybox AS later\nCOPY --from=0 /a /b\n",
        &[],
        None,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "circular dependency detected on stage: stage-0"
    );
    let e = graph_with(
        "FROM busybox AS first\nCOPY --from=later /a /b\nFROM busybox AS later\n",
        &[],
        Some("first"),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot copy from stage \"later\", it needs to be defined before current stage \"first\""
    );
    assert_eq!(e.span().map(|s| s.start), Some(22));
    let e = graph_with("FROM missing\n", &[], None).unwrap_err();
    assert_eq!(e.to_string(), "missing: not found");
    assert_eq!(e.span().map(|s| s.start), Some(0));
    let e = graph_with("FROM busybox\nCOPY --from=$X a b\n", &[], None).unwrap_err();
    assert!(e
        .to_string()
        .starts_with("variable expansion is not supported for --from"));
    let e = graph_with("FROM busybox\nCOPY --chmod=64a a b\n", &[], None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid chmod parameter: '64a'. it should be octal string and between 0 and 07777"
    );
    let e = graph_with("ARG X=${Y:?\"custom error\"}\nFROM busybox\n", &[], None).unwrap_err();
    assert!(e.to_string().ends_with(": Y: custom error"), "{e}");
    assert!(graph_with(
        "ARG X=${Y:?\"custom error\"}\nFROM busybox\n",
        &[("X", "1")],
        None
    )
    .is_ok());
}

#[test]
fn expose_expands_and_splits() {
    let g = graph("FROM busybox\nARG PORTS=\"3000 4000/udp\"\nEXPOSE $PORTS 80\n");
    let ports: Vec<String> = g.stages[0]
        .config
        .config
        .exposed_ports
        .clone()
        .unwrap()
        .into_keys()
        .collect();
    assert_eq!(ports, vec!["3000/tcp", "4000/udp", "80/tcp"]);
    assert_eq!(history(&g)[1], "EXPOSE [3000/tcp 4000/udp 80/tcp]");
}
