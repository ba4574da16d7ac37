//! End-to-end tests of the `kiln` binary against real tools: a loopback registry, skopeo,
//! umoci and dockerd (see `kiln-testsupport`). Every test reads the image it produced.
#![allow(clippy::unwrap_used)]

mod add_remote;
mod build_flags;
mod cache;
mod cache_export;
mod common;
mod concurrency;
mod conformance4;
mod context;
mod copy_add;
mod entitlements;
mod errors;
mod frontend;
mod inspect;
mod local_output;
mod mounts;
mod named_contexts;
mod outputs;
mod prune;
mod registries;
mod rootless;
mod sandbox;
