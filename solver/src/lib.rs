//! kiln's solver: turns an [`kiln_ir::Graph`] into layers.
//!
//! - [`Solver`] schedules the nodes the target needs as a deduplicated DAG, independent
//!   branches concurrently, calling the [`kiln_ir::Worker`] on blocking threads;
//! - cache keys (version byte + blake3 over a canonical JSON preimage, stored with the record)
//!   are looked up in `<root>/index.sqlite` before any work, with a flock per key under
//!   `<root>/locks/` so processes sharing a root compute each key once;
//! - [`context`] reads build contexts: `.dockerignore` ([`context::DockerIgnore`]), the
//!   filtered file list and content digests of what a COPY selects
//!   ([`context::ContextIndex`]), with a persistent stat cache;
//! - every solve holds a [`Lease`] on what it uses, and [`gc`] (`kiln du`, `kiln prune`)
//!   removes what neither a cache record nor a live lease references;
//! - [`remote_cache`] exports cache records and layers to a directory or a registry and
//!   imports them on another machine (`--cache-to`, `--cache-from`).

pub mod context;
mod copykey;
mod error;
mod explain;
pub mod gc;
mod index;
mod key;
mod lease;
mod lock;
mod node;
pub mod remote_cache;
mod solver;
mod time;

pub use error::{SolveError, SolveErrorKind};
pub use index::{CacheIndex, CacheRecord, IndexError};
pub use lease::{Held, Lease, LeaseError};
pub use solver::{NodeOutput, SolveResult, Solver, SolverOptions};
