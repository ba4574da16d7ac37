//! The one error type of the test bed.

use std::path::PathBuf;

/// Result alias used by every helper.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while preparing or inspecting a test fixture.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The operation (e.g. "write", "read").
        what: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An external command could not start or exited unsuccessfully.
    #[error("command `{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, for the message.
        command: String,
        /// Exit status or spawn error.
        status: String,
        /// Its standard error (trimmed).
        stderr: String,
    },
    /// A daemon did not become ready in time.
    #[error("timed out after {secs}s waiting for {what}; log: {log}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we waited.
        secs: u64,
        /// The tail of the daemon's log.
        log: String,
    },
    /// Content we read did not have the expected shape.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was being read (e.g. "index.json").
        what: String,
        /// Why it is invalid.
        detail: String,
    },
    /// A required tool is missing and could not be installed.
    #[error("required tools missing ({missing}) and installing them failed: {detail}")]
    Tools {
        /// Names of the missing tools.
        missing: String,
        /// The installer's error.
        detail: String,
    },
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Invalid`].
    pub fn invalid(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            detail: detail.into(),
        }
    }
}
