//! Image references (`[registry/]repository[:tag][@digest]`) with Docker's normalisation.
//!
//! STUB: signatures agreed between crates; the bodies are being written.

use std::fmt;
use std::str::FromStr;

use crate::Digest;

/// A parsed, normalised image reference.
///
/// `busybox` → registry `docker.io`, repository `library/busybox`, tag `latest`;
/// `127.0.0.1:5000/a/b:1` → registry `127.0.0.1:5000`, repository `a/b`, tag `1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host (and port).
    pub registry: String,
    /// Repository path.
    pub repository: String,
    /// Tag, if any (`latest` is filled in when neither tag nor digest is given).
    pub tag: Option<String>,
    /// Digest, if any.
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid reference format {input:?}: {reason}")]
pub struct RefError {
    /// The input.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

impl FromStr for ImageRef {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        todo!("{s}")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}
