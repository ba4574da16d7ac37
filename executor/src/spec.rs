//! What the parent tells the re-executed init to do (written as JSON to a file in the run dir).

use std::path::PathBuf;

use kiln_ir::{ContextFiles, FileAction};
use serde::{Deserialize, Serialize};

/// The argv[1] that makes the kiln binary (or the test init binary) act as the sandbox init.
pub const INIT_SUBCOMMAND: &str = "__sandbox-init";

/// One job for the init.
#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // one per job, read once
pub(crate) enum Spec {
    /// A RUN in the full sandbox.
    Run(RunSpec),
    /// COPY / mkdir actions in a private mount namespace.
    File(FileSpec),
}

/// The overlay rootfs both kinds of jobs mount.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RootfsSpec {
    /// Directory the lower dirs are relative to (the init chdirs here before mounting, so
    /// 150 short relative names fit in one page of mount options).
    pub(crate) snapshots_dir: PathBuf,
    /// Lower dir names, top first.
    pub(crate) lowers: Vec<String>,
    /// Overlay upper dir (absolute).
    pub(crate) upper: PathBuf,
    /// Overlay work dir (absolute, same filesystem as `upper`).
    pub(crate) work: PathBuf,
    /// Mount point for the merged rootfs.
    pub(crate) target: PathBuf,
}

/// A RUN.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RunSpec {
    pub(crate) rootfs: RootfsSpec,
    /// Generated `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname` on the host.
    pub(crate) hosts: PathBuf,
    pub(crate) resolv: PathBuf,
    pub(crate) hostname_file: PathBuf,
    pub(crate) hostname: String,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) cwd: String,
    pub(crate) user: String,
    pub(crate) network_none: bool,
    /// `RUN --security=insecure` (allowed by the executor's entitlements): every
    /// capability and no seccomp filter.
    #[serde(default)]
    pub(crate) insecure: bool,
    /// Read-only files bound into the sandbox (heredoc scripts), attached after `/dev`.
    #[serde(default)]
    pub(crate) files: Vec<FileMountSpec>,
    /// `RUN --mount`s, in order, attached after the files.
    #[serde(default)]
    pub(crate) mounts: Vec<MountSpec>,
    /// An empty directory (the bottom lower of the rootfs) where the init creates the mount
    /// points of `mounts`, so they never become stubs in the upper dir.
    #[serde(default)]
    pub(crate) mount_stubs: Option<PathBuf>,
    /// A directory the init mounts a private tmpfs on to hold secret files.
    #[serde(default)]
    pub(crate) secrets_dir: Option<PathBuf>,
}

/// A filesystem the init mounts (an overlay) to take a mount's source from.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FsSpec {
    /// Lower dirs, top first: names relative to the snapshots dir, or absolute paths.
    pub(crate) lowers: Vec<String>,
    /// Where to mount it (an empty directory of the run dir).
    pub(crate) mountpoint: PathBuf,
    /// Upper and work dirs for a writable (throwaway) overlay; read-only otherwise.
    pub(crate) upper_work: Option<(PathBuf, PathBuf)>,
}

/// How a new cache mount directory is made.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CacheCreate {
    /// A temp dir (same filesystem as the cache dir) filled, then renamed into place.
    pub(crate) tmp: PathBuf,
    /// `from=` and `source=`: content to seed it with.
    pub(crate) seed: Option<(FsSpec, String)>,
    /// Owner of the new, unseeded directory.
    pub(crate) uid: u32,
    /// Group of the new, unseeded directory.
    pub(crate) gid: u32,
    /// Mode of the new, unseeded directory.
    pub(crate) mode: u32,
}

/// Where the init reads a secret's value (the value itself is never written to a spec).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SecretFrom {
    /// A host file.
    File(PathBuf),
    /// An environment variable of the kiln process (inherited by the init).
    Env(String),
}

/// One `RUN --mount`, prepared by the parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum MountSpec {
    /// `type=bind`: `source` (resolved inside `fs`) at `target`.
    Bind {
        fs: FsSpec,
        source: String,
        target: String,
        readonly: bool,
    },
    /// `type=cache`: the host directory `dir`, made first when `create` is set.
    Cache {
        dir: PathBuf,
        create: Option<CacheCreate>,
        target: String,
        readonly: bool,
    },
    /// `type=tmpfs`.
    Tmpfs { target: String, size: Option<u64> },
    /// `type=secret`: a read-only file at `target` and/or an environment variable `env`.
    Secret {
        from: SecretFrom,
        target: Option<String>,
        env: Option<String>,
        uid: u32,
        gid: u32,
        mode: u32,
    },
    /// `type=ssh`: the host agent socket bound at `target`.
    Ssh { socket: PathBuf, target: String },
}

/// A host file bound read-only at `target` inside the sandbox.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FileMountSpec {
    /// The file on the host (written by the parent with the content and mode).
    pub(crate) host: PathBuf,
    /// Absolute path inside the sandbox; missing parents are created.
    pub(crate) target: String,
}

/// Where a COPY reads from, inside the file job.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SourceSpec {
    /// Layers, mounted read-only at `target` (top-first names relative to the snapshots dir;
    /// empty means the empty filesystem).
    Layers {
        lowers: Vec<String>,
        target: PathBuf,
    },
    /// A local context read in place.
    Context(ContextFiles),
}

/// File actions.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FileSpec {
    pub(crate) rootfs: RootfsSpec,
    /// An always-empty directory under the snapshots dir (pads single-layer overlays).
    pub(crate) empty: String,
    /// Indexed like `FileOp` inputs minus the first.
    pub(crate) sources: Vec<SourceSpec>,
    pub(crate) actions: Vec<FileAction>,
}

/// What the init reports on its error pipe (fd 3) when it fails before or instead of the
/// command.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum InitFailure {
    /// A COPY source is missing.
    NotFound(String),
    /// Anything else.
    Other(String),
}
