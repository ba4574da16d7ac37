//! The re-executed init: `kiln __sandbox-init <spec.json>`.
//!
//! The kiln binary calls [`run_init_if_requested`] first thing in `main`, before any thread
//! starts: namespaces, `fork` and mounts are only safe in a single-threaded process.
#![allow(unsafe_code)]

mod copyfs;
mod mounts;
mod sandbox;
mod seccomp;

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::path::Path;

use nix::mount::{mount, MsFlags};

use crate::spec::{InitFailure, RootfsSpec, Spec, INIT_SUBCOMMAND};

/// The fd on which the init reports a failure (the parent dup2s its pipe here).
pub(crate) const ERROR_FD: i32 = 3;

/// Exit code of an init that failed before running the command.
const SETUP_FAILED: i32 = 125;

/// If this process was started as the sandbox init (`argv[1] == "__sandbox-init"`), runs the
/// job described by `argv[2]` and exits; otherwise returns at once.
///
/// Call it first thing in `main`, before tokio or any other thread starts.
pub fn run_init_if_requested() {
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() != Some(OsStr::new(INIT_SUBCOMMAND)) {
        return;
    }
    let code = match args.next() {
        Some(spec) => run(Path::new(&spec)),
        None => report(InitFailure::Other("sandbox init: missing spec path".into())),
    };
    std::process::exit(code)
}

fn run(spec_path: &Path) -> i32 {
    let spec = match std::fs::read(spec_path)
        .map_err(|e| format!("reading {}: {e}", spec_path.display()))
        .and_then(|b| serde_json::from_slice::<Spec>(&b).map_err(|e| format!("parsing spec: {e}")))
    {
        Ok(s) => s,
        Err(e) => return report(InitFailure::Other(e)),
    };
    match spec {
        Spec::Run(run) => sandbox::run(&run),
        Spec::File(file) => match crate::fileop::run_file_job(&file).and_then(|()| {
            copyfs::diff_into_upper(&file.rootfs.target, &file.rootfs.upper)
                .map_err(InitFailure::Other)
        }) {
            Ok(()) => 0,
            Err(f) => report(f),
        },
    }
}

/// Writes the failure to [`ERROR_FD`] (or stderr when it is not open) and returns the exit
/// code to use.
pub(crate) fn report(failure: InitFailure) -> i32 {
    let bytes = serde_json::to_vec(&failure).unwrap_or_default();
    // SAFETY: fd 3 is the error pipe the parent installed; if it is not open, fcntl fails
    // and we fall back to stderr. ManuallyDrop keeps the fd open for other reporters.
    let open = unsafe { libc::fcntl(ERROR_FD, libc::F_GETFD) } >= 0;
    if open {
        // SAFETY: see above: the fd is open and owned by this process for its lifetime.
        let mut f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(ERROR_FD) });
        let _ = f.write_all(&bytes);
    } else {
        eprintln!("kiln sandbox init: {failure:?}");
    }
    SETUP_FAILED
}

/// Makes every mount in this (new) mount namespace private, so nothing propagates to the
/// host.
pub(crate) fn make_root_private() -> Result<(), String> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making / rprivate: {e}"))
}

/// Mounts an overlay of `lowers` (top first, relative to `snapshots_dir`) at `target`, with
/// an upper dir when given (read-only otherwise). In a user namespace overlay is mounted
/// with `userxattr`; when it cannot be mounted there, or `KILN_SNAPSHOTTER=copy`, the
/// merged tree is copied to `target` instead ([`copyfs`]).
pub(crate) fn mount_overlay(
    snapshots_dir: &Path,
    lowers: &[String],
    upper_work: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), String> {
    mount_or_copy(snapshots_dir, lowers, upper_work, target, false).map(|_| ())
}

/// [`mount_overlay`]; with `manifest`, a copy also records its entries for
/// [`copyfs::diff_into_upper`]. Returns whether it copied.
fn mount_or_copy(
    snapshots_dir: &Path,
    lowers: &[String],
    upper_work: Option<(&Path, &Path)>,
    target: &Path,
    manifest: bool,
) -> Result<bool, String> {
    let copy = |why: &str| {
        tracing::debug!(target = %target.display(), why, "copy snapshotter");
        let m = manifest.then(|| copyfs::manifest_path(target));
        copyfs::copy_merged(snapshots_dir, lowers, target, m.as_deref()).map(|()| true)
    };
    if copyfs::forced() {
        return copy("KILN_SNAPSHOTTER=copy");
    }
    match overlay(snapshots_dir, lowers, upper_work, target) {
        Ok(()) => Ok(false),
        Err(e) if crate::userns::in_user_namespace() => {
            // The init has no log subscriber: its stderr is the step's output, where the
            // user sees it.
            eprintln!("kiln: {e}; copying the layers instead (slower)");
            copy("overlay refused in the user namespace")
        }
        Err(e) => Err(e),
    }
}

fn overlay(
    snapshots_dir: &Path,
    lowers: &[String],
    upper_work: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), String> {
    // Relative lower dirs keep 150 layers inside one page of options.
    std::env::set_current_dir(snapshots_dir)
        .map_err(|e| format!("chdir {}: {e}", snapshots_dir.display()))?;
    // The same layer twice in a stack (`COPY f /t/` twice gives two identical layers) makes
    // overlayfs fail with ELOOP. Only the topmost copy matters: everything the lower copy
    // holds is shadowed by the upper one, so dropping it gives the same tree.
    let mut seen = std::collections::HashSet::new();
    let lowers: Vec<&str> = lowers
        .iter()
        .map(String::as_str)
        .filter(|l| seen.insert(*l))
        .collect();
    let mut base = format!("lowerdir={}", lowers.join(":"));
    if let Some((upper, work)) = upper_work {
        base.push_str(&format!(
            ",upperdir={},workdir={}",
            upper.display(),
            work.display()
        ));
    }
    let flags = if upper_work.is_some() {
        MsFlags::empty()
    } else {
        MsFlags::MS_RDONLY
    };
    if crate::userns::in_user_namespace() {
        // Overlay's own xattrs (whiteouts, opaque dirs) as `user.overlay.*`: a user
        // namespace cannot set `trusted.*`.
        base.push_str(",userxattr");
    }
    let with_extras = format!("{base},index=off,redirect_dir=off,metacopy=off");
    let result = mount(
        Some("overlay"),
        target,
        Some("overlay"),
        flags,
        Some(with_extras.as_str()),
    )
    .or_else(|_| {
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            flags,
            Some(base.as_str()),
        )
    });
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    result.map_err(|e| {
        format!(
            "mounting overlay ({} lower dirs, {} bytes of options) at {}: {e}",
            lowers.len(),
            with_extras.len(),
            target.display()
        )
    })
}

/// Mounts the rootfs overlay of a job, or copies the layers (see [`mount_overlay`]); returns
/// whether it copied, in which case [`copyfs::diff_into_upper`] must fill the upper dir
/// after the job.
pub(crate) fn mount_rootfs(rootfs: &RootfsSpec) -> Result<bool, String> {
    mount_or_copy(
        &rootfs.snapshots_dir,
        &rootfs.lowers,
        Some((&rootfs.upper, &rootfs.work)),
        &rootfs.target,
        true,
    )
}

/// Remounts the bind mount at `target` read-only, keeping the flags a user namespace may
/// not drop from a mount it inherited (nosuid, nodev, noexec, atime).
pub(crate) fn remount_readonly(target: &Path) -> Result<(), String> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let st = statvfs(target).map_err(|e| format!("statfs {}: {e}", target.display()))?;
    let f = st.flags();
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    for (have, want) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(have) {
            flags |= want;
        }
    }
    if !f.intersects(FsFlags::ST_NOATIME | FsFlags::ST_RELATIME) {
        flags |= MsFlags::MS_STRICTATIME;
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|e| format!("making {} read-only: {e}", target.display()))
}
