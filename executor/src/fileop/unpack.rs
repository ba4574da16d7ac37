//! ADD of a local archive: a tar (plain, gzip, bzip2, xz or zstd) is extracted into the
//! destination directory. Every written path is resolved inside the rootfs (`..` and
//! symlinks, absolute ones included, never leave it); device nodes are refused.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use filetime::FileTime;

use super::copy::{io_err, mkdir_all, other};
use super::paths::resolve;
use crate::spec::InitFailure;

/// A recognised archive compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Plain,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

fn sniff(head: &[u8]) -> Codec {
    if head.starts_with(&[0x1f, 0x8b]) {
        Codec::Gzip
    } else if head.starts_with(b"BZh") {
        Codec::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Codec::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Codec::Zstd
    } else {
        Codec::Plain
    }
}

fn decoder(codec: Codec, file: File) -> io::Result<Box<dyn Read>> {
    let buf = BufReader::new(file);
    Ok(match codec {
        Codec::Plain => Box::new(buf),
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buf)),
        Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(buf)),
        Codec::Xz => {
            // lzma-rs decodes into a writer: xz archives are inflated into memory first.
            let mut input = buf;
            let mut out = Vec::new();
            lzma_rs::xz_decompress(&mut input, &mut out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            Box::new(io::Cursor::new(out))
        }
        Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(buf)?),
    })
}

/// True when the first 512 bytes form a tar header (its checksum matches).
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 || block.iter().all(|&b| b == 0) {
        return false;
    }
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0 && b != b' ')
        .map(|&b| b as char)
        .collect();
    let Ok(want) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    sum == want
}

/// Opens `path` as a tar stream when it is a (possibly compressed) tar archive.
fn open_archive(path: &Path) -> io::Result<Option<Box<dyn Read>>> {
    let mut file = File::open(path)?;
    let mut head = [0u8; 6];
    let n = file.read(&mut head)?;
    let codec = sniff(&head[..n]);
    file.seek(SeekFrom::Start(0))?;
    let mut reader = match decoder(codec, file) {
        Ok(r) => r,
        Err(_) if codec != Codec::Plain => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut block = vec![0u8; 512];
    let mut got = 0;
    while got < 512 {
        match reader.read(&mut block[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(_) => return Ok(None),
        }
    }
    if !is_tar_header(&block[..got]) {
        return Ok(None);
    }
    Ok(Some(Box::new(io::Cursor::new(block).chain(reader))))
}

/// Lexically cleans an entry path to components below the extraction dir.
fn entry_parts(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Extracts `archive` (a host path of the source) into `dest` (absolute inside `root`) when
/// it is a tar archive; returns false (nothing written) when it is not one.
pub(crate) fn try_unpack(
    root: &Path,
    archive: &Path,
    dest: &Path,
    owner: Option<(u32, u32)>,
    dir: ((u32, u32), u32),
) -> Result<bool, InitFailure> {
    let Some(stream) = open_archive(archive).map_err(|e| io_err("reading", archive, e))? else {
        return Ok(false);
    };
    mkdir_all(root, dest, dir.0, dir.1)?;
    let mut tar = tar::Archive::new(stream);
    let entries = tar
        .entries()
        .map_err(|e| io_err("reading archive", archive, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| io_err("reading archive", archive, e))?;
        let raw = entry
            .path()
            .map_err(|e| io_err("reading archive", archive, e))?
            .into_owned();
        let rel = entry_parts(&raw);
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&rel);
        let parent = target.parent().unwrap_or(dest);
        let name = target
            .file_name()
            .ok_or_else(|| other(format!("invalid archive entry {}", raw.display())))?;
        let parent_host = mkdir_all(root, parent, dir.0, dir.1)?;
        let host = parent_host.join(name);
        let h = entry.header().clone();
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let ids = owner.unwrap_or((h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32));
        let kind = h.entry_type();
        let existing = std::fs::symlink_metadata(&host).ok();
        if kind.is_dir() {
            if !existing.as_ref().is_some_and(|m| m.is_dir()) {
                if existing.is_some() {
                    std::fs::remove_file(&host).map_err(|e| io_err("removing", &host, e))?;
                }
                std::fs::create_dir(&host).map_err(|e| io_err("creating", &host, e))?;
            }
        } else {
            match &existing {
                Some(m) if m.is_dir() => {
                    std::fs::remove_dir_all(&host).map_err(|e| io_err("removing", &host, e))?
                }
                Some(_) => std::fs::remove_file(&host).map_err(|e| io_err("removing", &host, e))?,
                None => {}
            }
            if kind.is_file() || kind == tar::EntryType::Continuous {
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&host)
                    .map_err(|e| io_err("creating", &host, e))?;
                io::copy(&mut entry, &mut out).map_err(|e| io_err("writing", &host, e))?;
            } else if kind.is_symlink() {
                let link = entry
                    .link_name()
                    .map_err(|e| io_err("reading archive", archive, e))?
                    .ok_or_else(|| other(format!("symlink {} has no target", raw.display())))?;
                std::os::unix::fs::symlink(&link, &host)
                    .map_err(|e| io_err("symlink", &host, e))?;
            } else if kind.is_hard_link() {
                let link = entry
                    .link_name()
                    .map_err(|e| io_err("reading archive", archive, e))?
                    .ok_or_else(|| other(format!("hardlink {} has no target", raw.display())))?;
                let first = dest.join(entry_parts(&link));
                let first =
                    resolve(root, &first, false).map_err(|e| io_err("resolving", &first, e))?;
                let first = root.join(first);
                std::fs::hard_link(&first, &host).map_err(|e| io_err("linking", &host, e))?;
                continue;
            } else {
                return Err(other(format!(
                    "archive {}: entry {} has an unsupported type ({:?})",
                    archive.display(),
                    raw.display(),
                    kind
                )));
            }
        }
        crate::userns::lchown(&host, ids.0, ids.1).map_err(|e| io_err("chown", &host, e))?;
        if !kind.is_symlink() {
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io_err("chmod", &host, e))?;
        }
        if let Ok(mtime) = h.mtime() {
            let t = FileTime::from_unix_time(mtime as i64, 0);
            filetime::set_symlink_file_times(&host, t, t)
                .map_err(|e| io_err("utimes", &host, e))?;
        }
    }
    Ok(true)
}
