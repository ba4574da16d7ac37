//! The seam between the solver and the executor.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{ExecOp, FileOp, NodeId, ResolvedImage, SourceOp};
use kiln_oci::Digest;

/// A layer known to the store: its blob and its unpacked identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerRef {
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Digest of the compressed blob in the content store.
    pub blob: Digest,
    /// Size of the compressed blob.
    pub size: u64,
    /// Media type of the blob.
    pub media_type: String,
}

/// One path of a local context that survived `.dockerignore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextEntry {
    /// Path relative to the context root, `/`-separated, no leading `./`.
    pub path: String,
    /// True for directories.
    pub is_dir: bool,
}

/// The included paths of a local context, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextFiles {
    /// The context directory on the host.
    pub root: PathBuf,
    /// Every included path (files, symlinks and directories), sorted.
    pub entries: Vec<ContextEntry>,
}

/// Where a COPY reads from, or what a RUN's `--mount=type=bind|cache,from=…` mounts.
#[derive(Debug, Clone)]
pub enum FileSource {
    /// A stack of layers (another stage or an image), bottom first.
    Layers(Vec<LayerRef>),
    /// A local context, already filtered by `.dockerignore`.
    Context(Arc<ContextFiles>),
}

/// A remote source (`ADD` of a URL or a git repository) fetched to local files.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// What the fetch produced: a directory tree listed like a context.
    pub files: Arc<ContextFiles>,
    /// Identity of the fetched content (a content digest, or the resolved commit and
    /// options): it keys the COPY that reads it.
    pub digest: String,
}

/// Progress of one node, as the solver and the worker report it.
#[derive(Debug, Clone)]
pub enum ProgressEvent {
    /// The node started (BuildKit's `#N [stage 1/3] RUN …`).
    Started {
        /// Node.
        node: NodeId,
        /// Its label.
        name: String,
    },
    /// Output of a RUN (`stream` 1 = stdout, 2 = stderr).
    Log {
        /// Node.
        node: NodeId,
        /// 1 or 2.
        stream: u8,
        /// Raw bytes.
        data: Vec<u8>,
    },
    /// The node's result came from the cache.
    Cached {
        /// Node.
        node: NodeId,
    },
    /// The node finished.
    Done {
        /// Node.
        node: NodeId,
    },
    /// The node failed.
    Failed {
        /// Node.
        node: NodeId,
        /// One-line reason.
        error: String,
    },
}

/// Receives progress events; the binary renders them.
pub trait ProgressSink: Send + Sync {
    /// One event.
    fn event(&self, event: ProgressEvent);
}

/// What an exec needs besides its op: where to report output and when to stop.
pub struct ExecIo<'a> {
    /// The node being run (for log events).
    pub node: NodeId,
    /// Output goes here as [`ProgressEvent::Log`].
    pub progress: &'a dyn ProgressSink,
    /// Set when the build is cancelled; the worker then stops the process tree.
    pub cancel: Arc<AtomicBool>,
}

/// Why a worker call failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The command ran and exited non-zero.
    #[error("process \"{command}\" did not complete successfully: exit code: {code}")]
    ExitCode {
        /// The argv joined with spaces.
        command: String,
        /// Exit code (128+n for a signal).
        code: i32,
        /// The last lines of its output.
        tail: Vec<String>,
    },
    /// A COPY source does not exist (or is excluded by .dockerignore).
    #[error("{0}")]
    NotFound(String),
    /// The build was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Anything else, with its context.
    #[error("{0}")]
    Other(String),
}

/// Runs ops. The executor implements it; the solver calls it from blocking threads, so every
/// method may block.
pub trait Worker: Send + Sync {
    /// Makes sure the image's layers are in the store (fetching what is missing) and returns
    /// them bottom first.
    fn pull(
        &self,
        image: &ResolvedImage,
        node: NodeId,
        progress: &dyn ProgressSink,
    ) -> Result<Vec<LayerRef>, WorkerError>;

    /// Runs a RUN on top of `rootfs`; returns the new layer, or `None` when nothing changed.
    /// `sources` are the filesystems its bind and cache mounts read (indexed like the node's
    /// inputs minus the first, so a mount's `source_input` `i` is
    /// `sources[i - 1]`).
    fn exec(
        &self,
        rootfs: &[LayerRef],
        op: &ExecOp,
        sources: &[FileSource],
        io: &ExecIo<'_>,
    ) -> Result<Option<LayerRef>, WorkerError>;

    /// Applies a file op on top of `rootfs`, reading from `sources` (indexed like the node's
    /// inputs minus the first); returns the new layer, or `None` when nothing changed.
    fn file(
        &self,
        rootfs: &[LayerRef],
        op: &FileOp,
        sources: &[FileSource],
        io: &ExecIo<'_>,
    ) -> Result<Option<LayerRef>, WorkerError>;

    /// Fetches a remote source (`SourceOp::Http` or `SourceOp::Git`) into local files.
    /// Workers that cannot fetch refuse.
    fn fetch(
        &self,
        source: &SourceOp,
        _node: NodeId,
        _progress: &dyn ProgressSink,
    ) -> Result<Fetched, WorkerError> {
        Err(WorkerError::Other(format!(
            "this worker cannot fetch remote sources ({source:?})"
        )))
    }
}
