//! Parallel gzip, pigz-style: one standard gzip member whose deflate stream is made of
//! independently compressed chunks.
//!
//! Single-threaded deflate runs at ~30 MB/s on incompressible data here, which made gzip the
//! slowest part of a large COPY. Each fixed-size chunk of input is deflated on its own thread
//! and ends with a sync flush (an empty stored block that byte-aligns the stream), so the
//! chunks concatenate into one valid deflate stream; the last chunk ends with the final block.
//! The chunk size is fixed, so the output is byte-for-byte the same for any number of
//! threads (reproducible layers); chunks do not share a dictionary, which costs well under 1%
//! of ratio at 1 MiB.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::thread::JoinHandle;

use flate2::{Compress, Crc, FlushCompress, Status};

/// Input bytes per independently compressed chunk (part of the output format: changing it
/// changes every gzip layer digest).
pub(crate) const CHUNK: usize = 1 << 20;

/// gzip header: deflate, no flags, mtime 0, no extra flags, OS "unknown" (reproducible).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

type Job = JoinHandle<io::Result<(Vec<u8>, Crc)>>;

/// A gzip writer that compresses chunks on up to `threads` threads, writing them in order.
pub(crate) struct ParGzEncoder<W: Write> {
    inner: Option<W>,
    level: flate2::Compression,
    threads: usize,
    buf: Vec<u8>,
    in_flight: VecDeque<Job>,
    crc: Crc,
    header_done: bool,
}

impl<W: Write> ParGzEncoder<W> {
    /// A writer compressing at `level` with `threads` (at least 1) workers.
    pub(crate) fn new(inner: W, level: flate2::Compression, threads: usize) -> Self {
        ParGzEncoder {
            inner: Some(inner),
            level,
            threads: threads.max(1),
            buf: Vec::with_capacity(CHUNK),
            in_flight: VecDeque::new(),
            crc: Crc::new(),
            header_done: false,
        }
    }

    fn inner(&mut self) -> io::Result<&mut W> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))
    }

    fn header(&mut self) -> io::Result<()> {
        if !self.header_done {
            self.inner()?.write_all(&HEADER)?;
            self.header_done = true;
        }
        Ok(())
    }

    /// Hands the buffered chunk to a worker; waits for the oldest while too many run.
    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let level = self.level;
        self.in_flight.push_back(std::thread::spawn(move || {
            deflate_chunk(&data, level, last)
        }));
        while self.in_flight.len() > self.threads {
            self.drain_one()?;
        }
        Ok(())
    }

    /// Writes the oldest finished chunk.
    fn drain_one(&mut self) -> io::Result<()> {
        let Some(job) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let (out, crc) = job
            .join()
            .map_err(|_| io::Error::other("gzip worker panicked"))??;
        self.crc.combine(&crc);
        self.header()?;
        self.inner()?.write_all(&out)
    }

    /// Compresses what is left, writes the trailer and returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.in_flight.is_empty() {
            self.drain_one()?;
        }
        let (sum, amount) = (self.crc.sum(), self.crc.amount());
        let mut inner = self
            .inner
            .take()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))?;
        inner.write_all(&sum.to_le_bytes())?;
        inner.write_all(&amount.to_le_bytes())?;
        Ok(inner)
    }
}

impl<W: Write> Write for ParGzEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.submit(false)?;
        }
        Ok(n)
    }

    /// Flushes the inner writer only: a partial chunk stays buffered (flushing it would
    /// change the output's bytes).
    fn flush(&mut self) -> io::Result<()> {
        self.inner()?.flush()
    }
}

/// Raw-deflates `data` ending with a sync flush, or with the final block when `last`.
fn deflate_chunk(
    data: &[u8],
    level: flate2::Compression,
    last: bool,
) -> io::Result<(Vec<u8>, Crc)> {
    let mut crc = Crc::new();
    crc.update(data);
    let mut c = Compress::new(level, false);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    // Deflate's worst case is a little over the input; start there and grow if needed.
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(64 * 1024);
        }
        let consumed = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
        let input = data.get(consumed..).unwrap_or_default();
        let status = c
            .compress_vec(input, &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = usize::try_from(c.total_in()).unwrap_or(usize::MAX) >= data.len();
        // Done: the final block is out, or (sync) all input is in and the flush left spare
        // room in the buffer, i.e. it completed.
        if status == Status::StreamEnd || (!last && all_in && out.len() < out.capacity()) {
            break;
        }
    }
    Ok((out, crc))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gz(data: &[u8], threads: usize) -> Vec<u8> {
        let mut e = ParGzEncoder::new(Vec::new(), flate2::Compression::default(), threads);
        // Odd write sizes cross chunk boundaries.
        for piece in data.chunks(77_777) {
            e.write_all(piece).unwrap();
        }
        e.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        // Single-member decoder: the output must be one gzip member.
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn sample(len: usize) -> Vec<u8> {
        // Half compressible text, half pseudo-random bytes.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        (0..len)
            .map(|i| {
                if (i / 100_000) % 2 == 0 {
                    b"kiln layer "[i % 11]
                } else {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                }
            })
            .collect()
    }

    #[test]
    fn round_trips_at_every_size_boundary() {
        for len in [0, 1, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345] {
            let data = sample(len);
            let z = gz(&data, 2);
            assert_eq!(&z[..3], &[0x1f, 0x8b, 8]);
            assert_eq!(gunzip(&z), data, "len {len}");
        }
    }

    #[test]
    fn output_does_not_depend_on_thread_count() {
        let data = sample(5 * CHUNK + 999);
        let one = gz(&data, 1);
        assert_eq!(one, gz(&data, 2));
        assert_eq!(one, gz(&data, 7));
        // Compressible parts really compress.
        assert!(
            one.len() < data.len() * 3 / 4,
            "{} of {}",
            one.len(),
            data.len()
        );
    }
}
