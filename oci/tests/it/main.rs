//! kiln-oci integration tests: real files, real tars, real syscalls (run as root).

mod flatten;
mod fs_snapshot;
mod hostile_tars;
mod layer_proptest;
mod layer_roundtrip;
