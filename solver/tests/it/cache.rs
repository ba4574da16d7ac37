//! The persistent cache: hits across solvers, blob checks, --no-cache, key locks.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use kiln_ir::ProgressEvent;
use kiln_solver::{CacheIndex, CacheRecord, SolverOptions};

use crate::fake::{Events, FakeWorker};
use crate::{blob_path, Env, G};

fn chain(g: &mut G) -> (usize, usize, usize) {
    let b = g.image("busybox");
    let r1 = g.run(b, "echo one > /one");
    let r2 = g.run(r1, "echo two > /two");
    g.stage(b, r2);
    (b, r1, r2)
}

#[tokio::test]
async fn second_solve_with_a_new_solver_hits_the_cache() {
    let env = Env::new();
    let mut g = G::new();
    let (b, r1, r2) = chain(&mut g);
    let (w1, first) = env.solve_ok(&g.graph).await;
    assert_eq!(w1.count("exec"), 2);
    assert!(first.nodes.values().all(|o| !o.cached));

    let (w2, second) = env.solve_ok(&g.graph).await;
    assert_eq!(w2.count("exec"), 0, "the worker must not run cached steps");
    assert_eq!(w2.count("pull"), 1, "images are always pulled");
    for id in [b, r1, r2] {
        let (a, c) = (&first.nodes[&id], &second.nodes[&id]);
        assert!(c.cached, "node {id} not cached");
        assert_eq!(a.cache_key, c.cache_key);
        assert_eq!(a.created, c.created, "created must come from the record");
        assert_eq!(a.rootfs, c.rootfs);
        assert_eq!(a.layer, c.layer);
    }
    let created = &first.nodes[&r2].created;
    assert_eq!(
        created.len(),
        "2026-11-25T12:00:00.123456789Z".len(),
        "{created}"
    );
    assert!(
        created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "{created}"
    );
}

#[tokio::test]
async fn a_missing_layer_blob_forces_a_rerun() {
    let env = Env::new();
    let mut g = G::new();
    let (_, r1, r2) = chain(&mut g);
    let (_, first) = env.solve_ok(&g.graph).await;
    let blob = first.nodes[&r2].layer.clone().expect("layer").blob;
    std::fs::remove_file(blob_path(env.root.path(), &blob)).expect("remove blob");
    let (w, second) = env.solve_ok(&g.graph).await;
    assert!(second.nodes[&r1].cached);
    assert!(!second.nodes[&r2].cached);
    assert_eq!(w.count("exec"), 1);
    assert!(blob_path(env.root.path(), &blob).is_file());
}

#[tokio::test]
async fn no_cache_recomputes_and_overwrites_records() {
    let env = Env::new();
    let mut g = G::new();
    let (_, _, r2) = chain(&mut g);
    let (_, first) = env.solve_ok(&g.graph).await;
    let opts = SolverOptions {
        no_cache: true,
        ..SolverOptions::default()
    };
    let (w, second, _) = env.solve_fresh(&g.graph, opts).await;
    let second = second.expect("solve");
    assert_eq!(w.count("exec"), 2);
    assert!(second.nodes.values().all(|o| !o.cached));
    assert_eq!(first.nodes[&r2].cache_key, second.nodes[&r2].cache_key);
    assert_ne!(first.nodes[&r2].created, second.nodes[&r2].created);
    let (_, third) = env.solve_ok(&g.graph).await;
    assert!(third.nodes[&r2].cached);
    assert_eq!(third.nodes[&r2].created, second.nodes[&r2].created);
}

#[tokio::test]
async fn proxy_variables_do_not_change_run_keys() {
    let env = Env::new();
    let mut plain = G::new();
    let b = plain.image("busybox");
    let r = plain.run_env(b, "wget x", &["PATH=/bin"]);
    plain.stage(b, r);
    let mut proxied = G::new();
    let b = proxied.image("busybox");
    let rp = proxied.run_env(
        b,
        "wget x",
        &[
            "PATH=/bin",
            "HTTP_PROXY=http://p:3128",
            "https_proxy=http://q",
            "no_proxy=*",
        ],
    );
    proxied.stage(b, rp);
    let (_, first) = env.solve_ok(&plain.graph).await;
    let (w, second) = env.solve_ok(&proxied.graph).await;
    assert_eq!(w.count("exec"), 0);
    assert!(second.nodes[&rp].cached);
    assert_eq!(first.nodes[&r].cache_key, second.nodes[&rp].cache_key);

    let mut other = G::new();
    let b = other.image("busybox");
    let ro = other.run_env(b, "wget x", &["PATH=/bin", "FOO=1"]);
    other.stage(b, ro);
    let (w, third) = env.solve_ok(&other.graph).await;
    assert_eq!(w.count("exec"), 1);
    assert!(!third.nodes[&ro].cached);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_being_computed_elsewhere_is_waited_for_and_read() {
    // Keys do not depend on the root: learn the RUN's key and record in a scratch root.
    let scratch = Env::new();
    let mut g = G::new();
    let b = g.image("busybox");
    let r = g.run(b, "make");
    g.stage(b, r);
    let (_, learned) = scratch.solve_ok(&g.graph).await;
    let key = learned.nodes[&r].cache_key.clone();
    let layer = learned.nodes[&r].layer.clone().expect("layer");

    // Another "process" holds the key's lock in the real root.
    let env = Env::new();
    std::fs::create_dir_all(env.root.path().join("locks")).expect("locks");
    let lock = std::fs::File::create(env.root.path().join(format!("locks/{key}.lock")))
        .expect("lock file");
    lock.lock().expect("flock");

    let worker = FakeWorker::new(env.root.path());
    let solver = env.solver(worker.clone(), SolverOptions::default());
    let events = Arc::new(Events::default());
    let graph = g.graph.clone();
    let contexts = env.contexts();
    let ev = events.clone();
    let task = tokio::spawn(async move {
        solver
            .solve(&graph, &contexts, ev, Arc::new(AtomicBool::new(false)))
            .await
    });
    // Wait until the RUN started (it then looks up the record and blocks on the lock).
    for _ in 0..1000 {
        let started = events
            .0
            .lock()
            .expect("events")
            .iter()
            .any(|e| matches!(e, ProgressEvent::Started { node, .. } if *node == r));
        if started {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!task.is_finished(), "solve must wait for the lock");

    // The other process finishes: blob and record written, lock released.
    let blob = std::fs::read(blob_path(scratch.root.path(), &layer.blob)).expect("blob");
    std::fs::write(blob_path(env.root.path(), &layer.blob), blob).expect("copy blob");
    let index = CacheIndex::open(&env.root.path().join("index.sqlite")).expect("index");
    let created = "2001-02-03T04:05:06.000000007Z".to_string();
    index
        .put(
            &key,
            &CacheRecord {
                layer: Some(layer.clone()),
                created: created.clone(),
                preimage: "{}".into(),
            },
        )
        .expect("put");
    drop(lock);

    let result = task.await.expect("join").expect("solve");
    assert_eq!(
        worker.count("exec"),
        0,
        "the waiting solve must reuse the record"
    );
    assert!(result.nodes[&r].cached);
    assert_eq!(result.nodes[&r].created, created);
    assert_eq!(result.nodes[&r].layer, Some(layer));
}

#[tokio::test]
async fn records_keep_their_preimage() {
    let env = Env::new();
    let mut g = G::new();
    let (_, _, r2) = chain(&mut g);
    let (_, result) = env.solve_ok(&g.graph).await;
    let index = CacheIndex::open(&env.root.path().join("index.sqlite")).expect("index");
    let rec = index
        .get(&result.nodes[&r2].cache_key)
        .expect("get")
        .expect("record");
    assert!(rec.preimage.contains("echo two > /two"), "{}", rec.preimage);
    assert!(rec.preimage.contains(&result.nodes[&(r2 - 1)].cache_key));
    assert_eq!(rec.layer, result.nodes[&r2].layer);
    let _ = FakeWorker::new(env.root.path());
}
