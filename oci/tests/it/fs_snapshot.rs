//! A comparable picture of a directory tree: kinds, modes, owners, mtimes, contents, link
//! targets, device numbers, xattrs and which paths share an inode.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use kiln_oci::Digest;

/// One node of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) kind: &'static str,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: i64,
    /// File content digest, symlink target, or device numbers.
    pub(crate) payload: String,
    pub(crate) xattrs: BTreeMap<String, Vec<u8>>,
    /// For files with several links: the first path (in sorted order) sharing the inode.
    pub(crate) link_group: Option<PathBuf>,
}

/// Snapshot of every path below `root` (relative paths, root excluded).
pub(crate) fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), PathBuf> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<PathBuf, Node>,
    inodes: &mut BTreeMap<(u64, u64), PathBuf>,
) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.map(|e| e.file_name()).expect("readdir"))
        .collect();
    names.sort();
    for name in names {
        let p = dir.join(&name);
        let rel = p.strip_prefix(root).expect("prefix").to_path_buf();
        let m = fs::symlink_metadata(&p).expect("lstat");
        let ft = m.file_type();
        let (kind, payload) = if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_file() {
            ("file", Digest::of(&fs::read(&p).expect("read")).to_string())
        } else if ft.is_symlink() {
            (
                "symlink",
                fs::read_link(&p).expect("readlink").display().to_string(),
            )
        } else if ft.is_char_device() {
            (
                "char",
                format!("{}:{}", libc::major(m.rdev()), libc::minor(m.rdev())),
            )
        } else if ft.is_block_device() {
            (
                "block",
                format!("{}:{}", libc::major(m.rdev()), libc::minor(m.rdev())),
            )
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else {
            ("other", String::new())
        };
        let mut xattrs = BTreeMap::new();
        for k in xattr::list(&p).expect("listxattr") {
            let v = xattr::get(&p, &k).expect("getxattr").unwrap_or_default();
            xattrs.insert(k.to_string_lossy().into_owned(), v);
        }
        let link_group = (!ft.is_dir() && m.nlink() > 1 && kind != "char").then(|| {
            inodes
                .entry((m.dev(), m.ino()))
                .or_insert_with(|| rel.clone())
                .clone()
        });
        out.insert(
            rel,
            Node {
                kind,
                // Symlink permission bits are meaningless on Linux.
                mode: if ft.is_symlink() {
                    0
                } else {
                    m.mode() & 0o7777
                },
                uid: m.uid(),
                gid: m.gid(),
                mtime: m.mtime(),
                payload,
                xattrs,
                link_group,
            },
        );
        if ft.is_dir() {
            walk(root, &p, out, inodes);
        }
    }
}
