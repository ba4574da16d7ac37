//! kiln's executor: snapshots, the RUN sandbox, file ops.
