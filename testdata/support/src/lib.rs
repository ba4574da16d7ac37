//! Dev-only test bed for kiln's tests: everything a test needs to talk to real tools offline.
//!
//! - [`ensure_tools`] installs the Debian packages the tests rely on (once per machine).
//! - [`Registry`] runs a loopback `docker-registry` (plain, basic auth or TLS) and reads its
//!   access log.
//! - [`busybox_image`] and friends build a busybox base image from `/bin/busybox` and push it
//!   as an OCI manifest, a Docker schema 2 manifest or an image index.
//! - [`HttpServer`], [`GitDaemon`] and [`make_git_repo`] serve remote sources for ADD.
//! - [`Dockerd`] runs a private `dockerd` for `docker load` / `docker run` checks.
//! - [`Image`], [`layer_entries`], [`umoci_unpack`] and [`Tree`] read what a build produced.
//!
//! Every helper returns [`Result`]; processes are stopped by pid and their directories removed
//! when the owning value is dropped, or when the test process exits (a guard shell holds each
//! daemon and stops it when its stdin closes).
//!
//! ```no_run
//! use kiln_testsupport::{busybox_image, Registry, RegistryAuth};
//! let registry = Registry::start(RegistryAuth::None)?;
//! let base = busybox_image(&registry)?; // "127.0.0.1:PORT/busybox:latest"
//! # Ok::<(), kiln_testsupport::Error>(())
//! ```

mod busybox;
mod dockerd;
mod error;
mod guard;
mod image;
mod registry;
mod remote;
mod tools;
mod tree;

pub use busybox::{
    busybox_image, busybox_image_docker, busybox_image_index, busybox_layout, push_oci_dir,
    BUSYBOX_PATH,
};
pub use dockerd::Dockerd;
pub use error::{Error, Result};
pub use image::{
    layer_entries, pull_to_layout, skopeo_to_layout, umoci_unpack, EntryKind, Image, LayerEntry,
    Unpacked,
};
pub use registry::{Registry, RegistryAuth};
pub use remote::{make_git_repo, GitDaemon, HttpFiles, HttpServer};
pub use tools::{ensure_tools, run};
pub use tree::{Node, Tree};
