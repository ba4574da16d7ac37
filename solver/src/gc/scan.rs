//! The store's inventory: every top-level thing under a kiln root with its category, size
//! (file sizes summed, hard links once) and the rule that decides whether prune may remove it.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{Category, GcError};
use crate::lease::{self, DeadLease};

/// Blobs up to this size that start with `{` count as configs and manifests.
const JSON_BLOB_MAX: u64 = 4 << 20;

/// When prune may remove an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Never (the index, lock files, live leases, snapshots every RUN needs).
    Keep,
    /// Always: leftovers of dead processes, dead leases, trash.
    Always,
    /// A blob nothing references.
    Blob(String),
    /// A snapshot of a diff id nothing references (by its 12-hex short name).
    Snapshot(String),
    /// A conversion of diff id `diff` (hex) to blob `target` (hex, when readable).
    Conversion {
        /// The diff id hex.
        diff: String,
        /// The converted blob.
        target: Option<String>,
    },
    /// A download directory (root-relative path) no live lease uses.
    Download(String),
    /// A temp file: removed once untouched for a while.
    Temp,
    /// A cache-mount directory: only with `--all`, and only when no RUN holds its lock.
    CacheMount {
        /// Its lock file.
        lock: PathBuf,
    },
}

/// One top-level thing in the store.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) category: Category,
    pub(crate) path: PathBuf,
    /// Bytes (file sizes, hard links counted once across the whole inventory).
    pub(crate) size: u64,
    /// Last change of the entry itself, max(mtime, ctime), unix ns.
    pub(crate) changed_ns: i64,
    /// Its mtime, unix ns.
    pub(crate) mtime_ns: i64,
    pub(crate) rule: Rule,
}

/// Everything under one root.
#[derive(Debug, Default)]
pub(crate) struct Inventory {
    pub(crate) entries: Vec<Entry>,
}

impl Inventory {
    /// Total bytes.
    pub(crate) fn total(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GcError + '_ {
    move |source| GcError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// Bytes under `path` (files and symlinks; each inode once). Vanished files count zero.
pub(crate) fn tree_size(path: &Path, seen: &mut HashSet<(u64, u64)>) -> Result<u64, GcError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(path)(e)),
    };
    if !meta.is_dir() {
        if meta.nlink() > 1 && !seen.insert((meta.dev(), meta.ino())) {
            return Ok(0);
        }
        return Ok(meta.len());
    }
    let mut total = 0;
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(path)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io(path))?;
        total += tree_size(&entry.path(), seen)?;
    }
    Ok(total)
}

/// Lists `dir` (nothing when it does not exist).
fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>, GcError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
        ));
    }
    out.sort();
    Ok(out)
}

struct Scanner {
    seen: HashSet<(u64, u64)>,
    inv: Inventory,
}

impl Scanner {
    fn add(&mut self, category: Category, path: PathBuf, rule: Rule) -> Result<(), GcError> {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&path)(e)),
        };
        let size = tree_size(&path, &mut self.seen)?;
        let mtime_ns = ns(meta.mtime(), meta.mtime_nsec());
        let changed_ns = mtime_ns.max(ns(meta.ctime(), meta.ctime_nsec()));
        self.inv.entries.push(Entry {
            category,
            path,
            size,
            changed_ns,
            mtime_ns,
            rule,
        });
        Ok(())
    }
}

/// Re-reads an entry's change times (a vanished entry keeps its old ones; moving it fails
/// harmlessly later).
pub(crate) fn refresh(e: &mut Entry) {
    if let Ok(meta) = std::fs::symlink_metadata(&e.path) {
        e.mtime_ns = ns(meta.mtime(), meta.mtime_nsec());
        e.changed_ns = e.mtime_ns.max(ns(meta.ctime(), meta.ctime_nsec()));
    }
}

/// The pid in a temp name like `tmp-<x>-<pid>-<seq>` at position `index` of its `-` parts.
fn pid_part(name: &str, index: usize) -> &str {
    name.split('-').nth(index).unwrap_or_default()
}

/// Rule for a leftover named after its process: removed once that process is gone.
fn by_pid(pid: &str) -> Rule {
    if lease::pid_alive(pid) {
        Rule::Keep
    } else {
        Rule::Always
    }
}

/// Walks the store under `root`. Dead lease files come from `dead`.
pub(crate) fn scan(root: &Path, dead: &[DeadLease]) -> Result<Inventory, GcError> {
    let mut s = Scanner {
        seen: HashSet::new(),
        inv: Inventory::default(),
    };
    for (name, path) in list(&root.join("content/blobs/sha256"))? {
        let is_json = std::fs::metadata(&path).is_ok_and(|m| m.len() <= JSON_BLOB_MAX)
            && first_byte(&path) == Some(b'{');
        let category = if is_json {
            Category::Configs
        } else {
            Category::Layers
        };
        s.add(category, path, Rule::Blob(name))?;
    }
    for (name, path) in list(&root.join("content/conversions"))? {
        let diff = name.split('.').next().unwrap_or_default().to_string();
        let target = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("digest")?.as_str().map(str::to_string))
            .and_then(|d| d.strip_prefix("sha256:").map(str::to_string));
        s.add(
            Category::Conversions,
            path,
            Rule::Conversion { diff, target },
        )?;
    }
    // A blob's origins live and go with the blob.
    for (name, path) in list(&root.join("content/origins"))? {
        if name.len() == 64 {
            s.add(Category::Conversions, path, Rule::Blob(name))?;
        } else {
            s.add(Category::Temp, path, Rule::Temp)?;
        }
    }
    for dir in ["content/tmp", "tmp"] {
        for (_, path) in list(&root.join(dir))? {
            s.add(Category::Temp, path, Rule::Temp)?;
        }
    }
    for (name, path) in list(&root.join("snapshots"))? {
        let category = if name.starts_with("tmp-") {
            Category::Temp
        } else {
            Category::Snapshots
        };
        let rule = if name == "kiln-empty" || name == "kiln-stubs" {
            Rule::Keep
        } else if name.starts_with("tmp-") {
            // tmp-<name>-<pid>
            by_pid(pid_part(&name, 2))
        } else {
            Rule::Snapshot(name)
        };
        s.add(category, path, rule)?;
    }
    let cache = root.join("cache-mounts");
    for (name, path) in list(&cache)? {
        if name.ends_with(".lock") {
            s.add(Category::Locks, path, Rule::Keep)?;
        } else if name.starts_with("tmp-") {
            // tmp-<name>-<pid>-<seq>[.old]
            s.add(Category::Temp, path, by_pid(pid_part(&name, 2)))?;
        } else {
            let lock = cache.join(format!("{name}.lock"));
            s.add(Category::CacheMounts, path, Rule::CacheMount { lock })?;
        }
    }
    for (name, path) in list(&root.join("downloads"))? {
        if name.starts_with("tmp-") {
            // tmp-<pid>-<seq>
            s.add(Category::Temp, path, by_pid(pid_part(&name, 1)))?;
        } else {
            s.add(
                Category::Downloads,
                path,
                Rule::Download(format!("downloads/{name}")),
            )?;
        }
    }
    for (name, path) in list(&root.join("runs"))? {
        // <pid>-<seq>
        s.add(Category::Runs, path, by_pid(pid_part(&name, 0)))?;
    }
    for (name, path) in list(&root.join("trash"))? {
        // <pid>-<seq>: a prune's own trash; another live prune is still emptying it.
        s.add(Category::Trash, path, by_pid(pid_part(&name, 0)))?;
    }
    let dead: HashSet<&Path> = dead.iter().map(|d| d.path.as_path()).collect();
    for (_, path) in list(&root.join("locks"))? {
        let rule = if dead.contains(path.as_path()) {
            Rule::Always
        } else {
            Rule::Keep
        };
        s.add(Category::Locks, path, rule)?;
    }
    for name in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        s.add(Category::Index, root.join(name), Rule::Keep)?;
    }
    Ok(s.inv)
}

fn first_byte(path: &Path) -> Option<u8> {
    use std::io::Read;
    let mut b = [0u8; 1];
    let mut f = std::fs::File::open(path).ok()?;
    (f.read(&mut b).ok()? == 1).then_some(b[0])
}
