//! The content store: blobs by digest under `<root>/blobs/sha256/<hex>`.
//!
//! Every write goes to a fresh temp file in `<root>/tmp/`, is hashed while it streams, is
//! fsync'd and then renamed onto its digest name. A rename within one file system is atomic,
//! so readers (in this or another process) see either no blob or the whole verified blob; two
//! processes writing the same blob both rename identical bytes. A temp file that is never
//! committed (error, mismatch, drop, crash) is never published.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::{Digest, Sha256Writer};

/// Buffer size for streaming writes and copies (big: layers reach gigabytes).
const BUF_SIZE: usize = 1 << 20;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Written content did not match the expected digest.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Expected.
        expected: Digest,
        /// Actual.
        actual: Digest,
    },
    /// The blob is not in the store.
    #[error("blob {0} not found in the content store")]
    NotFound(Digest),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Blobs by digest; writes are atomic (temp file, fsync, rename) and verified.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

/// A blob being written; [`BlobWriter::commit`] verifies and publishes it.
///
/// Bytes are hashed as they are written. Dropping the writer without committing removes the
/// temp file.
pub struct BlobWriter {
    file: BufWriter<tempfile::NamedTempFile>,
    hasher: Sha256Writer,
    blobs_dir: PathBuf,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("temp", &self.file.get_ref().path())
            .finish_non_exhaustive()
    }
}

impl ContentStore {
    /// Opens (creating) a store rooted at `root` (kiln uses `<--root>/content`).
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let store = ContentStore {
            root: root.to_path_buf(),
        };
        for dir in [store.blobs_dir(), store.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where the blob lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Records that the blob was pulled from `repository` (`host[:port]/name`), so that a push
    /// to another repository of the same registry can mount it instead of uploading it.
    /// Kept in `origins/<hex>`, one repository a line; a lost concurrent update only costs a
    /// mount (the upload still works).
    pub fn add_origin(&self, digest: &Digest, repository: &str) -> Result<(), StoreError> {
        let mut known = self.origins(digest);
        if known.iter().any(|r| r == repository) {
            return Ok(());
        }
        known.push(repository.to_string());
        let dir = self.root.join("origins");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(digest.hex());
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err(&dir))?;
        io::Write::write_all(&mut tmp, (known.join("\n") + "\n").as_bytes())
            .map_err(io_err(&path))?;
        tmp.persist(&path).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// The repositories the blob was pulled from (see [`ContentStore::add_origin`]).
    pub fn origins(&self, digest: &Digest) -> Vec<String> {
        fs::read_to_string(self.root.join("origins").join(digest.hex()))
            .map(|s| {
                s.lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True when the blob is present.
    pub fn has(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The blob's size in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64, StoreError> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(digest.clone()))
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Opens a blob for streaming reads.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.blob_path(digest);
        match File::open(&path) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(digest.clone()))
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Reads a whole blob (meant for manifests and configs; stream layers with
    /// [`ContentStore::open_blob`]).
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let mut file = self.open_blob(digest)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(io_err(&path))?;
        Ok(buf)
    }

    /// Stores bytes, returning their digest.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if self.has(&digest) {
            return Ok(digest);
        }
        let mut w = self.writer()?;
        let tmp = w.file.get_ref().path().to_path_buf();
        w.write_all(bytes).map_err(io_err(&tmp))?;
        Ok(w.commit(Some(&digest))?.0)
    }

    /// Starts a streamed write.
    pub fn writer(&self) -> Result<BlobWriter, StoreError> {
        let tmp = self.tmp_dir();
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp)
            .map_err(io_err(&tmp))?;
        Ok(BlobWriter {
            file: BufWriter::with_capacity(BUF_SIZE, file),
            hasher: Sha256Writer::new(),
            blobs_dir: self.blobs_dir(),
        })
    }

    /// Copies everything `reader` yields into the store, verified against `expected` when
    /// given. Returns the digest and size.
    pub fn ingest(
        &self,
        reader: &mut dyn Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), StoreError> {
        let mut w = self.writer()?;
        let tmp = w.file.get_ref().path().to_path_buf();
        copy_big(reader, &mut w).map_err(io_err(&tmp))?;
        w.commit(expected)
    }

    /// Copies the file at `path` into the store (see [`ContentStore::ingest`]).
    pub fn ingest_file(
        &self,
        path: &Path,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), StoreError> {
        let mut f = File::open(path).map_err(io_err(path))?;
        let mut w = self.writer()?;
        copy_big(&mut f, &mut w).map_err(io_err(path))?;
        w.commit(expected)
    }
}

/// `io::copy` with a large heap buffer.
pub(crate) fn copy_big(reader: &mut dyn Read, writer: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        writer.write_all(&buf[..n])?;
        total += n as u64;
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.hasher.clone().finish().1
    }

    /// Finishes the write; fails (and discards it) if `expected` is given and differs.
    ///
    /// Returns the digest and size of the published blob.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64), StoreError> {
        let (digest, size) = self.hasher.finish();
        let tmp_path = self.file.get_ref().path().to_path_buf();
        // Dropping `file` (on any early return) deletes the temp file.
        let file = self
            .file
            .into_inner()
            .map_err(|e| io_err(&tmp_path)(e.into_error()))?;
        if let Some(expected) = expected {
            if *expected != digest {
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        let dest = self.blobs_dir.join(digest.hex());
        if dest.is_file() {
            // Another writer published the same bytes first.
            return Ok((digest, size));
        }
        file.as_file().sync_all().map_err(io_err(&tmp_path))?;
        file.persist(&dest).map_err(|e| StoreError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        // Make the rename itself durable.
        File::open(&self.blobs_dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.blobs_dir))?;
        Ok((digest, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_entries(store: &ContentStore) -> usize {
        fs::read_dir(store.tmp_dir()).map_or(0, |d| d.count())
    }

    #[test]
    fn write_read_has() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = ContentStore::open(dir.path())?;
        let d = store.write_bytes(b"hello")?;
        assert_eq!(d, Digest::of(b"hello"));
        assert!(store.has(&d));
        assert_eq!(store.read(&d)?, b"hello");
        assert_eq!(store.size(&d)?, 5);
        assert_eq!(
            store.blob_path(&d),
            dir.path().join("blobs/sha256").join(d.hex())
        );
        // Writing again is a no-op.
        assert_eq!(store.write_bytes(b"hello")?, d);
        assert_eq!(tmp_entries(&store), 0);
        Ok(())
    }

    #[test]
    fn missing_blob_is_not_found() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = ContentStore::open(dir.path())?;
        let d = Digest::of(b"nope");
        assert!(!store.has(&d));
        assert!(matches!(store.read(&d), Err(StoreError::NotFound(x)) if x == d));
        Ok(())
    }

    #[test]
    fn origins_are_kept_once_each() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = ContentStore::open(dir.path())?;
        let d = Digest::of(b"layer");
        assert!(store.origins(&d).is_empty());
        store.add_origin(&d, "127.0.0.1:5000/library/busybox")?;
        store.add_origin(&d, "127.0.0.1:5000/other")?;
        store.add_origin(&d, "127.0.0.1:5000/library/busybox")?;
        assert_eq!(
            store.origins(&d),
            ["127.0.0.1:5000/library/busybox", "127.0.0.1:5000/other"]
        );
        Ok(())
    }

    #[test]
    fn streamed_write_and_mismatch() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = ContentStore::open(dir.path())?;
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = store.writer()?;
        for chunk in data.chunks(77_777) {
            w.write_all(chunk)?;
        }
        assert_eq!(w.written(), data.len() as u64);
        let (d, n) = w.commit(Some(&Digest::of(&data)))?;
        assert_eq!((d.clone(), n), (Digest::of(&data), data.len() as u64));
        assert_eq!(store.read(&d)?, data);

        let wrong = Digest::of(b"something else");
        let mut w = store.writer()?;
        w.write_all(b"payload")?;
        let err = w.commit(Some(&wrong));
        assert!(
            matches!(&err, Err(StoreError::DigestMismatch { expected, actual })
                if *expected == wrong && *actual == Digest::of(b"payload")),
            "{err:?}"
        );
        assert!(!store.has(&Digest::of(b"payload")));
        assert!(!store.has(&wrong));
        assert_eq!(tmp_entries(&store), 0, "temp file left behind");

        // Dropped writers leave nothing.
        let mut w = store.writer()?;
        w.write_all(b"abandoned")?;
        drop(w);
        assert_eq!(tmp_entries(&store), 0);
        Ok(())
    }

    #[test]
    fn ingest_file_verifies() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = ContentStore::open(&dir.path().join("content"))?;
        let src = dir.path().join("src");
        fs::write(&src, b"file bytes")?;
        let (d, n) = store.ingest_file(&src, Some(&Digest::of(b"file bytes")))?;
        assert_eq!((d, n), (Digest::of(b"file bytes"), 10));
        assert!(store.ingest_file(&src, Some(&Digest::of(b"x"))).is_err());
        Ok(())
    }

    #[test]
    fn concurrent_writers_of_same_blob() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = ContentStore::open(dir.path())?;
        let data = vec![7u8; 1 << 20];
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                let data = data.clone();
                std::thread::spawn(move || store.ingest(&mut data.as_slice(), None))
            })
            .collect();
        for h in handles {
            let r = h.join().map_err(|_| "writer thread panicked")?;
            assert_eq!(r?.0, Digest::of(&data));
        }
        assert_eq!(store.read(&Digest::of(&data))?, data);
        assert_eq!(tmp_entries(&store), 0);
        Ok(())
    }
}
