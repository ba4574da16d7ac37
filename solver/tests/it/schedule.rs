//! Scheduling: overlap, reachability, dedupe, failure propagation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kiln_ir::{ProgressEvent, WorkerError};
use kiln_solver::{SolveErrorKind, SolverOptions};

use crate::fake::{Events, FakeWorker};
use crate::{Env, G};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_chains_run_concurrently() {
    let env = Env::new();
    let mut g = G::new();
    let a0 = g.image("alpine");
    let a1 = g.run(a0, "meet a");
    g.stage(a0, a1);
    let b0 = g.image("debian");
    let b1 = g.run(b0, "meet b");
    g.stage(b0, b1);
    let s = g.scratch();
    let c1 = g.copy(s, a1, &["/out"], "/a");
    let c2 = g.copy(c1, b1, &["/out"], "/b");
    g.stage(s, c2);
    let opts = SolverOptions {
        max_parallel: 2,
        ..SolverOptions::default()
    };
    let (worker, result, _) = env.solve_fresh(&g.graph, opts).await;
    result.expect("solve");
    let calls = worker.calls();
    let a = calls.iter().find(|c| c.node == a1).expect("exec a");
    let b = calls.iter().find(|c| c.node == b1).expect("exec b");
    // Each RUN waits (up to 10 s) for the other to start; run one after the other they
    // would not overlap.
    assert!(
        a.start < b.end && b.start < a.end,
        "RUNs did not overlap: a {:?}..{:?}, b {:?}..{:?}",
        a.start,
        a.end,
        b.start,
        b.end
    );
    // Each copy ran after what it reads.
    let f1 = calls.iter().find(|c| c.node == c1).expect("copy 1");
    let f2 = calls.iter().find(|c| c.node == c2).expect("copy 2");
    assert!(f1.start >= a.end && f2.start >= b.end && f2.start >= f1.end);
    assert_eq!(f1.sources, ["layers:2"]);
}

#[test]
fn default_parallelism_is_at_least_two() {
    assert!(SolverOptions::default().max_parallel >= 2);
    assert!(!SolverOptions::default().no_cache);
}

#[tokio::test]
async fn only_the_targets_dependencies_are_solved() {
    let env = Env::new();
    let mut g = G::new();
    let u0 = g.image("unused");
    let u1 = g.run(u0, "make unused");
    g.stage(u0, u1);
    let t0 = g.image("busybox");
    let t1 = g.run(t0, "make used");
    let t2 = g.run(t1, "make more");
    g.stage(t0, t2);
    let (worker, result) = env.solve_ok(&g.graph).await;
    assert_eq!(
        result.nodes.keys().copied().collect::<Vec<_>>(),
        [t0, t1, t2]
    );
    let whats: Vec<String> = worker.calls().iter().map(|c| c.what.clone()).collect();
    assert!(!whats.iter().any(|w| w.contains("unused")), "{whats:?}");
    assert_eq!(worker.count("exec"), 2);
    let out = &result.nodes[&t2];
    assert_eq!(out.rootfs.len(), 3);
    assert_eq!(out.rootfs[..2], result.nodes[&t1].rootfs[..]);
    assert_eq!(out.layer.as_ref(), out.rootfs.last());
    assert!(!out.cached);
}

#[tokio::test]
async fn identical_definitions_run_once() {
    let env = Env::new();
    let mut g = G::new();
    let a0 = g.image("debian");
    let a1 = g.run(a0, "apt-get update");
    let a2 = g.run(a1, "build a");
    g.stage(a0, a2);
    let b0 = g.image("debian");
    let b1 = g.run(b0, "apt-get update");
    let b2 = g.run(b1, "build b");
    g.stage(b0, b2);
    let s = g.scratch();
    let c1 = g.copy(s, a2, &["/a"], "/");
    let c2 = g.copy(c1, b2, &["/b"], "/");
    g.stage(s, c2);
    let (worker, result) = env.solve_ok(&g.graph).await;
    assert_eq!(worker.count("pull"), 1);
    assert_eq!(
        worker
            .calls()
            .iter()
            .filter(|c| c.what.contains("apt-get"))
            .count(),
        1
    );
    assert_eq!(worker.count("exec"), 3);
    assert_eq!(result.nodes[&a1], result.nodes[&b1]);
    assert_eq!(result.nodes[&a0], result.nodes[&b0]);
    assert_ne!(result.nodes[&a2].cache_key, result.nodes[&b2].cache_key);
    assert_eq!(result.nodes.len(), g.graph.nodes.len());
}

#[tokio::test]
async fn a_step_that_changes_nothing_adds_no_layer() {
    let env = Env::new();
    let mut g = G::new();
    let b = g.image("busybox");
    let r = g.run(b, "true nochange");
    g.stage(b, r);
    let (_, result) = env.solve_ok(&g.graph).await;
    assert_eq!(result.nodes[&r].layer, None);
    assert_eq!(result.nodes[&r].rootfs, result.nodes[&b].rootfs);
    let (worker, again) = env.solve_ok(&g.graph).await;
    assert_eq!(worker.count("exec"), 0);
    assert!(again.nodes[&r].cached);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_failure_cancels_the_rest_and_names_its_node() {
    let env = Env::new();
    let mut g = G::new();
    let a0 = g.image("alpine");
    let a1 = g.run(a0, "exit 1 # fail meet");
    let a2 = g.run(a1, "never runs");
    g.stage(a0, a2);
    let b0 = g.image("debian");
    let b1 = g.run(b0, "sleep wait-for-cancel meet");
    g.stage(b0, b1);
    let s = g.scratch();
    let c1 = g.copy(s, a2, &["/a"], "/");
    let c2 = g.copy(c1, b1, &["/b"], "/");
    g.stage(s, c2);
    let opts = SolverOptions {
        max_parallel: 4,
        ..SolverOptions::default()
    };
    let worker = FakeWorker::new(env.root.path());
    let solver = env.solver(worker.clone(), opts);
    let cancel = Arc::new(AtomicBool::new(false));
    let events = Arc::new(Events::default());
    let err = solver
        .solve(&g.graph, &env.contexts(), events.clone(), cancel.clone())
        .await
        .expect_err("must fail");
    assert_eq!(err.node, Some(a1));
    assert!(
        matches!(
            err.kind,
            SolveErrorKind::Worker(WorkerError::ExitCode { code: 1, .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "process \"/bin/sh -c exit 1 # fail meet\" did not complete successfully: exit code: 1"
    );
    assert!(cancel.load(Ordering::SeqCst), "cancel flag must be set");
    let calls = worker.calls();
    assert!(
        !calls.iter().any(|c| c.node == a2),
        "dependent of the failure ran"
    );
    // The other branch saw the flag and stopped before solve returned.
    assert!(calls.iter().any(|c| c.node == b1));
    let failed: Vec<_> = events
        .0
        .lock()
        .expect("events")
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::Failed { node, .. } => Some(*node),
            _ => None,
        })
        .collect();
    assert_eq!(failed, [a1]);
    // A failed step leaves no record: the next solve runs it again.
    let (worker, result, _) = env.solve_fresh(&g.graph, SolverOptions::default()).await;
    assert!(result.is_err());
    assert_eq!(worker.calls().iter().filter(|c| c.node == a1).count(), 1);
}

#[tokio::test]
async fn a_cancelled_solve_does_not_start() {
    let env = Env::new();
    let mut g = G::new();
    let a0 = g.image("alpine");
    let a1 = g.run(a0, "make");
    g.stage(a0, a1);
    let worker = FakeWorker::new(env.root.path());
    let solver = env.solver(worker.clone(), SolverOptions::default());
    let cancel = Arc::new(AtomicBool::new(true));
    let err = solver
        .solve(
            &g.graph,
            &env.contexts(),
            Arc::new(Events::default()),
            cancel,
        )
        .await
        .expect_err("cancelled");
    assert!(matches!(err.kind, SolveErrorKind::Cancelled), "{err:?}");
    assert!(worker.calls().is_empty());
}

#[tokio::test]
async fn progress_reports_start_cache_and_done() {
    let env = Env::new();
    let mut g = G::new();
    let a0 = g.image("alpine");
    let a1 = g.run(a0, "make");
    g.stage(a0, a1);
    env.solve_ok(&g.graph).await;
    let worker = FakeWorker::new(env.root.path());
    let solver = env.solver(worker, SolverOptions::default());
    let events = Arc::new(Events::default());
    solver
        .solve(
            &g.graph,
            &env.contexts(),
            events.clone(),
            Arc::new(AtomicBool::new(false)),
        )
        .await
        .expect("solve");
    let seen: Vec<String> = events
        .0
        .lock()
        .expect("events")
        .iter()
        .filter(|e| !matches!(e, ProgressEvent::Log { .. }))
        .map(|e| format!("{e:?}"))
        .collect();
    assert_eq!(
        seen,
        [
            "Started { node: 0, name: \"FROM alpine\" }",
            "Cached { node: 0 }",
            "Done { node: 0 }",
            "Started { node: 1, name: \"RUN make\" }",
            "Cached { node: 1 }",
            "Done { node: 1 }",
        ]
    );
}
