//! The operations a node can carry.

use serde::{Deserialize, Serialize};

use kiln_oci::{Digest, ImageConfig};

/// What a node does.
// Graphs hold at most a few hundred nodes, built once: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Where a filesystem comes from.
    Source(SourceOp),
    /// A RUN.
    Exec(ExecOp),
    /// COPY / ADD / WORKDIR's mkdir.
    File(FileOp),
}

/// A filesystem that does not come from another op.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SourceOp {
    /// The empty filesystem.
    Scratch,
    /// A registry image, already resolved to a manifest.
    Image(ResolvedImage),
    /// A local build context (only usable as a COPY source).
    Context(ContextSource),
    /// `ADD https://…`: one downloaded file (only usable as a COPY source).
    Http(HttpSource),
    /// `ADD <git repository>`: a checked-out tree (only usable as a COPY source).
    Git(GitSource),
}

/// A file fetched over HTTP(S), as BuildKit's `llb.HTTP`: mode 0600, mtime from
/// `Last-Modified`, named `filename` at the root of the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpSource {
    /// The URL as written after expansion.
    pub url: String,
    /// `--checksum=sha256:…`: the content must have this digest.
    pub checksum: Option<String>,
    /// Name of the file at the root of the source (the URL path's basename).
    pub filename: String,
}

/// A git repository checked out at one commit, as BuildKit's `llb.Git`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitSource {
    /// Remote URL without the `#fragment` and kiln/BuildKit query parameters.
    pub remote: String,
    /// Branch, tag or commit to check out; `None` means the remote's HEAD.
    pub reference: Option<String>,
    /// Directory of the repository that becomes the source root (`""` for the top).
    pub subdir: String,
    /// `--keep-git-dir`: keep `.git` in the source.
    pub keep_git_dir: bool,
    /// `--checksum=<commit>`: the resolved commit must match (full sha or prefix).
    pub checksum: Option<String>,
}

/// A registry image resolved to one platform's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedImage {
    /// The normalised reference as written after expansion (`127.0.0.1:5000/busybox:latest`).
    pub reference: String,
    /// Digest of the platform manifest.
    pub manifest_digest: Digest,
    /// Digest of the config blob.
    pub config_digest: Digest,
    /// The parsed config.
    pub config: ImageConfig,
    /// Compressed layer blobs, bottom first (same order as `config.rootfs.diff_ids`).
    pub layers: Vec<LayerDesc>,
}

/// A compressed layer blob as a manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerDesc {
    /// Blob digest.
    pub digest: Digest,
    /// Blob size in bytes.
    pub size: u64,
    /// Blob media type (gzip, zstd or plain tar).
    pub media_type: String,
}

/// A named local context. The solver maps the name to a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextSource {
    /// `context` for the main build context.
    pub name: String,
}

/// Network mode of a RUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Share the host's network (BuildKit's default without CNI).
    #[default]
    Host,
    /// A new network namespace with only `lo`.
    None,
}

/// A RUN: one process in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOp {
    /// argv (shell form already wrapped in the stage's SHELL).
    pub args: Vec<String>,
    /// Environment as `K=V`, in order (stage ENV plus ARGs in effect).
    pub env: Vec<String>,
    /// Working directory (absolute).
    pub cwd: String,
    /// USER as written after expansion (`1000`, `app`, `app:staff`); empty means root.
    pub user: String,
    /// Network mode.
    pub network: NetworkMode,
    /// `RUN --mount=…` mounts and heredoc script files, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<ExecMount>,
    /// `RUN --security=`.
    #[serde(default)]
    pub security: SecurityMode,
    /// The sandbox's hostname when not the default `buildkitsandbox`
    /// (`--build-arg BUILDKIT_SANDBOX_HOSTNAME=…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Extra `/etc/hosts` entries as (host, ip) (`kiln build --add-host`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<(String, String)>,
}

/// `RUN --security=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    /// Docker's default capabilities and seccomp profile.
    #[default]
    Sandbox,
    /// Every capability, no seccomp (needs `--allow security.insecure`).
    Insecure,
}

/// `sharing=` of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheSharing {
    /// Several builds may use it at once.
    #[default]
    Shared,
    /// Each concurrent user gets its own copy.
    Private,
    /// Users take turns.
    Locked,
}

/// One mount of a RUN (BuildKit's `--mount` types, plus heredoc script files).
///
/// Paths are absolute after WORKDIR is applied. `source_input` indexes the node's `inputs`
/// (0 is the rootfs), like [`CopyAction::source_input`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ExecMount {
    /// `type=bind`: a path of the context, a stage or an image.
    Bind {
        /// Input holding the source filesystem.
        source_input: usize,
        /// Path inside that filesystem.
        source: String,
        /// Mount point.
        target: String,
        /// `rw` not given: read-only (writes with `rw` are discarded).
        readonly: bool,
    },
    /// `type=cache`: a persistent directory kept in the store across builds.
    Cache {
        /// `id=` (defaults to the target).
        id: String,
        /// Mount point.
        target: String,
        /// `sharing=`.
        sharing: CacheSharing,
        /// Owner and mode of a new cache dir.
        uid: u32,
        /// Group of a new cache dir.
        gid: u32,
        /// Mode of a new cache dir.
        mode: u32,
        /// Input seeding a new cache (`from=`), with `source=` inside it.
        source_input: Option<usize>,
        /// Path inside the seeding input.
        source: String,
        /// `ro`.
        readonly: bool,
    },
    /// `type=tmpfs`.
    Tmpfs {
        /// Mount point.
        target: String,
        /// `size=` in bytes.
        size: Option<u64>,
    },
    /// `type=secret`: a file (or env var) whose value never reaches a layer or a key.
    Secret {
        /// `id=`.
        id: String,
        /// Mount point (`/run/secrets/<id>` when neither target nor env is given).
        target: Option<String>,
        /// `env=NAME`: expose as an environment variable instead.
        env: Option<String>,
        /// `required=true`: fail when the secret is not provided.
        required: bool,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Mode.
        mode: u32,
    },
    /// `type=ssh`: the forwarded agent socket.
    Ssh {
        /// `id=` (default `default`).
        id: String,
        /// Socket path (default `/run/buildkit/ssh_agent.N`).
        target: Option<String>,
        /// `required=true`.
        required: bool,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Mode.
        mode: u32,
    },
    /// A file with fixed content (a heredoc script with a shebang), read-only.
    File {
        /// Path of the file.
        target: String,
        /// Content.
        data: String,
        /// Mode.
        mode: u32,
    },
}

/// A list of filesystem actions applied to the first input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOp {
    /// Actions, in order.
    pub actions: Vec<FileAction>,
}

/// One filesystem action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileAction {
    /// COPY / ADD of local or stage files.
    Copy(CopyAction),
    /// WORKDIR's directory creation.
    Mkdir(MkdirAction),
    /// A file with given content (COPY heredocs).
    Mkfile(MkfileAction),
}

/// Create (or replace) a file with fixed content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MkfileAction {
    /// Absolute path; parents are created (0755).
    pub path: String,
    /// Content.
    pub data: String,
    /// Mode bits.
    pub mode: u32,
    /// Owner, as written; `None` means root.
    pub chown: Option<Chown>,
}

/// Owner for copied files, as written (`1000:1000`, `app`, `app:staff`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chown {
    /// User name or numeric id.
    pub user: String,
    /// Group name or numeric id; `None` means the user's primary group.
    pub group: Option<String>,
}

/// COPY's semantics: sources (paths or wildcards) relative to a source root, to a destination.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CopyAction {
    /// Index into the node's `inputs` of the source filesystem (1 or more; 0 is the dest).
    pub source_input: usize,
    /// Source paths relative to the source root, as written (may hold wildcards).
    pub sources: Vec<String>,
    /// Absolute destination (WORKDIR already applied); a trailing `/` means "into directory".
    pub dest: String,
    /// `--chown`; `None` keeps the source owner (0:0 for context files).
    pub chown: Option<Chown>,
    /// `--chmod` as octal bits.
    pub chmod: Option<u32>,
    /// `--chmod` in symbolic form (`u=rw,g=r`, `a+X`), applied to each copied entry's mode
    /// like chmod(1); set instead of `chmod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chmod_symbolic: Option<String>,
    /// `--exclude` patterns (dockerignore syntax, matched against source-relative paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// `--parents`: keep each source's parent directories (after a `/./` pivot) under `dest`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub parents: bool,
    /// `--link`: the copy is made onto an empty filesystem, independent of the destination's
    /// contents, and stacked on the parent as its own layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub link: bool,
    /// ADD of local files: archives (tar, gzip, bzip2, xz, zstd) are extracted into `dest`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unpack: bool,
}

/// Create a directory (and its parents) if missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MkdirAction {
    /// Absolute path.
    pub path: String,
    /// Mode bits for created directories.
    pub mode: u32,
    /// Owner of created directories, as written (USER at that point); `None` means root.
    pub chown: Option<Chown>,
}
