//! Lowering of ARG scoping, RUN heredocs and mounts, ONBUILD and platform checks, with the
//! fake resolver.

use std::collections::BTreeMap;

use kiln_frontend::{build_graph, FrontendError, LowerOptions};
use kiln_ir::{ExecMount, ExecOp, FileAction, Graph, Op};

use crate::fake::FakeResolver;

fn lower(text: &str, args: &[(&str, &str)], target: Option<&str>) -> Result<Graph, FrontendError> {
    let build_args: BTreeMap<String, String> = args
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let opts = LowerOptions {
        build_args,
        target: target.map(String::from),
        ..Default::default()
    };
    build_graph(text, &opts, &FakeResolver::default())
}

fn execs(g: &Graph) -> Vec<&ExecOp> {
    g.nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Exec(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn target_stage_arg() {
    let text = "FROM busybox AS foo\nARG TARGETSTAGE\nRUN echo $TARGETSTAGE\nFROM busybox\nARG TARGETSTAGE\nRUN echo $TARGETSTAGE\n";
    let g = lower(text, &[], Some("foo")).unwrap();
    assert!(execs(&g)[0].env.contains(&"TARGETSTAGE=foo".to_string()));
    let g = lower(text, &[], None).unwrap();
    assert!(execs(&g)[0]
        .env
        .contains(&"TARGETSTAGE=default".to_string()));
    let g = lower("FROM busybox\nRUN echo $TARGETSTAGE\n", &[], None).unwrap();
    assert!(!execs(&g)[0]
        .env
        .iter()
        .any(|e| e.starts_with("TARGETSTAGE=")));
}

#[test]
fn proxy_args_reach_run_but_not_history() {
    let g = lower(
        "FROM busybox\nRUN true\n",
        &[("HTTPS_PROXY", "http://p:1"), ("no_proxy", "x")],
        None,
    )
    .unwrap();
    let env = &execs(&g)[0].env;
    for e in [
        "HTTPS_PROXY=http://p:1",
        "https_proxy=http://p:1",
        "NO_PROXY=x",
        "no_proxy=x",
    ] {
        assert!(env.contains(&e.to_string()), "{e} missing in {env:?}");
    }
    assert_eq!(
        g.stages[0].history[0].created_by,
        "RUN /bin/sh -c true # buildkit"
    );
}

#[test]
fn source_date_epoch_and_platform_checks() {
    let e = lower("FROM busybox\n", &[("SOURCE_DATE_EPOCH", "soon")], None).unwrap_err();
    assert!(
        e.to_string().starts_with("invalid SOURCE_DATE_EPOCH: soon"),
        "{e}"
    );
    assert!(lower("ARG SOURCE_DATE_EPOCH=12\nFROM busybox\n", &[], None).is_ok());
    assert!(lower("FROM --platform=$BUILDPLATFORM busybox\n", &[], None).is_ok());
    assert!(lower("FROM --platform=$TARGETPLATFORM busybox\n", &[], None).is_ok());
    let e = lower("FROM --platform=linux/arm64 busybox\n", &[], None).unwrap_err();
    assert!(e.to_string().contains("linux/amd64 images only"), "{e}");
    let e = lower("FROM --platform=$NOPE busybox\n", &[], None).unwrap_err();
    assert_eq!(e.to_string(), "empty platform value from expression $NOPE");
}

#[test]
fn run_heredocs() {
    let g = lower(
        "FROM busybox\nRUN <<EOF\necho a\necho b\nEOF\nRUN <<EOF\n#!/bin/sh\necho c\nEOF\nRUN cat <<A > /x\nbody\nA\n",
        &[],
        None,
    )
    .unwrap();
    let e = execs(&g);
    assert_eq!(e[0].args, vec!["/bin/sh", "-c", "echo a\necho b\n"]);
    assert!(e[0].mounts.is_empty());
    assert_eq!(e[1].args, vec!["/bin/sh", "-c", "/dev/pipes/EOF"]);
    assert_eq!(
        e[1].mounts,
        vec![ExecMount::File {
            target: "/dev/pipes/EOF".into(),
            data: "#!/bin/sh\necho c\n".into(),
            mode: 0o755
        }]
    );
    assert_eq!(e[2].args, vec!["/bin/sh", "-c", "cat <<A > /x\nbody\nA"]);
    assert_eq!(g.nodes[1].name, "[2/4] RUN <<EOF (echo a...)");
}

#[test]
fn copy_heredocs_expand_unless_quoted() {
    let g = lower(
        "FROM busybox\nENV N=v\nCOPY --chmod=600 <<EOF <<'LIT' /d/\n$N \\$N \"q\"\nEOF\n$N\nLIT\n",
        &[],
        None,
    )
    .unwrap();
    let Op::File(f) = &g.nodes.last().unwrap().op else {
        panic!("not a file op")
    };
    let files: Vec<(String, String, u32)> = f
        .actions
        .iter()
        .filter_map(|a| match a {
            FileAction::Mkfile(m) => Some((m.path.clone(), m.data.clone(), m.mode)),
            _ => None,
        })
        .collect();
    assert_eq!(
        files,
        vec![
            ("/d/EOF".to_string(), "v $N \"q\"\n".to_string(), 0o600),
            ("/d/LIT".to_string(), "$N\n".to_string(), 0o600),
        ]
    );
    assert_eq!(
        g.stages[0].history.last().unwrap().created_by,
        "COPY --chmod=600 <<EOF <<LIT /d/ # buildkit"
    );
}

#[test]
fn run_mounts_are_lowered() {
    let g = lower(
        "FROM busybox AS src\nFROM busybox\nWORKDIR /w\nENV T=/cache\nRUN --mount=type=cache,target=$T,sharing=locked --mount=type=bind,from=src,source=/etc,target=etc --mount=type=secret,id=tok --mount=type=tmpfs,target=/tmp,size=1m --security=insecure --network=none true\n",
        &[],
        None,
    )
    .unwrap();
    let node = g
        .nodes
        .iter()
        .find(|n| matches!(n.op, Op::Exec(_)))
        .unwrap();
    let Op::Exec(e) = &node.op else {
        unreachable!()
    };
    assert_eq!(node.inputs.len(), 2, "rootfs and the src stage");
    assert_eq!(e.security, kiln_ir::SecurityMode::Insecure);
    assert_eq!(e.network, kiln_ir::NetworkMode::None);
    assert!(
        matches!(&e.mounts[0], ExecMount::Cache { id, target, sharing: kiln_ir::CacheSharing::Locked, mode: 0o755, .. } if id == "/cache" && target == "/cache")
    );
    assert!(
        matches!(&e.mounts[1], ExecMount::Bind { source_input: 1, source, target, readonly: true } if source == "/etc" && target == "/w/etc")
    );
    assert!(
        matches!(&e.mounts[2], ExecMount::Secret { id, target: Some(t), mode: 0o400, .. } if id == "tok" && t == "/run/secrets/tok")
    );
    assert!(
        matches!(&e.mounts[3], ExecMount::Tmpfs { target, size: Some(1_048_576) } if target == "/tmp")
    );
}

#[test]
fn onbuild_runs_in_child_stage_first_and_is_cleared() {
    let g = lower(
        "FROM busybox AS p\nONBUILD RUN echo trig\nRUN echo p\nFROM p AS c\nRUN echo c\nFROM c\nRUN echo g\n",
        &[],
        None,
    )
    .unwrap();
    let args: Vec<String> = execs(&g).iter().map(|e| e.args[2].clone()).collect();
    assert_eq!(args, vec!["echo p", "echo trig", "echo c", "echo g"]);
    assert_eq!(
        g.stages[0].config.config.on_build,
        Some(vec!["RUN echo trig".to_string()])
    );
    assert_eq!(g.stages[1].config.config.on_build, None);
    assert_eq!(
        g.stages[1].history[0].created_by,
        "RUN /bin/sh -c echo trig # buildkit"
    );
}

#[test]
fn healthcheck_config() {
    let g = lower(
        "FROM busybox\nHEALTHCHECK --interval=1m30s --timeout=3s CMD [\"true\"]\n",
        &[],
        None,
    )
    .unwrap();
    let h = g.stages[0].config.config.healthcheck.clone().unwrap();
    assert_eq!(h.test, Some(vec!["CMD".to_string(), "true".into()]));
    assert_eq!(h.interval, Some(90_000_000_000));
    assert_eq!(h.timeout, Some(3_000_000_000));
    assert_eq!(
        g.stages[0].history[0].created_by,
        r#"HEALTHCHECK &{["CMD" "true"] "1m30s" "3s" "0s" "0s" '\x00'}"#
    );
    let g = lower("FROM busybox\nHEALTHCHECK NONE\n", &[], None).unwrap();
    let h = g.stages[0].config.config.healthcheck.clone().unwrap();
    assert_eq!(h.test, Some(vec!["NONE".to_string()]));
}
