//! `COPY --parents`: each match keeps its path (after an optional `/./` pivot) under the
//! destination directory; `**` spans any number of directories (BuildKit's include patterns).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use super::copy::{io_err, mkdir_all, normalize, not_found, other, Copier};
use super::paths::resolve;
use super::pattern::{has_meta, matches};
use super::tree::Tree;
use crate::spec::InitFailure;

/// Plain components of a relative path (`.` dropped, `..` applied).
fn parts(p: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n.to_string_lossy().into_owned()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Entries under `base` (a tree path) whose path relative to `base` matches `pat`.
fn glob(
    tree: &Tree,
    base: &Path,
    rel: PathBuf,
    pat: &[String],
    out: &mut BTreeSet<PathBuf>,
) -> Result<(), InitFailure> {
    let root = tree.root();
    let here = base.join(&rel);
    let resolved = resolve(root, &here, true).map_err(|e| io_err("resolving", &here, e))?;
    let Some(meta) = tree.lstat(&resolved) else {
        return Ok(());
    };
    let Some(first) = pat.first() else {
        out.insert(rel);
        return Ok(());
    };
    if !meta.is_dir() {
        return Ok(());
    }
    if first == "**" {
        glob(tree, base, rel.clone(), &pat[1..], out)?;
        for name in tree
            .children(&resolved)
            .map_err(|e| io_err("listing", &resolved, e))?
        {
            if tree
                .lstat(&resolved.join(&name))
                .is_some_and(|m| m.is_dir())
            {
                glob(tree, base, rel.join(&name), pat, out)?;
            }
        }
        return Ok(());
    }
    if has_meta(first) {
        for name in tree
            .children(&resolved)
            .map_err(|e| io_err("listing", &resolved, e))?
        {
            let hit = matches(first, &name.to_string_lossy()).map_err(|e| other(e.to_string()))?;
            if hit {
                glob(tree, base, rel.join(&name), &pat[1..], out)?;
            }
        }
        return Ok(());
    }
    glob(tree, base, rel.join(first), &pat[1..], out)
}

/// Copies every source with its parent directories kept under `dest` (always a directory).
pub(super) fn copy_parents(
    root: &Path,
    copier: &mut Copier<'_>,
    sources: &[String],
    dest: &Path,
    (dir_owner, dir_mode): ((u32, u32), u32),
) -> Result<(), InitFailure> {
    let tree = copier.tree;
    let mut any = false;
    for src in sources {
        let (base, pattern) = match src.split_once("/./") {
            Some((b, p)) => (b, p),
            None => ("", src.as_str()),
        };
        let base: PathBuf = parts(base).iter().collect();
        let pat = parts(pattern);
        let mut found = BTreeSet::new();
        glob(tree, &base, PathBuf::new(), &pat, &mut found)?;
        if found.is_empty() && !pat.iter().any(|p| p == "**" || has_meta(p)) {
            return Err(not_found(src));
        }
        // A match inside another match is already copied with it.
        let mut kept: Vec<PathBuf> = Vec::new();
        for m in found {
            if kept.last().is_some_and(|k| m.starts_with(k)) {
                continue;
            }
            kept.push(m);
        }
        for m in kept {
            if m.as_os_str().is_empty() {
                // The pattern names the base itself: copy its contents.
                let src_path =
                    resolve(tree.root(), &base, true).map_err(|e| io_err("resolving", &base, e))?;
                let dir = mkdir_all(root, dest, dir_owner, dir_mode)?;
                copier.base = src_path.clone();
                copier.rel_base = PathBuf::new();
                copier.copy_children(&src_path, &dir)?;
                any = true;
                continue;
            }
            if copier.excludes.excluded(&m) {
                continue;
            }
            let here = base.join(&m);
            let src_path =
                resolve(tree.root(), &here, true).map_err(|e| io_err("resolving", &here, e))?;
            let target = normalize(&dest.join(&m));
            let parent = target.parent().unwrap_or(Path::new("/"));
            let name = target
                .file_name()
                .ok_or_else(|| other(format!("invalid COPY --parents path {}", m.display())))?;
            let parent_host = mkdir_all(root, parent, dir_owner, dir_mode)?;
            copier.base = src_path.clone();
            copier.rel_base = m.clone();
            copier.copy_entry(&src_path, &parent_host.join(name))?;
            any = true;
        }
    }
    if !any {
        // Only wildcards that matched nothing: the destination still exists.
        mkdir_all(root, dest, dir_owner, dir_mode)?;
    }
    Ok(())
}
