//! [`Executor`]: the [`Worker`] that pulls layers, runs RUNs in the sandbox and applies file
//! ops, turning each overlay upper dir into a layer and a snapshot.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use kiln_ir::{
    ExecIo, ExecMount, ExecOp, Fetched, FileOp, FileSource, LayerRef, NetworkMode, NodeId,
    ProgressSink, ResolvedImage, SourceOp, Worker, WorkerError,
};
use kiln_oci::layer::{write_layer_from_upper, Compression};
use kiln_oci::registry::RegistryClient;
use kiln_oci::store::ContentStore;
use kiln_oci::{Descriptor, ImageRef};

use crate::entitlements::Entitlements;
use crate::error::ExecutorError;
use crate::mounts::{self, Session};
use crate::process::run_init;
use crate::snapshots::{Snapshots, EMPTY, STUBS};
use crate::spec::{
    FileMountSpec, FileSpec, InitFailure, RootfsSpec, RunSpec, SourceSpec, Spec, INIT_SUBCOMMAND,
};

/// The hostname RUN sees (BuildKit's).
const HOSTNAME: &str = "buildkitsandbox";

/// How to start the sandbox init: `program args… <spec file>`.
#[derive(Debug, Clone)]
pub struct InitCommand {
    /// The executable (`/proc/self/exe` for kiln).
    pub program: PathBuf,
    /// Arguments before the spec path (`["__sandbox-init"]`).
    pub args: Vec<OsString>,
}

impl InitCommand {
    /// Re-executes the running binary (`/proc/self/exe __sandbox-init`); the binary must call
    /// [`crate::run_init_if_requested`] first thing in `main`.
    pub fn current_exe() -> Self {
        Self::program(PathBuf::from("/proc/self/exe"))
    }

    /// Runs `program __sandbox-init`.
    pub fn program(program: PathBuf) -> Self {
        InitCommand {
            program,
            args: vec![OsString::from(INIT_SUBCOMMAND)],
        }
    }
}

/// What [`Executor::new`] needs.
pub struct ExecutorOptions {
    /// kiln's `--root`.
    pub root: PathBuf,
    /// How to start the sandbox init.
    pub init: InitCommand,
    /// Fetches missing base-image blobs.
    pub registry: RegistryClient,
    /// The runtime the registry client's futures run on (blocked on from worker threads).
    pub runtime: tokio::runtime::Handle,
    /// Compression of the layers RUN and COPY produce.
    pub compression: Compression,
    /// What `kiln build --allow` granted (`RUN --security=insecure` needs `insecure`).
    pub allow: Entitlements,
}

/// Runs ops against the snapshots of one kiln root.
pub struct Executor {
    root: PathBuf,
    snapshots: Snapshots,
    store: ContentStore,
    init: InitCommand,
    registry: RegistryClient,
    runtime: tokio::runtime::Handle,
    compression: Compression,
    allow: Entitlements,
    session: Session,
    seq: AtomicU64,
    /// Under `--no-cache`: the cache-mount ids already emptied by this build.
    fresh_caches: Option<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// A run's scratch directory under `<root>/runs/`, removed on drop.
struct RunDir {
    path: PathBuf,
}

impl RunDir {
    fn upper(&self) -> PathBuf {
        self.path.join("upper")
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl Executor {
    /// Opens (creating) the root's content store, snapshots and locks, and removes run
    /// directories left by dead kiln processes.
    pub fn new(opts: ExecutorOptions) -> Result<Self, ExecutorError> {
        let root = opts.root;
        let runs = root.join("runs");
        std::fs::create_dir_all(&runs).map_err(ExecutorError::io(&runs))?;
        let content = root.join("content");
        std::fs::create_dir_all(&content).map_err(ExecutorError::io(&content))?;
        let store =
            ContentStore::open(&content).map_err(|e| ExecutorError::Sandbox(e.to_string()))?;
        let snapshots = Snapshots::open(&root)?;
        if let Ok(entries) = std::fs::read_dir(&runs) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let pid = name.split('-').next().unwrap_or_default();
                if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(Executor {
            root,
            snapshots,
            store,
            init: opts.init,
            registry: opts.registry,
            runtime: opts.runtime,
            compression: opts.compression,
            allow: opts.allow,
            session: Session::default(),
            fresh_caches: None,
            seq: AtomicU64::new(0),
        })
    }

    /// Sets the secrets and ssh agent sockets `RUN --mount=type=secret|ssh` may use.
    pub fn set_session(&mut self, session: Session) {
        self.session = session;
    }

    /// Makes each cache mount start empty the first time this build uses it (`--no-cache`,
    /// as BuildKit does); what the build writes there persists for later builds.
    pub fn set_fresh_cache_mounts(&mut self, fresh: bool) {
        self.fresh_caches = fresh.then(Default::default);
    }

    /// The content store layers are written to.
    pub fn store(&self) -> &ContentStore {
        &self.store
    }

    /// Where the snapshot of a layer lives (whether or not it exists).
    pub fn snapshot_path(&self, layer: &LayerRef) -> PathBuf {
        self.snapshots
            .dir()
            .join(crate::snapshots::short_name(&layer.diff_id))
    }

    /// Makes sure a layer (already in the content store) is unpacked; returns its snapshot
    /// directory.
    pub fn ensure_snapshot(&self, layer: &LayerRef) -> Result<PathBuf, ExecutorError> {
        let name = self.snapshots.ensure(
            &layer.diff_id,
            &layer.blob,
            &self.store.blob_path(&layer.blob),
            &layer.media_type,
        )?;
        Ok(self.snapshots.dir().join(name))
    }

    /// Snapshot names of `layers` (bottom first), top first, unpacking what is missing.
    fn lowers(&self, layers: &[LayerRef]) -> Result<Vec<String>, ExecutorError> {
        let mut names = Vec::with_capacity(layers.len() + 1);
        for l in layers.iter().rev() {
            let dir = self.ensure_snapshot(l)?;
            names.push(
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
        Ok(names)
    }

    fn run_dir(&self) -> Result<RunDir, ExecutorError> {
        let path = self.root.join("runs").join(format!(
            "{}-{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        let dir = RunDir { path };
        for d in ["upper", "work", "rootfs"] {
            let p = dir.path.join(d);
            std::fs::create_dir_all(&p).map_err(ExecutorError::io(&p))?;
        }
        Ok(dir)
    }

    fn rootfs_spec(&self, run: &RunDir, lowers: Vec<String>) -> RootfsSpec {
        RootfsSpec {
            snapshots_dir: self.snapshots.dir().to_path_buf(),
            lowers,
            upper: run.upper(),
            work: run.path.join("work"),
            target: run.path.join("rootfs"),
        }
    }

    fn write_spec(&self, run: &RunDir, spec: &Spec) -> Result<PathBuf, ExecutorError> {
        let path = run.path.join("spec.json");
        let bytes = serde_json::to_vec(spec).map_err(|e| ExecutorError::Sandbox(e.to_string()))?;
        std::fs::write(&path, bytes).map_err(ExecutorError::io(&path))?;
        Ok(path)
    }

    /// Turns an upper dir into a layer blob and moves it into the snapshots.
    fn commit(&self, upper: &Path) -> Result<Option<LayerRef>, ExecutorError> {
        let written =
            write_layer_from_upper(upper, &self.store, self.compression).map_err(|source| {
                ExecutorError::Layer {
                    layer: upper.display().to_string(),
                    source,
                }
            })?;
        let Some(w) = written else {
            return Ok(None);
        };
        self.snapshots.import(upper, &w.diff_id)?;
        Ok(Some(LayerRef {
            diff_id: w.diff_id,
            blob: w.blob,
            size: w.size,
            media_type: w.media_type,
        }))
    }

    fn fetch_missing(&self, image: &ResolvedImage) -> Result<(), ExecutorError> {
        // Where each layer lives, so a push to the same registry can mount it.
        if let Ok(r) = image.reference.parse::<ImageRef>() {
            for l in &image.layers {
                if let Err(e) = self.store.add_origin(&l.digest, &r.name()) {
                    tracing::debug!("recording the origin of {}: {e}", l.digest);
                }
            }
        }
        let missing: Vec<Descriptor> = image
            .layers
            .iter()
            .filter(|l| !self.store.has(&l.digest))
            .map(|l| Descriptor {
                media_type: l.media_type.clone(),
                digest: l.digest.clone(),
                size: l.size,
                platform: None,
                annotations: None,
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let reference: ImageRef = image.reference.parse().map_err(|e| ExecutorError::Image {
            reference: image.reference.clone(),
            reason: format!("{e}"),
        })?;
        self.runtime.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for desc in missing {
                let client = self.registry.clone();
                let store = self.store.clone();
                let reference = reference.clone();
                set.spawn(async move { client.fetch_blob(&reference, &desc, &store).await });
            }
            while let Some(joined) = set.join_next().await {
                let result =
                    joined.map_err(|e| ExecutorError::Sandbox(format!("fetch task: {e}")))?;
                result.map_err(|source| ExecutorError::Registry {
                    reference: image.reference.clone(),
                    source,
                })?;
            }
            Ok(())
        })
    }
}

/// Maps an init failure to the worker's error.
fn failure_error(failure: InitFailure) -> WorkerError {
    match failure {
        InitFailure::NotFound(m) => WorkerError::NotFound(m),
        InitFailure::Other(m) => WorkerError::Other(m),
    }
}

fn resolv_conf() -> Vec<u8> {
    std::fs::read("/etc/resolv.conf").unwrap_or_default()
}

impl Worker for Executor {
    fn fetch(
        &self,
        source: &SourceOp,
        _node: NodeId,
        _progress: &dyn ProgressSink,
    ) -> Result<Fetched, WorkerError> {
        let downloads = self.root.join("downloads");
        std::fs::create_dir_all(&downloads).map_err(ExecutorError::io(&downloads))?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        Ok(match source {
            SourceOp::Http(h) => crate::remote::fetch_http(&downloads, seq, &self.runtime, h)?,
            SourceOp::Git(g) => crate::remote::fetch_git(&downloads, seq, g)?,
            other => {
                return Err(WorkerError::Other(format!(
                    "not a remote source: {other:?}"
                )))
            }
        })
    }

    fn pull(
        &self,
        image: &ResolvedImage,
        _node: NodeId,
        _progress: &dyn ProgressSink,
    ) -> Result<Vec<LayerRef>, WorkerError> {
        let diff_ids = &image.config.rootfs.diff_ids;
        if diff_ids.len() != image.layers.len() {
            return Err(ExecutorError::Image {
                reference: image.reference.clone(),
                reason: format!(
                    "{} layers but {} diff ids in the config",
                    image.layers.len(),
                    diff_ids.len()
                ),
            }
            .into());
        }
        self.fetch_missing(image)?;
        let mut out = Vec::with_capacity(diff_ids.len());
        for (desc, diff_id) in image.layers.iter().zip(diff_ids) {
            let layer = LayerRef {
                diff_id: diff_id.clone(),
                blob: desc.digest.clone(),
                size: desc.size,
                media_type: desc.media_type.clone(),
            };
            self.ensure_snapshot(&layer)?;
            out.push(layer);
        }
        Ok(out)
    }

    fn exec(
        &self,
        rootfs: &[LayerRef],
        op: &ExecOp,
        sources: &[FileSource],
        io: &ExecIo<'_>,
    ) -> Result<Option<LayerRef>, WorkerError> {
        let insecure = op.security == kiln_ir::SecurityMode::Insecure;
        if insecure && !self.allow.insecure {
            return Err(WorkerError::Other(Entitlements::not_allowed(
                crate::entitlements::SECURITY_INSECURE,
            )));
        }
        let mut lowers = self.lowers(rootfs)?;
        lowers.push(STUBS.to_string());
        let real_lowers = lowers.clone();
        let run = self.run_dir()?;
        let mounts = mounts::prepare(
            &mounts::MountEnv {
                root: &self.root,
                run: &run.path,
                lowers: &|l| self.lowers(l),
                session: &self.session,
                seq: self.seq.fetch_add(1, Ordering::Relaxed),
                fresh_caches: self.fresh_caches.as_ref(),
            },
            &op.mounts,
            sources,
        )?;
        let (mount_stubs, secrets_dir) = (run.path.join("mount-stubs"), run.path.join("secrets"));
        if !mounts.specs.is_empty() {
            for d in [&mount_stubs, &secrets_dir] {
                std::fs::create_dir(d).map_err(ExecutorError::io(d))?;
            }
            lowers.push(mount_stubs.to_string_lossy().into_owned());
        }
        let hostname = op.hostname.as_deref().unwrap_or(HOSTNAME);
        let files = [
            (
                "hosts",
                op.extra_hosts.iter().fold(
                    format!(
                        "127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                    ),
                    |mut hosts, (host, ip)| {
                        hosts.push_str(&format!("{ip}\t{host}\n"));
                        hosts
                    },
                )
                .into_bytes(),
            ),
            ("resolv.conf", resolv_conf()),
            ("hostname", format!("{hostname}\n").into_bytes()),
        ];
        for (name, content) in &files {
            let p = run.path.join(name);
            std::fs::write(&p, content).map_err(ExecutorError::io(&p))?;
        }
        let mut file_mounts = Vec::new();
        for (i, m) in op.mounts.iter().enumerate() {
            if let ExecMount::File { target, data, mode } = m {
                let host = run.path.join(format!("mount-file-{i}"));
                std::fs::write(&host, data).map_err(ExecutorError::io(&host))?;
                std::fs::set_permissions(&host, std::fs::Permissions::from_mode(*mode & 0o7777))
                    .map_err(ExecutorError::io(&host))?;
                file_mounts.push(FileMountSpec {
                    host,
                    target: target.clone(),
                });
            }
        }
        let spec = Spec::Run(RunSpec {
            rootfs: self.rootfs_spec(&run, lowers),
            hosts: run.path.join("hosts"),
            resolv: run.path.join("resolv.conf"),
            hostname_file: run.path.join("hostname"),
            hostname: hostname.to_string(),
            args: op.args.clone(),
            env: op.env.iter().chain(&mounts.env).cloned().collect(),
            cwd: if op.cwd.is_empty() {
                "/".into()
            } else {
                op.cwd.clone()
            },
            user: op.user.clone(),
            network_none: op.network == NetworkMode::None,
            insecure,
            files: file_mounts,
            mount_stubs: (!mounts.specs.is_empty()).then(|| mount_stubs.clone()),
            secrets_dir: (!mounts.specs.is_empty()).then(|| secrets_dir.clone()),
            mounts: mounts.specs,
        });
        let secrets = match &spec {
            Spec::Run(r) => mounts::secret_values(&r.mounts),
            Spec::File(_) => Vec::new(),
        };
        let spec_path = self.write_spec(&run, &spec)?;
        let outcome = run_init(&self.init, &spec_path, io, &secrets)?;
        if let Some(failure) = outcome.failure {
            return Err(match failure {
                InitFailure::Other(m) => WorkerError::Other(format!(
                    "process \"{}\" did not complete successfully: {m}",
                    op.args.join(" ")
                )),
                f => failure_error(f),
            });
        }
        if outcome.code != 0 {
            return Err(WorkerError::ExitCode {
                command: op.args.join(" "),
                code: outcome.code,
                tail: outcome.tail,
            });
        }
        remove_stubs(&run.upper(), self.snapshots.dir(), &real_lowers);
        mounts::remove_mount_stubs(
            &run.upper(),
            self.snapshots.dir(),
            &real_lowers,
            &mounts.targets,
        );
        Ok(self.commit(&run.upper())?)
    }

    fn file(
        &self,
        rootfs: &[LayerRef],
        op: &FileOp,
        sources: &[FileSource],
        io: &ExecIo<'_>,
    ) -> Result<Option<LayerRef>, WorkerError> {
        let mut lowers = self.lowers(rootfs)?;
        if lowers.is_empty() {
            lowers.push(EMPTY.to_string());
        }
        let run = self.run_dir()?;
        let mut source_specs = Vec::with_capacity(sources.len());
        for (i, s) in sources.iter().enumerate() {
            source_specs.push(match s {
                FileSource::Layers(layers) => {
                    let target = run.path.join(format!("src{i}"));
                    std::fs::create_dir(&target).map_err(ExecutorError::io(&target))?;
                    SourceSpec::Layers {
                        lowers: self.lowers(layers)?,
                        target,
                    }
                }
                FileSource::Context(files) => SourceSpec::Context((**files).clone()),
            });
        }
        let spec = Spec::File(FileSpec {
            rootfs: self.rootfs_spec(&run, lowers),
            empty: EMPTY.to_string(),
            sources: source_specs,
            actions: op.actions.clone(),
        });
        let spec_path = self.write_spec(&run, &spec)?;
        let outcome = run_init(&self.init, &spec_path, io, &[])?;
        if let Some(failure) = outcome.failure {
            return Err(failure_error(failure));
        }
        if outcome.code != 0 {
            return Err(WorkerError::Other(format!(
                "file operation failed with exit code {}: {}",
                outcome.code,
                outcome.tail.join("\n")
            )));
        }
        Ok(self.commit(&run.upper())?)
    }
}

/// Removes mount-point stubs the sandbox had to create in the upper dir (empty dirs or
/// files no lower layer has). The stub layer normally makes this a no-op.
fn remove_stubs(upper: &Path, snapshots: &Path, lowers: &[String]) {
    for stub in [
        "etc/hosts",
        "etc/resolv.conf",
        "etc/hostname",
        "proc",
        "sys",
        "dev",
        "etc",
    ] {
        let p = upper.join(stub);
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let in_lower = lowers
            .iter()
            .filter(|l| l.as_str() != STUBS)
            .any(|l| std::fs::symlink_metadata(snapshots.join(l).join(stub)).is_ok());
        if in_lower {
            continue;
        }
        if meta.is_dir() {
            let _ = std::fs::remove_dir(&p);
        } else if meta.is_file() && meta.len() == 0 {
            let _ = std::fs::remove_file(&p);
        }
    }
}
