//! COPY / WORKDIR-mkdir, run by the re-executed init in a private mount namespace: the
//! rootfs overlay and read-only overlays of source stages are mounted there, so no mount can
//! reach the host, and every write lands in the overlay upper dir (the new layer).

mod copy;
mod exclude;
mod parents;
mod paths;
mod pattern;
mod tree;
mod unpack;

use std::path::Path;

use kiln_ir::FileAction;
use nix::sched::{unshare, CloneFlags};

use crate::init::{make_root_private, mount_overlay, mount_rootfs};
use crate::spec::{FileSpec, InitFailure, SourceSpec};
use tree::Tree;

/// The `mknod` type of a special file (char or block device, else FIFO) being copied.
pub(crate) fn special_kind(ft: &std::fs::FileType) -> nix::sys::stat::SFlag {
    use nix::sys::stat::SFlag;
    use std::os::unix::fs::FileTypeExt;
    if ft.is_char_device() {
        SFlag::S_IFCHR
    } else if ft.is_block_device() {
        SFlag::S_IFBLK
    } else {
        SFlag::S_IFIFO
    }
}

/// Runs every action of a file job in the calling (single-threaded, freshly re-executed)
/// process.
pub(crate) fn run_file_job(spec: &FileSpec) -> Result<(), InitFailure> {
    let other = InitFailure::Other;
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| other(format!("unshare mount namespace: {e}")))?;
    make_root_private().map_err(other)?;
    mount_rootfs(&spec.rootfs).map_err(other)?;
    let mut trees = Vec::with_capacity(spec.sources.len());
    for source in &spec.sources {
        trees.push(match source {
            SourceSpec::Layers { lowers, target } => {
                if !lowers.is_empty() {
                    // Overlay needs two lower dirs without an upper one: pad with the empty dir.
                    let mut l = lowers.clone();
                    l.push(spec.empty.clone());
                    mount_overlay(&spec.rootfs.snapshots_dir, &l, None, target).map_err(other)?;
                }
                Tree::fs(target.clone())
            }
            SourceSpec::Context(files) => Tree::context(files),
        });
    }
    let root: &Path = &spec.rootfs.target;
    for action in &spec.actions {
        match action {
            FileAction::Copy(c) => {
                let tree = c
                    .source_input
                    .checked_sub(1)
                    .and_then(|i| trees.get(i))
                    .ok_or_else(|| {
                        other(format!("COPY source input {} is missing", c.source_input))
                    })?;
                copy::copy(root, tree, c)?;
            }
            FileAction::Mkdir(m) => copy::mkdir(root, m)?,
            FileAction::Mkfile(m) => copy::mkfile(root, m)?,
        }
    }
    Ok(())
}
