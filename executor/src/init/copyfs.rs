//! The copy snapshotter: used instead of overlayfs when overlay cannot be mounted (in a user
//! namespace whose kernel refuses it) or when `KILN_SNAPSHOTTER=copy` asks for it.
//!
//! [`copy_merged`] copies the merged tree of the lower dirs (overlay format: 0/0 character
//! devices are whiteouts, `trusted.overlay.opaque` / `user.overlay.opaque` mark opaque
//! directories) into the target. For a job's rootfs it also writes a manifest of every
//! copied entry (path, inode, ctime). After the job, [`diff_into_upper`] compares the tree
//! against the manifest and moves what changed into the upper dir, in overlay format, so
//! the layer writer and the snapshot store take it exactly like an overlay upper dir: a new
//! or changed entry (other inode or ctime: any change of content, owner, mode, xattrs, times
//! or links bumps the ctime) moves over; a directory that kept its inode is walked, and is
//! itself copied up (metadata only) when its ctime changed or anything under it did; a
//! missing entry becomes a whiteout; a directory recreated where something existed becomes
//! an opaque directory, as overlayfs makes it.
//!
//! Hard links between lower files are copied as separate files (overlay without `index`
//! breaks them on copy-up too); links the job makes survive, since changed entries are
//! moved (renamed) into the upper dir rather than copied.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use nix::sys::stat::{mknod, Mode, SFlag};

use crate::userns::{in_user_namespace, lchown};

/// The environment variable that selects the snapshotter (`copy` forces this one).
pub(crate) const SNAPSHOTTER_ENV: &str = "KILN_SNAPSHOTTER";

const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// Whether `KILN_SNAPSHOTTER=copy` is set.
pub(crate) fn forced() -> bool {
    std::env::var(SNAPSHOTTER_ENV).is_ok_and(|v| v == "copy")
}

/// The manifest of a copied rootfs at `target`.
pub(crate) fn manifest_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!("{name}.kiln-copy-manifest"))
}

fn err(what: &str, p: &Path, e: std::io::Error) -> String {
    format!("copy snapshotter: {what} {}: {e}", p.display())
}

/// What the manifest records of one copied entry: its identity (inode, and for directories
/// the birth time, since a directory removed and made again may get the same inode number)
/// and its ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rec {
    ino: u64,
    btime: i64,
    ctime: i64,
    ctime_nsec: i64,
}

impl Rec {
    fn of(path: &Path, m: &fs::Metadata) -> Rec {
        Rec {
            ino: m.ino(),
            btime: if m.is_dir() { birth_time(path) } else { 0 },
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
        }
    }

    /// The same file (not one made again in its place).
    fn same_file(&self, other: &Rec) -> bool {
        self.ino == other.ino && self.btime == other.btime
    }
}

/// Birth time in nanoseconds (`statx`), or 0 where the file system has none.
fn birth_time(path: &Path) -> i64 {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: statx is plain old data; zeroed is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx reads the NUL-terminated path and writes the struct we pass, both alive
    // across the call.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BTIME,
            &mut stx,
        )
    };
    if rc != 0 || stx.stx_mask & libc::STATX_BTIME == 0 {
        return 0;
    }
    stx.stx_btime.tv_sec * 1_000_000_000 + i64::from(stx.stx_btime.tv_nsec)
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    OPAQUE_XATTRS
        .iter()
        .any(|k| matches!(xattr::get(p, k), Ok(Some(v)) if v == b"y"))
}

/// Xattrs of overlayfs itself and the host's SELinux label stay behind.
fn private_xattr(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.starts_with(b"trusted.overlay.")
        || b.starts_with(b"user.overlay.")
        || b == b"security.selinux"
}

/// Copies the merged tree of `lowers` (top first; names relative to `base`, or absolute)
/// into the empty directory `target`; with `manifest`, records every entry there.
pub(crate) fn copy_merged(
    base: &Path,
    lowers: &[String],
    target: &Path,
    manifest: Option<&Path>,
) -> Result<(), String> {
    let mut sources = Vec::new();
    for l in lowers {
        let dir = base.join(l);
        let opaque = is_opaque(&dir);
        sources.push(dir);
        if opaque {
            break;
        }
    }
    let mut records = Vec::new();
    let mut rel = PathBuf::new();
    merge_dir(&sources, target, &mut rel, &mut records)?;
    if let Some(top) = sources.first() {
        let meta = fs::symlink_metadata(top).map_err(|e| err("stat", top, e))?;
        set_meta(top, &meta, target)?;
    }
    let root = fs::symlink_metadata(target).map_err(|e| err("stat", target, e))?;
    records.push((PathBuf::new(), Rec::of(target, &root)));
    if let Some(path) = manifest {
        write_manifest(path, &records)?;
    }
    Ok(())
}

/// Copies the merged directory `sources` (top first, same path in each layer) into `dest`.
fn merge_dir(
    sources: &[PathBuf],
    dest: &Path,
    rel: &mut PathBuf,
    records: &mut Vec<(PathBuf, Rec)>,
) -> Result<(), String> {
    let mut decided: HashSet<OsString> = HashSet::new();
    for (i, src) in sources.iter().enumerate() {
        let rd = match fs::read_dir(src) {
            Ok(rd) => rd,
            Err(e) => return Err(err("reading", src, e)),
        };
        let mut names: Vec<OsString> = rd
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| err("reading", src, e))?;
        names.sort();
        for name in names {
            if !decided.insert(name.clone()) {
                continue;
            }
            let from = src.join(&name);
            let meta = fs::symlink_metadata(&from).map_err(|e| err("stat", &from, e))?;
            if is_whiteout(&meta) {
                continue;
            }
            let to = dest.join(&name);
            rel.push(&name);
            let result = if meta.is_dir() {
                let mut below = vec![from.clone()];
                if !is_opaque(&from) {
                    for lower in &sources[i + 1..] {
                        let p = lower.join(&name);
                        match fs::symlink_metadata(&p) {
                            Ok(m) if m.is_dir() => {
                                let opaque = is_opaque(&p);
                                below.push(p);
                                if opaque {
                                    break;
                                }
                            }
                            Ok(_) => break,
                            Err(_) => {}
                        }
                    }
                }
                fs::create_dir(&to)
                    .map_err(|e| err("creating", &to, e))
                    .and_then(|()| merge_dir(&below, &to, rel, records))
                    .and_then(|()| set_meta(&from, &meta, &to))
            } else {
                copy_entry(&from, &meta, &to)
            };
            if let Err(e) = result {
                rel.pop();
                return Err(e);
            }
            if let Ok(m) = fs::symlink_metadata(&to) {
                records.push((rel.clone(), Rec::of(&to, &m)));
            }
            rel.pop();
        }
    }
    Ok(())
}

/// Copies one non-directory entry with its metadata. Device nodes a user namespace may not
/// create are left out (with a warning), as containers/storage does.
fn copy_entry(from: &Path, meta: &fs::Metadata, to: &Path) -> Result<(), String> {
    let ft = meta.file_type();
    if ft.is_file() {
        fs::copy(from, to).map_err(|e| err("copying", from, e))?;
    } else if ft.is_symlink() {
        let target = fs::read_link(from).map_err(|e| err("readlink", from, e))?;
        std::os::unix::fs::symlink(target, to).map_err(|e| err("symlink", to, e))?;
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        let kind = crate::fileop::special_kind(&ft);
        match mknod(to, kind, Mode::from_bits_truncate(0o600), meta.rdev()) {
            Ok(()) => {}
            Err(nix::errno::Errno::EPERM) if !ft.is_fifo() => {
                eprintln!(
                    "kiln: device node {} not created in the user namespace; skipped",
                    from.display()
                );
                return Ok(());
            }
            Err(e) => return Err(err("mknod", to, e.into())),
        }
    } else {
        // Sockets: nothing to copy.
        return Ok(());
    }
    set_meta(from, meta, to)
}

/// Owner, mode, xattrs (not overlay's), then times of `to`, from `from`'s `meta`.
fn set_meta(from: &Path, meta: &fs::Metadata, to: &Path) -> Result<(), String> {
    lchown(to, meta.uid(), meta.gid()).map_err(|e| err("chown", to, e))?;
    let link = meta.file_type().is_symlink();
    if !link {
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| err("chmod", to, e))?;
    }
    if let Ok(names) = xattr::list(from) {
        for name in names {
            if private_xattr(&name) {
                continue;
            }
            if let Ok(Some(value)) = xattr::get(from, &name) {
                if let Err(e) = xattr::set(to, &name, &value) {
                    eprintln!("kiln: xattr {name:?} of {} not copied: {e}", to.display());
                }
            }
        }
    }
    let atime = FileTime::from_last_access_time(meta);
    let mtime = FileTime::from_last_modification_time(meta);
    filetime::set_symlink_file_times(to, atime, mtime).map_err(|e| err("utimes", to, e))
}

fn write_manifest(path: &Path, records: &[(PathBuf, Rec)]) -> Result<(), String> {
    let f = File::create(path).map_err(|e| err("creating", path, e))?;
    let mut w = BufWriter::new(f);
    for (p, r) in records {
        let b = p.as_os_str().as_bytes();
        let mut rec = Vec::with_capacity(b.len() + 36);
        rec.extend_from_slice(&(b.len() as u32).to_le_bytes());
        rec.extend_from_slice(b);
        rec.extend_from_slice(&r.ino.to_le_bytes());
        rec.extend_from_slice(&r.btime.to_le_bytes());
        rec.extend_from_slice(&r.ctime.to_le_bytes());
        rec.extend_from_slice(&r.ctime_nsec.to_le_bytes());
        w.write_all(&rec).map_err(|e| err("writing", path, e))?;
    }
    w.flush().map_err(|e| err("writing", path, e))
}

/// The copied tree: every entry's record, and the names in each directory.
struct Manifest {
    recs: HashMap<PathBuf, Rec>,
    children: HashMap<PathBuf, Vec<OsString>>,
}

fn read_manifest(path: &Path) -> Result<Manifest, String> {
    let f = File::open(path).map_err(|e| err("opening", path, e))?;
    let mut r = BufReader::new(f);
    let mut m = Manifest {
        recs: HashMap::new(),
        children: HashMap::new(),
    };
    let bad = || format!("copy snapshotter: {}: truncated manifest", path.display());
    loop {
        let mut len = [0u8; 4];
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(err("reading", path, e)),
        }
        let mut name = vec![0u8; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut name).map_err(|_| bad())?;
        let mut nums = [0u8; 32];
        r.read_exact(&mut nums).map_err(|_| bad())?;
        let num = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&nums[i * 8..i * 8 + 8]);
            b
        };
        let rel = PathBuf::from(OsString::from_vec(name));
        if let (Some(parent), Some(file)) = (rel.parent(), rel.file_name()) {
            m.children
                .entry(parent.to_path_buf())
                .or_default()
                .push(file.to_owned());
        }
        m.recs.insert(
            rel,
            Rec {
                ino: u64::from_le_bytes(num(0)),
                btime: i64::from_le_bytes(num(1)),
                ctime: i64::from_le_bytes(num(2)),
                ctime_nsec: i64::from_le_bytes(num(3)),
            },
        );
    }
    Ok(m)
}

/// After a job on a copied rootfs at `target`: moves what changed into `upper` (overlay
/// format) and removes the manifest. Does nothing when `target` was not copied.
pub(crate) fn diff_into_upper(target: &Path, upper: &Path) -> Result<(), String> {
    let path = manifest_path(target);
    if !path.exists() {
        return Ok(());
    }
    let manifest = read_manifest(&path)?;
    let mut d = Differ {
        manifest,
        target: target.to_path_buf(),
        upper: upper.to_path_buf(),
    };
    d.dir(&mut PathBuf::new())?;
    let _ = fs::remove_file(&path);
    Ok(())
}

struct Differ {
    manifest: Manifest,
    target: PathBuf,
    upper: PathBuf,
}

fn opaque_xattr() -> &'static str {
    if in_user_namespace() {
        OPAQUE_XATTRS[1]
    } else {
        OPAQUE_XATTRS[0]
    }
}

impl Differ {
    /// Walks the kept directory `rel`; returns whether it is in the upper dir now.
    fn dir(&mut self, rel: &mut PathBuf) -> Result<bool, String> {
        let abs = self.target.join(&*rel);
        // Before anything moves out of it (which changes its times).
        let meta = fs::symlink_metadata(&abs).map_err(|e| err("stat", &abs, e))?;
        let changed_self = self.manifest.recs.get(&*rel) != Some(&Rec::of(&abs, &meta));
        let mut names: Vec<OsString> = fs::read_dir(&abs)
            .and_then(|rd| rd.map(|e| e.map(|e| e.file_name())).collect())
            .map_err(|e| err("reading", &abs, e))?;
        names.sort();
        let present: HashSet<OsString> = names.iter().cloned().collect();
        let mut in_upper = rel.as_os_str().is_empty() || changed_self;
        if in_upper {
            self.ensure_upper(rel)?;
        }
        for name in names {
            rel.push(&name);
            let result = self.entry(rel, &mut in_upper);
            rel.pop();
            result?;
        }
        let gone: Vec<OsString> = self
            .manifest
            .children
            .get(&*rel)
            .map(|c| {
                c.iter()
                    .filter(|n| !present.contains(*n))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for name in gone {
            if !in_upper {
                self.ensure_upper(rel)?;
                in_upper = true;
            }
            let wh = self.upper.join(&*rel).join(&name);
            mknod(&wh, SFlag::S_IFCHR, Mode::empty(), 0)
                .map_err(|e| err("making whiteout", &wh, e.into()))?;
        }
        if in_upper && !rel.as_os_str().is_empty() {
            set_meta(&abs, &meta, &self.upper.join(&*rel))?;
        }
        Ok(in_upper)
    }

    /// One entry of a kept directory; sets `parent_in_upper` when it had to copy the parent
    /// up.
    fn entry(&mut self, rel: &mut PathBuf, parent_in_upper: &mut bool) -> Result<(), String> {
        let abs = self.target.join(&*rel);
        let meta = fs::symlink_metadata(&abs).map_err(|e| err("stat", &abs, e))?;
        let rec = self.manifest.recs.get(&*rel).copied();
        let now = Rec::of(&abs, &meta);
        if meta.is_dir() && rec.is_some_and(|r| r.same_file(&now)) {
            if self.dir(rel)? {
                *parent_in_upper = true;
            }
            return Ok(());
        }
        if rec == Some(now) {
            return Ok(());
        }
        if let Some(parent) = rel.parent() {
            if !*parent_in_upper {
                self.ensure_upper(parent)?;
                *parent_in_upper = true;
            }
        }
        let to = self.upper.join(&*rel);
        fs::rename(&abs, &to).map_err(|e| err("moving", &abs, e))?;
        if meta.is_dir() && rec.is_some() {
            // Recreated where something was: hides whatever the lowers have below it.
            xattr::set(&to, opaque_xattr(), b"y").map_err(|e| err("marking opaque", &to, e))?;
        }
        Ok(())
    }

    /// Makes `upper/rel` and its parents (their metadata is set when their walk ends).
    fn ensure_upper(&self, rel: &Path) -> Result<(), String> {
        let p = self.upper.join(rel);
        fs::create_dir_all(&p).map_err(|e| err("creating", &p, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whiteout(p: &Path) {
        mknod(p, SFlag::S_IFCHR, Mode::empty(), 0).expect("mknod whiteout");
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            let mut names: Vec<_> = fs::read_dir(dir)
                .expect("read_dir")
                .map(|e| e.expect("entry").file_name())
                .collect();
            names.sort();
            for n in names {
                let p = dir.join(&n);
                let m = fs::symlink_metadata(&p).expect("stat");
                let rel = p.strip_prefix(base).expect("prefix").display().to_string();
                let kind = if is_whiteout(&m) {
                    "wh".to_string()
                } else if m.is_dir() {
                    format!("dir{}", if is_opaque(&p) { " opaque" } else { "" })
                } else if m.file_type().is_symlink() {
                    format!("-> {}", fs::read_link(&p).expect("link").display())
                } else {
                    format!("file {}", fs::read_to_string(&p).expect("read"))
                };
                out.push(format!("{rel} {kind} {:o} {}", m.mode() & 0o7777, m.uid()));
                if m.is_dir() {
                    walk(base, &p, out);
                }
            }
        }
        walk(dir, dir, &mut out);
        out
    }

    #[test]
    fn merges_lowers_and_diffs_changes_into_an_overlay_upper() {
        if !nix::unistd::geteuid().is_root() {
            panic!("this test needs root (CI runs as root): it sets trusted.* xattrs");
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path();
        let (low, mid, target, upper) = (
            base.join("low"),
            base.join("mid"),
            base.join("rootfs"),
            base.join("upper"),
        );
        for d in [&low, &mid, &target, &upper] {
            fs::create_dir(d).expect("mkdir");
        }
        fs::create_dir_all(low.join("etc/old")).expect("mkdir");
        fs::write(low.join("etc/old/x"), "x").expect("write");
        fs::write(low.join("etc/passwd"), "root").expect("write");
        fs::write(low.join("gone"), "g").expect("write");
        fs::create_dir(low.join("opq")).expect("mkdir");
        fs::write(low.join("opq/hidden"), "h").expect("write");
        fs::write(low.join("keep"), "k").expect("write");
        // mid: deletes /gone, makes /opq opaque with a new file, adds a symlink.
        whiteout(&mid.join("gone"));
        fs::create_dir(mid.join("opq")).expect("mkdir");
        xattr::set(mid.join("opq"), "trusted.overlay.opaque", b"y").expect("xattr");
        fs::write(mid.join("opq/new"), "n").expect("write");
        std::os::unix::fs::symlink("keep", mid.join("link")).expect("symlink");
        fs::set_permissions(&mid, fs::Permissions::from_mode(0o755)).expect("chmod");

        let manifest = manifest_path(&target);
        copy_merged(
            base,
            &["mid".to_string(), "low".to_string()],
            &target,
            Some(&manifest),
        )
        .expect("copy");
        assert_eq!(
            listing(&target),
            [
                "etc dir 755 0",
                "etc/old dir 755 0",
                "etc/old/x file x 644 0",
                "etc/passwd file root 644 0",
                "keep file k 644 0",
                "link -> keep 777 0",
                "opq dir 755 0",
                "opq/new file n 644 0",
            ]
        );

        // The "command": change, add, delete, recreate a dir, chown.
        fs::write(target.join("etc/passwd"), "root\nbin").expect("write");
        fs::create_dir(target.join("d")).expect("mkdir");
        fs::write(target.join("d/f"), "f").expect("write");
        fs::remove_file(target.join("keep")).expect("rm");
        fs::remove_dir_all(target.join("etc/old")).expect("rm");
        fs::create_dir(target.join("etc/old")).expect("mkdir");
        std::os::unix::fs::lchown(target.join("opq/new"), Some(33), Some(33)).expect("chown");

        diff_into_upper(&target, &upper).expect("diff");
        assert_eq!(
            listing(&upper),
            [
                "d dir 755 0",
                "d/f file f 644 0",
                "etc dir 755 0",
                "etc/old dir opaque 755 0",
                "etc/passwd file root\nbin 644 0",
                "keep wh 0 0",
                "opq dir 755 0",
                "opq/new file n 644 33",
            ]
        );
        assert!(!manifest.exists(), "manifest removed");
    }

    #[test]
    fn no_change_gives_an_empty_upper() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path();
        for d in ["l", "rootfs", "upper"] {
            fs::create_dir(base.join(d)).expect("mkdir");
        }
        fs::create_dir(base.join("l/dir")).expect("mkdir");
        fs::write(base.join("l/dir/f"), "f").expect("write");
        let target = base.join("rootfs");
        copy_merged(
            base,
            &["l".to_string()],
            &target,
            Some(&manifest_path(&target)),
        )
        .expect("copy");
        // Reading changes nothing.
        assert_eq!(fs::read_to_string(target.join("dir/f")).expect("read"), "f");
        diff_into_upper(&target, &base.join("upper")).expect("diff");
        assert!(listing(&base.join("upper")).is_empty());
    }
}
