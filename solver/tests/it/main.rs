//! The solver against a fake worker: scheduling, dedupe, caching, contexts, failures.

mod fake;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use kiln_ir::{
    ContextSource, CopyAction, ExecOp, FileAction, FileOp, Graph, NetworkMode, Node, NodeId, Op,
    ResolvedImage, SourceOp, Stage,
};
use kiln_oci::{Digest, ImageConfig};
use kiln_solver::{SolveError, SolveResult, Solver, SolverOptions};

use fake::{Events, FakeWorker};

mod cache;
mod context;
mod schedule;

/// Builds graphs node by node.
pub(crate) struct G {
    pub(crate) graph: Graph,
}

impl G {
    pub(crate) fn new() -> Self {
        G {
            graph: Graph {
                nodes: Vec::new(),
                stages: Vec::new(),
                target: 0,
                source_date_epoch: None,
            },
        }
    }

    pub(crate) fn add(&mut self, op: Op, inputs: Vec<NodeId>, name: &str) -> NodeId {
        self.graph.nodes.push(Node {
            op,
            inputs,
            name: name.to_string(),
            span: None,
            stage: self.graph.stages.len(),
        });
        self.graph.nodes.len() - 1
    }

    pub(crate) fn image(&mut self, reference: &str) -> NodeId {
        let mut config = ImageConfig {
            os: "linux".into(),
            architecture: "amd64".into(),
            ..Default::default()
        };
        config.rootfs.kind = "layers".into();
        config.rootfs.diff_ids = vec![Digest::of(reference.as_bytes())];
        let img = ResolvedImage {
            reference: reference.to_string(),
            manifest_digest: Digest::of(format!("manifest {reference}").as_bytes()),
            config_digest: Digest::of(format!("config {reference}").as_bytes()),
            config,
            layers: Vec::new(),
        };
        self.add(
            Op::Source(SourceOp::Image(img)),
            vec![],
            &format!("FROM {reference}"),
        )
    }

    pub(crate) fn scratch(&mut self) -> NodeId {
        self.add(Op::Source(SourceOp::Scratch), vec![], "scratch")
    }

    pub(crate) fn context(&mut self) -> NodeId {
        self.add(
            Op::Source(SourceOp::Context(ContextSource {
                name: "context".into(),
            })),
            vec![],
            "[internal] load build context",
        )
    }

    pub(crate) fn run_env(&mut self, parent: NodeId, cmd: &str, env: &[&str]) -> NodeId {
        let op = ExecOp {
            args: vec!["/bin/sh".into(), "-c".into(), cmd.into()],
            env: env.iter().map(|s| s.to_string()).collect(),
            cwd: "/".into(),
            user: String::new(),
            network: NetworkMode::Host,
            mounts: Vec::new(),
            security: Default::default(),
            hostname: None,
            extra_hosts: Vec::new(),
        };
        self.add(Op::Exec(op), vec![parent], &format!("RUN {cmd}"))
    }

    pub(crate) fn run(&mut self, parent: NodeId, cmd: &str) -> NodeId {
        self.run_env(parent, cmd, &["PATH=/bin"])
    }

    /// COPY from `from` (a context or a stage node) into `parent`.
    pub(crate) fn copy(
        &mut self,
        parent: NodeId,
        from: NodeId,
        sources: &[&str],
        dest: &str,
    ) -> NodeId {
        let op = FileOp {
            actions: vec![FileAction::Copy(CopyAction {
                source_input: 1,
                sources: sources.iter().map(|s| s.to_string()).collect(),
                dest: dest.into(),
                chown: None,
                chmod: None,
                ..Default::default()
            })],
        };
        self.add(
            Op::File(op),
            vec![parent, from],
            &format!("COPY {sources:?} {dest}"),
        )
    }

    /// Ends the current stage at `last` and makes it the target.
    pub(crate) fn stage(&mut self, base: NodeId, last: NodeId) -> usize {
        self.graph.stages.push(Stage {
            name: None,
            base,
            last,
            config: ImageConfig::default(),
            history: Vec::new(),
            span: None,
        });
        self.graph.target = self.graph.stages.len() - 1;
        self.graph.target
    }
}

/// A kiln root, a context directory and helpers to solve in them.
pub(crate) struct Env {
    pub(crate) root: tempfile::TempDir,
    pub(crate) ctx: tempfile::TempDir,
}

impl Env {
    pub(crate) fn new() -> Self {
        Env {
            root: tempfile::tempdir().expect("root"),
            ctx: tempfile::tempdir().expect("context"),
        }
    }

    pub(crate) fn write(&self, path: &str, content: &str) {
        let p = self.ctx.path().join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, content).expect("write");
    }

    pub(crate) fn contexts(&self) -> BTreeMap<String, PathBuf> {
        BTreeMap::from([("context".to_string(), self.ctx.path().to_path_buf())])
    }

    pub(crate) fn solver(&self, worker: Arc<FakeWorker>, opts: SolverOptions) -> Solver {
        Solver::new(self.root.path(), worker, opts).expect("solver")
    }

    /// Solves with a new fake worker and a new solver; returns both results.
    pub(crate) async fn solve_fresh(
        &self,
        graph: &Graph,
        opts: SolverOptions,
    ) -> (
        Arc<FakeWorker>,
        Result<SolveResult, SolveError>,
        Arc<AtomicBool>,
    ) {
        let worker = FakeWorker::new(self.root.path());
        let solver = self.solver(worker.clone(), opts);
        let cancel = Arc::new(AtomicBool::new(false));
        let result = solver
            .solve(
                graph,
                &self.contexts(),
                Arc::new(Events::default()),
                cancel.clone(),
            )
            .await;
        (worker, result, cancel)
    }

    pub(crate) async fn solve_ok(&self, graph: &Graph) -> (Arc<FakeWorker>, SolveResult) {
        let (w, r, _) = self.solve_fresh(graph, SolverOptions::default()).await;
        (w, r.expect("solve"))
    }
}

pub(crate) fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("content/blobs/sha256").join(digest.hex())
}
