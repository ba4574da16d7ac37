//! `RUN --mount`, sandbox side. [`prepare`] runs in the init's private mount namespace
//! before `pivot_root`: it mounts source filesystems, makes and seeds cache directories,
//! writes secrets into a private tmpfs, clones every source as a detached tree, and creates
//! the mount points in the stub lower dir. [`attach`] runs after `pivot_root` and mounts each
//! tree (or tmpfs) at its target, in order.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::{mount, MsFlags};

use super::mount_overlay;
use crate::spec::{CacheCreate, FsSpec, MountSpec, RunSpec, SecretFrom};

/// `NAME=value` of `env=` secrets, read before `pivot_root`, added to the command's env.
static SECRET_ENV: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The environment `env=` secrets add to the command.
pub(super) fn secret_env() -> Vec<String> {
    SECRET_ENV.lock().map(|v| v.clone()).unwrap_or_default()
}

/// A mount ready to be attached after `pivot_root`.
pub(super) enum Ready {
    /// A detached tree.
    Tree {
        target: String,
        tree: OwnedFd,
        readonly: bool,
    },
    /// A new tmpfs.
    Tmpfs { target: String, size: Option<u64> },
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `path` as an `O_PATH` fd under `root` with `openat2` confinement `resolve`.
fn open_confined(root: &Path, path: &str, resolve: u64) -> Result<OwnedFd, String> {
    let dir = File::open(root).map_err(|e| format!("opening {}: {e}", root.display()))?;
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let c = CString::new(rel).map_err(|_| format!("NUL byte in {path:?}"))?;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: resolve | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: openat2 reads the NUL-terminated path and the open_how struct, both alive
    // across the call; it returns a new fd we own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(libc::EXDEV) {
            format!("{path}: resolves outside of the mounted filesystem")
        } else {
            format!("{path}: {e}")
        });
    }
    // SAFETY: fd is a fresh descriptor returned to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A detached recursive copy of the mount tree at `fd` (`open_tree(OPEN_TREE_CLONE)`).
fn clone_fd(fd: &OwnedFd) -> Result<OwnedFd, String> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    // SAFETY: open_tree reads the empty NUL-terminated path relative to `fd`, which stays
    // open across the call; it returns a new fd we own.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd.as_raw_fd(),
            c"".as_ptr(),
            OPEN_TREE_CLONE
                | libc::O_CLOEXEC as libc::c_uint
                | libc::AT_EMPTY_PATH as libc::c_uint
                | libc::AT_RECURSIVE as libc::c_uint,
        )
    };
    if tree < 0 {
        return Err(format!("open_tree: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor returned to us.
    Ok(unsafe { OwnedFd::from_raw_fd(tree as i32) })
}

fn fd_is_dir(fd: &OwnedFd) -> Result<bool, String> {
    nix::sys::stat::fstat(fd)
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .map_err(|e| format!("fstat: {e}"))
}

fn mount_fs(spec: &RunSpec, fs: &FsSpec) -> Result<(), String> {
    let uw = fs
        .upper_work
        .as_ref()
        .map(|(u, w)| (u.as_path(), w.as_path()));
    mount_overlay(&spec.rootfs.snapshots_dir, &fs.lowers, uw, &fs.mountpoint)
}

/// Creates the mount point of `target` in the stub lower dir.
fn stub(stubs: &Option<PathBuf>, target: &str, dir: bool) -> Result<(), String> {
    let Some(stubs) = stubs else { return Ok(()) };
    let p = stubs.join(target.trim_start_matches('/'));
    let parent = if dir { Some(p.as_path()) } else { p.parent() };
    if let Some(d) = parent {
        std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    if !dir && std::fs::symlink_metadata(&p).is_err() {
        File::create(&p).map_err(|e| format!("creating {}: {e}", p.display()))?;
    }
    Ok(())
}

/// Everything before `pivot_root`. Must run in the init's private mount namespace.
pub(super) fn prepare(spec: &RunSpec) -> Result<Vec<Ready>, String> {
    let mut ready = Vec::new();
    let mut secrets_mounted = false;
    for (i, m) in spec.mounts.iter().enumerate() {
        match m {
            MountSpec::Bind {
                fs,
                source,
                target,
                readonly,
            } => {
                mount_fs(spec, fs)?;
                let fd = open_confined(&fs.mountpoint, source, RESOLVE_IN_ROOT)
                    .map_err(|e| format!("bind mount source {e}"))?;
                stub(&spec.mount_stubs, target, fd_is_dir(&fd)?)?;
                ready.push(Ready::Tree {
                    target: target.clone(),
                    tree: clone_fd(&fd)?,
                    readonly: *readonly,
                });
            }
            MountSpec::Cache {
                dir,
                create,
                target,
                readonly,
            } => {
                if let Some(c) = create {
                    make_cache(spec, dir, c)?;
                }
                let fd = open_confined(dir, "/", RESOLVE_BENEATH)?;
                stub(&spec.mount_stubs, target, true)?;
                ready.push(Ready::Tree {
                    target: target.clone(),
                    tree: clone_fd(&fd)?,
                    readonly: *readonly,
                });
            }
            MountSpec::Tmpfs { target, size } => {
                stub(&spec.mount_stubs, target, true)?;
                ready.push(Ready::Tmpfs {
                    target: target.clone(),
                    size: *size,
                });
            }
            MountSpec::Secret {
                from,
                target,
                env,
                uid,
                gid,
                mode,
            } => {
                let value = match from {
                    SecretFrom::File(p) => std::fs::read(p)
                        .map_err(|e| format!("reading secret file {}: {e}", p.display()))?,
                    SecretFrom::Env(v) => std::env::var_os(v)
                        .ok_or_else(|| format!("secret environment variable {v} is not set"))?
                        .into_encoded_bytes(),
                };
                if let Some(name) = env {
                    let text = String::from_utf8_lossy(&value);
                    if let Ok(mut e) = SECRET_ENV.lock() {
                        e.push(format!("{name}={text}"));
                    }
                }
                let Some(target) = target else { continue };
                let dir = spec
                    .secrets_dir
                    .as_ref()
                    .ok_or_else(|| "no directory for secrets".to_string())?;
                if !secrets_mounted {
                    mount(
                        Some("tmpfs"),
                        dir,
                        Some("tmpfs"),
                        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                        Some("mode=0700,size=16m"),
                    )
                    .map_err(|e| format!("mounting a tmpfs for secrets: {e}"))?;
                    secrets_mounted = true;
                }
                let file = dir.join(format!("secret-{i}"));
                std::fs::write(&file, &value).map_err(|e| format!("writing a secret: {e}"))?;
                crate::userns::lchown(&file, *uid, *gid)
                    .map_err(|e| format!("chown of a secret: {e}"))?;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode & 0o7777))
                    .map_err(|e| format!("chmod of a secret: {e}"))?;
                let fd = open_confined(dir, &format!("secret-{i}"), RESOLVE_BENEATH)?;
                stub(&spec.mount_stubs, target, false)?;
                ready.push(Ready::Tree {
                    target: target.clone(),
                    tree: clone_fd(&fd)?,
                    readonly: true,
                });
            }
            MountSpec::Ssh { socket, target } => {
                let parent = socket.parent().unwrap_or(Path::new("/"));
                let name = socket
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let fd = open_confined(parent, &name, RESOLVE_BENEATH)
                    .map_err(|e| format!("ssh agent socket {}: {e}", socket.display()))?;
                stub(&spec.mount_stubs, target, false)?;
                ready.push(Ready::Tree {
                    target: target.clone(),
                    tree: clone_fd(&fd)?,
                    readonly: false,
                });
            }
        }
    }
    Ok(ready)
}

/// Makes a new cache directory: seeded from `from`/`source` (which must stay inside its
/// filesystem) or empty with the given owner and mode; then renamed into place.
fn make_cache(spec: &RunSpec, dir: &Path, c: &CacheCreate) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(&c.tmp);
    let result = (|| {
        match &c.seed {
            Some((fs, source)) => {
                mount_fs(spec, fs)?;
                let fd = open_confined(&fs.mountpoint, source, RESOLVE_BENEATH)
                    .map_err(|e| format!("cache mount source {e}"))?;
                let from = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                let meta = std::fs::metadata(&from).map_err(|e| format!("stat {source}: {e}"))?;
                if !meta.is_dir() {
                    return Err(format!("cache mount source {source} is not a directory"));
                }
                copy_tree(&from, &c.tmp)?;
            }
            None => {
                std::fs::create_dir(&c.tmp)
                    .map_err(|e| format!("creating {}: {e}", c.tmp.display()))?;
                crate::userns::lchown(&c.tmp, c.uid, c.gid)
                    .map_err(|e| format!("chown {}: {e}", c.tmp.display()))?;
                std::fs::set_permissions(&c.tmp, std::fs::Permissions::from_mode(c.mode & 0o7777))
                    .map_err(|e| format!("chmod {}: {e}", c.tmp.display()))?;
            }
        }
        match std::fs::rename(&c.tmp, dir) {
            Ok(()) => Ok(()),
            // Another build made it first: use theirs.
            Err(_) if dir.is_dir() => {
                let _ = std::fs::remove_dir_all(&c.tmp);
                Ok(())
            }
            Err(e) => Err(format!("creating cache dir {}: {e}", dir.display())),
        }
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&c.tmp);
    }
    result
}

/// Copies a directory tree (files, directories, symlinks) with owners and modes.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let err = |p: &Path, e: std::io::Error| format!("copying {}: {e}", p.display());
    let meta = std::fs::symlink_metadata(from).map_err(|e| err(from, e))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        std::fs::create_dir(to).map_err(|e| err(to, e))?;
        for entry in std::fs::read_dir(from).map_err(|e| err(from, e))? {
            let entry = entry.map_err(|e| err(from, e))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if ft.is_symlink() {
        let target = std::fs::read_link(from).map_err(|e| err(from, e))?;
        std::os::unix::fs::symlink(target, to).map_err(|e| err(to, e))?;
    } else if ft.is_file() {
        std::fs::copy(from, to).map_err(|e| err(to, e))?;
    } else {
        return Ok(());
    }
    crate::userns::lchown(to, meta.uid(), meta.gid()).map_err(|e| err(to, e))?;
    if !ft.is_symlink() {
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| err(to, e))?;
    }
    Ok(())
}

/// After `pivot_root`: mounts each prepared mount at its target (creating a missing mount
/// point, which the parent removes from the upper dir afterwards).
pub(super) fn attach(ready: &[Ready]) -> Result<(), String> {
    for r in ready {
        let target = match r {
            Ready::Tree { target, .. } | Ready::Tmpfs { target, .. } => target,
        };
        let is_dir = match r {
            Ready::Tree { tree, .. } => fd_is_dir(tree)?,
            Ready::Tmpfs { .. } => true,
        };
        if std::fs::symlink_metadata(target).is_err() {
            let made = if is_dir {
                std::fs::create_dir_all(target)
            } else {
                let parent = Path::new(target).parent().unwrap_or(Path::new("/"));
                std::fs::create_dir_all(parent).and_then(|()| File::create(target).map(drop))
            };
            made.map_err(|e| format!("creating mount point {target}: {e}"))?;
        }
        match r {
            Ready::Tree { tree, readonly, .. } => {
                super::sandbox::attach(tree, target)?;
                if *readonly {
                    super::remount_readonly(Path::new(target))?;
                }
            }
            Ready::Tmpfs { size, .. } => {
                let data = size.map(|s| format!("size={s}"));
                mount(
                    Some("tmpfs"),
                    target.as_str(),
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    data.as_deref(),
                )
                .map_err(|e| format!("mounting a tmpfs at {target}: {e}"))?;
            }
        }
    }
    Ok(())
}
