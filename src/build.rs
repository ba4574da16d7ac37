//! `kiln build`: Dockerfile → graph → solved layers → image → outputs.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use kiln_executor::{Executor, ExecutorOptions, InitCommand};
use kiln_exporter::ImageBundle;
use kiln_frontend::lint::LintReport;
use kiln_ir::{Graph, ResolvedImage};
use kiln_oci::registry::{RegistryClient, RegistryOptions};
use kiln_oci::{ContentStore, Descriptor, ImageRef, Platform};
use kiln_solver::{Solver, SolverOptions};

use crate::cli::{BuildContext, BuildOptions, Output};
use crate::image::assemble;
use crate::progress::Progress;
use crate::report::source_error;

/// Why a build failed: the text to print (first line says it all).
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

/// Everything a build shares with its cancellation handler.
pub(crate) struct Shared {
    pub(crate) cancel: Arc<AtomicBool>,
}

/// Resolves FROM images against registries, showing BuildKit's "load metadata" step.
struct Resolver {
    client: RegistryClient,
    store: ContentStore,
    handle: tokio::runtime::Handle,
    progress: Arc<Progress>,
    /// Images already resolved (the checks and the lowering both ask).
    cache: std::sync::Mutex<std::collections::HashMap<String, ResolvedImage>>,
}

impl kiln_frontend::ImageResolver for Resolver {
    fn resolve(&self, reference: &str) -> Result<ResolvedImage, String> {
        if let Some(r) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(reference).cloned())
        {
            return Ok(r);
        }
        let r = self.resolve_uncached(reference)?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(reference.to_string(), r.clone());
        }
        Ok(r)
    }
}

impl Resolver {
    fn resolve_uncached(&self, reference: &str) -> Result<ResolvedImage, String> {
        let image: ImageRef = reference.parse().map_err(|e| format!("{e}"))?;
        let v = self
            .progress
            .start(&format!("[internal] load metadata for {image}"));
        let res = self.handle.block_on(self.client.resolve_cached(
            &image,
            &Platform::linux_amd64(),
            &self.store,
        ));
        match res {
            Ok(m) => {
                self.progress.done(v);
                let layers = m
                    .manifest
                    .layers
                    .iter()
                    .map(|l| kiln_ir::LayerDesc {
                        digest: l.digest.clone(),
                        size: l.size,
                        media_type: l.media_type.clone(),
                    })
                    .collect();
                Ok(ResolvedImage {
                    reference: image.to_string(),
                    manifest_digest: m.digest,
                    config_digest: m.manifest.config.digest.clone(),
                    config: m.config,
                    layers,
                })
            }
            Err(e) => {
                let msg = format!("failed to resolve source metadata for {image}: {e}");
                self.progress.error(v, &msg);
                Err(msg)
            }
        }
    }
}

/// Runs one build to the end.
pub(crate) async fn run(mut opts: BuildOptions, shared: Arc<Shared>) -> Result<(), Failure> {
    let progress = Arc::new(if opts.quiet {
        Progress::quiet()
    } else {
        Progress::stderr(opts.plain)
    });
    crate::contexts::git_context(&mut opts, &progress)?;
    let _stdin_context = crate::contexts::stdin_context(&mut opts, &progress)?;
    // `-f -`: the Dockerfile comes from stdin and is called `Dockerfile`, as in buildx.
    let from_stdin = opts.dockerfile.as_os_str() == "-";
    let df_name = if from_stdin {
        "Dockerfile".to_string()
    } else {
        opts.dockerfile.display().to_string()
    };

    let v = progress.start(&format!(
        "[internal] load build definition from {}",
        if from_stdin {
            "Dockerfile".to_string()
        } else {
            opts.dockerfile
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        }
    ));
    let read = if from_stdin {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).map(|_| bytes)
    } else {
        std::fs::read(&opts.dockerfile)
    };
    let text = match read {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            let msg = format!("failed to read dockerfile: open {df_name}: {e}");
            progress.error(v, &msg);
            return Err(Failure(msg));
        }
    };
    progress.note(v, &format!("transferring dockerfile: {}B done", text.len()));
    progress.done(v);
    if !opts.context.is_dir() {
        return Err(Failure(format!(
            "unable to prepare context: path {:?} not found",
            opts.context.display().to_string()
        )));
    }

    let named_dirs = named_context_dirs(&opts.build_contexts)?;

    let dockerfile = kiln_frontend::parse(&text).map_err(|e| {
        Failure(source_error(
            &df_name,
            &text,
            e.span(),
            &e.to_string(),
            e.help(),
        ))
    })?;
    // Which RUNs asked for `--network=host` (the graph cannot tell it from the default).
    let host_network_runs = host_network_spans(&dockerfile);

    for dir in ["content", "snapshots", "locks", "tmp"] {
        std::fs::create_dir_all(opts.root.join(dir)).map_err(|e| {
            Failure(format!(
                "cannot create {}: {e}",
                opts.root.join(dir).display()
            ))
        })?;
    }
    let store = ContentStore::open(&opts.root.join("content"))?;
    let client = RegistryClient::new(RegistryOptions {
        insecure: opts.insecure_registries.clone(),
        ca_files: opts.registry_cas.clone(),
        ..Default::default()
    });
    let handle = tokio::runtime::Handle::current();

    let resolver = Resolver {
        client: client.clone(),
        store: store.clone(),
        handle: handle.clone(),
        progress: progress.clone(),
        cache: Default::default(),
    };
    let lower_opts = kiln_frontend::LowerOptions {
        build_args: opts.build_args.clone(),
        target: opts.target.clone(),
        named_contexts: opts
            .build_contexts
            .iter()
            .map(|(k, c)| {
                let c = match c {
                    BuildContext::Local(_) => kiln_frontend::NamedContext::Local,
                    BuildContext::Image(r) => kiln_frontend::NamedContext::Image(r.clone()),
                };
                (k.clone(), c)
            })
            .collect(),
    };
    let check = opts.check;
    let (report, graph) = {
        let text = text.clone();
        let df_name = df_name.clone();
        tokio::task::spawn_blocking(
            move || -> Result<(Option<LintReport>, Option<Graph>), Failure> {
                let fail = |e: kiln_frontend::FrontendError| {
                    Failure(source_error(
                        &df_name,
                        &text,
                        e.span(),
                        &e.to_string(),
                        e.help(),
                    ))
                };
                // The build checks; when they cannot run, lowering reports the problem itself.
                let report = match kiln_frontend::lint::lint(&text, &lower_opts, Some(&resolver)) {
                    Ok(r) => Some(r),
                    Err(e) if check => return Err(fail(e)),
                    Err(_) => None,
                };
                if check || report.as_ref().and_then(LintReport::error).is_some() {
                    return Ok((report, None));
                }
                let graph =
                    kiln_frontend::lower(&dockerfile, &lower_opts, &resolver).map_err(fail)?;
                Ok((report, Some(graph)))
            },
        )
        .await
        .map_err(|e| Failure(format!("internal error: {e}")))??
    };
    if let Some(r) = &report {
        if check {
            print!("{}", crate::inspect::check_text(&df_name, &text, r));
        } else {
            eprint!("{}", crate::inspect::build_warnings(r));
        }
        if let Some(e) = r.error() {
            return Err(Failure(e));
        }
    }
    let Some(mut graph) = graph else {
        return Ok(());
    };
    check_entitlements(&graph, &host_network_runs, opts.allow)
        .map_err(|(span, msg)| Failure(source_error(&df_name, &text, span, &msg, None)))?;

    for node in &mut graph.nodes {
        if let kiln_ir::Op::Exec(exec) = &mut node.op {
            // `--network none` is the default for every RUN that does not ask for another.
            if opts.network_none {
                exec.network = kiln_ir::NetworkMode::None;
            }
            exec.extra_hosts.clone_from(&opts.extra_hosts);
        }
    }
    let mut executor = Executor::new(ExecutorOptions {
        root: opts.root.clone(),
        init: InitCommand::current_exe(),
        registry: client.clone(),
        runtime: handle.clone(),
        compression: creation_compression(&opts.outputs),
        allow: opts.allow,
    })?;
    executor.set_session(opts.session.clone());
    executor.set_fresh_cache_mounts(opts.no_cache);
    let executor = Arc::new(executor);
    let mut solver = Solver::new(
        &opts.root,
        executor.clone(),
        SolverOptions {
            no_cache: opts.no_cache,
            no_cache_stages: no_cache_stages(&graph, &opts.no_cache_filter, &progress),
            explain: opts.explain.then(|| {
                let df = match &opts.origin {
                    // A git checkout's path changes with its commit: name it by URL.
                    Some(url) => format!(
                        "{url}\n{}",
                        opts.dockerfile
                            .strip_prefix(&opts.context)
                            .unwrap_or(&opts.dockerfile)
                            .display()
                    ),
                    None => std::path::absolute(&opts.dockerfile)
                        .unwrap_or(opts.dockerfile.clone())
                        .display()
                        .to_string(),
                };
                format!("{df}\n{}", opts.target.as_deref().unwrap_or(""))
            }),
            ignore_files: dockerfile_ignore(&opts.dockerfile)
                .map(|f| BTreeMap::from([("context".to_string(), f)]))
                .unwrap_or_default(),
            ..Default::default()
        },
    )?;
    let imports = crate::remote_cache::import(&opts.cache_from, &client, &store, &progress).await;
    solver.set_cache_imports(imports.clone());
    // Absolute, so the sandbox (which changes directory) reads the same files.
    let context_dir = std::fs::canonicalize(&opts.context).map_err(|e| {
        Failure(format!(
            "unable to prepare context: {}: {e}",
            opts.context.display()
        ))
    })?;
    let mut contexts = BTreeMap::new();
    contexts.insert("context".to_string(), context_dir);
    contexts.extend(named_dirs);
    let result = match solver
        .solve(&graph, &contexts, progress.clone(), shared.cancel.clone())
        .await
    {
        Ok(r) => r,
        Err(e) => return Err(solve_failure(&e, &graph, &df_name, &text, &progress)),
    };

    let mut image = assemble(&graph, graph.target, &result.nodes).map_err(Failure)?;
    if !opts.labels.is_empty() {
        // Build-option labels land in the config after the Dockerfile's (no history entry).
        let labels = image
            .config
            .config
            .labels
            .get_or_insert_with(Default::default);
        labels.extend(opts.labels.clone());
    }
    if let Some(epoch) = graph.source_date_epoch {
        crate::epoch::clamp_layers(&mut image, &graph, epoch, &store, &opts.root.join("tmp"))
            .map_err(Failure)?;
    }
    let layers: Vec<Descriptor> = image
        .layers
        .iter()
        .map(|l| Descriptor {
            media_type: l.media_type.clone(),
            digest: l.blob.clone(),
            size: l.size,
            platform: None,
            annotations: None,
        })
        .collect();
    let v = progress.start("exporting to image");
    let mut bundle = ImageBundle::new(&image.config, layers.clone(), &store)?;
    if !hold(solver.lease(), &bundle)? {
        // A concurrent `kiln prune` removed an old copy of a blob: write it again (leased now).
        bundle = ImageBundle::new(&image.config, layers, &store)?;
    }
    progress.note(v, &format!("writing image {} done", bundle.manifest_digest));
    export(
        &opts,
        &bundle,
        &store,
        &client,
        &progress,
        v,
        solver.lease(),
    )
    .await?;
    progress.done(v);
    write_result_files(&opts, &bundle)?;
    crate::remote_cache::export(
        &opts.cache_to,
        &graph,
        &result,
        &imports,
        &store,
        &client,
        solver.lease(),
        &progress,
    )
    .await
}

/// The stage indexes `--no-cache-filter` names (case-insensitive, as stage names are); an
/// unknown name is ignored with a warning, as BuildKit does.
fn no_cache_stages(
    graph: &Graph,
    names: &[String],
    progress: &Progress,
) -> std::collections::BTreeSet<usize> {
    let mut out = std::collections::BTreeSet::new();
    for name in names {
        let lower = name.to_ascii_lowercase();
        match graph
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            Some(i) => {
                out.insert(i);
            }
            None => {
                let v = progress.start("[internal] --no-cache-filter");
                progress.note(v, &format!("WARNING: no stage named {name:?}; ignored"));
                progress.done(v);
            }
        }
    }
    out
}

/// `--load`: a docker-save tar in the store's temp dir, then `docker load -i` of it.
fn docker_load(
    bundle: &ImageBundle,
    opts: &BuildOptions,
    store: &ContentStore,
) -> Result<(), Failure> {
    // Removed however the load ends.
    let tar = crate::contexts::ScratchDir(store.root().join("tmp").join(format!(
        "load-{}-{}.tar",
        std::process::id(),
        bundle.manifest_digest.hex()
    )));
    kiln_exporter::write_docker_tar(bundle, &opts.tags, store, &tar.0)?;
    let out = std::process::Command::new("docker")
        .arg("load")
        .arg("-i")
        .arg(&tar.0)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Failure(format!("--load: running docker: {e}")))?;
    if !out.status.success() {
        return Err(Failure(format!(
            "--load: docker load failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// `--iidfile`, `--metadata-file` and `--quiet`'s image ID on stdout.
fn write_result_files(opts: &BuildOptions, bundle: &ImageBundle) -> Result<(), Failure> {
    let image_id = bundle.config_digest.to_string();
    if let Some(path) = &opts.iidfile {
        std::fs::write(path, &image_id)
            .map_err(|e| Failure(format!("writing --iidfile {}: {e}", path.display())))?;
    }
    if let Some(path) = &opts.metadata_file {
        let mut meta = serde_json::json!({
            "containerimage.config.digest": image_id,
            "containerimage.digest": bundle.manifest_digest.to_string(),
        });
        if !opts.tags.is_empty() {
            meta["image.name"] = serde_json::Value::String(opts.tags.join(","));
        }
        let text = serde_json::to_string_pretty(&meta).unwrap_or_default();
        std::fs::write(path, text + "\n")
            .map_err(|e| Failure(format!("writing --metadata-file {}: {e}", path.display())))?;
    }
    if opts.quiet {
        println!("{image_id}");
    }
    Ok(())
}

/// Writes every requested output.
async fn export(
    opts: &BuildOptions,
    bundle: &ImageBundle,
    store: &ContentStore,
    client: &RegistryClient,
    progress: &Progress,
    v: usize,
    lease: &kiln_solver::Lease,
) -> Result<(), Failure> {
    if opts.outputs.is_empty() {
        progress.note(
            v,
            "WARNING: No output specified; the build result stays in the cache. Use -o or --push.",
        );
    }
    for out in &opts.outputs {
        match out {
            Output::Load => {
                progress.note(v, "loading the image into docker");
                docker_load(bundle, opts, store)?;
                progress.note(v, "loading the image into docker done");
            }
            Output::Local { dest } => {
                kiln_exporter::write_local(bundle, store, dest)?;
                progress.note(v, &format!("copying files to {} done", dest.display()));
            }
            Output::Tar { dest } => {
                kiln_exporter::write_fs_tar(bundle, store, dest)?;
                progress.note(v, &format!("sending tarball to {} done", dest.display()));
            }
            Output::Docker { dest } => {
                kiln_exporter::write_docker_tar(bundle, &opts.tags, store, dest)?;
                progress.note(
                    v,
                    &format!("exporting docker tarball to {} done", dest.display()),
                );
            }
            Output::Oci {
                dest,
                tar,
                compression,
            } => {
                let bundle = recompressed(bundle, store, compression, lease)?;
                kiln_exporter::write_oci_layout(&bundle, &opts.tags, store, dest, *tar)?;
                progress.note(
                    v,
                    &format!("exporting OCI layout to {} done", dest.display()),
                );
            }
            Output::Image {
                names,
                push,
                compression,
            } => {
                let bundle = recompressed(bundle, store, compression, lease)?;
                for name in names {
                    progress.note(v, &format!("naming to {name} done"));
                    if *push {
                        let image: ImageRef = name
                            .parse()
                            .map_err(|e| Failure(format!("invalid image name: {e}")))?;
                        progress.note(v, &format!("pushing {image}"));
                        kiln_exporter::push(&bundle, &image, client, store).await?;
                        progress.note(v, &format!("pushing {image} done"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The directories of local `--build-context`s, absolute, by the solver's context name;
/// buildx's errors for one that is missing or not a directory.
fn named_context_dirs(
    named: &BTreeMap<String, BuildContext>,
) -> Result<BTreeMap<String, std::path::PathBuf>, Failure> {
    let mut dirs = BTreeMap::new();
    for (key, c) in named {
        let BuildContext::Local(dir) = c else {
            continue;
        };
        let abs = std::fs::canonicalize(dir).map_err(|e| {
            let e = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                _ => e.to_string(),
            };
            Failure(format!(
                "failed to get build context {key}: stat {}: {e}",
                dir.display()
            ))
        })?;
        if !abs.is_dir() {
            return Err(Failure(format!(
                "failed to get build context path {}: not a directory",
                dir.display()
            )));
        }
        dirs.insert(kiln_frontend::local_context_name(key), abs);
    }
    Ok(dirs)
}

/// Adds the image's blobs to the build's lease, so a concurrent `kiln prune` keeps them;
/// false when one was removed before the lease listed it.
fn hold(lease: &kiln_solver::Lease, bundle: &ImageBundle) -> Result<bool, Failure> {
    use kiln_solver::Held;
    let mut held = vec![
        Held::Blob(&bundle.config_digest),
        Held::Blob(&bundle.manifest_digest),
    ];
    held.extend(bundle.layers.iter().map(|l| Held::Blob(&l.digest)));
    Ok(lease.hold(&held)?)
}

/// [`ImageBundle::recompressed`], leased (converted again when a prune removed a blob first).
fn recompressed(
    bundle: &ImageBundle,
    store: &ContentStore,
    compression: &kiln_exporter::ExportCompression,
    lease: &kiln_solver::Lease,
) -> Result<ImageBundle, Failure> {
    let out = bundle.recompressed(store, compression)?;
    if hold(lease, &out)? {
        return Ok(out);
    }
    Ok(bundle.recompressed(store, compression)?)
}

/// The compression new layers are written with: the one every output wants, so that no
/// output has to recompress them (a 1 GiB layer exported uncompressed was gzipped and then
/// unpacked again); gzip when outputs differ or there are none (Docker's default).
/// Filesystem outputs (local, tar) read layers in any compression: with only those, layers
/// stay uncompressed.
fn creation_compression(outputs: &[Output]) -> kiln_oci::layer::Compression {
    use kiln_oci::layer::Compression;
    let wanted: Vec<Compression> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Docker { .. } | Output::Load => Some(Compression::Gzip),
            Output::Oci { compression, .. } | Output::Image { compression, .. } => {
                Some(compression.compression)
            }
            Output::Local { .. } | Output::Tar { .. } => None,
        })
        .collect();
    match wanted.split_first() {
        Some((first, rest)) if rest.iter().all(|c| c == first) => *first,
        None if !outputs.is_empty() => Compression::None,
        _ => Compression::Gzip,
    }
}

/// `<Dockerfile>.dockerignore` next to the Dockerfile, when it exists: it replaces the
/// context's `.dockerignore` (BuildKit's testDockerignoreOverride).
fn dockerfile_ignore(dockerfile: &std::path::Path) -> Option<std::path::PathBuf> {
    let mut name = dockerfile.file_name()?.to_os_string();
    name.push(".dockerignore");
    let file = dockerfile.with_file_name(name);
    file.is_file()
        .then(|| std::path::absolute(&file).unwrap_or(file))
}

/// Spans of the RUN instructions written with `--network=host`.
fn host_network_spans(dockerfile: &kiln_frontend::Dockerfile) -> Vec<kiln_ir::Span> {
    use kiln_frontend::instructions::{parse, CommandKind, RunNetwork};
    // An instruction that does not parse fails the lowering with a better message.
    let Ok(instructions) = parse(dockerfile) else {
        return Vec::new();
    };
    instructions
        .stages
        .iter()
        .flat_map(|s| &s.commands)
        .filter(|c| matches!(&c.kind, CommandKind::Run(r) if r.network == RunNetwork::Host))
        .map(|c| c.span)
        .collect()
}

/// BuildKit's entitlement checks on the RUNs the build needs, before anything runs (a cached
/// RUN needs them too): `--security=insecure` needs `--allow security.insecure`,
/// `--network=host` needs `--allow network.host`.
fn check_entitlements(
    graph: &Graph,
    host_network_runs: &[kiln_ir::Span],
    allow: kiln_executor::Entitlements,
) -> Result<(), (Option<kiln_ir::Span>, String)> {
    use kiln_executor::{Entitlements, NETWORK_HOST, SECURITY_INSECURE};
    for node in &graph.nodes {
        let kiln_ir::Op::Exec(exec) = &node.op else {
            continue;
        };
        if exec.security == kiln_ir::SecurityMode::Insecure && !allow.insecure {
            return Err((node.span, Entitlements::not_allowed(SECURITY_INSECURE)));
        }
        let host = exec.network == kiln_ir::NetworkMode::Host
            && node.span.is_some_and(|s| host_network_runs.contains(&s));
        if host && !allow.network_host {
            return Err((node.span, Entitlements::not_allowed(NETWORK_HOST)));
        }
    }
    Ok(())
}

/// Turns a solve error into the message: `Dockerfile:5: <what failed>` plus the snippet and
/// the last lines of output.
fn solve_failure(
    e: &kiln_solver::SolveError,
    graph: &Graph,
    df_name: &str,
    text: &str,
    progress: &Progress,
) -> Failure {
    let Some(node) = e.node else {
        return Failure(e.to_string());
    };
    let span = graph.nodes.get(node).and_then(|n| n.span);
    let mut out = String::new();
    if let Some((name, tail)) = progress.tail_of_node(node) {
        if !tail.is_empty() {
            out.push_str(&format!("------\n > {name}:\n"));
            for l in tail {
                out.push_str(&l);
                out.push('\n');
            }
            out.push_str("------\n");
        }
    }
    let msg = source_error(df_name, text, span, &e.to_string(), None);
    Failure(format!("{msg}{out}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_exporter::ExportCompression;
    use kiln_oci::layer::Compression;

    fn oci(c: Compression) -> Output {
        Output::Oci {
            dest: "d".into(),
            tar: true,
            compression: ExportCompression {
                compression: c,
                ..Default::default()
            },
        }
    }

    #[test]
    fn new_layers_take_the_compression_every_output_wants() {
        assert_eq!(creation_compression(&[]), Compression::Gzip);
        assert_eq!(
            creation_compression(&[oci(Compression::None)]),
            Compression::None
        );
        assert_eq!(
            creation_compression(&[oci(Compression::Zstd), oci(Compression::Zstd)]),
            Compression::Zstd
        );
        let docker = Output::Docker { dest: "d".into() };
        assert_eq!(
            creation_compression(&[oci(Compression::Zstd), docker]),
            Compression::Gzip
        );
        let local = Output::Local { dest: "d".into() };
        let tar = Output::Tar { dest: "t".into() };
        assert_eq!(
            creation_compression(&[local.clone(), tar]),
            Compression::None
        );
        assert_eq!(
            creation_compression(&[local, oci(Compression::Zstd)]),
            Compression::Zstd
        );
    }
}
