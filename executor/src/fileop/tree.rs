//! A COPY source: a mounted filesystem, or a local context limited to its listed entries.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kiln_ir::ContextFiles;

/// Where COPY reads from.
pub(crate) struct Tree {
    root: PathBuf,
    /// For a context: every listed path and every ancestor of one. `None`: everything.
    allowed: Option<BTreeSet<PathBuf>>,
}

impl Tree {
    /// A whole filesystem (another stage, mounted read-only).
    pub(crate) fn fs(root: PathBuf) -> Self {
        Tree {
            root,
            allowed: None,
        }
    }

    /// A local context: only the `.dockerignore`-filtered entries are visible.
    pub(crate) fn context(files: &ContextFiles) -> Self {
        let mut allowed = BTreeSet::new();
        for e in &files.entries {
            let mut p = PathBuf::from(&e.path);
            loop {
                if !allowed.insert(p.clone()) {
                    break;
                }
                match p.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => p = parent.to_path_buf(),
                    _ => break,
                }
            }
        }
        Tree {
            root: files.root.clone(),
            allowed: Some(allowed),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn is_context(&self) -> bool {
        self.allowed.is_some()
    }

    fn visible(&self, rel: &Path) -> bool {
        match &self.allowed {
            None => true,
            Some(set) => rel.as_os_str().is_empty() || set.contains(rel),
        }
    }

    /// `lstat` of a visible entry.
    pub(crate) fn lstat(&self, rel: &Path) -> Option<Metadata> {
        if !self.visible(rel) {
            return None;
        }
        std::fs::symlink_metadata(self.root.join(rel)).ok()
    }

    /// Visible children of a directory, sorted.
    pub(crate) fn children(&self, rel: &Path) -> std::io::Result<Vec<OsString>> {
        let mut names: Vec<OsString> = std::fs::read_dir(self.root.join(rel))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .filter(|n| self.visible(&rel.join(n)))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Owner a copy gets without `--chown`: context files count as 0:0 (as docker's client
    /// sends them), stage files keep theirs.
    pub(crate) fn owner(&self, meta: &Metadata) -> (u32, u32) {
        if self.is_context() {
            (0, 0)
        } else {
            (meta.uid(), meta.gid())
        }
    }
}
