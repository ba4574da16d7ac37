//! `type=local` and `type=tar` outputs: the image's filesystem itself, as a directory or a
//! tarball, without any image metadata (BuildKit's local and tar exporters).
//!
//! The layers are applied bottom first onto a scratch directory next to the destination
//! (whiteouts and opaque directories delete what lower layers put there), then either merged
//! into the destination directory — entries the image has replace those already there,
//! others are left alone, as buildx does — or written as a tar with sorted entries.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kiln_oci::layer::apply_layer;
use kiln_oci::ContentStore;

use crate::error::io_err;
use crate::{ExportError, ImageBundle};

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Applies every layer of `bundle` into a new scratch directory beside `near`.
fn flatten(
    bundle: &ImageBundle,
    store: &ContentStore,
    near: &Path,
) -> Result<Scratch, ExportError> {
    let parent = match near.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    let name = near
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = parent.join(format!(".{name}.kiln-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).map_err(io_err(&dir))?;
    let scratch = Scratch(dir);
    for layer in &bundle.layers {
        let blob = store.blob_path(&layer.digest);
        apply_layer(&blob, &layer.media_type, &scratch.0).map_err(|source| ExportError::Layer {
            digest: layer.digest.to_string(),
            source,
        })?;
    }
    Ok(scratch)
}

/// Writes the image's filesystem into the directory `dest` (created if missing).
pub fn write_local(
    bundle: &ImageBundle,
    store: &ContentStore,
    dest: &Path,
) -> Result<(), ExportError> {
    let scratch = flatten(bundle, store, dest)?;
    fs::create_dir_all(dest).map_err(io_err(dest))?;
    merge(&scratch.0, dest)
}

/// Moves everything in `from` into `to`: a directory over a directory merges, anything else
/// replaces what was there. The root's own mode and owner follow the image's.
fn merge(from: &Path, to: &Path) -> Result<(), ExportError> {
    let meta = fs::symlink_metadata(from).map_err(io_err(from))?;
    fs::set_permissions(to, meta.permissions()).map_err(io_err(to))?;
    let _ = std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()));
    for entry in fs::read_dir(from).map_err(io_err(from))? {
        let entry = entry.map_err(io_err(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let src_dir = entry.file_type().map_err(io_err(&src))?.is_dir();
        match fs::symlink_metadata(&dst) {
            Ok(m) if m.is_dir() && src_dir => {
                merge(&src, &dst)?;
                continue;
            }
            Ok(m) if m.is_dir() => fs::remove_dir_all(&dst).map_err(io_err(&dst))?,
            Ok(_) => fs::remove_file(&dst).map_err(io_err(&dst))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&dst)(e)),
        }
        fs::rename(&src, &dst).map_err(io_err(&dst))?;
    }
    // A merged directory keeps the image's mtime.
    let mtime = filetime::FileTime::from_last_modification_time(&meta);
    filetime::set_symlink_file_times(to, mtime, mtime).map_err(io_err(to))
}

/// Writes the image's filesystem as a tar at `dest` (entries sorted, owners, modes, mtimes,
/// symlinks and hard links kept).
pub fn write_fs_tar(
    bundle: &ImageBundle,
    store: &ContentStore,
    dest: &Path,
) -> Result<(), ExportError> {
    let scratch = flatten(bundle, store, dest)?;
    let tmp = dest.with_file_name(format!(
        ".{}.kiln-{}.tmp",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let file = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    builder.follow_symlinks(false);
    let mut links = std::collections::HashMap::new();
    let result = append_tree(&mut builder, &scratch.0, Path::new(""), &mut links)
        .and_then(|()| builder.into_inner().map_err(io_err(&tmp)))
        .and_then(|mut w| w.flush().map_err(io_err(&tmp)));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, dest).map_err(io_err(dest))
}

/// Appends the children of `dir` (as `rel/…`), sorted by name, depth first; a file seen again
/// through another hard link becomes a link entry.
fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &Path,
    rel: &Path,
    links: &mut std::collections::HashMap<(u64, u64), PathBuf>,
) -> Result<(), ExportError> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let name_in_tar = rel.join(&name);
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        if meta.is_file() && meta.nlink() > 1 {
            let id = (meta.dev(), meta.ino());
            if let Some(first) = links.get(&id) {
                let mut h = tar::Header::new_gnu();
                h.set_metadata(&meta);
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                builder
                    .append_link(&mut h, &name_in_tar, first)
                    .map_err(io_err(&path))?;
                continue;
            }
            links.insert(id, name_in_tar.clone());
        }
        builder
            .append_path_with_name(&path, &name_in_tar)
            .map_err(io_err(&path))?;
        if meta.is_dir() {
            append_tree(builder, &path, &name_in_tar, links)?;
        }
    }
    Ok(())
}
