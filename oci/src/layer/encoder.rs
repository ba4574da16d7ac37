//! The compressor in front of a blob writer, shared by layer writing and conversion.

use std::io::{self, Write};

use super::pgzip::ParGzEncoder;
use super::Compression;
use crate::store::BlobWriter;

/// The compressor in front of the blob writer.
pub(crate) enum Encoder {
    Gzip(ParGzEncoder<BlobWriter>),
    Zstd(zstd::stream::write::Encoder<'static, BlobWriter>),
    Plain(BlobWriter),
}

/// Compression threads: the CPUs, at most 8.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
}

impl Encoder {
    pub(crate) fn new(c: Compression, level: Option<i32>, w: BlobWriter) -> io::Result<Encoder> {
        Ok(match c {
            Compression::Gzip => {
                let level = level
                    .and_then(|l| u32::try_from(l).ok())
                    .map_or_else(flate2::Compression::default, flate2::Compression::new);
                // Chunked parallel deflate: the same bytes for any thread count.
                Encoder::Gzip(ParGzEncoder::new(w, level, workers()))
            }
            Compression::Zstd => {
                let level = level.unwrap_or(zstd::DEFAULT_COMPRESSION_LEVEL);
                let mut e = zstd::stream::write::Encoder::new(w, level)?;
                // Multi-threaded output is the same for any worker count >= 1 but differs
                // from single-threaded mode, so always use at least one worker.
                e.multithread(u32::try_from(workers()).unwrap_or(1))?;
                Encoder::Zstd(e)
            }
            Compression::None => Encoder::Plain(w),
        })
    }

    pub(crate) fn finish(self) -> io::Result<BlobWriter> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Plain(w) => Ok(w),
        }
    }
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Plain(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Plain(w) => w.flush(),
        }
    }
}
