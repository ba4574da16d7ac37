//! kiln's exporters: docker tar, OCI layout, registry push.
//!
//! An [`ImageBundle`] is a finished image whose config and manifest are in the content store;
//! the writers below turn it into the outputs `kiln build` offers:
//!
//! - [`write_docker_tar`]: a `docker save` tarball (`manifest.json`, `repositories` and an OCI
//!   layout in one tar), loadable by `docker load` of Docker 20.10 and later.
//! - [`write_oci_layout`]: an OCI image layout, as a tar or a directory.
//! - [`push`]: upload to a registry.
//! - [`write_local`] / [`write_fs_tar`]: the image's filesystem as a directory or a tar.
//!
//! [`ImageBundle::new_with`] recompresses layers for an export ([`ExportCompression`]: gzip,
//! zstd or uncompressed, a level, force), caching conversions in the content store.
//!
//! ```no_run
//! # fn demo(config: &kiln_oci::ImageConfig, layers: Vec<kiln_oci::Descriptor>,
//! #         store: &kiln_oci::ContentStore) -> Result<(), kiln_exporter::ExportError> {
//! use kiln_exporter::{write_docker_tar, ImageBundle};
//! let bundle = ImageBundle::new(config, layers, store)?;
//! write_docker_tar(&bundle, &["app:1".to_string()], store, std::path::Path::new("app.tar"))?;
//! # Ok(()) }
//! ```

mod bundle;
mod compression;
mod docker;
mod error;
mod layout;
mod local;
mod names;
mod push;
mod tarball;

pub use bundle::ImageBundle;
pub use compression::ExportCompression;
pub use docker::write_docker_tar;
pub use error::ExportError;
pub use kiln_oci::layer::Compression;
pub use layout::write_oci_layout;
pub use local::{write_fs_tar, write_local};
pub use push::push;
