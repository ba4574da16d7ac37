//! COPY and mkdir semantics (Docker / BuildKit): wildcards, directory contents, trailing
//! `/`, created parents, ownership, `--chmod`, symlinks, hardlinks, mtimes.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use filetime::FileTime;
use kiln_ir::{Chown, CopyAction, MkdirAction, MkfileAction};
use nix::sys::stat::{mknod, Mode};

use super::exclude::Excludes;
use super::paths::resolve;
use super::pattern::{has_meta, matches};
use super::tree::Tree;
use crate::spec::InitFailure;
use crate::users::{parse_group, parse_passwd, resolve_chown};
use kiln_ir::Chmod as ChmodSpec;

const MULTI_SOURCE: &str = "When using COPY with more than one source file, the destination must be a directory and end with a /";

pub(super) fn other(msg: String) -> InitFailure {
    InitFailure::Other(msg)
}

pub(super) fn io_err(what: &str, path: &Path, e: io::Error) -> InitFailure {
    other(format!("{what} {}: {e}", path.display()))
}

pub(super) fn not_found(src: &str) -> InitFailure {
    let clean: PathBuf = Path::new("/").join(src.trim_start_matches('/'));
    InitFailure::NotFound(format!(
        "failed to compute cache key: \"{}\": not found",
        normalize(&clean).display()
    ))
}

/// Lexically cleans an absolute path (`.` and `..` removed).
pub(super) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Resolves `--chown` through the destination's `/etc/passwd` and `/etc/group`.
fn owner_of(root: &Path, chown: &Chown) -> Result<(u32, u32), InitFailure> {
    let read = |p: &str| {
        resolve(root, Path::new(p), true)
            .ok()
            .and_then(|rel| std::fs::read_to_string(root.join(rel)).ok())
            .unwrap_or_default()
    };
    resolve_chown(
        &chown.user,
        chown.group.as_deref(),
        &parse_passwd(&read("/etc/passwd")),
        &parse_group(&read("/etc/group")),
    )
    .map_err(other)
}

/// Creates `rel` and its missing parents inside `root` (following symlinks inside `root`);
/// created directories get `owner` and `mode`. Returns the resolved host path.
pub(super) fn mkdir_all(
    root: &Path,
    rel: &Path,
    owner: (u32, u32),
    mode: u32,
) -> Result<PathBuf, InitFailure> {
    let mut cur = PathBuf::new();
    for comp in rel.components() {
        let next = match comp {
            Component::Normal(n) => cur.join(n),
            Component::ParentDir => cur.join(".."),
            _ => continue,
        };
        cur = resolve(root, &next, true).map_err(|e| io_err("resolving", &next, e))?;
        let host = root.join(&cur);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(other(format!(
                    "cannot create directory /{}: a non-directory exists there",
                    cur.display()
                )))
            }
            Err(_) => {
                std::fs::create_dir(&host).map_err(|e| io_err("creating", &host, e))?;
                crate::userns::lchown(&host, owner.0, owner.1)
                    .map_err(|e| io_err("chown", &host, e))?;
                std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| io_err("chmod", &host, e))?;
            }
        }
    }
    Ok(root.join(cur))
}

/// WORKDIR's mkdir -p.
pub(crate) fn mkdir(root: &Path, action: &MkdirAction) -> Result<(), InitFailure> {
    let owner = match &action.chown {
        Some(c) => owner_of(root, c)?,
        None => (0, 0),
    };
    mkdir_all(root, Path::new(&action.path), owner, action.mode).map(|_| ())
}

/// COPY heredoc: writes a file with fixed content (parents created 0755 root-owned).
pub(crate) fn mkfile(root: &Path, action: &MkfileAction) -> Result<(), InitFailure> {
    let owner = match &action.chown {
        Some(c) => owner_of(root, c)?,
        None => (0, 0),
    };
    let path = Path::new(&action.path);
    let parent = path.parent().unwrap_or(Path::new("/"));
    let dir = mkdir_all(root, parent, (0, 0), 0o755)?;
    let name = path
        .file_name()
        .ok_or_else(|| other(format!("invalid file path {}", action.path)))?;
    let rel = dir.strip_prefix(root).unwrap_or(Path::new("")).join(name);
    // Resolve the final component too, so a symlink there cannot point outside the rootfs.
    let host = root.join(resolve(root, &rel, true).map_err(|e| io_err("resolving", &rel, e))?);
    if std::fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir()) {
        return Err(other(format!(
            "cannot write {}: it is a directory",
            action.path
        )));
    }
    let _ = std::fs::remove_file(&host);
    std::fs::write(&host, action.data.as_bytes()).map_err(|e| io_err("writing", &host, e))?;
    crate::userns::lchown(&host, owner.0, owner.1).map_err(|e| io_err("chown", &host, e))?;
    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(action.mode))
        .map_err(|e| io_err("chmod", &host, e))
}

/// One expanded COPY source.
struct Found {
    /// Resolved path inside the source tree.
    resolved: PathBuf,
    /// Name of the matched entry (before symlink resolution).
    name: OsString,
    /// Path relative to the source's literal prefix, for `--exclude` of wildcard matches.
    rel: Option<PathBuf>,
}

/// Expands one source (wildcards per component) into matched entries.
fn expand(tree: &Tree, src: &str) -> Result<Vec<Found>, InitFailure> {
    let root = tree.root();
    let mut cands = vec![PathBuf::new()];
    let mut literal = PathBuf::new();
    let mut wild = false;
    for comp in src.split('/').filter(|c| !c.is_empty() && *c != ".") {
        wild |= comp != ".." && has_meta(comp);
        if !wild {
            literal = if comp == ".." {
                literal.parent().map(Path::to_path_buf).unwrap_or_default()
            } else {
                literal.join(comp)
            };
        }
        let mut next = Vec::new();
        for c in cands {
            if comp != ".." && has_meta(comp) {
                let dir = resolve(root, &c, true).map_err(|e| io_err("resolving", &c, e))?;
                if !tree.lstat(&dir).is_some_and(|m| m.is_dir()) {
                    continue;
                }
                let names = tree
                    .children(&dir)
                    .map_err(|e| io_err("listing", &dir, e))?;
                for name in names {
                    let hit =
                        matches(comp, &name.to_string_lossy()).map_err(|e| other(e.to_string()))?;
                    if hit {
                        next.push(c.join(name));
                    }
                }
            } else if comp == ".." {
                let mut p = c.clone();
                p.pop();
                next.push(p);
            } else {
                next.push(c.join(comp));
            }
        }
        cands = next;
    }
    let mut out = Vec::new();
    for c in cands {
        // A top-level (or wildcard-matched) symlink is followed, inside the source root.
        let resolved = resolve(root, &c, true).map_err(|e| io_err("resolving", &c, e))?;
        if tree.lstat(&resolved).is_some() {
            let name = c.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            let rel = wild.then(|| c.strip_prefix(&literal).unwrap_or(&c).to_path_buf());
            out.push(Found {
                resolved,
                name,
                rel,
            });
        }
    }
    Ok(out)
}

/// The `--chmod` of an action: octal bits or a symbolic spec (BuildKit's error text).
fn chmod_of(action: &CopyAction) -> Result<Option<ChmodSpec>, InitFailure> {
    match (&action.chmod_symbolic, action.chmod) {
        (Some(s), _) => ChmodSpec::parse(s).map(Some).map_err(other),
        (None, Some(m)) if m > 0o7777 => Err(other(kiln_ir::invalid_chmod(&format!("{m:o}")))),
        (None, m) => Ok(m.map(ChmodSpec::Octal)),
    }
}

/// One COPY.
pub(crate) fn copy(root: &Path, tree: &Tree, action: &CopyAction) -> Result<(), InitFailure> {
    let owner = match &action.chown {
        Some(c) => Some(owner_of(root, c)?),
        None => None,
    };
    let chmod = chmod_of(action)?;
    let excludes = Excludes::new(&action.exclude).map_err(other)?;
    let dir_owner = owner.unwrap_or((0, 0));
    // Parent dirs created for the destination get the --chmod mode too.
    let dir_mode = chmod.as_ref().map_or(0o755, |m| m.apply(0o755, true));
    let mut copier = Copier {
        tree,
        owner,
        chmod,
        excludes,
        links: HashMap::new(),
        base: PathBuf::new(),
        rel_base: PathBuf::new(),
    };
    let dest = action.dest.as_str();
    let dest_rel = normalize(&Path::new("/").join(dest));
    if action.parents {
        return super::parents::copy_parents(
            root,
            &mut copier,
            &action.sources,
            &dest_rel,
            (dir_owner, dir_mode),
        );
    }
    let into_dir = dest.ends_with('/') || dest.ends_with("/.") || dest == "." || dest.is_empty();
    let mut found = Vec::new();
    for src in &action.sources {
        let m = expand(tree, src)?;
        if m.is_empty() && !has_meta(src) {
            return Err(not_found(src));
        }
        found.extend(m);
    }
    if found.is_empty() {
        let first = action.sources.first().map(String::as_str).unwrap_or("");
        return Err(not_found(first));
    }
    // ADD extracts several archives into one directory: no trailing `/` needed then.
    if (action.sources.len() > 1 || found.len() > 1) && !into_dir && !action.unpack {
        return Err(other(MULTI_SOURCE.to_string()));
    }
    for f in found {
        if f.rel.as_ref().is_some_and(|r| copier.excludes.excluded(r)) {
            continue;
        }
        let (src, name) = (f.resolved, f.name);
        let src_host = tree.root().join(&src);
        let meta =
            std::fs::symlink_metadata(&src_host).map_err(|e| io_err("stat", &src_host, e))?;
        if meta.is_dir() {
            let dir = mkdir_all(root, &dest_rel, dir_owner, dir_mode)?;
            copier.base = src.clone();
            copier.rel_base = PathBuf::new();
            copier.copy_children(&src, &dir)?;
            continue;
        }
        if action.unpack
            && meta.is_file()
            && super::unpack::try_unpack(root, &src_host, &dest_rel, owner, (dir_owner, dir_mode))?
        {
            continue;
        }
        let dest_is_dir = resolve(root, &dest_rel, true)
            .ok()
            .is_some_and(|r| root.join(r).is_dir());
        let target = if into_dir || dest_is_dir {
            dest_rel.join(&name)
        } else {
            dest_rel.clone()
        };
        let parent = target.parent().unwrap_or(Path::new("/"));
        let file_name = target
            .file_name()
            .ok_or_else(|| other(format!("invalid COPY destination {dest:?}")))?;
        let parent_host = mkdir_all(root, parent, dir_owner, dir_mode)?;
        copier.copy_entry(&src, &parent_host.join(file_name))?;
    }
    Ok(())
}

/// Copies entries from one source tree, applying owner, mode and excludes.
pub(super) struct Copier<'a> {
    pub(super) tree: &'a Tree,
    owner: Option<(u32, u32)>,
    chmod: Option<ChmodSpec>,
    pub(super) excludes: Excludes,
    /// (dev, ino) of multiply-linked sources → their first copy.
    links: HashMap<(u64, u64), PathBuf>,
    /// Tree path of the entry being copied: children's `--exclude` paths are relative to it…
    pub(super) base: PathBuf,
    /// …prefixed with this (the entry's own path under `--parents`).
    pub(super) rel_base: PathBuf,
}

impl Copier<'_> {
    pub(super) fn copy_children(&mut self, src: &Path, dst: &Path) -> Result<(), InitFailure> {
        let names = self
            .tree
            .children(src)
            .map_err(|e| io_err("listing", &self.tree.root().join(src), e))?;
        for name in names {
            let child = src.join(&name);
            if !self.excludes.is_empty() {
                let rel = self
                    .rel_base
                    .join(child.strip_prefix(&self.base).unwrap_or(&child));
                if self.excludes.excluded(&rel) {
                    let dir = self.tree.lstat(&child).is_some_and(|m| m.is_dir());
                    // With `!` exceptions an excluded directory may still hold included
                    // files: walk it, and drop it again when nothing was kept.
                    if !(dir && self.excludes.has_exceptions()) {
                        continue;
                    }
                    let target = dst.join(&name);
                    let existed = std::fs::symlink_metadata(&target).is_ok();
                    self.copy_entry(&child, &target)?;
                    let empty = std::fs::read_dir(&target).is_ok_and(|mut d| d.next().is_none());
                    if !existed && empty {
                        std::fs::remove_dir(&target).map_err(|e| io_err("removing", &target, e))?;
                    }
                    continue;
                }
            }
            self.copy_entry(&child, &dst.join(&name))?;
        }
        Ok(())
    }

    /// Copies one entry (recursively for directories); `dst` is a host path whose parent
    /// is already resolved inside the rootfs. Nested symlinks are copied as symlinks.
    pub(super) fn copy_entry(&mut self, src: &Path, dst: &Path) -> Result<(), InitFailure> {
        let src_host = self.tree.root().join(src);
        let meta =
            std::fs::symlink_metadata(&src_host).map_err(|e| io_err("stat", &src_host, e))?;
        let existing = std::fs::symlink_metadata(dst).ok();
        let ft = meta.file_type();
        if ft.is_dir() {
            if existing.as_ref().is_some_and(|m| m.is_dir()) {
                // An existing directory keeps its metadata; only new entries are added.
                return self.copy_children(src, dst);
            }
            if existing.is_some() {
                std::fs::remove_file(dst).map_err(|e| io_err("removing", dst, e))?;
            }
            std::fs::create_dir(dst).map_err(|e| io_err("creating", dst, e))?;
            self.copy_children(src, dst)?;
            return self.finish(&src_host, &meta, dst);
        }
        match existing {
            Some(m) if m.is_dir() => {
                std::fs::remove_dir_all(dst).map_err(|e| io_err("removing", dst, e))?
            }
            Some(_) => std::fs::remove_file(dst).map_err(|e| io_err("removing", dst, e))?,
            None => {}
        }
        let key = (meta.dev(), meta.ino());
        if meta.nlink() > 1 {
            if let Some(first) = self.links.get(&key) {
                return std::fs::hard_link(first, dst).map_err(|e| io_err("linking", dst, e));
            }
        }
        if ft.is_file() || ft.is_socket() {
            // A socket becomes an (empty) regular file, as with docker.
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(dst)
                .map_err(|e| io_err("creating", dst, e))?;
            if ft.is_file() {
                let mut input =
                    std::fs::File::open(&src_host).map_err(|e| io_err("opening", &src_host, e))?;
                io::copy(&mut input, &mut out).map_err(|e| io_err("copying to", dst, e))?;
            }
        } else if ft.is_symlink() {
            let target =
                std::fs::read_link(&src_host).map_err(|e| io_err("readlink", &src_host, e))?;
            std::os::unix::fs::symlink(&target, dst).map_err(|e| io_err("symlink", dst, e))?;
        } else {
            let kind = super::special_kind(&ft);
            mknod(dst, kind, Mode::from_bits_truncate(0o600), meta.rdev())
                .map_err(|e| other(format!("mknod {}: {e}", dst.display())))?;
        }
        self.finish(&src_host, &meta, dst)?;
        if meta.nlink() > 1 {
            self.links.insert(key, dst.to_path_buf());
        }
        Ok(())
    }

    /// Owner, mode, xattrs and times of a new entry (after its content and children).
    fn finish(&self, src_host: &Path, meta: &Metadata, dst: &Path) -> Result<(), InitFailure> {
        let (uid, gid) = self.owner.unwrap_or_else(|| self.tree.owner(meta));
        crate::userns::lchown(dst, uid, gid).map_err(|e| io_err("chown", dst, e))?;
        let is_link = meta.file_type().is_symlink();
        if !is_link {
            let current = meta.mode() & 0o7777;
            let mode = self
                .chmod
                .as_ref()
                .map_or(current, |m| m.apply(current, meta.is_dir()));
            std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io_err("chmod", dst, e))?;
        }
        if !self.tree.is_context() {
            // After chown, which clears security.capability.
            if let Ok(names) = xattr::list(src_host) {
                for name in names {
                    if name.to_string_lossy().starts_with("trusted.overlay.") {
                        continue;
                    }
                    if let Ok(Some(value)) = xattr::get(src_host, &name) {
                        let _ = xattr::set(dst, &name, &value);
                    }
                }
            }
        }
        let mtime = FileTime::from_last_modification_time(meta);
        filetime::set_symlink_file_times(dst, mtime, mtime).map_err(|e| io_err("utimes", dst, e))
    }
}
