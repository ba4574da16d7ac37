//! The work for one node, run on a blocking thread: key, cache lookup, lock, worker call,
//! record.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kiln_ir::{
    ContextFiles, ExecIo, ExecMount, Fetched, FileAction, FileSource, LayerRef, Node, NodeId, Op,
    ProgressEvent, ProgressSink, SourceOp, Worker, WorkerError,
};

use crate::context::{ContextIndex, StatCache};
use crate::copykey;
use crate::error::{SolveError, SolveErrorKind};
use crate::index::{CacheIndex, CacheRecord};
use crate::key::{self, Keyed, SourceKey};
use crate::lease::{Held, Lease};
use crate::lock::KeyLock;
use crate::remote_cache::CacheImports;
use crate::solver::NodeOutput;
use crate::time::now_rfc3339;

/// Everything a node's work needs, shared by all nodes of one solve.
pub(crate) struct NodeEnv {
    pub(crate) worker: Arc<dyn Worker>,
    pub(crate) index: Arc<CacheIndex>,
    pub(crate) stat: Arc<StatCache>,
    pub(crate) blobs: PathBuf,
    pub(crate) locks: PathBuf,
    /// The build's lease: every layer used or made is added before it is relied on.
    pub(crate) lease: Arc<Lease>,
    /// Caches read by `--cache-from`, consulted when a key has no usable local record.
    pub(crate) imports: Option<Arc<CacheImports>>,
    pub(crate) no_cache: bool,
    /// Nodes that ignore the cache (`--no-cache-filter`'s stages and what depends on them).
    pub(crate) no_cache_nodes: std::collections::HashSet<NodeId>,
    /// `--explain`: each step's name across builds (empty when not asked for).
    pub(crate) step_names: std::collections::HashMap<NodeId, String>,
    pub(crate) progress: Arc<dyn ProgressSink>,
    pub(crate) cancel: Arc<AtomicBool>,
    pub(crate) contexts: BTreeMap<String, PathBuf>,
    /// Context name → ignore file replacing `<dir>/.dockerignore`.
    pub(crate) ignore_files: BTreeMap<String, PathBuf>,
    /// Context name → its walked index, loaded once per solve.
    pub(crate) loaded: Mutex<BTreeMap<String, Arc<LoadedContext>>>,
}

/// A walked context and the file list handed to the worker.
pub(crate) struct LoadedContext {
    index: ContextIndex,
    files: Arc<ContextFiles>,
}

/// A solved node as its users see it.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub(crate) output: NodeOutput,
    /// The context name when the node is a local context source.
    pub(crate) context: Option<String>,
    /// The fetched files when the node is a remote source (`ADD` of a URL or git repository).
    pub(crate) fetched: Option<Fetched>,
}

/// Runs one node, reporting progress.
pub(crate) fn run(
    env: &NodeEnv,
    id: NodeId,
    node: &Node,
    inputs: &[Input],
) -> Result<Input, SolveError> {
    env.progress.event(ProgressEvent::Started {
        node: id,
        name: node.name.clone(),
    });
    let result = run_inner(env, id, node, inputs).map_err(|kind| SolveError::at(id, kind))?;
    crate::explain::after_step(env, id, &result.output.cache_key, result.output.cached)
        .map_err(|kind| SolveError::at(id, kind))?;
    if result.output.cached {
        env.progress.event(ProgressEvent::Cached { node: id });
    }
    env.progress.event(ProgressEvent::Done { node: id });
    Ok(result)
}

fn encode(e: serde_json::Error) -> SolveErrorKind {
    SolveErrorKind::Internal(format!("cannot encode a cache key: {e}"))
}

fn run_inner(
    env: &NodeEnv,
    id: NodeId,
    node: &Node,
    inputs: &[Input],
) -> Result<Input, SolveErrorKind> {
    if env.cancel.load(Ordering::SeqCst) {
        return Err(SolveErrorKind::Cancelled);
    }
    let fs = |i: usize| -> Result<&NodeOutput, SolveErrorKind> {
        match inputs.get(i) {
            Some(Input {
                output,
                context: None,
                fetched: None,
            }) => Ok(output),
            Some(_) => Err(SolveErrorKind::InvalidGraph(format!(
                "input {i} of node {id} is a local context or remote source, not a filesystem"
            ))),
            None => Err(SolveErrorKind::InvalidGraph(format!(
                "node {id} has no input {i}"
            ))),
        }
    };
    let plain = |output| Input {
        output,
        context: None,
        fetched: None,
    };
    let ignore = env.no_cache || env.no_cache_nodes.contains(&id);
    match &node.op {
        Op::Source(SourceOp::Scratch) => {
            let keyed = key::scratch().map_err(encode)?;
            let (record, cached) = record_without_work(env, id, &keyed, ignore)?;
            Ok(plain(NodeOutput {
                rootfs: Vec::new(),
                layer: None,
                created: record.created,
                cached,
                cache_key: keyed.key,
            }))
        }
        Op::Source(SourceOp::Context(cs)) => {
            load_context(env, &cs.name)?;
            let keyed = key::context(&cs.name).map_err(encode)?;
            Ok(Input {
                output: NodeOutput {
                    rootfs: Vec::new(),
                    layer: None,
                    created: now_rfc3339(),
                    cached: true,
                    cache_key: keyed.key,
                },
                context: Some(cs.name.clone()),
                fetched: None,
            })
        }
        Op::Source(source @ (SourceOp::Http(_) | SourceOp::Git(_))) => {
            // Always fetched: the content (or resolved commit) is what keys the COPY reading it.
            let mut fetched = env.worker.fetch(source, id, env.progress.as_ref())?;
            if !env.lease.hold(&[Held::Path(&fetched.files.root)])? {
                // A concurrent prune removed the reused download: fetch it again (now leased).
                fetched = env.worker.fetch(source, id, env.progress.as_ref())?;
            }
            let keyed = key::remote(&fetched.digest).map_err(encode)?;
            let (record, cached) = record_without_work(env, id, &keyed, ignore)?;
            Ok(Input {
                output: NodeOutput {
                    rootfs: Vec::new(),
                    layer: None,
                    created: record.created,
                    cached,
                    cache_key: keyed.key,
                },
                context: None,
                fetched: Some(fetched),
            })
        }
        Op::Source(SourceOp::Image(img)) => {
            let keyed = key::image(img).map_err(encode)?;
            let existing = match ignore {
                true => None,
                false => match env.index.get(&keyed.key)? {
                    Some(rec) => Some(rec),
                    None => imported_record(env, id, &keyed)?,
                },
            };
            // Always pull: cheap when the blobs are present, and it makes sure snapshots exist.
            let mut rootfs = env.worker.pull(img, id, env.progress.as_ref())?;
            if !hold_layers(&env.lease, &rootfs)? {
                // A concurrent prune removed a blob between the pull and the lease: pull again.
                rootfs = env.worker.pull(img, id, env.progress.as_ref())?;
            }
            let (created, cached) = match existing {
                Some(rec) => {
                    env.index.touch(&keyed.key)?;
                    (rec.created, true)
                }
                None => {
                    let rec = CacheRecord {
                        layer: None,
                        created: now_rfc3339(),
                        preimage: keyed.preimage.clone(),
                    };
                    env.index.put(&keyed.key, &rec)?;
                    (rec.created, false)
                }
            };
            // The record keeps the base image's layers through `kiln prune`.
            env.index.set_rootfs(&keyed.key, &rootfs)?;
            Ok(plain(NodeOutput {
                rootfs,
                layer: None,
                created,
                cached,
                cache_key: keyed.key,
            }))
        }
        Op::Exec(op) => {
            let parent = fs(0)?;
            let mut sources = Vec::new();
            let mut source_keys = Vec::new();
            for (i, input) in inputs.iter().enumerate().skip(1) {
                let (key, source) = mount_source(env, input, op, i)?;
                source_keys.push(key);
                sources.push(source);
            }
            let keyed = key::exec(&parent.cache_key, op, &source_keys).map_err(encode)?;
            let io = ExecIo {
                node: id,
                progress: env.progress.as_ref(),
                cancel: env.cancel.clone(),
            };
            let out = cached_or_compute(env, id, keyed, ignore, &parent.rootfs, || {
                env.worker.exec(&parent.rootfs, op, &sources, &io)
            })?;
            Ok(plain(out))
        }
        Op::File(op) => {
            let parent = fs(0)?;
            let mut sources = Vec::new();
            let mut source_keys = Vec::new();
            for (i, input) in inputs.iter().enumerate().skip(1) {
                if let Some(f) = &input.fetched {
                    source_keys.push(SourceKey::Node(input.output.cache_key.clone()));
                    sources.push(FileSource::Context(f.files.clone()));
                    continue;
                }
                match &input.context {
                    Some(name) => {
                        let ctx = load_context(env, name)?;
                        let paths = context_digests(env, &ctx.index, op, i)?;
                        source_keys.push(SourceKey::Context {
                            name: name.clone(),
                            paths,
                        });
                        sources.push(FileSource::Context(ctx.files.clone()));
                    }
                    None => {
                        source_keys.push(SourceKey::Node(input.output.cache_key.clone()));
                        sources.push(FileSource::Layers(input.output.rootfs.clone()));
                    }
                }
            }
            // COPY --link: applied onto an empty rootfs, keyed without the parent, stacked on it.
            let linked = copykey::is_linked(op);
            let (parent_key, base): (&str, &[LayerRef]) = if linked {
                ("link", &[])
            } else {
                (&parent.cache_key, &parent.rootfs)
            };
            let keyed = key::file(parent_key, op, &source_keys).map_err(encode)?;
            let io = ExecIo {
                node: id,
                progress: env.progress.as_ref(),
                cancel: env.cancel.clone(),
            };
            let out = cached_or_compute(env, id, keyed, ignore, &parent.rootfs, || {
                env.worker.file(base, op, &sources, &io)
            })?;
            Ok(plain(out))
        }
    }
}

/// What input `i` of a RUN contributes to its key, and the filesystem its mounts read: a
/// node's key and layers, or a context's content digest of each mounted `source=` path.
fn mount_source(
    env: &NodeEnv,
    input: &Input,
    op: &kiln_ir::ExecOp,
    i: usize,
) -> Result<(SourceKey, FileSource), SolveErrorKind> {
    if let Some(f) = &input.fetched {
        return Ok((
            SourceKey::Node(input.output.cache_key.clone()),
            FileSource::Context(f.files.clone()),
        ));
    }
    let Some(name) = &input.context else {
        return Ok((
            SourceKey::Node(input.output.cache_key.clone()),
            FileSource::Layers(input.output.rootfs.clone()),
        ));
    };
    let ctx = load_context(env, name)?;
    let mut paths = BTreeMap::new();
    for m in &op.mounts {
        let source = match m {
            ExecMount::Bind {
                source_input,
                source,
                ..
            } if *source_input == i => source,
            ExecMount::Cache {
                source_input: Some(s),
                source,
                ..
            } if *s == i => source,
            _ => continue,
        };
        if !ctx.index.contains(source) {
            return Err(SolveErrorKind::SourceNotFound {
                path: crate::context::relative_clean(source),
            });
        }
        let prefix = crate::context::relative_clean(source);
        if let std::collections::btree_map::Entry::Vacant(slot) = paths.entry(prefix) {
            let digest = ctx.index.digest(slot.key(), Some(&env.stat))?;
            slot.insert(digest);
        }
    }
    Ok((
        SourceKey::Context {
            name: name.clone(),
            paths,
        },
        FileSource::Context(ctx.files.clone()),
    ))
}

/// The digests of what each copy action reading input `input` selects from a context; fails
/// when a path without wildcards is missing (or excluded).
fn context_digests(
    env: &NodeEnv,
    index: &ContextIndex,
    op: &kiln_ir::FileOp,
    input: usize,
) -> Result<BTreeMap<String, String>, SolveErrorKind> {
    let mut paths = BTreeMap::new();
    for action in &op.actions {
        let FileAction::Copy(copy) = action else {
            continue;
        };
        if copy.source_input != input {
            continue;
        }
        for src in &copy.sources {
            if !key::has_wildcard(src) && !index.contains(src) {
                return Err(SolveErrorKind::SourceNotFound {
                    path: crate::context::relative_clean(src),
                });
            }
            if !copy.exclude.is_empty() {
                let (name, digest) = copykey::source_digest(index, &env.stat, copy, src)?;
                paths.insert(name, digest);
                continue;
            }
            if key::has_wildcard(src) {
                if let Some((name, digest)) = copykey::wildcard_digest(index, &env.stat, src)? {
                    paths.insert(name, digest);
                    continue;
                }
            }
            let prefix = key::literal_prefix(src);
            if let std::collections::btree_map::Entry::Vacant(slot) = paths.entry(prefix) {
                let digest = index.digest(slot.key(), Some(&env.stat))?;
                slot.insert(digest);
            }
        }
    }
    Ok(paths)
}

fn load_context(env: &NodeEnv, name: &str) -> Result<Arc<LoadedContext>, SolveErrorKind> {
    let mut loaded = env.loaded.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(ctx) = loaded.get(name) {
        return Ok(ctx.clone());
    }
    let dir = env
        .contexts
        .get(name)
        .ok_or_else(|| SolveErrorKind::UnknownContext {
            name: name.to_string(),
        })?;
    let index = match env.ignore_files.get(name) {
        Some(file) => ContextIndex::open_with_ignore_file(dir, file)?,
        None => ContextIndex::open(dir)?,
    };
    let files = Arc::new(index.files());
    let ctx = Arc::new(LoadedContext { index, files });
    loaded.insert(name.to_string(), ctx.clone());
    Ok(ctx)
}

/// A usable record for the key: a local one whose layer blob (if any) is still in the
/// store, else one a `--cache-from` cache offers.
fn usable_record(
    env: &NodeEnv,
    id: NodeId,
    keyed: &Keyed,
    ignore: bool,
) -> Result<Option<CacheRecord>, SolveErrorKind> {
    if ignore {
        return Ok(None);
    }
    let key = &keyed.key;
    if let Some(rec) = env.index.get(key)? {
        let present = match &rec.layer {
            Some(layer) => {
                env.blobs.join(layer.blob.hex()).is_file()
                    && env.lease.hold(&[Held::Layer(layer)])?
            }
            None => true,
        };
        if present {
            env.index.touch(key)?;
            return Ok(Some(rec));
        }
    }
    imported_record(env, id, keyed)
}

/// The record an imported cache offers for the key, made local: its layer blob fetched
/// (verified) and leased, the record stored in the index with this build's preimage. A
/// layer that cannot be fetched is reported on the node, and the next cache offering the
/// key is tried, else the step is computed.
fn imported_record(
    env: &NodeEnv,
    id: NodeId,
    keyed: &Keyed,
) -> Result<Option<CacheRecord>, SolveErrorKind> {
    let Some(imports) = &env.imports else {
        return Ok(None);
    };
    let mut tried = 0;
    while let Some(offer) = imports.offer(&keyed.key, tried) {
        tried = offer.next();
        let layer = offer.entry.layer.as_ref().map(LayerRef::from);
        if let Some(cache_layer) = &offer.entry.layer {
            if let Err(e) = imports.fetch(&offer, cache_layer) {
                let msg = format!(
                    "WARNING: not using the cached result from {}: {e}\n",
                    imports.location(&offer)
                );
                env.progress.event(ProgressEvent::Log {
                    node: id,
                    stream: 2,
                    data: msg.into_bytes(),
                });
                continue;
            }
        }
        if let Some(l) = &layer {
            if !env.lease.hold(&[Held::Layer(l)])? {
                // A concurrent prune removed the fetched blob: compute the step.
                return Ok(None);
            }
        }
        let rec = CacheRecord {
            layer,
            created: offer.entry.created.clone(),
            preimage: keyed.preimage.clone(),
        };
        env.index.put(&keyed.key, &rec)?;
        return Ok(Some(rec));
    }
    Ok(None)
}

/// Adds `layers` to the build's lease; false when one of their blobs is already gone.
fn hold_layers(lease: &Lease, layers: &[LayerRef]) -> Result<bool, SolveErrorKind> {
    let held: Vec<Held<'_>> = layers.iter().map(Held::Layer).collect();
    Ok(lease.hold(&held)?)
}

/// For steps that do no work (scratch): the stored record, or a new one.
fn record_without_work(
    env: &NodeEnv,
    id: NodeId,
    keyed: &Keyed,
    ignore: bool,
) -> Result<(CacheRecord, bool), SolveErrorKind> {
    if let Some(rec) = usable_record(env, id, keyed, ignore)? {
        return Ok((rec, true));
    }
    let rec = CacheRecord {
        layer: None,
        created: now_rfc3339(),
        preimage: keyed.preimage.clone(),
    };
    env.index.put(&keyed.key, &rec)?;
    Ok((rec, false))
}

/// A cache hit, or the worker's result under the key's lock, recorded.
fn cached_or_compute(
    env: &NodeEnv,
    id: NodeId,
    keyed: Keyed,
    ignore: bool,
    parent: &[LayerRef],
    work: impl Fn() -> Result<Option<LayerRef>, WorkerError>,
) -> Result<NodeOutput, SolveErrorKind> {
    let output = |rec: CacheRecord, cached: bool, key: String| {
        let mut rootfs = parent.to_vec();
        rootfs.extend(rec.layer.clone());
        NodeOutput {
            rootfs,
            layer: rec.layer,
            created: rec.created,
            cached,
            cache_key: key,
        }
    };
    if let Some(rec) = usable_record(env, id, &keyed, ignore)? {
        return Ok(output(rec, true, keyed.key));
    }
    let _lock = KeyLock::acquire(&env.locks, &keyed.key)
        .map_err(|(path, source)| SolveErrorKind::Io { path, source })?;
    // Another process may have computed the key while this one waited for the lock.
    if let Some(rec) = usable_record(env, id, &keyed, ignore)? {
        return Ok(output(rec, true, keyed.key));
    }
    if env.cancel.load(Ordering::SeqCst) {
        return Err(SolveErrorKind::Cancelled);
    }
    let mut layer = work()?;
    if !hold_layers(&env.lease, layer.as_slice())? {
        // The blob already existed and a concurrent prune removed it before the lease listed
        // it: compute again (the new blob is leased by its age).
        layer = work()?;
        if !hold_layers(&env.lease, layer.as_slice())? {
            return Err(SolveErrorKind::Internal(
                "a new layer was removed by a concurrent prune twice".into(),
            ));
        }
    }
    let rec = CacheRecord {
        layer,
        created: now_rfc3339(),
        preimage: keyed.preimage,
    };
    env.index.put(&keyed.key, &rec)?;
    Ok(output(rec, false, keyed.key))
}
