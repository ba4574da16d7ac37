//! Assembles the final image config of a stage from the frontend's view of it and the
//! solver's results: diff ids, history with creation times, `created`.

use std::collections::BTreeMap;

use kiln_ir::{Graph, LayerRef, NodeId};
use kiln_oci::{HistoryEntry, ImageConfig};
use kiln_solver::NodeOutput;

/// The timestamp used when nothing in the build gives one (a metadata-only scratch image).
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// A stage's finished config and its layers, bottom first.
pub(crate) struct StageImage {
    pub(crate) config: ImageConfig,
    pub(crate) layers: Vec<LayerRef>,
}

/// Builds the config of `stage`. A stage built on an earlier stage inherits that stage's
/// history (assembled recursively); every layer-producing step's entry takes the creation
/// time of its (possibly cached) result, so a rebuild from cache gives the same digest.
pub(crate) fn assemble(
    graph: &Graph,
    stage: usize,
    outputs: &BTreeMap<NodeId, NodeOutput>,
) -> Result<StageImage, String> {
    let st = graph
        .stages
        .get(stage)
        .ok_or_else(|| format!("no stage {stage}"))?;
    let out = outputs
        .get(&st.last)
        .ok_or_else(|| format!("stage {stage} was not solved"))?;
    let mut config = st.config.clone();

    // Base history: another stage's assembled history, or the image's own.
    // Stages the target does not need were not lowered: their placeholder (node 0, default
    // config) must not pass for the parent of a stage whose base is node 0.
    let parent = graph.stages[..stage]
        .iter()
        .rposition(|p| p.last == st.base && p.config != ImageConfig::default());
    if let Some(p) = parent {
        config.history = assemble(graph, p, outputs)?.config.history;
    } else if config.history.is_empty() && !config.rootfs.diff_ids.is_empty() {
        // A base without history still needs one entry per layer to keep the 1:1 rule.
        let entry = HistoryEntry {
            created: config.created.clone(),
            ..HistoryEntry::default()
        };
        config.history = vec![entry; config.rootfs.diff_ids.len()];
    }
    let mut last_created = config
        .history
        .iter()
        .rev()
        .find_map(|h| h.created.clone())
        .or_else(|| config.created.clone());

    // SOURCE_DATE_EPOCH replaces the time of every entry this build adds, and `created`.
    let epoch = graph.source_date_epoch.map(crate::epoch::rfc3339);
    for step in &st.history {
        let (created, empty_layer) = match step.node.and_then(|n| outputs.get(&n)) {
            Some(o) => {
                last_created = Some(o.created.clone());
                (Some(o.created.clone()), o.layer.is_none())
            }
            None => (last_created.clone(), true),
        };
        let created = epoch.clone().or(created);
        config.history.push(HistoryEntry {
            created,
            created_by: Some(step.created_by.clone()),
            author: None,
            comment: step.comment.clone(),
            empty_layer,
        });
    }
    config.created = Some(epoch.or(last_created).unwrap_or_else(|| EPOCH.to_string()));
    // Entries without a time (metadata before any layer) take the image's.
    for h in config.history.iter_mut().filter(|h| h.created.is_none()) {
        h.created = config.created.clone();
    }
    config.rootfs.kind = "layers".into();
    config.rootfs.diff_ids = out.rootfs.iter().map(|l| l.diff_id.clone()).collect();
    let non_empty = config.history.iter().filter(|h| !h.empty_layer).count();
    if !config.history.is_empty() && non_empty != config.rootfs.diff_ids.len() {
        return Err(format!(
            "internal error: {} non-empty history entries for {} layers",
            non_empty,
            config.rootfs.diff_ids.len()
        ));
    }
    Ok(StageImage {
        config,
        layers: out.rootfs.clone(),
    })
}
