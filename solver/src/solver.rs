//! Scheduling: the reachable, deduplicated DAG of the target's nodes, run concurrently.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use kiln_ir::{Graph, LayerRef, NodeId, ProgressEvent, ProgressSink, Worker};

use crate::context::StatCache;
use crate::error::{SolveError, SolveErrorKind};
use crate::index::CacheIndex;
use crate::key;
use crate::lease::Lease;
use crate::node::{self, Input, NodeEnv};
use crate::remote_cache::CacheImports;

/// How the solver runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SolverOptions {
    /// At most this many nodes are worked on at once (at least 1).
    pub max_parallel: usize,
    /// Ignore existing cache records; compute every step and overwrite its record.
    pub no_cache: bool,
    /// Stages (indexes in [`Graph::stages`]) whose steps ignore the cache, as do the steps
    /// that depend on them (`--no-cache-filter`): keys name definitions, not results, so a
    /// dependent's record may hold what the old result gave.
    pub no_cache_stages: BTreeSet<usize>,
    /// `--explain`: the build's identity (its Dockerfile and target); a step that misses the
    /// cache then says why in its log, compared with the same step's last build.
    pub explain: Option<String>,
    /// Context name → the ignore file used instead of `<context>/.dockerignore`
    /// (`<Dockerfile>.dockerignore` next to the Dockerfile, as BuildKit does).
    pub ignore_files: BTreeMap<String, PathBuf>,
}

impl Default for SolverOptions {
    /// Like BuildKit, which runs every ready step at once: RUN steps wait on sleeps, the
    /// network and disks as often as on CPUs, so a CPU-sized limit serialises independent
    /// stages (8 `sleep 1` stages took 4 s on 2 cores). A generous bound still caps threads.
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        SolverOptions {
            max_parallel: (cpus * 8).max(32),
            no_cache: false,
            ignore_files: BTreeMap::new(),
            no_cache_stages: BTreeSet::new(),
            explain: None,
        }
    }
}

/// The result of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeOutput {
    /// The full layer stack after this node, bottom first (empty for scratch and contexts).
    pub rootfs: Vec<LayerRef>,
    /// The layer this node added, if any.
    pub layer: Option<LayerRef>,
    /// When the step first ran, RFC 3339 UTC with nanoseconds (`2026-11-25T12:00:00.123456789Z`);
    /// a cache hit gives the stored time, so rebuilds give identical image digests.
    pub created: String,
    /// True when the result came from the cache.
    pub cached: bool,
    /// The node's cache key (64 hex characters).
    pub cache_key: String,
}

/// What [`Solver::solve`] returns: an output for every node the target needs (duplicates of
/// one definition share the output).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SolveResult {
    /// Output per node id.
    pub nodes: BTreeMap<NodeId, NodeOutput>,
}

/// Turns a [`Graph`] into layers, using and filling the cache under one kiln root.
pub struct Solver {
    worker: Arc<dyn Worker>,
    opts: SolverOptions,
    index: Arc<CacheIndex>,
    stat: Arc<StatCache>,
    blobs: PathBuf,
    locks: PathBuf,
    lease: Arc<Lease>,
    imports: Option<Arc<CacheImports>>,
}

impl std::fmt::Debug for Solver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Solver")
            .field("opts", &self.opts)
            .field("locks", &self.locks)
            .finish_non_exhaustive()
    }
}

impl Solver {
    /// Opens the cache under `root` (kiln's `--root`), creating `locks/` and `index.sqlite`,
    /// and takes a lease (`locks/lease-<pid>-<n>`) for the solver's lifetime.
    pub fn new(
        root: &Path,
        worker: Arc<dyn Worker>,
        opts: SolverOptions,
    ) -> Result<Self, SolveError> {
        let locks = root.join("locks");
        std::fs::create_dir_all(&locks).map_err(|source| {
            SolveError::general(SolveErrorKind::Io {
                path: locks.clone(),
                source,
            })
        })?;
        let db = root.join("index.sqlite");
        let index = CacheIndex::open(&db).map_err(SolveError::general)?;
        let stat = StatCache::open(&db)
            .map_err(|e| SolveError::general(crate::context::ContextError::Cache(e)))?;
        let lease = Lease::acquire(root).map_err(SolveError::general)?;
        Ok(Solver {
            worker,
            opts,
            index: Arc::new(index),
            stat: Arc::new(stat),
            blobs: root.join("content/blobs/sha256"),
            locks,
            lease: Arc::new(lease),
            imports: None,
        })
    }

    /// Caches read by `--cache-from`: a step without a usable local record takes an imported
    /// one (its layer fetched, verified and leased) before it is computed.
    pub fn set_cache_imports(&mut self, imports: Arc<CacheImports>) {
        self.imports = (!imports.is_empty()).then_some(imports);
    }

    /// The lease this solver's build holds until the solver is dropped: what it lists (every
    /// layer the solve used or made) and what changed since it was taken survive a
    /// concurrent `kiln prune`. Exporters add the blobs they write with [`Lease::hold`].
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Solves the nodes that `graph.stages[graph.target].last` depends on. `contexts` maps
    /// context names (`context` for the main one) to directories. The first failure sets
    /// `cancel`, waits for running steps to stop, and is returned with its node; setting
    /// `cancel` from outside stops the solve the same way.
    pub async fn solve(
        &self,
        graph: &Graph,
        contexts: &BTreeMap<String, PathBuf>,
        progress: Arc<dyn ProgressSink>,
        cancel: Arc<AtomicBool>,
    ) -> Result<SolveResult, SolveError> {
        let plan = Plan::new(graph)?;
        let env = Arc::new(NodeEnv {
            worker: self.worker.clone(),
            index: self.index.clone(),
            stat: self.stat.clone(),
            blobs: self.blobs.clone(),
            locks: self.locks.clone(),
            lease: self.lease.clone(),
            imports: self.imports.clone(),
            no_cache: self.opts.no_cache,
            no_cache_nodes: no_cache_nodes(graph, &self.opts.no_cache_stages),
            step_names: self
                .opts
                .explain
                .as_deref()
                .map(|b| crate::explain::step_names(graph, b))
                .unwrap_or_default(),
            progress,
            cancel: cancel.clone(),
            contexts: contexts.clone(),
            ignore_files: self.opts.ignore_files.clone(),
            loaded: Mutex::new(BTreeMap::new()),
        });

        let dag = &plan.dag;
        let mut waiting: HashMap<NodeIndex, usize> = HashMap::new();
        let mut ready: VecDeque<NodeIndex> = VecDeque::new();
        for ix in dag.node_indices() {
            let n = dag.neighbors_directed(ix, Direction::Incoming).count();
            if n == 0 {
                ready.push_back(ix);
            } else {
                waiting.insert(ix, n);
            }
        }

        let mut done: HashMap<NodeId, Input> = HashMap::new();
        let mut tasks: JoinSet<(NodeId, Result<Input, SolveError>)> = JoinSet::new();
        let mut first_error: Option<SolveError> = None;
        let limit = self.opts.max_parallel.max(1);

        loop {
            while first_error.is_none() && tasks.len() < limit {
                let Some(ix) = ready.pop_front() else { break };
                if cancel.load(Ordering::SeqCst) {
                    first_error = Some(SolveError::general(SolveErrorKind::Cancelled));
                    break;
                }
                let id = dag[ix];
                let node = graph.nodes[id].clone();
                let inputs: Result<Vec<Input>, SolveError> = node
                    .inputs
                    .iter()
                    .map(|i| {
                        done.get(&plan.canonical[i]).cloned().ok_or_else(|| {
                            SolveError::at(
                                id,
                                SolveErrorKind::Internal(format!(
                                    "input {i} of node {id} was not solved"
                                )),
                            )
                        })
                    })
                    .collect();
                let inputs = match inputs {
                    Ok(v) => v,
                    Err(e) => {
                        first_error = Some(e);
                        break;
                    }
                };
                let env = env.clone();
                tasks.spawn_blocking(move || (id, node::run(&env, id, &node, &inputs)));
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let (id, result) = match joined {
                Ok(pair) => pair,
                Err(e) => {
                    cancel.store(true, Ordering::SeqCst);
                    first_error.get_or_insert(SolveError::general(SolveErrorKind::Internal(
                        format!("a solver task failed: {e}"),
                    )));
                    continue;
                }
            };
            match result {
                Ok(output) => {
                    done.insert(id, output);
                    let ix = plan.index[&id];
                    for next in dag.neighbors_directed(ix, Direction::Outgoing) {
                        if let Some(n) = waiting.get_mut(&next) {
                            *n -= 1;
                            if *n == 0 {
                                waiting.remove(&next);
                                ready.push_back(next);
                            }
                        }
                    }
                }
                Err(e) => {
                    if first_error.is_none() {
                        // Stop the others; their workers see the flag and give up.
                        cancel.store(true, Ordering::SeqCst);
                        if let Some(node) = e.node {
                            env.progress.event(ProgressEvent::Failed {
                                node,
                                error: e.to_string(),
                            });
                        }
                        first_error = Some(e);
                    }
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }

        let mut nodes = BTreeMap::new();
        for id in &plan.reachable {
            let out = done.get(&plan.canonical[id]).ok_or_else(|| {
                SolveError::at(
                    *id,
                    SolveErrorKind::Internal(format!("node {id} was never scheduled")),
                )
            })?;
            nodes.insert(*id, out.output.clone());
        }
        Ok(SolveResult { nodes })
    }
}

/// The work to do: reachable nodes, deduplicated into a DAG.
struct Plan {
    /// Every node the target needs.
    reachable: BTreeSet<NodeId>,
    /// Node → the first node with the same definition.
    canonical: HashMap<NodeId, NodeId>,
    /// Canonical nodes, with an edge from each input to its user.
    dag: DiGraph<NodeId, ()>,
    /// Canonical node → its vertex.
    index: HashMap<NodeId, NodeIndex>,
}

impl Plan {
    fn new(graph: &Graph) -> Result<Self, SolveError> {
        let bad = |m: String| SolveError::general(SolveErrorKind::InvalidGraph(m));
        let stage = graph
            .stages
            .get(graph.target)
            .ok_or_else(|| bad(format!("target stage {} does not exist", graph.target)))?;
        let mut reachable = BTreeSet::new();
        let mut stack = vec![stage.last];
        while let Some(id) = stack.pop() {
            let node = graph
                .nodes
                .get(id)
                .ok_or_else(|| bad(format!("node {id} does not exist")))?;
            if reachable.insert(id) {
                for &input in &node.inputs {
                    if input >= id {
                        return Err(bad(format!(
                            "node {id} reads node {input}, which does not come before it"
                        )));
                    }
                    stack.push(input);
                }
            }
        }

        // Inputs come before their users, so ascending order defines inputs first.
        let mut defs: HashMap<NodeId, String> = HashMap::new();
        let mut by_def: HashMap<String, NodeId> = HashMap::new();
        let mut canonical = HashMap::new();
        let mut dag = DiGraph::new();
        let mut index = HashMap::new();
        for &id in &reachable {
            let node = &graph.nodes[id];
            let inputs: Vec<String> = node.inputs.iter().map(|i| defs[i].clone()).collect();
            let def = key::definition(&node.op, &inputs)
                .map_err(|e| bad(format!("node {id} cannot be encoded: {e}")))?;
            let canon = *by_def.entry(def.clone()).or_insert(id);
            defs.insert(id, def);
            canonical.insert(id, canon);
            if canon == id {
                let ix = dag.add_node(id);
                index.insert(id, ix);
                let mut seen = BTreeSet::new();
                for input in &node.inputs {
                    let from = canonical[input];
                    if seen.insert(from) {
                        dag.add_edge(index[&from], ix, ());
                    }
                }
            }
        }
        Ok(Plan {
            reachable,
            canonical,
            dag,
            index,
        })
    }
}

/// The nodes of `stages` and every node that depends on one of them.
fn no_cache_nodes(graph: &Graph, stages: &BTreeSet<usize>) -> HashSet<NodeId> {
    let mut set: HashSet<NodeId> = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| stages.contains(&n.stage))
        .map(|(i, _)| i)
        .collect();
    if set.is_empty() {
        return set;
    }
    loop {
        let before = set.len();
        for (i, n) in graph.nodes.iter().enumerate() {
            if !set.contains(&i) && n.inputs.iter().any(|x| set.contains(x)) {
                set.insert(i);
            }
        }
        if set.len() == before {
            return set;
        }
    }
}
