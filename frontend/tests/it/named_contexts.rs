//! Lowering with named contexts (`--build-context`): which names they take over, and the
//! nodes `FROM`, `COPY --from` and `RUN --mount=from=` read them through.

use std::collections::BTreeMap;

use kiln_frontend::{build_graph, lint, FrontendError, LowerOptions, NamedContext};
use kiln_ir::{ExecMount, FileAction, Graph, NodeId, Op, SourceOp};

use crate::fake::FakeResolver;

fn lower_with(
    text: &str,
    named: &[(&str, NamedContext)],
    target: Option<&str>,
) -> (Result<Graph, FrontendError>, FakeResolver) {
    let opts = LowerOptions {
        named_contexts: named
            .iter()
            .map(|(k, c)| (k.to_string(), c.clone()))
            .collect::<BTreeMap<_, _>>(),
        target: target.map(String::from),
        ..Default::default()
    };
    let resolver = FakeResolver::default();
    let g = build_graph(text, &opts, &resolver);
    (g, resolver)
}

fn lower(text: &str, named: &[(&str, NamedContext)]) -> (Graph, Vec<String>) {
    let (g, r) = lower_with(text, named, None);
    let g = g.unwrap();
    let calls = r.calls.borrow().keys().cloned().collect();
    (g, calls)
}

/// The context name a source node reads, if it is a local context.
fn context_of(g: &Graph, n: NodeId) -> Option<&str> {
    match &g.nodes[n].op {
        Op::Source(SourceOp::Context(c)) => Some(&c.name),
        _ => None,
    }
}

fn image_of(g: &Graph, n: NodeId) -> Option<&str> {
    match &g.nodes[n].op {
        Op::Source(SourceOp::Image(r)) => Some(&r.reference),
        _ => None,
    }
}

/// The source node of the copy in the target's last node.
fn copy_source(g: &Graph) -> NodeId {
    let last = g.stages[g.target].last;
    match &g.nodes[last].op {
        Op::File(f) => match &f.actions[0] {
            FileAction::Copy(c) => g.nodes[last].inputs[c.source_input],
            a => panic!("{a:?}"),
        },
        op => panic!("{op:?}"),
    }
}

#[test]
fn copy_from_a_local_context_reads_that_context() {
    let (g, calls) = lower(
        "FROM scratch\nCOPY --from=docs a.txt /d/\nCOPY b /b\n",
        &[("docs", NamedContext::Local)],
    );
    // No image named `docs` is looked up.
    assert!(calls.is_empty(), "{calls:?}");
    let first = g.nodes[g.stages[0].last].inputs[0];
    let Op::File(f) = &g.nodes[first].op else {
        panic!()
    };
    let FileAction::Copy(c) = &f.actions[0] else {
        panic!()
    };
    assert_eq!(c.sources, vec!["a.txt"]);
    let src = g.nodes[first].inputs[c.source_input];
    assert_eq!(context_of(&g, src), Some("docs"));
    assert_eq!(g.nodes[src].name, "[context docs] load from client");
    // The plain COPY still reads the main context.
    assert_eq!(context_of(&g, copy_source(&g)), Some("context"));
}

#[test]
fn a_context_named_context_is_not_the_main_one() {
    let (g, _) = lower(
        "FROM scratch\nCOPY a /a\nCOPY --from=context b /b\n",
        &[("context", NamedContext::Local)],
    );
    assert_eq!(context_of(&g, copy_source(&g)), Some("_context"));
    let first = g.nodes[g.stages[0].last].inputs[0];
    assert_eq!(context_of(&g, g.nodes[first].inputs[1]), Some("context"));
}

#[test]
fn from_a_local_context_is_its_files_on_scratch() {
    let (g, calls) = lower("FROM base\nRUN ls\n", &[("base", NamedContext::Local)]);
    assert!(calls.is_empty(), "{calls:?}");
    let st = &g.stages[g.target];
    let Op::File(f) = &g.nodes[st.base].op else {
        panic!("{:?}", g.nodes[st.base].op)
    };
    let FileAction::Copy(c) = &f.actions[0] else {
        panic!()
    };
    assert_eq!(
        (c.sources.as_slice(), c.dest.as_str()),
        (&[".".to_string()][..], "/")
    );
    let inputs = &g.nodes[st.base].inputs;
    assert!(matches!(
        g.nodes[inputs[0]].op,
        Op::Source(SourceOp::Scratch)
    ));
    assert_eq!(context_of(&g, inputs[c.source_input]), Some("base"));
    // `FROM scratch`'s config; the layer has a history entry of its own, first.
    assert_eq!(st.config.config.working_dir.as_deref(), Some("/"));
    assert_eq!(
        st.config.config.env,
        Some(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()
        ])
    );
    assert_eq!(st.history[0].created_by, "local source for base");
    assert_eq!(st.history[0].node, Some(st.base));
    assert_eq!(
        st.history[0].comment.as_deref(),
        Some("buildkit.exporter.image.v0")
    );
    assert_eq!(st.history.len(), 2);
}

#[test]
fn an_image_context_replaces_an_image_name() {
    let (g, calls) = lower(
        "FROM nosuchimage\nCOPY --from=docker.io/library/other:latest /x /x\n",
        &[
            (
                "nosuchimage",
                NamedContext::Image("127.0.0.1:5000/busybox:1".into()),
            ),
            (
                "other",
                NamedContext::Image("127.0.0.1:5000/other:2".into()),
            ),
        ],
    );
    assert_eq!(
        calls,
        vec!["127.0.0.1:5000/busybox:1", "127.0.0.1:5000/other:2"]
    );
    assert_eq!(
        image_of(&g, g.stages[0].base),
        Some("127.0.0.1:5000/busybox:1")
    );
    assert_eq!(
        image_of(&g, copy_source(&g)),
        Some("127.0.0.1:5000/other:2")
    );
    // A tag the context's name does not have is another image.
    let (_, calls) = lower(
        "FROM nosuchimage:3\n",
        &[("nosuchimage", NamedContext::Image("busybox".into()))],
    );
    assert_eq!(calls, vec!["nosuchimage:3"]);
}

#[test]
fn a_stage_named_like_a_context_is_replaced() {
    let text = "FROM missing-base AS build\nRUN false\nFROM scratch\nCOPY --from=build /out /out\nCOPY --from=0 /o2 /o2\n";
    let (g, calls) = lower(text, &[("build", NamedContext::Local)]);
    // Neither the stage's base nor its RUN is in the graph.
    assert!(calls.is_empty(), "{calls:?}");
    assert!(!g.nodes.iter().any(|n| matches!(n.op, Op::Exec(_))));
    assert_eq!(context_of(&g, copy_source(&g)), Some("build"));
    let first = g.nodes[g.stages[1].last].inputs[0];
    assert_eq!(context_of(&g, g.nodes[first].inputs[1]), Some("build"));

    // `FROM build` of a replaced stage, and the replaced stage as the target.
    let text = "FROM missing-base AS build\nRUN false\nFROM build\nRUN true\n";
    let (g, _) = lower(text, &[("build", NamedContext::Image("busybox".into()))]);
    assert_eq!(
        image_of(&g, g.stages[1].base),
        Some("docker.io/library/busybox:latest")
    );
    let runs: Vec<&str> = g
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Exec(e) => e.args.last().map(String::as_str),
            _ => None,
        })
        .collect();
    assert_eq!(runs, vec!["true"]);
    let (g, _) = lower_with(text, &[("build", NamedContext::Local)], Some("build"));
    let g = g.unwrap();
    assert!(!g.nodes.iter().any(|n| matches!(n.op, Op::Exec(_))));
    assert_eq!(
        g.stages[g.target].history[0].created_by,
        "local source for build"
    );
}

#[test]
fn run_mount_from_a_local_context() {
    let (g, _) = lower(
        "FROM busybox\nRUN --mount=from=src,target=/src,source=sub ls /src\n",
        &[("src", NamedContext::Local)],
    );
    let last = g.stages[0].last;
    let Op::Exec(e) = &g.nodes[last].op else {
        panic!()
    };
    let ExecMount::Bind {
        source_input,
        source,
        ..
    } = &e.mounts[0]
    else {
        panic!("{:?}", e.mounts)
    };
    assert_eq!(source, "sub");
    assert_eq!(
        context_of(&g, g.nodes[last].inputs[*source_input]),
        Some("src")
    );
}

#[test]
fn scratch_unused_and_unnamed_contexts() {
    // `FROM scratch` is never a named context.
    let (g, _) = lower("FROM scratch\n", &[("scratch", NamedContext::Local)]);
    assert!(matches!(
        g.nodes[g.stages[0].base].op,
        Op::Source(SourceOp::Scratch)
    ));
    // `docker-image://scratch` is the empty image, not looked up.
    let (g, calls) = lower(
        "FROM base\n",
        &[("base", NamedContext::Image("scratch".into()))],
    );
    assert!(calls.is_empty(), "{calls:?}");
    assert!(matches!(
        g.nodes[g.stages[0].base].op,
        Op::Source(SourceOp::Scratch)
    ));
    // A context nothing names is not in the graph (so never walked).
    let (g, _) = lower(
        "FROM busybox\nCOPY a /a\n",
        &[("docs", NamedContext::Local)],
    );
    assert!(g
        .nodes
        .iter()
        .all(|n| !n.name.starts_with("[context docs]")));
    // A context used only by a stage the target does not need is not either.
    let (g, _) = lower(
        "FROM scratch AS unused\nCOPY --from=docs / /\nFROM busybox\n",
        &[("docs", NamedContext::Local)],
    );
    assert!(g
        .nodes
        .iter()
        .all(|n| !n.name.starts_with("[context docs]")));
}

#[test]
fn lint_knows_named_contexts() {
    // The checks' dry run does not look the overridden name up as an image.
    let opts = LowerOptions {
        named_contexts: BTreeMap::from([
            ("missing-a".to_string(), NamedContext::Local),
            (
                "missing-b".to_string(),
                NamedContext::Image("busybox".into()),
            ),
        ]),
        ..Default::default()
    };
    let resolver = FakeResolver::default();
    lint::lint(
        "FROM missing-a AS a\nFROM missing-b\nCOPY --from=a / /\n\
         FROM missing-c AS missing-b\nRUN echo $UNDEFINED\n",
        &opts,
        Some(&resolver),
    )
    .unwrap();
    let calls: Vec<String> = resolver.calls.borrow().keys().cloned().collect();
    assert_eq!(calls, vec!["busybox"]);
    // A replaced stage's base is not looked up and its instructions are not checked.
    let r = lint::lint(
        "FROM missing-c AS missing-a\nCOPY $UNDEFINED /\n",
        &opts,
        Some(&resolver),
    )
    .unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let calls: Vec<String> = resolver.calls.borrow().keys().cloned().collect();
    assert_eq!(calls, vec!["busybox"]);
}
