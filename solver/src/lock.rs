//! One flock per cache key under `<root>/locks/`, so two kiln processes sharing a root never
//! compute the same key at once: the second waits, then finds the first one's record.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// A held exclusive lock; released on drop (and by the kernel if the process dies).
#[derive(Debug)]
pub(crate) struct KeyLock {
    _lock: Flock<File>,
}

impl KeyLock {
    /// Blocks until the lock for `key` is held.
    pub(crate) fn acquire(locks_dir: &Path, key: &str) -> Result<Self, (PathBuf, std::io::Error)> {
        let path = locks_dir.join(format!("{key}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| (path.clone(), e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| (path.clone(), std::io::Error::from(errno)))?;
        Ok(KeyLock { _lock: lock })
    }
}

/// True when some process is computing `key` right now (holds its lock). Never creates the
/// lock file.
pub(crate) fn key_is_locked(locks_dir: &Path, key: &str) -> bool {
    let path = locks_dir.join(format!("{key}.lock"));
    let Ok(file) = OpenOptions::new().write(true).open(&path) else {
        return false;
    };
    matches!(
        Flock::lock(file, FlockArg::LockExclusiveNonblock),
        Err((_, nix::errno::Errno::EWOULDBLOCK))
    )
}
