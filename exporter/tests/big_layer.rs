//! A 1 GiB layer converts gzip → zstd as a stream: the process's peak RSS stays far below the
//! layer's size. Its own test binary, so the peak belongs to this test alone.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};

use kiln_exporter::{Compression, ExportCompression, ImageBundle};
use kiln_oci::media_types::OCI_LAYER_GZIP;
use kiln_oci::{ContentStore, Descriptor, ImageConfig, RootFs, Sha256Writer};

const FILE_SIZE: u64 = 1 << 30;

/// `FILE_SIZE` bytes of zeros with a counter every 4 KiB (cheap to compress, not constant).
struct Pattern {
    pos: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (FILE_SIZE - self.pos).min(buf.len() as u64) as usize;
        buf[..n].fill(0);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let at = self.pos + i as u64;
            if at % 4096 < 8 {
                *b = (at / 4096).to_le_bytes()[(at % 4096) as usize];
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Hashes what passes through to `inner`.
struct Tee<W> {
    inner: W,
    hash: Sha256Writer,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Peak resident set size of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn one_gib_layer_converts_in_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(&dir.path().join("content")).unwrap();
    let gz = flate2::write::GzEncoder::new(store.writer().unwrap(), flate2::Compression::fast());
    let mut b = tar::Builder::new(Tee {
        inner: gz,
        hash: Sha256Writer::new(),
    });
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(FILE_SIZE);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "big", Pattern { pos: 0 }).unwrap();
    let tee = b.into_inner().unwrap();
    let (diff_id, tar_size) = tee.hash.finish();
    let (blob, size) = tee.inner.finish().unwrap().commit(None).unwrap();
    assert!(tar_size > FILE_SIZE);
    let config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id.clone()],
        },
        ..Default::default()
    };
    let layer = Descriptor {
        media_type: OCI_LAYER_GZIP.into(),
        digest: blob,
        size,
        platform: None,
        annotations: None,
    };
    let before = vm_hwm_kib();
    let start = std::time::Instant::now();
    let opts = ExportCompression {
        compression: Compression::Zstd,
        level: None,
        force: false,
    };
    let bundle = ImageBundle::new_with(&config, vec![layer], &store, &opts).unwrap();
    let took = start.elapsed();
    let after = vm_hwm_kib();
    eprintln!(
        "1 GiB layer: gzip {size} B -> zstd {} B in {took:?}; peak RSS {before} KiB before, {after} KiB after",
        bundle.layers[0].size
    );
    assert!(after < 128 * 1024, "peak RSS {after} KiB for a 1 GiB layer");
    // The new blob decompresses to the same tar.
    let mut hash = Sha256Writer::new();
    let file = store.open_blob(&bundle.layers[0].digest).unwrap();
    std::io::copy(
        &mut zstd::stream::read::Decoder::new(file).unwrap(),
        &mut hash,
    )
    .unwrap();
    assert_eq!(hash.finish(), (diff_id, tar_size));
}
