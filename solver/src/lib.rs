//! kiln's solver: DAG scheduling, cache keys, cache index, build context.
