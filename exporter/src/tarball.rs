//! Writing a tar file atomically (temp file in the destination's directory, then rename),
//! with fixed metadata so the same image always gives the same bytes.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use kiln_oci::{ContentStore, Digest};
use tempfile::NamedTempFile;

use crate::error::io_err;
use crate::ExportError;

/// A tar being written to a temp file; [`TarOut::finish`] publishes it at `dest`.
pub(crate) struct TarOut {
    builder: tar::Builder<BufWriter<NamedTempFile>>,
    dest: PathBuf,
    blobs: BTreeSet<Digest>,
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

impl TarOut {
    /// Starts a tar that will replace `dest`.
    pub(crate) fn create(dest: &Path) -> Result<Self, ExportError> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".kiln-export-")
            .tempfile_in(&dir)
            .map_err(io_err(&dir))?;
        let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, tmp));
        builder.mode(tar::HeaderMode::Deterministic);
        Ok(TarOut {
            builder,
            dest: dest.to_path_buf(),
            blobs: BTreeSet::new(),
        })
    }

    /// A directory entry (`path` ends with `/`).
    pub(crate) fn dir(&mut self, path: &str) -> Result<(), ExportError> {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        self.builder
            .append_data(&mut h, path, std::io::empty())
            .map_err(io_err(&self.dest))
    }

    /// A regular file with `data`.
    pub(crate) fn bytes(&mut self, path: &str, data: &[u8]) -> Result<(), ExportError> {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        self.builder
            .append_data(&mut h, path, data)
            .map_err(io_err(&self.dest))
    }

    /// `blobs/sha256/<hex>` streamed from the store, once per digest.
    pub(crate) fn blob(
        &mut self,
        store: &ContentStore,
        digest: &Digest,
    ) -> Result<(), ExportError> {
        if !self.blobs.insert(digest.clone()) {
            return Ok(());
        }
        let src = store.blob_path(digest);
        let file = File::open(&src).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                ExportError::Store(kiln_oci::store::StoreError::NotFound(digest.clone()))
            }
            _ => ExportError::Io {
                path: src.clone(),
                source: e,
            },
        })?;
        let size = file.metadata().map_err(io_err(&src))?.len();
        let mut h = header(tar::EntryType::Regular, 0o644, size);
        self.builder
            .append_data(&mut h, format!("blobs/sha256/{}", digest.hex()), file)
            .map_err(io_err(&self.dest))
    }

    /// Finishes the archive, syncs it and renames it over `dest`.
    pub(crate) fn finish(self) -> Result<(), ExportError> {
        let dest = self.dest;
        let buf = self.builder.into_inner().map_err(io_err(&dest))?;
        let tmp = buf.into_inner().map_err(|e| ExportError::Io {
            path: dest.clone(),
            source: e.into_error(),
        })?;
        tmp.as_file().sync_all().map_err(io_err(&dest))?;
        tmp.persist(&dest).map_err(|e| ExportError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }
}

/// Writes `bytes` to `dest` atomically (temp file beside it, fsync, rename).
pub(crate) fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".kiln-export-")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    tmp.write_all(bytes).map_err(io_err(dest))?;
    tmp.as_file().sync_all().map_err(io_err(dest))?;
    tmp.persist(dest).map_err(|e| ExportError::Io {
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}
