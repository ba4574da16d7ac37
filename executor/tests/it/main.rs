//! The executor's integration tests: real namespaces, overlay mounts and layers (run as root).

mod copy;
mod fixture;
mod run;
