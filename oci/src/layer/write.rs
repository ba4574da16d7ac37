//! Overlay upper dir → layer tar → (gzip | zstd | nothing) → content store.
//!
//! One pass, streaming: the tar is hashed (the diff id) on its way into the compressor, whose
//! output the store hashes again (the blob digest) while writing it to a temp file.
//!
//! Determinism: the tree is walked depth first with the names in each directory sorted
//! bytewise; headers are GNU format with mode, uid, gid, size, mtime (whole seconds, clamped
//! by [`LayerOptions::mtime_clamp`]) and device numbers only: no atime/ctime, empty user and
//! group names. Extended attributes go in PAX `SCHILY.xattr.<name>` records, sorted by name.

use super::encoder::Encoder;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::{
    is_private_xattr, Compression, LayerError, WrittenLayer, OPAQUE_WHITEOUT, OVERLAY_OPAQUE_XATTR,
    OVERLAY_USER_OPAQUE_XATTR, WHITEOUT_PREFIX,
};
use crate::store::ContentStore;
use crate::Sha256Writer;

const BUF_SIZE: usize = 1 << 20;

/// How to write a layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerOptions {
    /// Compression of the blob.
    pub compression: Compression,
    /// Clamp every entry's mtime to at most this (Unix seconds): `SOURCE_DATE_EPOCH`.
    pub mtime_clamp: Option<u64>,
}

/// Tars an overlay upper dir into a layer blob in the store.
///
/// Overlay whiteouts (0/0 char devices) become `.wh.<name>`, opaque directories
/// (`trusted.overlay.opaque=y` or `user.overlay.opaque=y`) get `.wh..wh..opq`. Entries are
/// sorted, headers deterministic (no atime/ctime, no user/group names). Returns `None` when
/// the dir is empty (nothing changed).
pub fn write_layer_from_upper(
    upper: &Path,
    store: &ContentStore,
    compression: Compression,
) -> Result<Option<WrittenLayer>, LayerError> {
    write_layer(
        upper,
        store,
        &LayerOptions {
            compression,
            mtime_clamp: None,
        },
    )
}

/// [`write_layer_from_upper`] with all the options.
pub fn write_layer(
    upper: &Path,
    store: &ContentStore,
    opts: &LayerOptions,
) -> Result<Option<WrittenLayer>, LayerError> {
    let mut first = fs::read_dir(upper).map_err(|e| LayerError::io(upper.display(), e))?;
    if first.next().is_none() {
        return Ok(None);
    }
    let blob = store.writer()?;
    let encoder = Encoder::new(opts.compression, None, blob)
        .map_err(|e| LayerError::io(upper.display(), e))?;
    let tee = TarHasher {
        inner: encoder,
        hash: Sha256Writer::new(),
    };
    let mut walker = Walker {
        builder: tar::Builder::new(BufWriter::with_capacity(BUF_SIZE, tee)),
        upper: upper.to_path_buf(),
        hardlinks: HashMap::new(),
        mtime_clamp: opts.mtime_clamp,
    };
    walker.walk_dir(upper, &mut PathBuf::new())?;
    let io = |e| LayerError::io(upper.display(), e);
    let tee = walker
        .builder
        .into_inner()
        .map_err(io)?
        .into_inner()
        .map_err(|e| io(e.into_error()))?;
    let (diff_id, _) = tee.hash.finish();
    let blob = tee.inner.finish().map_err(io)?;
    let (digest, size) = blob.commit(None)?;
    Ok(Some(WrittenLayer {
        diff_id,
        blob: digest,
        size,
        media_type: opts.compression.media_type().to_string(),
    }))
}

/// Hashes the uncompressed tar on its way to the compressor.
struct TarHasher {
    inner: Encoder,
    hash: Sha256Writer,
}

impl Write for TarHasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Fails instead of producing a corrupt tar when a file shrinks while it is read.
struct ExactReader<R> {
    inner: R,
    left: u64,
    path: PathBuf,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while it was being archived", self.path.display()),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// An extended attribute: name and value.
type Xattr = (Vec<u8>, Vec<u8>);

struct Walker {
    builder: tar::Builder<BufWriter<TarHasher>>,
    upper: PathBuf,
    /// (dev, ino) → archive path of the first entry seen for a multiply-linked file.
    hardlinks: HashMap<(u64, u64), PathBuf>,
    mtime_clamp: Option<u64>,
}

impl Walker {
    fn io(&self, rel: &Path) -> impl FnOnce(io::Error) -> LayerError {
        let p = self.upper.join(rel);
        move |e| LayerError::io(p.display(), e)
    }

    /// Emits every entry under `dir` (`rel` is its path inside the layer).
    fn walk_dir(&mut self, dir: &Path, rel: &mut PathBuf) -> Result<(), LayerError> {
        let mut names: Vec<OsString> = fs::read_dir(dir)
            .and_then(|rd| rd.map(|e| e.map(|e| e.file_name())).collect())
            .map_err(self.io(rel))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            rel.push(&name);
            let abs = dir.join(&name);
            let result = self.emit(&abs, rel, &name);
            let recurse = match result {
                Ok(r) => r,
                Err(e) => {
                    rel.pop();
                    return Err(e);
                }
            };
            if recurse {
                self.walk_dir(&abs, rel)?;
            }
            rel.pop();
        }
        Ok(())
    }

    fn header(&self, meta: &fs::Metadata, kind: EntryType) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(u64::from(meta.uid()));
        h.set_gid(u64::from(meta.gid()));
        let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
        h.set_mtime(self.mtime_clamp.map_or(mtime, |c| mtime.min(c)));
        h.set_size(0);
        h
    }

    /// Emits one entry; returns whether it is a directory to descend into.
    fn emit(&mut self, abs: &Path, rel: &Path, name: &OsString) -> Result<bool, LayerError> {
        let meta = fs::symlink_metadata(abs).map_err(self.io(rel))?;
        let ft = meta.file_type();

        if ft.is_char_device() && meta.rdev() == 0 {
            // Overlay whiteout → `.wh.<name>`. Whiteouts may share one inode (overlayfs links
            // them to a shared whiteout), so they never take part in hardlink detection.
            let mut wh = OsString::from(WHITEOUT_PREFIX);
            wh.push(name);
            let path = rel.with_file_name(wh);
            let mut h = self.header(&meta, EntryType::Regular);
            h.set_mode(0o644);
            self.builder
                .append_data(&mut h, &path, io::empty())
                .map_err(self.io(rel))?;
            return Ok(false);
        }

        let xattrs = self.xattrs(abs, rel)?;
        if !xattrs.is_empty() {
            let mut records: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(k, v)| {
                    (
                        format!("SCHILY.xattr.{}", String::from_utf8_lossy(k)),
                        &v[..],
                    )
                })
                .collect();
            records.sort();
            self.builder
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(self.io(rel))?;
        }

        if ft.is_dir() {
            let mut h = self.header(&meta, EntryType::Directory);
            let mut path = rel.as_os_str().to_owned();
            path.push("/");
            self.builder
                .append_data(&mut h, Path::new(&path), io::empty())
                .map_err(self.io(rel))?;
            if self.is_opaque(abs, rel)? {
                let mut h = self.header(&meta, EntryType::Regular);
                h.set_mode(0o644);
                self.builder
                    .append_data(&mut h, rel.join(OPAQUE_WHITEOUT), io::empty())
                    .map_err(self.io(rel))?;
            }
            return Ok(true);
        }

        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.hardlinks.get(&key) {
                let mut h = self.header(&meta, EntryType::Link);
                let first = first.clone();
                self.builder
                    .append_link(&mut h, rel, &first)
                    .map_err(self.io(rel))?;
                return Ok(false);
            }
            self.hardlinks.insert(key, rel.to_path_buf());
        }

        if ft.is_file() {
            let mut h = self.header(&meta, EntryType::Regular);
            h.set_size(meta.len());
            let file = File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(abs)
                .map_err(self.io(rel))?;
            let reader = ExactReader {
                inner: BufReader::with_capacity(BUF_SIZE, file),
                left: meta.len(),
                path: abs.to_path_buf(),
            };
            self.builder
                .append_data(&mut h, rel, reader)
                .map_err(self.io(rel))?;
        } else if ft.is_symlink() {
            let target = fs::read_link(abs).map_err(self.io(rel))?;
            let mut h = self.header(&meta, EntryType::Symlink);
            self.append_symlink(&mut h, rel, target.as_os_str().as_bytes())
                .map_err(self.io(rel))?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_char_device() {
                EntryType::Char
            } else if ft.is_block_device() {
                EntryType::Block
            } else {
                EntryType::Fifo
            };
            let mut h = self.header(&meta, kind);
            if kind != EntryType::Fifo {
                let rdev = meta.rdev();
                let (major, minor) = (libc::major(rdev), libc::minor(rdev));
                h.set_device_major(major).map_err(self.io(rel))?;
                h.set_device_minor(minor).map_err(self.io(rel))?;
            }
            self.builder
                .append_data(&mut h, rel, io::empty())
                .map_err(self.io(rel))?;
        } else {
            // Sockets cannot be represented in a tar; Docker skips them too.
            tracing::debug!(path = %abs.display(), "skipping socket in layer");
        }
        Ok(false)
    }

    /// Appends a symlink keeping its target byte for byte (`tar::Builder::append_link`
    /// would normalise `//` and `./` away); long targets get a GNU `K` entry.
    fn append_symlink(&mut self, h: &mut Header, path: &Path, target: &[u8]) -> io::Result<()> {
        let field_len = h.as_old().linkname.len();
        if target.len() > field_len {
            let mut k = Header::new_gnu();
            k.as_gnu_mut()
                .ok_or_else(|| io::Error::other("not a GNU header"))?
                .name[..13]
                .copy_from_slice(b"././@LongLink");
            k.set_mode(0o644);
            k.set_entry_type(EntryType::GNULongLink);
            k.set_size(target.len() as u64 + 1);
            k.set_cksum();
            self.builder.append(&k, target.chain(&[0u8][..]))?;
        }
        let n = target.len().min(field_len);
        h.as_old_mut().linkname[..n].copy_from_slice(&target[..n]);
        self.builder.append_data(h, path, io::empty())
    }

    /// The xattrs to record, sorted by name (overlay's own and host-private ones dropped).
    fn xattrs(&self, abs: &Path, rel: &Path) -> Result<Vec<Xattr>, LayerError> {
        let names = match xattr::list(abs) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(self.io(rel)(e)),
        };
        let mut out = Vec::new();
        for name in names {
            let bytes = name.as_bytes();
            if is_private_xattr(bytes) {
                continue;
            }
            if let Some(value) = xattr::get(abs, &name).map_err(self.io(rel))? {
                out.push((name.into_vec(), value));
            }
        }
        out.sort();
        Ok(out)
    }

    fn is_opaque(&self, abs: &Path, rel: &Path) -> Result<bool, LayerError> {
        for key in [OVERLAY_OPAQUE_XATTR, OVERLAY_USER_OPAQUE_XATTR] {
            match xattr::get(abs, key) {
                Ok(Some(v)) if v == b"y" => return Ok(true),
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {}
                Err(e) => return Err(self.io(rel)(e)),
            }
        }
        Ok(false)
    }
}
