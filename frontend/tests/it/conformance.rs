//! Behaviours of the conformance table (docs/conformance.md) that no other test file checks:
//! blank FROM, stage-name case in --from, pattern removal in FROM, ENV from empty build-args,
//! `%` in values, expanded COPY sources and --chown, recursive ARGs in the outline, --chown on
//! heredoc files, ONBUILD triggers that add dependencies.

use std::collections::BTreeMap;

use kiln_frontend::outline::outline;
use kiln_frontend::{build_graph, FrontendError, LowerOptions};
use kiln_ir::{Chown, CopyAction, ExecMount, ExecOp, FileAction, Graph, Op, SourceOp};

use crate::fake::FakeResolver;

fn opts(args: &[(&str, &str)], target: Option<&str>) -> LowerOptions {
    LowerOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        target: target.map(String::from),
        ..Default::default()
    }
}

fn lower(text: &str, args: &[(&str, &str)]) -> Result<Graph, FrontendError> {
    build_graph(text, &opts(args, None), &FakeResolver::default())
}

fn env_of(g: &Graph) -> Vec<String> {
    g.stages[g.target]
        .config
        .config
        .env
        .clone()
        .unwrap_or_default()
}

fn copies(g: &Graph) -> Vec<&CopyAction> {
    g.nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::File(f) => Some(&f.actions),
            _ => None,
        })
        .flatten()
        .filter_map(|a| match a {
            FileAction::Copy(c) => Some(c),
            _ => None,
        })
        .collect()
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

/// 9.7: `FROM ""` and a FROM that expands to nothing fail with BuildKit's text.
#[test]
fn blank_base_names_fail() {
    let e = lower("FROM \"\"\n", &[]).unwrap_err();
    assert_eq!(e.to_string(), "base name (\"\") should not be blank");
    assert_eq!(e.span().map(|s| s.start), Some(0));
    let e = lower("ARG IMG\nFROM ${IMG}\nRUN true\n", &[]).unwrap_err();
    assert_eq!(e.to_string(), "base name (${IMG}) should not be blank");
    assert_eq!(e.span().map(|s| s.start), Some(8));
    // An empty build-arg empties it too; a value fixes it.
    let text = "ARG IMG=busybox\nFROM $IMG\n";
    assert!(lower(text, &[("IMG", "")]).is_err());
    assert!(lower(text, &[]).is_ok());
}

/// 9.2: `--from=` and `--target` match stage names in any case.
#[test]
fn from_and_target_match_stage_names_in_any_case() {
    let text = "FROM busybox AS Build\nRUN echo > /x\nFROM scratch\nCOPY --from=BUILD /x /y\nFROM busybox AS other\nCOPY --from=bUiLd /x /z\n";
    let g = lower(text, &[]).unwrap();
    let c = copies(&g);
    assert_eq!(c.len(), 1);
    // The copy reads stage 0's last node, not an image called BUILD.
    let copy_node = g
        .nodes
        .iter()
        .find(|n| matches!(&n.op, Op::File(f) if matches!(f.actions.first(), Some(FileAction::Copy(_)))))
        .unwrap();
    assert_eq!(copy_node.inputs[c[0].source_input], g.stages[0].last);
    let r = FakeResolver::default();
    let g = build_graph(text, &opts(&[], Some("OTHER")), &r).unwrap();
    assert_eq!(g.target, 2);
    assert!(!r
        .calls
        .borrow()
        .keys()
        .any(|k| k.eq_ignore_ascii_case("build")));
}

/// 2.10: `${image#idle}` removes a prefix inside FROM (BuildKit's testDefaultEnvWithArgs).
#[test]
fn pattern_removal_in_from() {
    let r = FakeResolver::default();
    let text = "ARG image=idlebusybox:1.36\nFROM ${image#idle}\nARG image\nENV img=${image%%:*}\n";
    let g = build_graph(text, &opts(&[], None), &r).unwrap();
    assert_eq!(
        r.calls.borrow().keys().cloned().collect::<Vec<_>>(),
        vec!["busybox:1.36".to_string()]
    );
    assert!(env_of(&g).contains(&"img=idlebusybox".to_string()));
}

/// 2.9: ENV built from ARG modifiers; an empty build-arg counts as empty for `:-`.
#[test]
fn env_from_arg_modifiers_and_empty_build_args() {
    let text = "FROM busybox\nARG my_arg\nENV my_env=${my_arg:-def_val} trimmed=${my_arg%%e*} plain=${my_arg-unset}\n";
    let g = lower(text, &[("my_arg", "")]).unwrap();
    let env = env_of(&g);
    for want in ["my_env=def_val", "trimmed=", "plain="] {
        assert!(env.contains(&want.to_string()), "{want} not in {env:?}");
    }
    let g = lower(text, &[("my_arg", "hello")]).unwrap();
    let env = env_of(&g);
    for want in ["my_env=hello", "trimmed=h", "plain=hello"] {
        assert!(env.contains(&want.to_string()), "{want} not in {env:?}");
    }
    let g = lower(text, &[]).unwrap();
    let env = env_of(&g);
    for want in ["my_env=def_val", "trimmed=", "plain=unset"] {
        assert!(env.contains(&want.to_string()), "{want} not in {env:?}");
    }
}

/// 2.11: `%` is literal in ENV (both forms) and LABEL values.
#[test]
fn percent_is_literal() {
    let text = "FROM busybox\nENV legacy 100% of %s and %d\nENV new=%PATH%x\nLABEL pct=50%\n";
    let g = lower(text, &[]).unwrap();
    let env = env_of(&g);
    assert!(
        env.contains(&"legacy=100% of %s and %d".to_string()),
        "{env:?}"
    );
    assert!(env.contains(&"new=%PATH%x".to_string()), "{env:?}");
    let labels = g.stages[0].config.config.labels.clone().unwrap();
    assert_eq!(labels.get("pct").map(String::as_str), Some("50%"));
    assert_eq!(
        g.stages[0].history[0].created_by,
        "ENV legacy=100% of %s and %d"
    );
}

/// 2.13: COPY/ADD sources, destination and --chown expand ENV and ARG values.
#[test]
fn copy_sources_dest_and_chown_expand() {
    let text = "FROM busybox\nARG owner=1000 group=staff\nENV SRC=app DEST=/srv\nCOPY --chown=${owner}:${group} $SRC/*.py ${SRC}.cfg $DEST/\nADD --chown=$owner ${SRC}.tar /opt/\n";
    let g = lower(text, &[("group", "2000")]).unwrap();
    let c = copies(&g);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].sources, vec!["app/*.py".to_string(), "app.cfg".into()]);
    assert_eq!(c[0].dest, "/srv/");
    assert_eq!(
        c[0].chown,
        Some(Chown {
            user: "1000".into(),
            group: Some("2000".into())
        })
    );
    assert_eq!(c[1].sources, vec!["app.tar".to_string()]);
    assert_eq!(
        c[1].chown,
        Some(Chown {
            user: "1000".into(),
            group: None
        })
    );
}

/// 2.16: the outline resolves self-referencing ARG defaults without looping
/// (BuildKit's testOutlineRecursiveArgs).
#[test]
fn outline_resolves_recursive_args() {
    let text = "ARG FOO=${FOO}\nARG BAR=${FOO}${BAR}\nFROM scratch\nARG FOO\nARG BAR\nCOPY Dockerfile Dockerfile\n";
    let o = outline(text, &LowerOptions::default()).unwrap();
    let args: Vec<(&str, &str)> = o
        .args
        .iter()
        .map(|a| (a.name.as_str(), a.value.as_str()))
        .collect();
    assert_eq!(args, vec![("FOO", ""), ("BAR", "")]);

    let text = "ARG ABC=abc\nARG FOO=x\nARG FOO=${FOO}${ABC}\nARG BAR=${FOO}-${ABC}\nFROM scratch\nARG FOO\nARG BAR\n";
    let o = outline(text, &LowerOptions::default()).unwrap();
    let value = |n: &str| {
        o.args
            .iter()
            .rev()
            .find(|a| a.name == n)
            .map(|a| a.value.clone())
    };
    assert_eq!(value("FOO").as_deref(), Some("xabc"));
    assert_eq!(value("BAR").as_deref(), Some("xabc-abc"));
    // A build-arg feeds the chain.
    let o = outline(text, &opts(&[("ABC", "Z")], None)).unwrap();
    let bar = o.args.iter().rev().find(|a| a.name == "BAR").unwrap();
    assert_eq!(bar.value, "xZ-Z");
}

/// 8.2: --chown (expanded) and --chmod apply to heredoc files.
#[test]
fn chown_applies_to_heredoc_files() {
    let text = "FROM busybox\nARG U=1234\nCOPY --chown=$U:55 --chmod=640 <<EOF /etc/conf\nx\nEOF\n";
    let g = lower(text, &[]).unwrap();
    let files: Vec<_> = g
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::File(f) => Some(&f.actions),
            _ => None,
        })
        .flatten()
        .filter_map(|a| match a {
            FileAction::Mkfile(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].data, "x\n");
    assert_eq!(files[0].mode, 0o640);
    assert_eq!(
        files[0].chown,
        Some(Chown {
            user: "1234".into(),
            group: Some("55".into())
        })
    );
}

/// 10.3: `ONBUILD COPY --from=<name>` names a stage of the child Dockerfile, which the child
/// stage then needs (it is built even though only the trigger refers to it).
#[test]
fn onbuild_copy_from_resolves_in_the_child() {
    let text = "FROM busybox AS assets\nRUN echo a > /a\n\
                FROM busybox AS parent\nONBUILD COPY --from=Assets /a /from-assets\n\
                FROM parent\nRUN cat /from-assets\n";
    let g = lower(text, &[]).unwrap();
    let c = copies(&g);
    assert_eq!(c.len(), 1, "the trigger's COPY runs once, in the child");
    let node = g
        .nodes
        .iter()
        .find(|n| matches!(&n.op, Op::File(f) if matches!(f.actions.first(), Some(FileAction::Copy(_)))))
        .unwrap();
    assert_eq!(node.stage, 2);
    assert_eq!(node.inputs[c[0].source_input], g.stages[0].last);

    // The stage named only by the trigger is needed by the target, so it is built
    // even when it comes after the parent and is referenced nowhere else.
    let text = "FROM busybox AS parent\nONBUILD COPY --from=late /a /a\nRUN true\n\
                FROM busybox AS late\nRUN echo > /a\n\
                FROM parent\n";
    let g = lower(text, &[]).unwrap();
    let node = g
        .nodes
        .iter()
        .find(|n| matches!(&n.op, Op::File(f) if matches!(f.actions.first(), Some(FileAction::Copy(_)))))
        .unwrap();
    let c = copies(&g);
    assert_eq!(node.inputs[c[0].source_input], g.stages[1].last);
    // In the declaring stage the name is never resolved: the parent alone builds.
    let r = FakeResolver::default();
    assert!(build_graph(text, &opts(&[], Some("parent")), &r).is_ok());
}

/// 10.4: triggers add dependencies: an image in `COPY --from`, a stage in `RUN --mount from=`.
#[test]
fn onbuild_triggers_add_dependencies() {
    let text = "FROM busybox AS parent\n\
                ONBUILD COPY --from=alpine:3.19 /etc/alpine-release /r\n\
                ONBUILD RUN --mount=from=input,target=/in cat /in/x\n\
                FROM busybox AS input\nRUN echo x > /x\n\
                FROM parent\n";
    let r = FakeResolver::default();
    let g = build_graph(text, &opts(&[], None), &r).unwrap();
    assert_eq!(r.calls.borrow().get("alpine:3.19"), Some(&1));
    assert!(g.nodes.iter().any(
        |n| matches!(&n.op, Op::Source(SourceOp::Image(i)) if i.reference.contains("alpine"))
    ));
    let run_node = g
        .nodes
        .iter()
        .find(|n| matches!(&n.op, Op::Exec(e) if !e.mounts.is_empty()))
        .unwrap();
    let Op::Exec(e) = &run_node.op else {
        unreachable!()
    };
    let Some(ExecMount::Bind { source_input, .. }) = e.mounts.first() else {
        panic!("bind mount expected: {:?}", e.mounts)
    };
    assert_eq!(run_node.inputs[*source_input], g.stages[1].last);
    assert_eq!(run_node.stage, 2);
    assert_eq!(execs(&g).len(), 2);
}

/// 12.9: the graph carries SOURCE_DATE_EPOCH from a global ARG default or a build-arg (the
/// build-arg wins); without either it is unset.
#[test]
fn source_date_epoch_reaches_the_graph() {
    let text = "ARG SOURCE_DATE_EPOCH=1700000000\nFROM busybox\n";
    assert_eq!(
        lower(text, &[]).unwrap().source_date_epoch,
        Some(1_700_000_000)
    );
    assert_eq!(
        lower(text, &[("SOURCE_DATE_EPOCH", "5")])
            .unwrap()
            .source_date_epoch,
        Some(5)
    );
    let text = "FROM busybox\n";
    assert_eq!(
        lower(text, &[("SOURCE_DATE_EPOCH", "7")])
            .unwrap()
            .source_date_epoch,
        Some(7)
    );
    assert_eq!(lower(text, &[]).unwrap().source_date_epoch, None);
    // A stage ARG default does not set it (BuildKit reads build-args and global ARGs only).
    let text = "FROM busybox\nARG SOURCE_DATE_EPOCH=9\n";
    assert_eq!(lower(text, &[]).unwrap().source_date_epoch, None);
}

/// 12.7: FROM uses platform ARGs undeclared (in the image name too); build-args override
/// them, also where a stage redeclares one.
#[test]
fn platform_args_in_from_names_and_overridden_by_build_args() {
    let r = FakeResolver::default();
    let text = "FROM busybox:${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-$TARGETVARIANT}\nARG TARGETARCH\nARG BUILDOS\nRUN true\n";
    let g = build_graph(text, &opts(&[], None), &r).unwrap();
    assert_eq!(
        r.calls.borrow().keys().cloned().collect::<Vec<_>>(),
        vec!["busybox:linux-amd64".to_string()]
    );
    let env = &execs(&g)[0].env;
    assert!(env.contains(&"TARGETARCH=amd64".to_string()), "{env:?}");
    assert!(env.contains(&"BUILDOS=linux".to_string()), "{env:?}");
    let r = FakeResolver::default();
    let g = build_graph(
        text,
        &opts(&[("TARGETARCH", "arm64"), ("TARGETVARIANT", "v8")], None),
        &r,
    )
    .unwrap();
    assert_eq!(
        r.calls.borrow().keys().cloned().collect::<Vec<_>>(),
        vec!["busybox:linux-arm64-v8".to_string()]
    );
    assert!(execs(&g)[0].env.contains(&"TARGETARCH=arm64".to_string()));
}
