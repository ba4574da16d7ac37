//! Leases: what a running build uses, so a concurrent `kiln prune` leaves it alone.
//!
//! Each build holds `<root>/locks/lease-<pid>-<n>`, flock'd exclusively for its lifetime (the
//! kernel releases the lock when the process dies, so a lease whose lock can be taken is
//! dead). The file starts with `start <unix ns>` and gets one line per thing the build
//! relies on: `layer <blob hex> <diff id hex>` (the blob, its snapshot and its conversions),
//! `blob <hex>`, `path <root-relative path>` (a download directory).
//!
//! A live lease protects what it lists and everything changed since it started (what the
//! build creates itself). Listing and pruning are serialised by `<root>/locks/gc.lock`: a
//! build appends its lines and checks that the things still exist under a shared lock;
//! `kiln prune` reads the leases and moves its victims away under an exclusive one. So either
//! the prune came first and the build sees the thing gone (and makes it again), or the prune
//! sees the line.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use kiln_ir::LayerRef;
use kiln_oci::Digest;
use nix::fcntl::{Flock, FlockArg};

/// The file serialising lease updates against `kiln prune`.
pub(crate) const GC_LOCK: &str = "gc.lock";
/// Prefix of lease files in `<root>/locks/`.
pub(crate) const LEASE_PREFIX: &str = "lease-";
/// Prefix of a lease file being created (renamed to `lease-…` once locked).
pub(crate) const NEW_LEASE_PREFIX: &str = "tmp-lease-";

/// Why a lease operation failed.
#[derive(Debug, thiserror::Error)]
#[error("lease {path}: {source}")]
pub struct LeaseError {
    /// The file.
    pub path: PathBuf,
    /// The error.
    #[source]
    pub source: std::io::Error,
}

fn lease_err(path: &Path) -> impl FnOnce(std::io::Error) -> LeaseError + '_ {
    move |source| LeaseError {
        path: path.to_path_buf(),
        source,
    }
}

/// Something a build relies on.
#[derive(Debug, Clone, Copy)]
pub enum Held<'a> {
    /// A layer: its blob, its snapshot and its conversions to other compressions.
    Layer(&'a LayerRef),
    /// A blob (an image config or manifest).
    Blob(&'a Digest),
    /// A file or directory under the root (a download).
    Path(&'a Path),
}

/// A running build's lease; removed when dropped (and dead when the process dies).
#[derive(Debug)]
pub struct Lease {
    root: PathBuf,
    path: PathBuf,
    file: Mutex<Flock<File>>,
}

/// Takes `<root>/locks/gc.lock`, shared (builds) or exclusive (prune).
pub(crate) fn gc_lock(locks: &Path, exclusive: bool) -> Result<Flock<File>, LeaseError> {
    let path = locks.join(GC_LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(lease_err(&path))?;
    let arg = if exclusive {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockShared
    };
    Flock::lock(file, arg).map_err(|(_, e)| LeaseError {
        path,
        source: e.into(),
    })
}

impl Lease {
    /// Creates and locks a new lease under `<root>/locks/`.
    pub fn acquire(root: &Path) -> Result<Lease, LeaseError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let locks = root.join("locks");
        std::fs::create_dir_all(&locks).map_err(lease_err(&locks))?;
        let name = format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        // Locked before it gets its real name, so prune never sees it unlocked.
        let tmp = locks.join(format!("{NEW_LEASE_PREFIX}{name}"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)
            .map_err(lease_err(&tmp))?;
        let mut file = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| LeaseError {
            path: tmp.clone(),
            source: e.into(),
        })?;
        writeln!(&mut *file, "start {}", crate::index::now_ns()).map_err(lease_err(&tmp))?;
        let path = locks.join(format!("{LEASE_PREFIX}{name}"));
        std::fs::rename(&tmp, &path).map_err(lease_err(&path))?;
        Ok(Lease {
            root: root.to_path_buf(),
            path,
            file: Mutex::new(file),
        })
    }

    /// The lease file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds `items` to the lease, then tells whether they all still exist (a layer counts as
    /// present when its blob is; its snapshot is made again from the blob when missing). When
    /// this returns true, no prune removes them until the lease ends.
    pub fn hold(&self, items: &[Held<'_>]) -> Result<bool, LeaseError> {
        let mut text = String::new();
        for item in items {
            match item {
                Held::Layer(l) => {
                    text.push_str(&format!("layer {} {}\n", l.blob.hex(), l.diff_id.hex()))
                }
                Held::Blob(d) => text.push_str(&format!("blob {}\n", d.hex())),
                Held::Path(p) => {
                    let rel = p.strip_prefix(&self.root).unwrap_or(p);
                    text.push_str(&format!("path {}\n", rel.display()));
                }
            }
        }
        let _gc = gc_lock(&self.root.join("locks"), false)?;
        {
            let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
            file.write_all(text.as_bytes())
                .map_err(lease_err(&self.path))?;
        }
        let blobs = self.root.join("content/blobs/sha256");
        Ok(items.iter().all(|item| match item {
            Held::Layer(l) => blobs.join(l.blob.hex()).is_file(),
            Held::Blob(d) => blobs.join(d.hex()).is_file(),
            Held::Path(p) => p.exists(),
        }))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Still locked: a prune cannot be reading it as dead.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What the live leases protect, as `kiln prune` reads them.
#[derive(Debug, Default)]
pub(crate) struct LiveLeases {
    /// Start of the oldest live lease (unix ns); things changed since are kept.
    pub(crate) oldest_start: Option<i64>,
    /// Blob hex digests.
    pub(crate) blobs: HashSet<String>,
    /// Diff id hex digests (snapshots and conversions).
    pub(crate) diff_ids: HashSet<String>,
    /// Root-relative paths.
    pub(crate) paths: HashSet<String>,
    /// How many leases are live.
    pub(crate) count: usize,
}

/// A lease file whose process is gone.
#[derive(Debug)]
pub(crate) struct DeadLease {
    /// The file.
    pub(crate) path: PathBuf,
}

/// Reads every lease under `locks`: the live ones' contents, and the dead ones.
pub(crate) fn scan(locks: &Path) -> Result<(LiveLeases, Vec<DeadLease>), LeaseError> {
    let mut live = LiveLeases::default();
    let mut dead = Vec::new();
    let entries = match std::fs::read_dir(locks) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((live, dead)),
        Err(e) => return Err(lease_err(locks)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(lease_err(locks))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if let Some(rest) = name.strip_prefix(NEW_LEASE_PREFIX) {
            if !pid_alive(rest.split('-').next().unwrap_or_default()) {
                dead.push(DeadLease { path });
            }
            continue;
        }
        if !name.starts_with(LEASE_PREFIX) {
            continue;
        }
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(lease_err(&path)(e)),
        };
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(lease_err(&path))?;
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            // Lockable: its process is gone.
            Ok(_) => dead.push(DeadLease { path }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                live.count += 1;
                parse(&text, &mut live);
            }
            Err((_, e)) => return Err(lease_err(&path)(e.into())),
        }
    }
    Ok((live, dead))
}

fn parse(text: &str, live: &mut LiveLeases) {
    for line in text.lines() {
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("start"), Some(ns), None) => {
                // An unreadable start protects everything changed since the epoch.
                let ns = ns.parse().unwrap_or(0);
                live.oldest_start = Some(live.oldest_start.map_or(ns, |o: i64| o.min(ns)));
            }
            (Some("layer"), Some(blob), Some(diff)) => {
                live.blobs.insert(blob.to_string());
                live.diff_ids.insert(diff.to_string());
            }
            (Some("blob"), Some(blob), None) => {
                live.blobs.insert(blob.to_string());
            }
            (Some("path"), Some(first), rest) => {
                let p = match rest {
                    Some(r) => format!("{first} {r}"),
                    None => first.to_string(),
                };
                live.paths.insert(p);
            }
            _ => {}
        }
    }
    if live.oldest_start.is_none() {
        live.oldest_start = Some(0);
    }
}

/// True when a process with this pid exists (an unparsable pid counts as alive).
pub(crate) fn pid_alive(pid: &str) -> bool {
    match pid.parse::<u32>() {
        Ok(n) => Path::new("/proc").join(n.to_string()).exists(),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_lease_is_read_and_a_dropped_one_is_gone() -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let lease = Lease::acquire(root.path())?;
        let layer = LayerRef {
            diff_id: Digest::of(b"diff"),
            blob: Digest::of(b"blob"),
            size: 4,
            media_type: "x".into(),
        };
        assert!(
            !lease.hold(&[Held::Layer(&layer)])?,
            "the blob does not exist"
        );
        let dl = root.path().join("downloads/http-1");
        std::fs::create_dir_all(&dl)?;
        assert!(lease.hold(&[Held::Path(&dl)])?);
        let (live, dead) = scan(&root.path().join("locks"))?;
        assert_eq!(live.count, 1);
        assert!(dead.is_empty());
        assert!(live.blobs.contains(layer.blob.hex()));
        assert!(live.diff_ids.contains(layer.diff_id.hex()));
        assert!(live.paths.contains("downloads/http-1"));
        assert!(live.oldest_start.is_some_and(|s| s > 0));
        let path = lease.path().to_path_buf();
        drop(lease);
        assert!(!path.exists());
        Ok(())
    }

    #[test]
    fn an_unlocked_lease_file_is_dead() -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let locks = root.path().join("locks");
        std::fs::create_dir_all(&locks)?;
        std::fs::write(locks.join("lease-999999999-0"), "start 1\nblob aa\n")?;
        let (live, dead) = scan(&locks)?;
        assert_eq!(live.count, 0);
        assert!(live.blobs.is_empty());
        assert_eq!(dead.len(), 1);
        Ok(())
    }
}
