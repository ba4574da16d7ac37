//! The build graph that the frontend produces and the solver consumes, and the
//! [`Worker`] trait the solver calls and the executor implements.
//!
//! Plain data and traits only: no behaviour lives here, so every crate above can depend on
//! it without pulling in I/O.

mod chmod;
mod graph;
mod ops;
mod worker;

pub use chmod::{invalid_chmod, Chmod, ChmodClause};
pub use graph::{Graph, HistoryStep, Node, NodeId, Span, Stage};
pub use ops::{
    CacheSharing, Chown, ContextSource, CopyAction, ExecMount, ExecOp, FileAction, FileOp,
    GitSource, HttpSource, LayerDesc, MkdirAction, MkfileAction, NetworkMode, Op, ResolvedImage,
    SecurityMode, SourceOp,
};
pub use worker::{
    ContextEntry, ContextFiles, ExecIo, Fetched, FileSource, LayerRef, ProgressEvent, ProgressSink,
    Worker, WorkerError,
};
