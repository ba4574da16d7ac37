//! kiln's image model and its bytes.
//!
//! Digests, media types, the image config (OCI plus Docker's extensions), the content
//! store, the layer codec and the registry client live here; every other crate speaks
//! these types.

pub use oci_spec;

pub mod config;
pub mod digest;
pub mod manifest;
pub mod media_types;

pub use config::{ContainerConfig, HistoryEntry, ImageConfig, RootFs};
pub use digest::{Digest, DigestError, Sha256Writer};
pub use manifest::{Descriptor, Index, Manifest, Platform};
pub mod layer;
pub mod reference;
pub mod registry;
pub mod store;

pub use reference::ImageRef;
pub use store::ContentStore;
