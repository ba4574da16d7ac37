//! File-system operations confined to one directory tree.
//!
//! Every path is walked one component at a time from a directory fd with
//! `O_NOFOLLOW | O_DIRECTORY`, so a symlink (or anything but a real directory) in the middle of
//! a path stops the walk instead of leading outside the tree; the last component is only ever
//! used with `*at` calls that do not follow it. Paths are cleaned first: `..` is refused,
//! leading `/` and `.` components are dropped.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::LayerError;

/// A cleaned, relative path: its components (never `.`, `..` or empty).
pub(crate) type Components = Vec<OsString>;

/// Splits an archive path into components; `..` anywhere is an error.
pub(crate) fn clean(entry: &str, path: &[u8]) -> Result<Components, LayerError> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(LayerError::bad(entry, "path contains `..`")),
            _ => {
                if c.contains(&0) {
                    return Err(LayerError::bad(entry, "path contains a NUL byte"));
                }
                out.push(OsStr::from_bytes(c).to_owned());
            }
        }
    }
    Ok(out)
}

/// Renders components for messages.
pub(crate) fn display(c: &[OsString]) -> String {
    let p: std::path::PathBuf = c.iter().collect();
    p.display().to_string()
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Opens the directory `name` in `parent` without following a symlink.
pub(crate) fn open_dir(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(parent, name, DIR_FLAGS, Mode::empty())
}

/// The root of a confined tree plus a one-entry cache of the last parent directory walked
/// (archives list siblings together, so most walks hit it).
pub(crate) struct Tree {
    root: OwnedFd,
    root_path: String,
    cache: Option<(Components, OwnedFd)>,
}

impl Tree {
    /// Opens `root`, which must be a directory (it may itself be reached through symlinks:
    /// the caller chose it).
    pub(crate) fn open(root: &Path) -> Result<Tree, LayerError> {
        let fd = openat(
            nix::fcntl::AT_FDCWD,
            root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| LayerError::io(root.display(), e.into()))?;
        Ok(Tree {
            root: fd,
            root_path: root.display().to_string(),
            cache: None,
        })
    }

    /// The root directory's fd.
    pub(crate) fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Forgets the cached parent (call after removing any directory).
    pub(crate) fn invalidate(&mut self) {
        self.cache = None;
    }

    /// Walks `dirs` below the root, creating missing directories (mode 0755) when `create`.
    /// Returns `None` for the root itself.
    fn walk(
        &self,
        entry: &str,
        dirs: &[OsString],
        create: bool,
    ) -> Result<Option<OwnedFd>, LayerError> {
        let mut cur: Option<OwnedFd> = None;
        for (i, name) in dirs.iter().enumerate() {
            let parent = cur.as_ref().map_or(self.root.as_fd(), |f| f.as_fd());
            let next = match open_dir(parent, name) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    match mkdirat(parent, name.as_os_str(), Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(self.io_at(&dirs[..=i], e)),
                    }
                    open_dir(parent, name).map_err(|e| self.io_at(&dirs[..=i], e))?
                }
                Err(Errno::ENOENT) => {
                    return Err(LayerError::bad(
                        entry,
                        format!("{} does not exist", display(&dirs[..=i])),
                    ))
                }
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    return Err(LayerError::bad(
                        entry,
                        format!(
                            "{} is a symlink or not a directory; refusing to go through it",
                            display(&dirs[..=i])
                        ),
                    ))
                }
                Err(e) => return Err(self.io_at(&dirs[..=i], e)),
            };
            cur = Some(next);
        }
        Ok(cur)
    }

    /// The directory holding `dirs` (created as needed), through the cache.
    pub(crate) fn parent(
        &mut self,
        entry: &str,
        dirs: &[OsString],
    ) -> Result<BorrowedFd<'_>, LayerError> {
        if dirs.is_empty() {
            return Ok(self.root.as_fd());
        }
        let hit = matches!(&self.cache, Some((c, _)) if c.as_slice() == dirs);
        if !hit {
            self.cache = None;
            let fd = self.walk(entry, dirs, true)?;
            self.cache = fd.map(|fd| (dirs.to_vec(), fd));
        }
        Ok(match &self.cache {
            Some((_, fd)) => fd.as_fd(),
            None => self.root.as_fd(),
        })
    }

    /// The existing directory `dirs`, uncached and never created.
    pub(crate) fn existing(
        &self,
        entry: &str,
        dirs: &[OsString],
    ) -> Result<Option<OwnedFd>, LayerError> {
        self.walk(entry, dirs, false)
    }

    /// An I/O error naming the path below the root.
    pub(crate) fn io_at(&self, c: &[OsString], e: Errno) -> LayerError {
        LayerError::io(format!("{}/{}", self.root_path, display(c)), e.into())
    }
}

/// What is at `name` in `parent` (not following a symlink), or `None`.
pub(crate) fn kind_at(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<Option<SFlag>> {
    match fstatat(parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(SFlag::from_bits_truncate(
            st.st_mode & SFlag::S_IFMT.bits(),
        ))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The names in the directory `dir` (without `.` and `..`).
pub(crate) fn list(dir: BorrowedFd<'_>) -> nix::Result<Vec<OsString>> {
    let owned = dir
        .try_clone_to_owned()
        .map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
    let mut d = nix::dir::Dir::from_fd(owned)?;
    let mut children = Vec::new();
    for ent in d.iter() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            children.push(OsStr::from_bytes(n).to_owned());
        }
    }
    Ok(children)
}

/// The directory `dirs` below `root` if it exists as a real directory (no symlink followed).
pub(crate) fn find_dir(root: BorrowedFd<'_>, dirs: &[OsString]) -> nix::Result<Option<OwnedFd>> {
    let mut cur = root
        .try_clone_to_owned()
        .map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
    for name in dirs {
        match open_dir(cur.as_fd(), name) {
            Ok(fd) => cur = fd,
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(cur))
}

/// Removes `name` from `parent`, recursively for a directory, following no symlink.
/// Returns whether a directory was removed.
pub(crate) fn remove_all(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<bool> {
    match kind_at(parent, name)? {
        None => Ok(false),
        Some(SFlag::S_IFDIR) => {
            let fd = open_dir(parent, name)?;
            for child in list(fd.as_fd())? {
                remove_all(fd.as_fd(), &child)?;
            }
            unlinkat(parent, name, UnlinkatFlags::RemoveDir)?;
            Ok(true)
        }
        Some(_) => {
            unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)?;
            Ok(false)
        }
    }
}
