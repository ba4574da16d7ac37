//! Nodes, stages and the graph that holds them.

use serde::{Deserialize, Serialize};

use crate::Op;
use kiln_oci::ImageConfig;

/// Index of a node in [`Graph::nodes`].
pub type NodeId = usize;

/// A byte range of the Dockerfile text (`start..end`), kept on every node so errors and
/// progress lines can point at the instruction that made them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// One operation with its inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// What to do.
    pub op: Op,
    /// Nodes whose results this op reads. Exec: `[rootfs, mount sources…]` (an
    /// [`crate::ExecMount`]'s `source_input` indexes this list). File: `[dest rootfs, sources…]`
    /// (a [`crate::CopyAction::source_input`] indexes this list). Source: `[]`.
    pub inputs: Vec<NodeId>,
    /// Progress label in BuildKit's form, e.g. `[build 2/4] RUN make`.
    pub name: String,
    /// The instruction's text in the Dockerfile, if any.
    pub span: Option<Span>,
    /// Index of the stage (in [`Graph::stages`]) the node belongs to.
    pub stage: usize,
}

/// A history entry the stage adds on top of its base's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryStep {
    /// `created_by`, in BuildKit's words (`RUN /bin/sh -c make # buildkit`).
    pub created_by: String,
    /// The node whose layer this entry describes; `None` for metadata-only instructions
    /// (`empty_layer: true`). A node whose op changed nothing also gives an empty layer.
    pub node: Option<NodeId>,
    /// `comment`, e.g. `buildkit.dockerfile.v0`.
    pub comment: Option<String>,
}

/// A Dockerfile stage: a chain of nodes plus the image config it ends with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// `AS name`, lower-cased; `None` for unnamed stages.
    pub name: Option<String>,
    /// The source node the stage starts from (an image, scratch, or another stage's last node).
    pub base: NodeId,
    /// The node whose result is the stage's filesystem.
    pub last: NodeId,
    /// The base's config with the stage's instructions applied. `rootfs` and `history` are the
    /// base's; the binary appends [`Stage::history`] and the new diff ids after solving.
    pub config: ImageConfig,
    /// History entries this stage adds, in order.
    pub history: Vec<HistoryStep>,
    /// The FROM instruction's text.
    pub span: Option<Span>,
}

/// The whole build: nodes of every stage the target needs, and the target stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Every node; inputs always point at lower indices.
    pub nodes: Vec<Node>,
    /// Stages in Dockerfile order (only those the target needs are populated with nodes, but
    /// all are listed so indices match the Dockerfile).
    pub stages: Vec<Stage>,
    /// Index in `stages` of the stage to export.
    pub target: usize,
    /// `SOURCE_DATE_EPOCH` (build-arg or global ARG default), Unix seconds: the image's
    /// `created`, this build's history times, and the clamp of layer file mtimes.
    #[serde(default)]
    pub source_date_epoch: Option<i64>,
}
