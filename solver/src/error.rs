//! The solver's error: what failed, and at which node.

use std::path::PathBuf;

use kiln_ir::{NodeId, WorkerError};

use crate::context::ContextError;
use crate::index::IndexError;

/// A failed solve. `Display` gives the cause only; [`SolveError::node`] tells which node
/// failed, so the caller can prefix the node's name and point at its Dockerfile span.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct SolveError {
    /// The node that failed, when one did.
    pub node: Option<NodeId>,
    /// Why.
    #[source]
    pub kind: SolveErrorKind,
}

/// Why a solve failed.
#[derive(Debug, thiserror::Error)]
pub enum SolveErrorKind {
    /// The worker failed (a RUN exited non-zero, a pull failed, …).
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// A COPY source path that is not in the (`.dockerignore`-filtered) context.
    #[error("COPY failed: file not found in build context or excluded by .dockerignore: stat {path}: file does not exist")]
    SourceNotFound {
        /// The source path as written.
        path: String,
    },
    /// The graph names a context the caller did not provide.
    #[error("build context {name:?} was not provided")]
    UnknownContext {
        /// The context name.
        name: String,
    },
    /// A context could not be read or hashed.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The cache index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The build's lease (what a concurrent `kiln prune` must keep) could not be written.
    #[error(transparent)]
    Lease(#[from] crate::lease::LeaseError),
    /// A directory or lock file under the root could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The graph is not something the solver can run (a bad index, an op with the wrong
    /// inputs).
    #[error("invalid build graph: {0}")]
    InvalidGraph(String),
    /// The build was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A solver task panicked or was lost.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SolveError {
    /// An error at `node`.
    pub fn at(node: NodeId, kind: impl Into<SolveErrorKind>) -> Self {
        SolveError {
            node: Some(node),
            kind: kind.into(),
        }
    }

    /// An error not tied to a node.
    pub fn general(kind: impl Into<SolveErrorKind>) -> Self {
        SolveError {
            node: None,
            kind: kind.into(),
        }
    }
}
