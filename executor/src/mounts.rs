//! `RUN --mount`, parent side: turns each [`ExecMount`] into a [`MountSpec`] for the init
//! (source filesystems, cache directories and their locks, secret and ssh sources), and
//! removes mount-point stubs from the upper dir afterwards.
//!
//! Secret values never pass through here: the spec names the file or environment variable
//! and the init reads it into a private tmpfs.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use kiln_ir::{CacheSharing, ContextFiles, ExecMount, FileSource, LayerRef, WorkerError};
use kiln_oci::Digest;
use nix::fcntl::{Flock, FlockArg};

use crate::error::ExecutorError;
use crate::spec::{CacheCreate, FsSpec, MountSpec, SecretFrom};

mod ssh;

/// Where a `--secret` value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `src=FILE`: the file's content.
    File(PathBuf),
    /// `env=VAR`: an environment variable of the kiln process.
    Env(String),
}

/// The secrets and ssh agent sockets a build may mount (`kiln build --secret`, `--ssh`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// Secret id → source.
    pub secrets: BTreeMap<String, SecretSource>,
    /// SSH id (`default`) → agent socket path on the host.
    pub ssh: BTreeMap<String, PathBuf>,
}

/// Snapshot names of layers, top first.
pub(crate) type LowersFn<'a> = &'a dyn Fn(&[LayerRef]) -> Result<Vec<String>, ExecutorError>;

/// What the parent needs to prepare mounts.
pub(crate) struct MountEnv<'a> {
    /// kiln's root (cache mounts live in `<root>/cache-mounts`).
    pub(crate) root: &'a Path,
    /// The run's scratch directory.
    pub(crate) run: &'a Path,
    /// Snapshot names of layers, top first (unpacking what is missing).
    pub(crate) lowers: LowersFn<'a>,
    /// Secrets and ssh sockets of the build.
    pub(crate) session: &'a Session,
    /// A unique number for temp dirs.
    pub(crate) seq: u64,
    /// Under `--no-cache`: cache ids already emptied by this build (the others are emptied
    /// on first use).
    pub(crate) fresh_caches: Option<&'a std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// The prepared mounts of one RUN; the locks are held until it is dropped.
pub(crate) struct Prepared {
    /// For the init, in order.
    pub(crate) specs: Vec<MountSpec>,
    /// Extra environment (`SSH_AUTH_SOCK`).
    pub(crate) env: Vec<String>,
    /// Mount targets (for stub cleanup).
    pub(crate) targets: Vec<String>,
    _locks: Vec<Flock<File>>,
    _ssh: Vec<ssh::SshProxy>,
}

fn other(m: String) -> WorkerError {
    WorkerError::Other(m)
}

fn mkdir(p: &Path) -> Result<(), WorkerError> {
    std::fs::create_dir_all(p).map_err(|e| ExecutorError::io(p)(e).into())
}

/// Prepares every mount of `mounts` except heredoc files.
pub(crate) fn prepare(
    env: &MountEnv<'_>,
    mounts: &[ExecMount],
    sources: &[FileSource],
) -> Result<Prepared, WorkerError> {
    let mut out = Prepared {
        specs: Vec::new(),
        env: Vec::new(),
        targets: Vec::new(),
        _locks: Vec::new(),
        _ssh: Vec::new(),
    };
    let mut views: BTreeMap<usize, PathBuf> = BTreeMap::new();
    let mut ssh_count = 0;
    for (i, m) in mounts.iter().enumerate() {
        let spec = match m {
            ExecMount::File { .. } => continue,
            ExecMount::Bind {
                source_input,
                source,
                target,
                readonly,
            } => MountSpec::Bind {
                fs: source_fs(env, sources, &mut views, *source_input, i, !*readonly)?,
                source: source.clone(),
                target: target.clone(),
                readonly: *readonly,
            },
            ExecMount::Cache {
                id,
                target,
                sharing,
                uid,
                gid,
                mode,
                source_input,
                source,
                readonly,
            } => {
                let base = env.root.join("cache-mounts");
                mkdir(&base)?;
                let name = Digest::of(id.as_bytes()).hex()[..32].to_string();
                let lock_path = base.join(format!("{name}.lock"));
                let lock_file = File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(ExecutorError::io(&lock_path))?;
                let flock = |f: File, arg| {
                    Flock::lock(f, arg)
                        .map_err(|(f, e)| (f, ExecutorError::io(&lock_path)(e.into())))
                };
                let mut dir = base.join(&name);
                let mut tmp = base.join(format!("tmp-{name}-{}-{}", std::process::id(), env.seq));
                if let Some(fresh) = env.fresh_caches {
                    let first = fresh
                        .lock()
                        .map(|mut f| f.insert(id.clone()))
                        .unwrap_or(true);
                    if first && dir.exists() {
                        empty_cache(&lock_path, &dir, &tmp)?;
                    }
                }
                match sharing {
                    CacheSharing::Shared => out
                        ._locks
                        .push(flock(lock_file, FlockArg::LockShared).map_err(|e| e.1)?),
                    CacheSharing::Locked => out
                        ._locks
                        .push(flock(lock_file, FlockArg::LockExclusive).map_err(|e| e.1)?),
                    CacheSharing::Private => {
                        match flock(lock_file, FlockArg::LockExclusiveNonblock) {
                            Ok(l) => out._locks.push(l),
                            // In use: this run gets its own copy, dropped with the run dir.
                            Err(_) => {
                                dir = env.run.join(format!("cache-{i}"));
                                tmp = env.run.join(format!("cache-{i}-tmp"));
                            }
                        }
                    }
                }
                let create = if dir.is_dir() {
                    None
                } else {
                    let seed = match source_input {
                        Some(s) => Some((
                            source_fs(env, sources, &mut views, *s, i, false)?,
                            source.clone(),
                        )),
                        None => None,
                    };
                    Some(CacheCreate {
                        tmp,
                        seed,
                        uid: *uid,
                        gid: *gid,
                        mode: *mode,
                    })
                };
                MountSpec::Cache {
                    dir,
                    create,
                    target: target.clone(),
                    readonly: *readonly,
                }
            }
            ExecMount::Tmpfs { target, size } => MountSpec::Tmpfs {
                target: target.clone(),
                size: *size,
            },
            ExecMount::Secret {
                id,
                target,
                env: var,
                required,
                uid,
                gid,
                mode,
            } => {
                let Some(src) = env.session.secrets.get(id) else {
                    if *required {
                        return Err(other(format!("secret {id}: not found")));
                    }
                    continue;
                };
                MountSpec::Secret {
                    from: match src {
                        SecretSource::File(p) => {
                            SecretFrom::File(std::path::absolute(p).unwrap_or_else(|_| p.clone()))
                        }
                        SecretSource::Env(v) => SecretFrom::Env(v.clone()),
                    },
                    target: target.clone(),
                    env: var.clone(),
                    uid: *uid,
                    gid: *gid,
                    mode: *mode,
                }
            }
            ExecMount::Ssh {
                id,
                target,
                required,
                uid,
                gid,
                mode,
            } => {
                let n = ssh_count;
                ssh_count += 1;
                let Some(socket) = env.session.ssh.get(id) else {
                    if *required {
                        return Err(other(format!(
                            "no SSH agent forwarded for id {id:?} (use kiln build --ssh {id}[=SOCKET])"
                        )));
                    }
                    continue;
                };
                let target = target
                    .clone()
                    .unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{n}"));
                if n == 0 {
                    out.env.push(format!("SSH_AUTH_SOCK={target}"));
                }
                let proxy_path = env.run.join(format!("ssh-{n}.sock"));
                out._ssh.push(ssh::SshProxy::start(
                    &proxy_path,
                    socket,
                    *uid,
                    *gid,
                    *mode,
                )?);
                MountSpec::Ssh {
                    socket: proxy_path,
                    target,
                }
            }
        };
        if let Some(t) = spec_target(&spec) {
            out.targets.push(t.to_string());
        }
        out.specs.push(spec);
    }
    Ok(out)
}

/// Empties the cache directory `dir` under an exclusive lock (no other RUN is using it):
/// renamed aside to `trash`, then removed.
fn empty_cache(lock_path: &Path, dir: &Path, trash: &Path) -> Result<(), WorkerError> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path)
        .map_err(ExecutorError::io(lock_path))?;
    let lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| ExecutorError::io(lock_path)(e.into()))?;
    let trash = trash.with_extension("old");
    let moved = std::fs::rename(dir, &trash);
    drop(lock);
    match moved {
        Ok(()) => std::fs::remove_dir_all(&trash).map_err(|e| ExecutorError::io(&trash)(e).into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ExecutorError::io(dir)(e).into()),
    }
}

/// The values of the secrets `specs` mount, read here only so the RUN's output can be masked
/// (they stay in memory; an unreadable one is left to the init to report).
pub(crate) fn secret_values(specs: &[MountSpec]) -> Vec<Vec<u8>> {
    specs
        .iter()
        .filter_map(|s| match s {
            MountSpec::Secret { from, .. } => match from {
                SecretFrom::File(p) => std::fs::read(p).ok(),
                SecretFrom::Env(v) => std::env::var_os(v)
                    .map(|v| std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec()),
            },
            _ => None,
        })
        .collect()
}

fn spec_target(spec: &MountSpec) -> Option<&str> {
    match spec {
        MountSpec::Bind { target, .. }
        | MountSpec::Cache { target, .. }
        | MountSpec::Tmpfs { target, .. }
        | MountSpec::Ssh { target, .. } => Some(target),
        MountSpec::Secret { target, .. } => target.as_deref(),
    }
}

/// The overlay the init mounts to read input `input` (1-based like node inputs) for mount
/// `i`; writable (with a throwaway upper in the run dir) when `rw`.
fn source_fs(
    env: &MountEnv<'_>,
    sources: &[FileSource],
    views: &mut BTreeMap<usize, PathBuf>,
    input: usize,
    i: usize,
    rw: bool,
) -> Result<FsSpec, WorkerError> {
    let source = input
        .checked_sub(1)
        .and_then(|k| sources.get(k))
        .ok_or_else(|| other(format!("RUN --mount reads input {input}, which is missing")))?;
    let mut lowers = match source {
        FileSource::Layers(layers) => (env.lowers)(layers)?,
        FileSource::Context(files) => {
            let view = match views.get(&input) {
                Some(v) => v.clone(),
                None => {
                    let v = env.run.join(format!("context-{input}"));
                    context_view(files, &v)?;
                    views.insert(input, v.clone());
                    v
                }
            };
            vec![view.to_string_lossy().into_owned()]
        }
    };
    let mountpoint = env.run.join(format!("mount-{i}"));
    mkdir(&mountpoint)?;
    // An overlay needs a lower dir, and two when it has no upper dir.
    let wanted = if rw { 1 } else { 2 };
    for k in lowers.len()..wanted {
        let pad = env.run.join(format!("mount-{i}-empty{k}"));
        mkdir(&pad)?;
        lowers.push(pad.to_string_lossy().into_owned());
    }
    let upper_work = if rw {
        let (u, w) = (
            env.run.join(format!("mount-{i}-upper")),
            env.run.join(format!("mount-{i}-work")),
        );
        mkdir(&u)?;
        mkdir(&w)?;
        Some((u, w))
    } else {
        None
    };
    Ok(FsSpec {
        lowers,
        mountpoint,
        upper_work,
    })
}

/// The included paths of a context (after `.dockerignore`) as a tree of hard links (copies
/// across filesystems) under `view`.
fn context_view(files: &ContextFiles, view: &Path) -> Result<(), WorkerError> {
    mkdir(view)?;
    for e in &files.entries {
        let from = files.root.join(&e.path);
        let to = view.join(&e.path);
        let meta = std::fs::symlink_metadata(&from).map_err(ExecutorError::io(&from))?;
        if let Some(parent) = to.parent() {
            mkdir(parent)?;
        }
        let result = if e.is_dir {
            std::fs::create_dir(&to).or_else(|err| if to.is_dir() { Ok(()) } else { Err(err) })
        } else if meta.file_type().is_symlink() {
            std::fs::read_link(&from).and_then(|t| std::os::unix::fs::symlink(t, &to))
        } else if meta.is_file() {
            std::fs::hard_link(&from, &to).or_else(|_| std::fs::copy(&from, &to).map(|_| ()))
        } else {
            Ok(())
        };
        result.map_err(ExecutorError::io(&to))?;
        if e.is_dir {
            std::fs::set_permissions(&to, meta.permissions()).map_err(ExecutorError::io(&to))?;
        }
    }
    Ok(())
}

/// Removes mount points the init had to create in the upper dir (when the stub lower could
/// not provide them, e.g. under a symlinked directory): each target and its parents, when
/// empty and absent from every real lower.
pub(crate) fn remove_mount_stubs(
    upper: &Path,
    snapshots: &Path,
    lowers: &[String],
    targets: &[String],
) {
    for t in targets {
        let mut rel = PathBuf::from(t.trim_start_matches('/'));
        while !rel.as_os_str().is_empty() {
            let p = upper.join(&rel);
            let in_lower = lowers
                .iter()
                .any(|l| std::fs::symlink_metadata(snapshots.join(l).join(&rel)).is_ok());
            if let (Ok(meta), false) = (std::fs::symlink_metadata(&p), in_lower) {
                if meta.is_dir() {
                    let _ = std::fs::remove_dir(&p);
                } else if meta.is_file() && meta.len() == 0 {
                    let _ = std::fs::remove_file(&p);
                }
            }
            rel = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        }
    }
}
