//! Local build contexts: the `.dockerignore`-filtered file list and content digests of the
//! paths a COPY selects.

mod ignore;
mod statcache;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub(crate) use ignore::go_clean;
pub use ignore::{DockerIgnore, IgnoreError};
pub use statcache::StatCache;

use kiln_ir::{ContextEntry, ContextFiles};

/// Why a context cannot be read or hashed.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// An I/O error on a path of the context.
    #[error("build context {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The `.dockerignore` is invalid.
    #[error("{path}: {source}")]
    Ignore {
        /// The ignore file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: IgnoreError,
    },
    /// A file name that is not UTF-8 (kiln keeps context paths as UTF-8 strings).
    #[error("build context {0}: file name is not valid UTF-8")]
    NonUtf8(PathBuf),
    /// The stat cache failed.
    #[error("context stat cache: {0}")]
    Cache(#[from] rusqlite::Error),
}

/// The type of a context entry, as hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

/// What the walk recorded about one path.
#[derive(Debug, Clone)]
struct Meta {
    kind: Kind,
    mode: u32,
    size: u64,
    mtime_ns: i64,
    ino: u64,
    link: Option<String>,
}

/// A local context directory with `.dockerignore` applied.
#[derive(Debug, Clone)]
pub struct ContextIndex {
    root: PathBuf,
    entries: BTreeMap<String, Meta>,
}

impl ContextIndex {
    /// Walks `root`, applying `root/.dockerignore` when it exists.
    pub fn open(root: &Path) -> Result<Self, ContextError> {
        Self::open_with_ignore_file(root, &root.join(".dockerignore"))
    }

    /// Walks `root`, applying the rules of `ignore_path` when it exists (a
    /// `<Dockerfile>.dockerignore` replaces the context's `.dockerignore`).
    pub fn open_with_ignore_file(root: &Path, ignore_path: &Path) -> Result<Self, ContextError> {
        let ignore_path = ignore_path.to_path_buf();
        let ignore = match fs::read_to_string(&ignore_path) {
            Ok(text) => DockerIgnore::parse(&text).map_err(|source| ContextError::Ignore {
                path: ignore_path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DockerIgnore::empty(),
            Err(source) => {
                return Err(ContextError::Io {
                    path: ignore_path,
                    source,
                })
            }
        };
        Self::with_ignore(root, &ignore)
    }

    /// Walks `root` with the given rules (for `<Dockerfile>.dockerignore` overrides).
    pub fn with_ignore(root: &Path, ignore: &DockerIgnore) -> Result<Self, ContextError> {
        let mut entries = BTreeMap::new();
        walk(root, "", ignore, &mut entries)?;
        Ok(ContextIndex {
            root: root.to_path_buf(),
            entries,
        })
    }

    /// The context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The included paths, sorted, directories included, for the executor.
    pub fn files(&self) -> ContextFiles {
        ContextFiles {
            root: self.root.clone(),
            entries: self
                .entries
                .iter()
                .map(|(path, m)| ContextEntry {
                    path: path.clone(),
                    is_dir: m.kind == Kind::Dir,
                })
                .collect(),
        }
    }

    /// Whether `path` (relative, any form: `./a/`, `/a`) names an included path or the root.
    /// A path through a symlinked directory of the context counts when its target is included.
    pub fn contains(&self, path: &str) -> bool {
        let p = relative_clean(path);
        p.is_empty() || self.entries.contains_key(&p) || self.resolve(&p).is_some()
    }

    /// A digest of every included path at or under `prefix`: path, type, mode, size, symlink
    /// target and content (uid/gid count as 0; mtime never counts). When `prefix` goes
    /// through a symlink inside the context, the target's subtree is hashed too, since COPY
    /// follows it. `cache` avoids re-reading files whose stat did not change.
    pub fn digest(&self, prefix: &str, cache: Option<&StatCache>) -> Result<String, ContextError> {
        self.digest_filtered(prefix, cache, &|_| false)
    }

    /// [`ContextIndex::digest`] without the paths `skip` names (a `COPY --exclude`: `skip`
    /// gets each path relative to the context root).
    pub fn digest_filtered(
        &self,
        prefix: &str,
        cache: Option<&StatCache>,
        skip: &dyn Fn(&str) -> bool,
    ) -> Result<String, ContextError> {
        let prefix = relative_clean(prefix);
        let read_start = statcache::now_ns();
        let mut hasher = blake3::Hasher::new();
        let mut updates = Vec::new();
        self.hash_subtree(&prefix, cache, skip, &mut hasher, &mut updates)?;
        if let Some(target) = self.resolve(&prefix) {
            field(&mut hasher, b"->");
            field(&mut hasher, target.as_bytes());
            self.hash_subtree(&target, cache, skip, &mut hasher, &mut updates)?;
        }
        if let Some(cache) = cache {
            cache.store(&self.root, &updates, read_start)?;
        }
        Ok(hasher.finalize().to_hex().to_string())
    }

    fn hash_subtree(
        &self,
        prefix: &str,
        cache: Option<&StatCache>,
        skip: &dyn Fn(&str) -> bool,
        hasher: &mut blake3::Hasher,
        updates: &mut Vec<statcache::Record>,
    ) -> Result<(), ContextError> {
        let under = format!("{prefix}/");
        let selected = self
            .entries
            .range(prefix.to_string()..)
            .take_while(|(p, _)| prefix.is_empty() || *p == prefix || p.starts_with(&under))
            .filter(|(p, _)| !skip(p));
        for (path, m) in selected {
            field(hasher, path.as_bytes());
            let kind: &[u8] = match m.kind {
                Kind::Dir => b"dir",
                Kind::File => b"file",
                Kind::Symlink => b"symlink",
                Kind::Other => b"other",
            };
            field(hasher, kind);
            field(hasher, format!("{:o}", m.mode).as_bytes());
            field(hasher, m.size.to_string().as_bytes());
            field(hasher, m.link.as_deref().unwrap_or("").as_bytes());
            if m.kind == Kind::File {
                let sha = self.content_sha256(path, m, cache, updates)?;
                field(hasher, sha.as_bytes());
            } else {
                field(hasher, b"");
            }
        }
        Ok(())
    }

    fn content_sha256(
        &self,
        path: &str,
        m: &Meta,
        cache: Option<&StatCache>,
        updates: &mut Vec<statcache::Record>,
    ) -> Result<String, ContextError> {
        let stat = statcache::Stat {
            size: m.size,
            mtime_ns: m.mtime_ns,
            ino: m.ino,
            mode: m.mode,
        };
        if let Some(cache) = cache {
            if let Some(sha) = cache.lookup(&self.root, path, &stat)? {
                return Ok(sha);
            }
        }
        let abs = self.root.join(path);
        let mut file = fs::File::open(&abs).map_err(|source| ContextError::Io {
            path: abs.clone(),
            source,
        })?;
        let mut w = kiln_oci::Sha256Writer::new();
        std::io::copy(&mut file, &mut w).map_err(|source| ContextError::Io {
            path: abs.clone(),
            source,
        })?;
        let sha = w.finish().0.to_string();
        updates.push(statcache::Record {
            path: path.to_string(),
            stat,
            sha256: sha.clone(),
        });
        Ok(sha)
    }

    /// When `path` exists on disk through a symlink, its real location relative to the root,
    /// if that differs from `path` and is an included entry.
    /// Whether any included path at or under `prefix` is a symlink, or `prefix` itself goes
    /// through one (a selection whose key must then follow links).
    pub(crate) fn has_symlinks_under(&self, prefix: &str) -> bool {
        let prefix = relative_clean(prefix);
        let under = format!("{prefix}/");
        self.resolve(&prefix).is_some()
            || self
                .entries
                .range(prefix.clone()..)
                .take_while(|(p, _)| prefix.is_empty() || **p == prefix || p.starts_with(&under))
                .any(|(_, m)| m.kind == Kind::Symlink)
    }

    fn resolve(&self, path: &str) -> Option<String> {
        if path.is_empty() {
            return None;
        }
        let root = fs::canonicalize(&self.root).ok()?;
        let real = fs::canonicalize(self.root.join(path)).ok()?;
        let rel = real.strip_prefix(&root).ok()?.to_str()?.to_string();
        (rel != path && (rel.is_empty() || self.entries.contains_key(&rel))).then_some(rel)
    }
}

/// Cleans a source path and makes it relative to the context root (`""` is the root).
pub(crate) fn relative_clean(path: &str) -> String {
    let cleaned = go_clean(&format!("/{path}"));
    cleaned.trim_start_matches('/').to_string()
}

/// Length-prefixed field, so concatenations cannot collide.
fn field(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// Returns whether anything under `dir` was included.
fn walk(
    dir: &Path,
    rel: &str,
    ignore: &DockerIgnore,
    out: &mut BTreeMap<String, Meta>,
) -> Result<bool, ContextError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ContextError::Io { path, source }
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        names.push(entry.map_err(io(dir))?.file_name());
    }
    names.sort();
    let mut any = false;
    for name in names {
        let abs = dir.join(&name);
        let name = name
            .to_str()
            .ok_or_else(|| ContextError::NonUtf8(abs.clone()))?;
        let path = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let md = fs::symlink_metadata(&abs).map_err(io(&abs))?;
        let ft = md.file_type();
        let excluded = !ignore.is_empty() && ignore.is_excluded(&path);
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else if ft.is_symlink() {
            Kind::Symlink
        } else {
            Kind::Other
        };
        let link = if ft.is_symlink() {
            let target = fs::read_link(&abs).map_err(io(&abs))?;
            Some(target.to_string_lossy().into_owned())
        } else {
            None
        };
        let meta = Meta {
            kind,
            mode: md.mode() & 0o7777,
            size: if kind == Kind::File { md.size() } else { 0 },
            mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            ino: md.ino(),
            link,
        };
        if kind == Kind::Dir {
            if excluded && !ignore.has_exceptions() {
                continue;
            }
            // Docker walks into an excluded directory when an exception might re-include
            // something inside; the directory is then sent only as a parent of what is.
            let inner = walk(&abs, &path, ignore, out)?;
            if !excluded || inner {
                out.insert(path, meta);
                any = true;
            }
        } else if !excluded {
            out.insert(path, meta);
            any = true;
        }
    }
    Ok(any)
}

#[cfg(test)]
mod tests;
