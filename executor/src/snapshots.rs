//! Unpacked layers under `<root>/snapshots/<short id>/`, in overlay format.
//!
//! Short names (12 hex digits of the diff id) keep 150 lower dirs inside one page of overlay
//! mount options. Each snapshot is made once, atomically (temp dir + rename), under a flock
//! in `<root>/locks/`, so concurrent kiln processes can share the root.

use std::fs::File;
use std::path::{Path, PathBuf};

use kiln_oci::layer::unpack_layer;
use kiln_oci::Digest;
use nix::fcntl::{Flock, FlockArg};

use crate::error::ExecutorError;

/// A directory that is always empty (pads overlays).
pub(crate) const EMPTY: &str = "kiln-empty";
/// The bottom layer of every RUN rootfs: mount points for the sandbox, so they never become
/// stubs in the upper dir.
pub(crate) const STUBS: &str = "kiln-stubs";

/// Paths [`STUBS`] provides (directories end with `/`).
const STUB_ENTRIES: [&str; 7] = [
    "proc/",
    "sys/",
    "dev/",
    "etc/",
    "etc/hosts",
    "etc/resolv.conf",
    "etc/hostname",
];

/// The snapshot directory of one kiln root.
#[derive(Debug)]
pub(crate) struct Snapshots {
    dir: PathBuf,
    locks: PathBuf,
}

/// The short snapshot name of a diff id.
pub(crate) fn short_name(diff_id: &Digest) -> String {
    diff_id.hex()[..12].to_string()
}

impl Snapshots {
    /// Opens (creating) `<root>/snapshots` and `<root>/locks`.
    pub(crate) fn open(root: &Path) -> Result<Self, ExecutorError> {
        let s = Snapshots {
            dir: root.join("snapshots"),
            locks: root.join("locks"),
        };
        for d in [&s.dir, &s.locks] {
            std::fs::create_dir_all(d).map_err(ExecutorError::io(d))?;
        }
        s.make_once(EMPTY, |_| Ok(()))?;
        s.make_once(STUBS, |tmp| {
            for e in STUB_ENTRIES {
                let p = tmp.join(e.trim_end_matches('/'));
                if e.ends_with('/') {
                    std::fs::create_dir(&p).map_err(ExecutorError::io(&p))?;
                } else {
                    File::create(&p).map_err(ExecutorError::io(&p))?;
                }
            }
            Ok(())
        })?;
        Ok(s)
    }

    /// The directory lower dir names are relative to.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self, name: &str) -> Result<Flock<File>, ExecutorError> {
        let path = self.locks.join(format!("snapshot-{name}.lock"));
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(ExecutorError::io(&path))?;
        Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| ExecutorError::Io {
            path,
            source: e.into(),
        })
    }

    /// Creates `name` with `fill` unless it exists: fills a temp dir, then renames it.
    fn make_once(
        &self,
        name: &str,
        fill: impl FnOnce(&Path) -> Result<(), ExecutorError>,
    ) -> Result<(), ExecutorError> {
        let dest = self.dir.join(name);
        if dest.is_dir() {
            return Ok(());
        }
        let _lock = self.lock(name)?;
        if dest.is_dir() {
            return Ok(());
        }
        let tmp = self.dir.join(format!("tmp-{name}-{}", std::process::id()));
        // A temp dir of ours can only be left by a crashed earlier process with our pid.
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp).map_err(ExecutorError::io(&tmp))?;
        let result = fill(&tmp)
            .and_then(|()| std::fs::rename(&tmp, &dest).map_err(ExecutorError::io(&dest)));
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Unpacks a blob as the snapshot of `diff_id` unless present, verifying the diff id.
    /// Returns the snapshot's name.
    pub(crate) fn ensure(
        &self,
        diff_id: &Digest,
        blob: &Digest,
        blob_path: &Path,
        media_type: &str,
    ) -> Result<String, ExecutorError> {
        let name = short_name(diff_id);
        self.make_once(&name, |tmp| {
            let actual = unpack_layer(blob_path, media_type, tmp).map_err(|source| {
                ExecutorError::Layer {
                    layer: blob.to_string(),
                    source,
                }
            })?;
            if &actual != diff_id {
                return Err(ExecutorError::DiffIdMismatch {
                    blob: blob.clone(),
                    expected: diff_id.clone(),
                    actual,
                });
            }
            Ok(())
        })?;
        Ok(name)
    }

    /// Makes an overlay upper dir the snapshot of `diff_id` (it already is in overlay
    /// format), or deletes it when that snapshot exists.
    pub(crate) fn import(&self, upper: &Path, diff_id: &Digest) -> Result<String, ExecutorError> {
        let name = short_name(diff_id);
        let dest = self.dir.join(&name);
        let _lock = self.lock(&name)?;
        if dest.is_dir() {
            std::fs::remove_dir_all(upper).map_err(ExecutorError::io(upper))?;
        } else {
            std::fs::rename(upper, &dest).map_err(ExecutorError::io(&dest))?;
        }
        Ok(name)
    }
}
