//! Integration tests of kiln-frontend: golden Dockerfiles, lowering, properties.
#![allow(clippy::unwrap_used)]

mod conformance;
mod dash;
mod fake;
mod golden;
mod lint;
mod lowering;
mod meaning;
mod named_contexts;
mod outline;
mod props;
mod syntax_golden;
mod syntax_props;
