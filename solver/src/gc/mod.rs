//! Garbage collection of a kiln root: [`du`] tells what the store holds and what a prune
//! would free; [`prune`] frees it.
//!
//! Roots (what is kept): every cache record (its layer, or an image source's layers: the
//! blobs, their snapshots and their conversions to other compressions), and everything a
//! live [`crate::Lease`] lists or that changed since it started. Without `--all`, a prune
//! removes the rest: dangling blobs (configs and manifests of earlier results, layers no
//! record uses), snapshots without a record, downloads and conversions nobody uses, leftovers
//! of dead processes (`runs/`, `tmp-*`), stale temp files and dead leases. `--all` also
//! deletes every cache record and the cache mounts no RUN is using; `--keep-storage` deletes
//! least recently used records only until the store fits.
//!
//! Crash safety: records go first, in one transaction; then each victim is renamed into
//! `<root>/trash/<pid>-<n>/` (a snapshot is complete exactly when `snapshots/<name>` exists,
//! and a rename removes it at once) and the trash is emptied afterwards. Leftover trash is
//! removed by the next prune. The records' deletion and the renames happen under the
//! exclusive `locks/gc.lock`, which builds take shared when they extend their leases.

mod plan;
mod scan;
mod units;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;

use crate::index::{CacheIndex, GcRecord, IndexError};
use crate::lease::{self, LeaseError};
use crate::lock::key_is_locked;
pub use units::{format_size, parse_duration, parse_size, UnitError};

/// Why `du` or `prune` failed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// A file or directory of the store could not be read or moved.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The cache index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A lease could not be read or the GC lock taken.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// `--root` is not a directory.
    #[error("{0}: not a directory")]
    NotADirectory(PathBuf),
}

/// The kinds of things a kiln root holds, in `kiln du`'s order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Layer blobs (compressed tars).
    Layers,
    /// Image configs and manifests.
    Configs,
    /// Unpacked layers.
    Snapshots,
    /// `RUN --mount=type=cache` directories.
    CacheMounts,
    /// ADD URL / git downloads.
    Downloads,
    /// Remembered layer conversions (`compression=`) and the repositories blobs were pulled
    /// from (for cross-repository mounts on push).
    Conversions,
    /// RUN scratch directories left by dead processes.
    Runs,
    /// Temp files and directories.
    Temp,
    /// What an interrupted prune left to delete.
    Trash,
    /// Lock files and leases.
    Locks,
    /// The SQLite index.
    Index,
}

impl Category {
    /// Every category, in display order.
    pub const ALL: [Category; 11] = [
        Category::Layers,
        Category::Configs,
        Category::Snapshots,
        Category::CacheMounts,
        Category::Downloads,
        Category::Conversions,
        Category::Runs,
        Category::Temp,
        Category::Trash,
        Category::Locks,
        Category::Index,
    ];

    /// The name `kiln du` shows.
    pub fn label(self) -> &'static str {
        match self {
            Category::Layers => "Layers",
            Category::Configs => "Configs/manifests",
            Category::Snapshots => "Snapshots",
            Category::CacheMounts => "Cache mounts",
            Category::Downloads => "Downloads",
            Category::Conversions => "Conversions",
            Category::Runs => "Runs (left over)",
            Category::Temp => "Temp files",
            Category::Trash => "Trash",
            Category::Locks => "Locks and leases",
            Category::Index => "Index",
        }
    }
}

/// Count and bytes of one category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Amount {
    /// Entries (blobs, snapshot directories, files…).
    pub count: u64,
    /// Bytes (file sizes; hard links once).
    pub size: u64,
}

impl Amount {
    fn add(&mut self, size: u64) {
        self.count += 1;
        self.size += size;
    }
}

/// One row of `kiln du`.
#[derive(Debug, Clone, Serialize)]
pub struct UsageRow {
    /// What.
    pub category: Category,
    /// Everything of that kind.
    pub total: Amount,
    /// What `kiln prune` (no flags) would remove now.
    pub reclaimable: Amount,
}

/// What a root holds.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// The root.
    pub root: PathBuf,
    /// Per category, every category present.
    pub rows: Vec<UsageRow>,
    /// Cache records in the index.
    pub records: u64,
    /// Builds running now (live leases).
    pub live_leases: u64,
    /// Total bytes.
    pub total: u64,
    /// Bytes `kiln prune` would free now.
    pub reclaimable: u64,
}

/// What to prune.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Also delete every cache record and unused cache mounts.
    pub all: bool,
    /// Delete least recently used records until the store is at most this many bytes.
    pub keep_storage: Option<u64>,
    /// Keep what was used or changed within this long.
    pub until: Option<std::time::Duration>,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Cache records deleted.
    pub records: u64,
    /// Per category.
    pub removed: BTreeMap<Category, Amount>,
    /// Total bytes freed.
    pub freed: u64,
}

/// Reads the records, without creating an index that does not exist.
fn open_index(root: &Path) -> Result<Option<CacheIndex>, GcError> {
    let db = root.join("index.sqlite");
    if !db.is_file() {
        return Ok(None);
    }
    Ok(Some(CacheIndex::open(&db)?))
}

fn load_records(index: Option<&CacheIndex>) -> Result<Vec<GcRecord>, GcError> {
    Ok(match index {
        Some(i) => i.gc_records()?,
        None => Vec::new(),
    })
}

/// False when `root` does not exist (nothing to report); an error when it is not a directory.
fn check_root(root: &Path) -> Result<bool, GcError> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(true),
        Ok(_) => Err(GcError::NotADirectory(root.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(GcError::Io {
            path: root.to_path_buf(),
            source,
        }),
    }
}

/// Sizes and counts per category under `root`, and what a prune would free. Changes nothing
/// (a missing root reports an empty store).
pub fn du(root: &Path) -> Result<Usage, GcError> {
    let mut usage = Usage {
        root: root.to_path_buf(),
        rows: Vec::new(),
        records: 0,
        live_leases: 0,
        total: 0,
        reclaimable: 0,
    };
    if !check_root(root)? {
        return Ok(usage);
    }
    let index = open_index(root)?;
    let records = load_records(index.as_ref())?;
    let (live, dead) = lease::scan(&root.join("locks"))?;
    let inv = scan::scan(root, &dead)?;
    let opts = PruneOptions::default();
    let cx = plan::Context {
        records: &records,
        leases: &live,
        opts: &opts,
        now_ns: crate::index::now_ns(),
    };
    let victims = plan::victims(&inv, &cx, &[]);
    let mut totals: BTreeMap<Category, (Amount, Amount)> = BTreeMap::new();
    for e in &inv.entries {
        totals.entry(e.category).or_default().0.add(e.size);
    }
    for &i in &victims {
        let e = &inv.entries[i];
        totals.entry(e.category).or_default().1.add(e.size);
    }
    for (category, (total, reclaimable)) in totals {
        usage.total += total.size;
        usage.reclaimable += reclaimable.size;
        usage.rows.push(UsageRow {
            category,
            total,
            reclaimable,
        });
    }
    usage.records = records.len() as u64;
    usage.live_leases = live.count as u64;
    Ok(usage)
}

/// Removes what `opts` says from the store under `root` (see the module docs).
pub fn prune(root: &Path, opts: &PruneOptions) -> Result<PruneReport, GcError> {
    let mut report = PruneReport::default();
    if !check_root(root)? {
        return Ok(report);
    }
    let locks = root.join("locks");
    let index = open_index(root)?;
    let locked = |key: &str| key_is_locked(&locks, key);

    // Plan with sizes, outside the lock (walking snapshots takes a while).
    let records = load_records(index.as_ref())?;
    let (live, dead) = lease::scan(&locks)?;
    let mut inv = scan::scan(root, &dead)?;
    let now_ns = crate::index::now_ns();
    let planned = plan::plan(
        &inv,
        &plan::Context {
            records: &records,
            leases: &live,
            opts,
            now_ns,
        },
        &locked,
    );

    let trash = new_trash(root)?;
    let mut moved: Vec<(usize, PathBuf)> = Vec::new();
    {
        std::fs::create_dir_all(&locks).map_err(io(&locks))?;
        let _gc = lease::gc_lock(&locks, true)?;
        // Records first: a crash after this leaves only unreferenced files behind.
        if let Some(index) = &index {
            let keys: Vec<String> = planned
                .keys
                .iter()
                .filter(|k| !locked(k))
                .cloned()
                .collect();
            index.delete_records(&keys)?;
            report.records = keys.len() as u64;
            if opts.all && opts.keep_storage.is_none() && opts.until.is_none() {
                // Context files are hashed again next time; nothing else is lost.
                index.clear_stat_cache()?;
            }
        }
        // Builds may have added records and leases since the plan: only what is still
        // unreferenced goes.
        let records = load_records(index.as_ref())?;
        let (live, _) = lease::scan(&locks)?;
        for &i in &planned.victims {
            // Made again since the scan (after another prune removed it): judge it anew.
            scan::refresh(&mut inv.entries[i]);
        }
        let still = plan::victims(
            &inv,
            &plan::Context {
                records: &records,
                leases: &live,
                opts,
                now_ns,
            },
            &[],
        );
        let still: std::collections::HashSet<usize> = still.into_iter().collect();
        for (n, &i) in planned.victims.iter().enumerate() {
            if !still.contains(&i) {
                continue;
            }
            let e = &inv.entries[i];
            if let Some(dest) = move_to_trash(e, &trash, n)? {
                moved.push((i, dest));
            }
        }
    }
    for (i, dest) in moved {
        let e = &inv.entries[i];
        remove(&dest)?;
        report.removed.entry(e.category).or_default().add(e.size);
        report.freed += e.size;
    }
    remove(&trash)?;
    Ok(report)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GcError + '_ {
    move |source| GcError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A fresh `<root>/trash/<pid>-<n>/`.
fn new_trash(root: &Path) -> Result<PathBuf, GcError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = root.join("trash").join(format!(
        "{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    Ok(dir)
}

/// Moves one victim into the trash (dead leases and unused cache mounts only while their
/// lock is ours). `None` when it is already gone or in use.
fn move_to_trash(e: &scan::Entry, trash: &Path, n: usize) -> Result<Option<PathBuf>, GcError> {
    let name = e
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dest = trash.join(format!("{n}-{name}"));
    // Held while renaming: a RUN about to use the cache mount, or a build that turns out to
    // own the lease file, waits.
    let _guard = match &e.rule {
        scan::Rule::CacheMount { lock } => match try_lock(lock)? {
            Some(g) => Some(g),
            None => return Ok(None),
        },
        scan::Rule::Always if e.category == Category::Locks => match try_lock(&e.path)? {
            Some(g) => Some(g),
            None => return Ok(None),
        },
        _ => None,
    };
    match std::fs::rename(&e.path, &dest) {
        Ok(()) => Ok(Some(dest)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io(&e.path)(err)),
    }
}

/// An exclusive flock on `path` if nobody holds one; `None` when busy or gone.
fn try_lock(path: &Path) -> Result<Option<Flock<std::fs::File>>, GcError> {
    let file = match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(io(path)(e.into())),
    }
}

/// Deletes a file or tree (already gone is fine).
fn remove(path: &Path) -> Result<(), GcError> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

#[cfg(test)]
mod tests;
