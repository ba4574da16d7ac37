//! Recompressing a stored layer blob: decompress it as a stream, hash the tar on the way (its
//! diff id), compress it again into a new blob. Nothing is held in memory but a buffer and the
//! codecs' windows, so gigabyte layers convert in a few tens of MiB.

use super::encoder::Encoder;
use std::io::{self, BufReader, Read, Write};

use super::{Compression, WrittenLayer};
use crate::store::StoreError;
use crate::{ContentStore, Digest, Sha256Writer};

/// Read buffer for the conversion loop.
const BUF_SIZE: usize = 1 << 20;

/// Why a layer could not be recompressed.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Reading (decompressing) the source blob or writing the new one failed.
    #[error("recompressing layer {blob}: {source}")]
    Io {
        /// The source blob.
        blob: Digest,
        /// The error (a corrupt stream shows up here as `InvalidData`/`InvalidInput`).
        #[source]
        source: io::Error,
    },
    /// The store failed (source blob missing, new blob not written).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The uncompressed content is not the layer the image config names.
    #[error("layer {blob}: uncompressed digest is {actual}, but the image config's diff_id is {expected}")]
    DiffIdMismatch {
        /// The source blob.
        blob: Digest,
        /// The diff id the config lists.
        expected: Digest,
        /// The digest of the decompressed stream.
        actual: Digest,
    },
    /// A compression level the codec does not have.
    #[error("compression level {level} is out of range for {compression} ({min}..={max})")]
    BadLevel {
        /// The codec's name (`gzip`, `zstd`).
        compression: &'static str,
        /// The level asked for.
        level: i32,
        /// Lowest level.
        min: i32,
        /// Highest level.
        max: i32,
    },
}

/// The level range of a codec (`None` for plain tar, which has no level).
pub fn compression_level_range(c: Compression) -> Option<(i32, i32)> {
    match c {
        Compression::Gzip => Some((0, 9)),
        Compression::Zstd => {
            let r = zstd::compression_level_range();
            Some((*r.start(), *r.end()))
        }
        Compression::None => None,
    }
}

/// Checks that `level` is valid for `c` (any level is accepted, and ignored, for plain tar).
pub fn check_compression_level(c: Compression, level: Option<i32>) -> Result<(), ConvertError> {
    match (level, compression_level_range(c)) {
        (Some(level), Some((min, max))) if level < min || level > max => {
            Err(ConvertError::BadLevel {
                compression: if c == Compression::Gzip {
                    "gzip"
                } else {
                    "zstd"
                },
                level,
                min,
                max,
            })
        }
        _ => Ok(()),
    }
}

/// Decompresses the blob `blob` (compressed as `from`) and writes it to `store` compressed as
/// `to` at `level` (the codec's default when `None`: gzip 6, zstd 3; ignored for plain tar).
///
/// gzip output has a fixed header (mtime 0, no name); zstd always runs in multi-threaded mode
/// with at least one worker, whose output does not depend on the worker count: the same input,
/// codec and level give the same bytes on any machine. When `expected_diff_id` is given, the new
/// blob is only published if the decompressed stream hashes to it.
pub fn recompress_layer(
    store: &ContentStore,
    blob: &Digest,
    from: Compression,
    to: Compression,
    level: Option<i32>,
    expected_diff_id: Option<&Digest>,
) -> Result<WrittenLayer, ConvertError> {
    check_compression_level(to, level)?;
    let io_err = |source| ConvertError::Io {
        blob: blob.clone(),
        source,
    };
    let file = store.open_blob(blob)?;
    let mut reader: Box<dyn Read> = match from {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(file).map_err(io_err)?),
        Compression::None => Box::new(file),
    };
    let mut encoder = Encoder::new(to, level, store.writer()?).map_err(io_err)?;
    let mut hash = Sha256Writer::new();
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        hash.update(&buf[..n]);
        encoder.write_all(&buf[..n]).map_err(io_err)?;
    }
    let (diff_id, _) = hash.finish();
    let writer = encoder.finish().map_err(io_err)?;
    if let Some(expected) = expected_diff_id {
        if *expected != diff_id {
            // Dropping the writer discards the temp file.
            return Err(ConvertError::DiffIdMismatch {
                blob: blob.clone(),
                expected: expected.clone(),
                actual: diff_id,
            });
        }
    }
    let (digest, size) = writer.commit(None)?;
    Ok(WrittenLayer {
        diff_id,
        blob: digest,
        size,
        media_type: to.media_type().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "f", data).unwrap_or_default();
        b.into_inner().unwrap_or_default()
    }

    #[test]
    fn round_trips_through_every_codec() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = ContentStore::open(dir.path())?;
        let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        let tar = tar_of(&data);
        let diff_id = Digest::of(&tar);
        let plain = store.write_bytes(&tar)?;
        let mut blob = plain.clone();
        let mut from = Compression::None;
        for to in [
            Compression::Zstd,
            Compression::Gzip,
            Compression::Zstd,
            Compression::None,
        ] {
            let w = recompress_layer(&store, &blob, from, to, None, Some(&diff_id))?;
            assert_eq!(w.diff_id, diff_id);
            assert_eq!(w.media_type, to.media_type());
            assert_eq!(store.size(&w.blob)?, w.size);
            let head = store.read(&w.blob)?;
            assert_eq!(Compression::sniff(&head), to);
            blob = w.blob;
            from = to;
        }
        assert_eq!(blob, plain);
        Ok(())
    }

    #[test]
    fn wrong_diff_id_publishes_nothing() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = ContentStore::open(dir.path())?;
        let plain = store.write_bytes(&tar_of(b"abc"))?;
        let wrong = Digest::of(b"not it");
        let err = recompress_layer(
            &store,
            &plain,
            Compression::None,
            Compression::Zstd,
            None,
            Some(&wrong),
        );
        assert!(
            matches!(&err, Err(ConvertError::DiffIdMismatch { expected, .. }) if *expected == wrong),
            "{err:?}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/sha256"))?.count(),
            1
        );
        Ok(())
    }

    #[test]
    fn levels_are_checked() {
        assert!(check_compression_level(Compression::Gzip, Some(9)).is_ok());
        assert!(check_compression_level(Compression::Gzip, Some(10)).is_err());
        assert!(check_compression_level(Compression::Gzip, Some(-1)).is_err());
        assert!(check_compression_level(Compression::Zstd, Some(22)).is_ok());
        assert!(check_compression_level(Compression::Zstd, Some(23)).is_err());
        assert!(check_compression_level(Compression::None, Some(99)).is_ok());
    }

    #[test]
    fn corrupt_source_is_an_io_error_naming_the_blob() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = ContentStore::open(dir.path())?;
        let bad = store.write_bytes(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff])?;
        let err = recompress_layer(
            &store,
            &bad,
            Compression::Gzip,
            Compression::Zstd,
            None,
            None,
        )
        .err()
        .ok_or("corrupt gzip converted")?;
        assert!(err.to_string().contains(bad.hex()), "{err}");
        Ok(())
    }
}
