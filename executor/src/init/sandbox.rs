//! The RUN sandbox: namespaces, rootfs, `/proc` `/sys` `/dev`, `/etc` files, identity,
//! capabilities, and a PID 1 that reaps and forwards signals.
//!
//! The command gets Docker's default capabilities and seccomp profile ([`super::seccomp`]),
//! or every capability and no filter for `RUN --security=insecure`; `no_new_privs` stays off.
//!
//! Rootless (kiln runs as root of its own user namespace, see [`crate::userns`]): sysfs can
//! only be mounted with a network namespace of that user namespace, so with the host network
//! `/sys` is a read-only recursive bind of the host's; devpts gets no `gid=5` when gid 5 is
//! not mapped; `setgroups` is skipped where the namespace denies it. With the copy
//! snapshotter ([`super::copyfs`]) the rootfs is a bind of a copied tree, and the changes
//! are moved into the upper dir after the command.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::stat::{umask, Mode};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Gid, Pid, Uid};

use super::{copyfs, make_root_private, mount_rootfs, remount_readonly, report, seccomp, ERROR_FD};
use crate::spec::{InitFailure, RunSpec};
use crate::users::{parse_group, parse_passwd, resolve_exec_user, ExecUser};

/// Docker's default capability set (`CapBnd 00000000a80425fb`).
pub(crate) const DEFAULT_CAPS: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// Docker's default PATH, used when the env has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Runs a RUN job in the calling (single-threaded) process; returns the exit code.
pub(super) fn run(spec: &RunSpec) -> i32 {
    let mut flags = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
    if spec.network_none {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if let Err(e) = unshare(flags) {
        return report(InitFailure::Other(format!("unshare namespaces: {e}")));
    }
    // SAFETY: this process is single-threaded (run_init_if_requested runs before any
    // thread starts), so the child may run arbitrary code after fork.
    match unsafe { fork() } {
        Err(e) => report(InitFailure::Other(format!("fork: {e}"))),
        Ok(ForkResult::Child) => std::process::exit(pid1(spec)),
        Ok(ForkResult::Parent { child }) => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => {
                    // The copy snapshotter's changes (nothing to do over overlay).
                    return match copyfs::diff_into_upper(&spec.rootfs.target, &spec.rootfs.upper) {
                        Ok(()) => 0,
                        Err(e) => report(InitFailure::Other(e)),
                    };
                }
                Ok(WaitStatus::Exited(_, code)) => return code,
                Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return report(InitFailure::Other(format!("waitpid: {e}"))),
            }
        },
    }
}

/// PID 1 of the new pid namespace.
fn pid1(spec: &RunSpec) -> i32 {
    // If the outer init dies (kiln was killed), take the whole namespace down with us.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        return report(InitFailure::Other(format!("prctl(PR_SET_PDEATHSIG): {e}")));
    }
    let user = match setup(spec) {
        Ok(u) => u,
        Err(e) => return report(InitFailure::Other(e)),
    };
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        mask.add(s);
    }
    if let Err(e) = mask.thread_block() {
        return report(InitFailure::Other(format!("sigprocmask: {e}")));
    }
    // SAFETY: still single-threaded; the child only sets up its identity and execs.
    let main = match unsafe { fork() } {
        Err(e) => return report(InitFailure::Other(format!("fork: {e}"))),
        Ok(ForkResult::Child) => {
            let _ = mask.thread_unblock();
            let err = exec_command(spec, &user);
            std::process::exit(report(InitFailure::Other(err)));
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    loop {
        let sig = match mask.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = kill(main, sig);
            continue;
        }
        while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            let code = match status {
                WaitStatus::StillAlive => break,
                WaitStatus::Exited(pid, code) if pid == main => code,
                WaitStatus::Signaled(pid, sig, _) if pid == main => 128 + sig as i32,
                _ => continue,
            };
            // Kill what is left; the kernel also does when PID 1 exits.
            let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
            return code;
        }
    }
}

/// Host files cloned as detached mounts before `pivot_root`, attached afterwards.
struct HostFiles {
    devices: Vec<(&'static str, OwnedFd)>,
    etc: Vec<(&'static str, OwnedFd)>,
    /// `ExecMount::File` contents and where they go.
    files: Vec<(String, OwnedFd)>,
    /// A new procfs of the sandbox's pid namespace.
    proc: Option<OwnedFd>,
    /// A new read-only sysfs or, in a user namespace without its own network namespace
    /// (where sysfs cannot be mounted), a read-only copy of the host's `/sys`.
    sys: Option<OwnedFd>,
}

/// A new detached mount of `fstype` (`fsopen`/`fsmount`) with `MOUNT_ATTR_*` flags `attrs`.
///
/// Made before `pivot_root`: in a user namespace the kernel only allows a new proc or sysfs
/// while a fully visible one is in the mount namespace, which the host's is until the old
/// root goes.
fn new_fs(fstype: &str, attrs: u64) -> Result<OwnedFd, String> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    let name = CString::new(fstype).map_err(|_| format!("NUL byte in {fstype}"))?;
    let fail = |what: &str| {
        format!(
            "mounting {fstype} ({what}): {}",
            std::io::Error::last_os_error()
        )
    };
    // SAFETY: fsopen reads the NUL-terminated name and returns a new fd we own.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(fail("fsopen"));
    }
    // SAFETY: a fresh descriptor returned to us.
    let fs = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fs as i32) };
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    // SAFETY: fsconfig reads the two NUL-terminated strings; the fd is owned by `fs`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            c"source".as_ptr(),
            name.as_ptr(),
            0,
        )
    };
    if rc < 0 {
        return Err(fail("source"));
    }
    // SAFETY: fsconfig with null key and value for CMD_CREATE; the fd is owned by `fs`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if rc < 0 {
        return Err(fail("create"));
    }
    // SAFETY: fsmount on the configured context; returns a new fd we own.
    let m = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    if m < 0 {
        return Err(fail("fsmount"));
    }
    // SAFETY: a fresh descriptor returned to us.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(m as i32) })
}

/// A detached copy of the mount at `path` (`open_tree(OPEN_TREE_CLONE)`), attachable after
/// `pivot_root` has detached the host's tree.
fn clone_tree(path: &Path) -> Result<OwnedFd, String> {
    clone_tree_flags(path, 0)
}

/// A detached read-only copy of the whole mount tree at `path` (submounts included).
fn clone_tree_readonly(path: &Path) -> Result<OwnedFd, String> {
    let tree = clone_tree_flags(path, libc::AT_RECURSIVE as libc::c_uint)?;
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 1;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads the empty path and the attr struct, both alive across the
    // call; the fd stays owned by `tree`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(format!(
            "making a copy of {} read-only: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(tree)
}

fn clone_tree_flags(path: &Path, extra: libc::c_uint) -> Result<OwnedFd, String> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("NUL byte in {}", path.display()))?;
    // SAFETY: open_tree reads the NUL-terminated path and returns a new fd we own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | extra,
        )
    };
    if fd < 0 {
        return Err(format!(
            "open_tree {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fd is a fresh descriptor returned to us.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) })
}

/// Attaches a tree from [`clone_tree`] at `target` (resolved in the current root).
pub(super) fn attach(tree: &OwnedFd, target: &str) -> Result<(), String> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    let t = CString::new(target).map_err(|_| format!("NUL byte in {target}"))?;
    // SAFETY: move_mount reads the two NUL-terminated strings; the fd stays owned by `tree`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(format!(
            "mounting {target}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn setup(spec: &RunSpec) -> Result<ExecUser, String> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare mount namespace: {e}"))?;
    make_root_private()?;
    if spec.network_none {
        loopback_up()?;
    }
    let mut host = HostFiles {
        devices: Vec::new(),
        etc: Vec::new(),
        files: Vec::new(),
        proc: None,
        sys: None,
    };
    const NOSUID_NODEV_NOEXEC: u64 = 0x2 | 0x4 | 0x8;
    const RDONLY: u64 = 0x1;
    host.proc = Some(new_fs("proc", NOSUID_NODEV_NOEXEC)?);
    host.sys = Some(match new_fs("sysfs", NOSUID_NODEV_NOEXEC | RDONLY) {
        Ok(fd) => fd,
        // sysfs needs a network namespace of the user namespace (`--network=none` has one).
        Err(_) if crate::userns::in_user_namespace() => clone_tree_readonly(Path::new("/sys"))?,
        Err(e) => return Err(e),
    });
    for f in &spec.files {
        host.files.push((f.target.clone(), clone_tree(&f.host)?));
    }
    for d in DEVICES {
        host.devices
            .push((d, clone_tree(&Path::new("/dev").join(d))?));
    }
    host.etc.push(("/etc/hosts", clone_tree(&spec.hosts)?));
    host.etc
        .push(("/etc/resolv.conf", clone_tree(&spec.resolv)?));
    host.etc
        .push(("/etc/hostname", clone_tree(&spec.hostname_file)?));

    let mounts = super::mounts::prepare(spec)?;
    if mount_rootfs(&spec.rootfs)? {
        // A copied tree: pivot_root needs a mount point.
        let t = &spec.rootfs.target;
        mount(Some(t), t, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| format!("binding {}: {e}", t.display()))?;
    }
    std::env::set_current_dir(&spec.rootfs.target)
        .map_err(|e| format!("chdir {}: {e}", spec.rootfs.target.display()))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detaching the old root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;

    mount_special(&host)?;
    mount_files(&host)?;
    super::mounts::attach(&mounts)?;
    nix::unistd::sethostname(&spec.hostname).map_err(|e| format!("sethostname: {e}"))?;

    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let user = resolve_exec_user(&spec.user, &parse_passwd(&passwd), &parse_group(&group))?;
    // Like BuildKit, a missing working directory is created (as root).
    std::fs::create_dir_all(&spec.cwd)
        .map_err(|e| format!("creating working directory {}: {e}", spec.cwd))?;
    Ok(user)
}

fn mnt(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    mount(source, target, fstype, flags, data).map_err(|e| format!("mounting {target}: {e}"))
}

/// `/proc`, `/sys` (read-only), a minimal `/dev` and the generated `/etc` files; runs after
/// `pivot_root`, so every target resolves inside the rootfs.
fn mount_special(host: &HostFiles) -> Result<(), String> {
    let nse = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    for dir in ["/proc", "/sys", "/dev"] {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {dir}: {e}"))?;
    }
    for (fd, target) in [(&host.proc, "/proc"), (&host.sys, "/sys")] {
        if let Some(fd) = fd {
            attach(fd, target)?;
        }
    }
    mnt(
        Some("tmpfs"),
        "/dev",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for (name, fd) in &host.devices {
        let target = format!("/dev/{name}");
        File::create(&target).map_err(|e| format!("creating {target}: {e}"))?;
        attach(fd, &target)?;
    }
    let mkdir = |d: &str| std::fs::create_dir(d).map_err(|e| format!("creating {d}: {e}"));
    mkdir("/dev/pts")?;
    let devpts = |data| {
        mnt(
            Some("devpts"),
            "/dev/pts",
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some(data),
        )
    };
    // gid=5 fails (EINVAL) in a user namespace that does not map gid 5.
    devpts("newinstance,ptmxmode=0666,mode=0620,gid=5")
        .or_else(|_| devpts("newinstance,ptmxmode=0666,mode=0620"))?;
    mkdir("/dev/shm")?;
    mnt(
        Some("shm"),
        "/dev/shm",
        Some("tmpfs"),
        nse,
        Some("mode=1777,size=65536k"),
    )?;
    mkdir("/dev/mqueue")?;
    mnt(Some("mqueue"), "/dev/mqueue", Some("mqueue"), nse, None)?;
    for (link, target) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, link).map_err(|e| format!("symlink {link}: {e}"))?;
    }
    for (target, fd) in &host.etc {
        // Only over a regular file the rootfs (or the stub layer) provides: a missing or
        // odd target is left alone rather than creating files in the layer.
        if std::fs::metadata(target).is_ok_and(|m| m.is_file()) {
            attach(fd, target)?;
        }
    }
    Ok(())
}

/// Binds each `ExecMount::File` read-only at its target, creating the mount point (and its
/// parents) first. Heredoc scripts go under `/dev/pipes`, on the sandbox's own `/dev` tmpfs,
/// so their mount points never reach the layer.
fn mount_files(host: &HostFiles) -> Result<(), String> {
    for (target, fd) in &host.files {
        if let Some(parent) = Path::new(target).parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        if std::fs::symlink_metadata(target).is_err() {
            File::create(target).map_err(|e| format!("creating {target}: {e}"))?;
        }
        attach(fd, target)?;
        remount_readonly(Path::new(target))?;
    }
    Ok(())
}

fn loopback_up() -> Result<(), String> {
    // SAFETY: plain socket(2); the fd is owned by the OwnedFd below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: raw is a fresh fd we own.
    let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        ifr.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we pass, which lives
    // across the calls.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(format!(
                "SIOCGIFFLAGS lo: {}",
                std::io::Error::last_os_error()
            ));
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(format!(
                "SIOCSIFFLAGS lo: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// In the command's process: identity, capabilities, umask, cwd, exec. Returns only on
/// failure.
fn exec_command(spec: &RunSpec, user: &ExecUser) -> String {
    match prepare_and_exec(spec, user) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn prepare_and_exec(spec: &RunSpec, user: &ExecUser) -> Result<std::convert::Infallible, String> {
    let keep: CapsHashSet = if spec.insecure {
        // Every capability kiln itself has (its bounding set may lack some, e.g. in a
        // container).
        caps::read(None, CapSet::Bounding).map_err(|e| format!("capabilities: {e}"))?
    } else {
        DEFAULT_CAPS.into_iter().collect()
    };
    for cap in caps::runtime::thread_all_supported() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| format!("dropping {cap} from the bounding set: {e}"))?;
        }
    }
    caps::set(None, CapSet::Inheritable, &keep).map_err(|e| format!("capabilities: {e}"))?;
    if !spec.insecure {
        // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it while this
        // process still has it. The filter allows every syscall of the set-up below.
        let programs = seccomp::default_filters(&keep)?;
        seccomp::install(&programs)?;
    }
    let groups: Vec<Gid> = user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    // A single-id user namespace denies setgroups; the process then keeps no groups.
    if !crate::userns::setgroups_denied() {
        nix::unistd::setgroups(&groups).map_err(|e| format!("setgroups: {e}"))?;
    }
    nix::unistd::setgid(Gid::from_raw(user.gid)).map_err(|e| format!("setgid: {e}"))?;
    nix::unistd::setuid(Uid::from_raw(user.uid)).map_err(|e| format!("setuid: {e}"))?;
    if user.uid == 0 {
        caps::set(None, CapSet::Effective, &keep).map_err(|e| format!("capabilities: {e}"))?;
        caps::set(None, CapSet::Permitted, &keep).map_err(|e| format!("capabilities: {e}"))?;
    }
    umask(Mode::from_bits_truncate(0o022));
    std::env::set_current_dir(&spec.cwd).map_err(|e| format!("chdir {}: {e}", spec.cwd))?;

    let mut env = spec.env.clone();
    env.extend(super::mounts::secret_env());
    let has = |k: &str, env: &[String]| env.iter().any(|e| e.split('=').next() == Some(k));
    if !has("PATH", &env) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has("HOME", &env) {
        env.push(format!("HOME={}", user.home));
    }
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_string();
    let argv0 = spec
        .args
        .first()
        .ok_or_else(|| "empty command".to_string())?;
    let program = lookup(argv0, &path_var)?;
    let cstr = |s: &str| CString::new(s).map_err(|_| format!("NUL byte in {s:?}"));
    let prog = CString::new(program.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("NUL byte in {argv0:?}"))?;
    let args = spec
        .args
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>, _>>()?;
    let envs = env.iter().map(|a| cstr(a)).collect::<Result<Vec<_>, _>>()?;
    // The error pipe must not leak into the command; exec closes it on success.
    nix::fcntl::fcntl(
        // SAFETY: ERROR_FD is open for the lifetime of this process (the parent installed it).
        unsafe { std::os::fd::BorrowedFd::borrow_raw(ERROR_FD) },
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| format!("fcntl: {e}"))?;
    match nix::unistd::execve(&prog, &args, &envs) {
        Ok(never) => match never {},
        Err(e) => Err(format!(
            "exec: \"{}\": {}",
            argv0,
            std::io::Error::from_raw_os_error(e as i32)
        )),
    }
}

/// `exec.LookPath`: a name with a `/` is used as is, others are searched in `PATH`.
fn lookup(name: &str, path: &str) -> Result<PathBuf, String> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(format!(
        "exec: \"{name}\": executable file not found in $PATH"
    ))
}
