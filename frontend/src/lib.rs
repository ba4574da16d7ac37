//! Dockerfile text to kiln's build graph.
