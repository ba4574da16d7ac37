//! COPY from the build context: content keys, .dockerignore, missing sources.

use kiln_solver::SolveErrorKind;

use crate::{Env, G};

fn copy_graph(sources: &[&str]) -> (G, usize) {
    let mut g = G::new();
    let s = g.scratch();
    let ctx = g.context();
    let c = g.copy(s, ctx, sources, "/app/");
    g.stage(s, c);
    (g, c)
}

#[tokio::test]
async fn copy_key_follows_content_not_mtime() {
    let env = Env::new();
    env.write("a.txt", "one");
    env.write("unrelated.txt", "x");
    let (g, c) = copy_graph(&["a.txt"]);
    let (w, first) = env.solve_ok(&g.graph).await;
    assert_eq!(w.count("file"), 1);

    filetime::set_file_mtime(
        env.ctx.path().join("a.txt"),
        filetime::FileTime::from_unix_time(1_234_567, 0),
    )
    .expect("mtime");
    env.write("unrelated.txt", "changed");
    let (w, second) = env.solve_ok(&g.graph).await;
    assert_eq!(
        w.count("file"),
        0,
        "mtime or unrelated changes must not miss"
    );
    assert_eq!(first.nodes[&c].cache_key, second.nodes[&c].cache_key);

    env.write("a.txt", "two");
    let (w, third) = env.solve_ok(&g.graph).await;
    assert_eq!(w.count("file"), 1);
    assert_ne!(first.nodes[&c].cache_key, third.nodes[&c].cache_key);
    assert!(!third.nodes[&c].cached);
}

#[tokio::test]
async fn wildcard_copy_keys_on_what_it_matches() {
    let env = Env::new();
    env.write("src/a.rs", "a");
    env.write("src/notes.md", "n");
    env.write("top.txt", "t");
    let (g, c) = copy_graph(&["src/*.rs"]);
    let (_, first) = env.solve_ok(&g.graph).await;
    env.write("top.txt", "changed");
    let (w, _) = env.solve_ok(&g.graph).await;
    assert_eq!(w.count("file"), 0);
    // Unmatched, in the same directory: still cached (BuildKit's testCopyWildcardCache).
    env.write("src/notes.md", "changed");
    let (w, _) = env.solve_ok(&g.graph).await;
    assert_eq!(w.count("file"), 0);
    env.write("src/b.rs", "new file");
    let (w, second) = env.solve_ok(&g.graph).await;
    assert_eq!(w.count("file"), 1);
    assert_ne!(first.nodes[&c].cache_key, second.nodes[&c].cache_key);
}

#[tokio::test]
async fn the_worker_gets_the_filtered_context() {
    let env = Env::new();
    env.write(".dockerignore", "*.log\nsecret/\n");
    env.write("Dockerfile", "FROM scratch\nCOPY . /app/\n");
    env.write("a.txt", "a");
    env.write("debug.log", "x");
    env.write("secret/key", "k");
    let (g, c) = copy_graph(&["."]);
    let (w, result) = env.solve_ok(&g.graph).await;
    let call = w
        .calls()
        .into_iter()
        .find(|c| c.kind == "file")
        .expect("file call");
    assert_eq!(call.sources, ["context:.dockerignore,Dockerfile,a.txt"]);
    assert!(result.nodes[&c].layer.is_some());
    // An excluded file's change does not miss.
    env.write("debug.log", "changed");
    let (w, _) = env.solve_ok(&g.graph).await;
    assert_eq!(w.count("file"), 0);
}

#[tokio::test]
async fn a_missing_source_fails_with_dockers_message() {
    let env = Env::new();
    env.write("present.txt", "p");
    env.write("ignored.txt", "i");
    env.write(".dockerignore", "ignored.txt\n");
    for missing in ["missing.txt", "ignored.txt", "./dir/missing.txt"] {
        let (g, c) = copy_graph(&["present.txt", missing]);
        let (w, result, _) = env
            .solve_fresh(&g.graph, kiln_solver::SolverOptions::default())
            .await;
        let err = result.expect_err("must fail");
        assert_eq!(err.node, Some(c));
        assert!(matches!(err.kind, SolveErrorKind::SourceNotFound { .. }));
        let name = missing.trim_start_matches("./");
        assert_eq!(
            err.to_string(),
            format!("COPY failed: file not found in build context or excluded by .dockerignore: stat {name}: file does not exist")
        );
        assert_eq!(w.count("file"), 0);
    }
    // A wildcard that matches nothing is not a stat failure.
    let (g, _) = copy_graph(&["nothing*.txt"]);
    env.solve_ok(&g.graph).await;
}

#[tokio::test]
async fn an_unknown_context_is_an_error() {
    let env = Env::new();
    let (g, _) = copy_graph(&["a"]);
    let worker = crate::fake::FakeWorker::new(env.root.path());
    let solver = env.solver(worker, kiln_solver::SolverOptions::default());
    let err = solver
        .solve(
            &g.graph,
            &Default::default(),
            std::sync::Arc::new(crate::fake::Events::default()),
            std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        )
        .await
        .expect_err("no context");
    assert!(
        matches!(err.kind, SolveErrorKind::UnknownContext { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "build context \"context\" was not provided"
    );
}
