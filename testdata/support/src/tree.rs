//! A file tree read from disk (e.g. an unpacked rootfs), for file-by-file comparisons.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::{EntryKind, Error, Result};

/// One file system object: what the comparisons look at (never mtime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Type.
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Content of regular files.
    pub content: Vec<u8>,
    /// Target of symlinks.
    pub link: Option<String>,
}

impl Node {
    /// A regular file node.
    pub fn file(content: &[u8], mode: u32, uid: u32, gid: u32) -> Node {
        Node {
            kind: EntryKind::File,
            mode,
            uid,
            gid,
            content: content.to_vec(),
            link: None,
        }
    }

    /// A directory node.
    pub fn dir(mode: u32, uid: u32, gid: u32) -> Node {
        Node {
            kind: EntryKind::Dir,
            mode,
            uid,
            gid,
            content: Vec::new(),
            link: None,
        }
    }

    /// A symlink node (symlink modes are always 0777 on Linux).
    pub fn symlink(target: &str, uid: u32, gid: u32) -> Node {
        Node {
            kind: EntryKind::Symlink,
            mode: 0o777,
            uid,
            gid,
            content: Vec::new(),
            link: Some(target.to_string()),
        }
    }

    fn describe(&self) -> String {
        let what = match (&self.kind, &self.link) {
            (EntryKind::Symlink, Some(l)) => format!("-> {l}"),
            (EntryKind::File, _) => format!("{} bytes", self.content.len()),
            (k, _) => format!("{k:?}"),
        };
        format!(
            "{:?} {:o} {}:{} {what}",
            self.kind, self.mode, self.uid, self.gid
        )
    }
}

/// All nodes below a root, keyed by relative path (`etc/passwd`); the root itself is `""`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree(pub BTreeMap<String, Node>);

impl Tree {
    /// Walk `root` without following symlinks.
    pub fn read(root: &Path) -> Result<Tree> {
        let mut tree = Tree::default();
        walk(root, root, &mut tree)?;
        Ok(tree)
    }

    /// The node at `path` (relative, no leading `/`).
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.0.get(path.trim_start_matches('/'))
    }

    /// Every difference between `self` (actual) and `expected`, one line each; empty if equal.
    pub fn diff(&self, expected: &Tree) -> Vec<String> {
        let mut out = Vec::new();
        for (p, e) in &expected.0 {
            match self.0.get(p) {
                None => out.push(format!("missing /{p} (expected {})", e.describe())),
                Some(a) if a != e => out.push(format!(
                    "/{p}: got {}, expected {}",
                    a.describe(),
                    e.describe()
                )),
                Some(_) => {}
            }
        }
        for (p, a) in &self.0 {
            if !expected.0.contains_key(p) {
                out.push(format!("unexpected /{p} ({})", a.describe()));
            }
        }
        out
    }
}

fn walk(root: &Path, dir: &Path, tree: &mut Tree) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| Error::io("lstat", dir, e))?;
    insert(root, dir, &meta, tree)?;
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("read_dir", dir, e))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io("read_dir", dir, e))?;
    names.sort();
    for p in names {
        let m = std::fs::symlink_metadata(&p).map_err(|e| Error::io("lstat", &p, e))?;
        if m.is_dir() {
            walk(root, &p, tree)?;
        } else {
            insert(root, &p, &m, tree)?;
        }
    }
    Ok(())
}

fn insert(root: &Path, p: &Path, m: &std::fs::Metadata, tree: &mut Tree) -> Result<()> {
    let rel = p
        .strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned();
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_file() {
        EntryKind::File
    } else if ft.is_char_device() {
        EntryKind::Char
    } else if ft.is_block_device() {
        EntryKind::Block
    } else if ft.is_fifo() {
        EntryKind::Fifo
    } else {
        EntryKind::Other
    };
    let content = if kind == EntryKind::File {
        std::fs::read(p).map_err(|e| Error::io("read", p, e))?
    } else {
        Vec::new()
    };
    let link = if kind == EntryKind::Symlink {
        Some(
            std::fs::read_link(p)
                .map_err(|e| Error::io("readlink", p, e))?
                .to_string_lossy()
                .into_owned(),
        )
    } else {
        None
    };
    tree.0.insert(
        rel,
        Node {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            content,
            link,
        },
    );
    Ok(())
}
