//! Layer blob → directory in overlayfs lowerdir format, confined to the destination.
//!
//! Entries are applied in archive order and the last entry for a path wins (a directory over
//! a directory merges). `.wh.<name>` becomes a 0/0 character device, `.wh..wh..opq` the
//! `trusted.overlay.opaque=y` xattr on its directory, other `.wh..wh.*` (aufs bookkeeping)
//! are skipped. Ownership, modes, mtimes and xattrs are restored; directory mtimes last.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, futimens, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, Gid, Uid};
use tar::EntryType;
use xattr::FileExt as _;

use super::safe_fs::{self, clean, kind_at, remove_all, Components, Tree};
use super::{
    is_private_xattr, Compression, LayerError, OPAQUE_WHITEOUT, OVERLAY_OPAQUE_XATTR,
    OVERLAY_USER_OPAQUE_XATTR, WHITEOUT_PREFIX,
};
use crate::{Digest, Sha256Writer};

const BUF_SIZE: usize = 1 << 20;

/// Unpacks a layer blob into the empty dir `dest`, in overlay's format (so `dest` can be an
/// overlay lowerdir): `.wh.<name>` becomes a 0/0 char device, `.wh..wh..opq` the opaque
/// xattr. Every path is resolved inside `dest`. Returns the diff id (sha256 of the
/// uncompressed tar) so the caller can verify it.
///
/// The compression comes from `media_type` (OCI and Docker layer types); for any other media
/// type (for example `""`) it is sniffed from the magic bytes.
pub fn unpack_layer(blob: &Path, media_type: &str, dest: &Path) -> Result<Digest, LayerError> {
    unpack(blob, media_type, dest, None, false)
}

/// Applies a layer blob onto the plain tree `dest` (a filesystem being flattened, e.g. for a
/// `type=local` output): `.wh.<name>` deletes `name`, `.wh..wh..opq` deletes what earlier
/// layers put in its directory, and nothing overlay-specific is written. Apply the layers of
/// an image bottom first. Returns the diff id, as [`unpack_layer`] does.
pub fn apply_layer(blob: &Path, media_type: &str, dest: &Path) -> Result<Digest, LayerError> {
    unpack(blob, media_type, dest, Some(HashSet::new()), false)
}

/// Extracts a plain tar (gzip or zstd compressed, or not) into `dest` with the same
/// confinement and metadata as a layer, but without whiteout semantics: an entry named
/// `.wh.x` is just a file (a build context sent as a tar).
pub fn extract_tar(blob: &Path, dest: &Path) -> Result<(), LayerError> {
    unpack(blob, "", dest, None, true).map(|_| ())
}

/// `written`: `None` unpacks in overlay format; `Some` applies flat, collecting the paths this
/// layer wrote (an opaque directory keeps those).
fn unpack(
    blob: &Path,
    media_type: &str,
    dest: &Path,
    written: Option<HashSet<Components>>,
    literal: bool,
) -> Result<Digest, LayerError> {
    let file = File::open(blob).map_err(|e| LayerError::io(blob.display(), e))?;
    let mut buffered = BufReader::with_capacity(BUF_SIZE, file);
    let compression = match Compression::from_media_type(media_type) {
        Some(c) => c,
        None => {
            let head = io::BufRead::fill_buf(&mut buffered)
                .map_err(|e| LayerError::io(blob.display(), e))?;
            Compression::sniff(head)
        }
    };
    let decoded: Box<dyn Read> = match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered)
                .map_err(|e| LayerError::io(blob.display(), e))?,
        ),
        Compression::None => Box::new(buffered),
    };
    let hashing = HashingReader {
        inner: decoded,
        hash: Sha256Writer::new(),
    };
    let mut archive = tar::Archive::new(hashing);
    let mut unpacker = Unpacker {
        tree: safe_fs::Tree::open(dest)?,
        buf: vec![0u8; BUF_SIZE],
        dir_times: Vec::new(),
        written,
        literal,
    };
    let blob_err = |e: io::Error| LayerError::io(blob.display(), e);
    for entry in archive.entries().map_err(blob_err)? {
        let mut entry = entry.map_err(blob_err)?;
        unpacker.apply(&mut entry)?;
    }
    unpacker.finish()?;
    // The diff id covers the whole stream, including the end-of-archive blocks and padding
    // that the tar reader stops short of.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(blob_err)?;
    Ok(rest.hash.finish().0)
}

struct HashingReader<R> {
    inner: R,
    hash: Sha256Writer,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Metadata of one entry, from its header and PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: TimeSpec,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

struct Unpacker {
    tree: Tree,
    buf: Vec<u8>,
    /// Directories whose mtime is set at the end (children change it while unpacking).
    dir_times: Vec<(Components, TimeSpec)>,
    /// Flat mode ([`apply_layer`]): the paths this layer wrote; `None` in overlay format.
    written: Option<HashSet<Components>>,
    /// A plain tar, not a layer: no whiteout handling at all ([`extract_tar`]).
    literal: bool,
}

impl Unpacker {
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), LayerError> {
        let raw_path = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_path).into_owned();
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            return Ok(());
        }
        let mut comps = clean(&name, &raw_path)?;
        let meta = self.meta(entry, &name)?;

        let Some(last) = comps.pop() else {
            // The root itself ("./" or "/"): only a directory makes sense there.
            if kind == EntryType::Directory {
                let root = self
                    .tree
                    .root()
                    .try_clone_to_owned()
                    .map_err(|e| LayerError::io(&name, e))?;
                set_fd_meta(root.as_fd(), &meta, &name)?;
                self.dir_times.push((Vec::new(), meta.mtime));
                return Ok(());
            }
            return Err(LayerError::bad(name, "entry has an empty path"));
        };
        let last_bytes = last.as_bytes();

        // A plain tar ([`extract_tar`]) has no whiteouts: `.wh.` names are ordinary files.
        if !self.literal {
            if self.written.is_some() {
                if let Some(done) = self.flat_whiteout(&name, &comps, &last)? {
                    return done;
                }
                let mut path = comps.clone();
                path.push(last.clone());
                if let Some(w) = self.written.as_mut() {
                    w.insert(path);
                }
            }
            if last_bytes == OPAQUE_WHITEOUT.as_bytes() {
                let parent = self.tree.parent(&name, &comps)?;
                // In a user namespace (rootless) `trusted.*` cannot be set: overlay is then
                // mounted with `userxattr` and reads `user.overlay.opaque`.
                return match set_xattr_fd(parent, OsStr::new(OVERLAY_OPAQUE_XATTR), b"y") {
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                        set_xattr_fd(parent, OsStr::new(OVERLAY_USER_OPAQUE_XATTR), b"y")
                    }
                    r => r,
                }
                .map_err(|e| LayerError::io(&name, e));
            }
            if last_bytes.starts_with(b".wh..wh.") {
                return Ok(());
            }
            if let Some(hidden) = last_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
                if hidden.is_empty() || hidden == b"." || hidden == b".." {
                    return Err(LayerError::bad(name, "whiteout of an invalid name"));
                }
                let hidden = OsStr::from_bytes(hidden);
                let parent = self.tree.parent(&name, &comps)?;
                let removed_dir =
                    remove_all(parent, hidden).map_err(|e| LayerError::io(&name, e.into()))?;
                mknodat(parent, hidden, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                    .map_err(|e| LayerError::io(&name, e.into()))?;
                mapped(fchownat(
                    parent,
                    hidden,
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                ))
                .map_err(|e| LayerError::io(&name, e.into()))?;
                utimensat(
                    parent,
                    hidden,
                    &meta.mtime,
                    &meta.mtime,
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(|e| LayerError::io(&name, e.into()))?;
                if removed_dir {
                    self.tree.invalidate();
                }
                return Ok(());
            }
        }

        match kind {
            EntryType::Directory => self.dir(&name, comps, last, &meta),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(&name, &comps, &last, &meta, entry)
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| LayerError::bad(&name, "symlink without a target"))?
                    .into_owned();
                self.symlink(&name, &comps, &last, &meta, &target)
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| LayerError::bad(&name, "hardlink without a target"))?
                    .into_owned();
                self.hardlink(&name, &comps, &last, &target)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let sflag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                self.node(&name, &comps, &last, &meta, sflag, major, minor)
            }
            other => Err(LayerError::bad(
                name,
                format!("unsupported entry type {:?}", other.as_byte() as char),
            )),
        }
    }

    /// Flat mode: a whiteout deletes (`Some(Ok)`); anything else is applied as usual (`None`).
    fn flat_whiteout(
        &mut self,
        name: &str,
        comps: &Components,
        last: &OsStr,
    ) -> Result<Option<Result<(), LayerError>>, LayerError> {
        let last_bytes = last.as_bytes();
        if last_bytes == OPAQUE_WHITEOUT.as_bytes() {
            // Everything in the directory that this layer did not write came from below.
            let Some(dir) = safe_fs::find_dir(self.tree.root(), comps)
                .map_err(|e| LayerError::io(name, e.into()))?
            else {
                return Ok(Some(Ok(())));
            };
            let children =
                safe_fs::list(dir.as_fd()).map_err(|e| LayerError::io(name, e.into()))?;
            let mut removed_dir = false;
            for child in children {
                let mut path = comps.clone();
                path.push(child.clone());
                if self.written.as_ref().is_some_and(|w| w.contains(&path)) {
                    continue;
                }
                removed_dir |=
                    remove_all(dir.as_fd(), &child).map_err(|e| LayerError::io(name, e.into()))?;
            }
            if removed_dir {
                self.tree.invalidate();
            }
            return Ok(Some(Ok(())));
        }
        if last_bytes.starts_with(b".wh..wh.") {
            return Ok(Some(Ok(())));
        }
        let Some(hidden) = last_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) else {
            return Ok(None);
        };
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(LayerError::bad(name, "whiteout of an invalid name"));
        }
        let Some(parent) = safe_fs::find_dir(self.tree.root(), comps)
            .map_err(|e| LayerError::io(name, e.into()))?
        else {
            return Ok(Some(Ok(())));
        };
        let hidden = OsStr::from_bytes(hidden);
        if kind_at(parent.as_fd(), hidden)
            .map_err(|e| LayerError::io(name, e.into()))?
            .is_some()
            && remove_all(parent.as_fd(), hidden).map_err(|e| LayerError::io(name, e.into()))?
        {
            self.tree.invalidate();
        }
        Ok(Some(Ok(())))
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, LayerError> {
        let h = entry.header();
        let bad = |what: &str| LayerError::bad(name, format!("bad {what} field"));
        let mode = h.mode().map_err(|_| bad("mode"))? & 0o7777;
        let uid = u32::try_from(h.uid().map_err(|_| bad("uid"))?).map_err(|_| bad("uid"))?;
        let gid = u32::try_from(h.gid().map_err(|_| bad("gid"))?).map_err(|_| bad("gid"))?;
        let mut secs = i64::try_from(h.mtime().map_err(|_| bad("mtime"))?).unwrap_or(i64::MAX);
        let mut nanos = 0i64;
        let mut xattrs = Vec::new();
        if let Some(pax) = entry
            .pax_extensions()
            .map_err(|e| LayerError::io(name, e))?
        {
            for rec in pax {
                let rec = rec.map_err(|_| LayerError::bad(name, "malformed PAX record"))?;
                let key = rec.key_bytes();
                if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                    if !x.is_empty() && !x.contains(&0) && !is_private_xattr(x) {
                        xattrs.push((OsStr::from_bytes(x).to_owned(), rec.value_bytes().to_vec()));
                    }
                } else if key == b"mtime" {
                    let v = rec.value().map_err(|_| bad("PAX mtime"))?;
                    let (s, frac) = v.split_once('.').unwrap_or((v, ""));
                    secs = s.parse().map_err(|_| bad("PAX mtime"))?;
                    let digits: String = frac.chars().take(9).collect();
                    if !digits.is_empty() {
                        let scale = 10i64.pow(9 - digits.len() as u32);
                        nanos = digits.parse::<i64>().map_err(|_| bad("PAX mtime"))? * scale;
                    }
                }
            }
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime: TimeSpec::new(secs, nanos),
            xattrs,
        })
    }

    /// Removes whatever is at `last` unless it is a directory and `keep_dir`; returns whether
    /// a directory is (still) there.
    fn clear(
        &mut self,
        name: &str,
        comps: &[OsString],
        last: &OsStr,
        keep_dir: bool,
    ) -> Result<bool, LayerError> {
        let parent = self.tree.parent(name, comps)?;
        let kind = kind_at(parent, last).map_err(|e| LayerError::io(name, e.into()))?;
        if keep_dir && kind == Some(SFlag::S_IFDIR) {
            return Ok(true);
        }
        if kind.is_some() {
            let removed_dir =
                remove_all(parent, last).map_err(|e| LayerError::io(name, e.into()))?;
            if removed_dir {
                self.tree.invalidate();
            }
        }
        Ok(false)
    }

    fn dir(
        &mut self,
        name: &str,
        mut comps: Components,
        last: OsString,
        meta: &Meta,
    ) -> Result<(), LayerError> {
        let exists = self.clear(name, &comps, &last, true)?;
        let parent = self.tree.parent(name, &comps)?;
        if !exists {
            mkdirat(parent, last.as_os_str(), Mode::from_bits_truncate(0o700))
                .map_err(|e| LayerError::io(name, e.into()))?;
        }
        let fd = safe_fs::open_dir(parent, &last).map_err(|e| LayerError::io(name, e.into()))?;
        set_fd_meta(fd.as_fd(), meta, name)?;
        comps.push(last);
        self.dir_times.push((comps, meta.mtime));
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        name: &str,
        comps: &[OsString],
        last: &OsStr,
        meta: &Meta,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), LayerError> {
        self.clear(name, comps, last, false)?;
        let parent = self.tree.parent(name, comps)?;
        let fd = openat(
            parent,
            last,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| LayerError::io(name, e.into()))?;
        let mut file = File::from(fd);
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(LayerError::io(name, e)),
            };
            io::Write::write_all(&mut file, &self.buf[..n]).map_err(|e| LayerError::io(name, e))?;
        }
        set_fd_meta(file.as_fd(), meta, name)?;
        futimens(&file, &meta.mtime, &meta.mtime).map_err(|e| LayerError::io(name, e.into()))
    }

    fn symlink(
        &mut self,
        name: &str,
        comps: &[OsString],
        last: &OsStr,
        meta: &Meta,
        target: &[u8],
    ) -> Result<(), LayerError> {
        if target.is_empty() || target.contains(&0) {
            return Err(LayerError::bad(name, "invalid symlink target"));
        }
        self.clear(name, comps, last, false)?;
        let parent = self.tree.parent(name, comps)?;
        symlinkat(OsStr::from_bytes(target), parent, last)
            .map_err(|e| LayerError::io(name, e.into()))?;
        set_at_meta(parent, last, meta, name, false)
    }

    fn hardlink(
        &mut self,
        name: &str,
        comps: &[OsString],
        last: &OsStr,
        target: &[u8],
    ) -> Result<(), LayerError> {
        let mut tcomps = clean(name, target)?;
        let Some(tlast) = tcomps.pop() else {
            return Err(LayerError::bad(name, "hardlink to the root"));
        };
        if tcomps.as_slice() == comps && tlast.as_os_str() == last {
            return Err(LayerError::bad(name, "hardlink to itself"));
        }
        self.clear(name, comps, last, false)?;
        let tparent_fd = match self.tree.existing(name, &tcomps)? {
            Some(fd) => fd,
            None => self
                .tree
                .root()
                .try_clone_to_owned()
                .map_err(|e| LayerError::io(name, e))?,
        };
        match kind_at(tparent_fd.as_fd(), &tlast).map_err(|e| LayerError::io(name, e.into()))? {
            None => {
                return Err(LayerError::bad(
                    name,
                    format!(
                        "hardlink target {:?} does not exist in the layer",
                        String::from_utf8_lossy(target)
                    ),
                ))
            }
            Some(SFlag::S_IFDIR) => return Err(LayerError::bad(name, "hardlink to a directory")),
            Some(_) => {}
        }
        let parent = self.tree.parent(name, comps)?;
        // No AT_SYMLINK_FOLLOW: a symlink target is linked itself, never followed.
        linkat(
            tparent_fd.as_fd(),
            tlast.as_os_str(),
            parent,
            last,
            AtFlags::empty(),
        )
        .map_err(|e| LayerError::io(name, e.into()))
    }

    #[allow(clippy::too_many_arguments)]
    fn node(
        &mut self,
        name: &str,
        comps: &[OsString],
        last: &OsStr,
        meta: &Meta,
        kind: SFlag,
        major: u32,
        minor: u32,
    ) -> Result<(), LayerError> {
        self.clear(name, comps, last, false)?;
        let parent = self.tree.parent(name, comps)?;
        match mknodat(
            parent,
            last,
            kind,
            Mode::from_bits_truncate(meta.mode),
            makedev(u64::from(major), u64::from(minor)),
        ) {
            Ok(()) => {}
            // A user namespace (rootless) may not create device nodes: left out, as
            // containers/storage does.
            Err(Errno::EPERM) if kind != SFlag::S_IFIFO => {
                tracing::warn!(entry = name, "device node not created here; skipped");
                return Ok(());
            }
            Err(e) => return Err(LayerError::io(name, e.into())),
        }
        set_at_meta(parent, last, meta, name, true)
    }

    /// Sets directory mtimes, deepest last-listed first, once no child changes them any more.
    fn finish(&mut self) -> Result<(), LayerError> {
        let times = std::mem::take(&mut self.dir_times);
        for (mut comps, mtime) in times.into_iter().rev() {
            let entry = safe_fs::display(&comps);
            let Some(last) = comps.pop() else {
                futimens(self.tree.root(), &mtime, &mtime)
                    .map_err(|e| LayerError::io(&entry, e.into()))?;
                continue;
            };
            let parent = self.tree.existing(&entry, &comps)?;
            let parent = parent.as_ref().map_or(self.tree.root(), |f| f.as_fd());
            match utimensat(
                parent,
                last.as_os_str(),
                &mtime,
                &mtime,
                UtimensatFlags::NoFollowSymlink,
            ) {
                // Replaced or whited out later in the archive.
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(LayerError::io(&entry, e.into())),
            }
        }
        Ok(())
    }
}

/// A chown's result, with `EINVAL` taken as success: the kernel returns it for an id the
/// user namespace does not map (rootless kiln with the single-id mapping), and the entry
/// then stays owned by 0, like podman's `ignore_chown_errors`. Outside a user namespace every
/// id is mapped, so nothing changes there.
fn mapped(r: nix::Result<()>) -> nix::Result<()> {
    match r {
        Err(Errno::EINVAL) => Ok(()),
        r => r,
    }
}

/// Owner, then mode (chown clears set-id bits), then xattrs (chown clears
/// `security.capability`).
fn set_fd_meta(fd: BorrowedFd<'_>, meta: &Meta, name: &str) -> Result<(), LayerError> {
    mapped(fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    ))
    .map_err(|e| LayerError::io(name, e.into()))?;
    fchmod(fd, Mode::from_bits_truncate(meta.mode)).map_err(|e| LayerError::io(name, e.into()))?;
    for (k, v) in &meta.xattrs {
        xattr_outcome(name, k, set_xattr_fd(fd, k, v))?;
    }
    Ok(())
}

/// The same for a symlink or device node (never opened), by name in `parent`.
fn set_at_meta(
    parent: BorrowedFd<'_>,
    last: &OsStr,
    meta: &Meta,
    name: &str,
    chmod: bool,
) -> Result<(), LayerError> {
    let io = |e: Errno| LayerError::io(name, e.into());
    mapped(fchownat(
        parent,
        last,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    ))
    .map_err(io)?;
    if chmod {
        // `last` was just made by mknodat and is no symlink, so following is moot.
        fchmodat(
            parent,
            last,
            Mode::from_bits_truncate(meta.mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(io)?;
    }
    for (k, v) in &meta.xattrs {
        // lsetxattr through /proc/self/fd: the parent is trusted, the last component is
        // not followed.
        let path = Path::new("/proc/self/fd")
            .join(parent.as_raw_fd().to_string())
            .join(last);
        xattr_outcome(name, k, xattr::set(&path, k, v))?;
    }
    utimensat(
        parent,
        last,
        &meta.mtime,
        &meta.mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io)
}

/// Xattrs the destination file system cannot hold (`ENOTSUP`, or `EPERM` for `user.*` on a
/// symlink or device) are skipped with a warning, as containerd does; other errors fail.
fn xattr_outcome(name: &str, key: &OsStr, r: io::Result<()>) -> Result<(), LayerError> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP | libc::EPERM)) => {
            tracing::warn!(entry = name, xattr = ?key, "xattr not supported here; skipped");
            Ok(())
        }
        Err(e) => Err(LayerError::io(format!("{name} (xattr {key:?})"), e)),
    }
}

fn set_xattr_fd(fd: BorrowedFd<'_>, key: &OsStr, value: &[u8]) -> io::Result<()> {
    let file = File::from(fd.try_clone_to_owned()?);
    file.set_xattr(key, value)
}
