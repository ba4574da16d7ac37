//! kiln's exporters: docker tar, OCI layout, registry push.
