//! The executor's integration tests: real namespaces, overlay mounts and layers (run as root).
#![allow(clippy::unwrap_used)] // tests panic on unexpected failures by design

mod copy;
mod copy_add;
mod copy_flags;
mod fixture;
mod mounts;
mod run;
mod sandbox_security;
