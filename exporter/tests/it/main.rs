//! Integration tests: the registry client and the exporters against real tools (a loopback
//! docker-registry, skopeo, umoci).
#![allow(clippy::unwrap_used)]

mod compression;
mod fixture;
mod outputs;
mod push;
mod registry_client;
