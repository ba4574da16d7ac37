//! Rootless kiln: a non-root `kiln build` re-executes itself in a new user and mount
//! namespace where it is uid 0, the way buildah and podman do.
//!
//! The parent forks; the child unshares `CLONE_NEWUSER | CLONE_NEWNS` and waits while the
//! parent writes its id maps: with `newuidmap`/`newgidmap` and the user's `/etc/subuid` and
//! `/etc/subgid` ranges (`0 → own id`, `1.. → the subordinate ranges`) when both exist, else
//! the single mapping `0 → own id` written directly (with `setgroups` denied). The child then
//! execs the kiln binary again, which runs the build as root of that namespace; the parent
//! forwards `SIGINT`/`SIGTERM`/`SIGHUP`/`SIGQUIT` to it and exits with its exit code. The
//! child dies with the parent (`PR_SET_PDEATHSIG`).
//!
//! Inside, overlay is mounted with `userxattr` (see [`in_user_namespace`]), `/sys` may be a
//! read-only bind of the host's, and a chown to an id the namespace does not map is ignored
//! (see [`lchown`]).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// Set in the re-executed child's environment (to the parent's pid): marks kiln's own
/// rootless child, so it neither re-executes again nor takes the root-only defaults.
pub(crate) const CHILD_ENV: &str = "KILN_USERNS_PARENT";

/// Set to `single` to use the single-id mapping even when subordinate ranges exist.
pub(crate) const MAPPING_ENV: &str = "KILN_USERNS_MAPPING";

/// A subordinate id range from `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdRange {
    /// First host id.
    pub(crate) start: u32,
    /// Number of ids.
    pub(crate) count: u32,
}

/// One line of an id map: `inside outside count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MapLine {
    /// First id inside the namespace.
    pub(crate) inside: u32,
    /// First id outside.
    pub(crate) outside: u32,
    /// Number of ids.
    pub(crate) count: u32,
}

/// Whether a `/proc/<pid>/uid_map` text is the initial namespace's identity map.
pub(crate) fn is_identity_map(text: &str) -> bool {
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| !f.is_empty())
        .collect();
    lines.len() == 1 && lines[0] == ["0", "0", "4294967295"]
}

/// Whether this process runs in a user namespace other than the initial one (its uid map is
/// not `0 0 4294967295`). Overlay must then be mounted with `userxattr`, trusted xattrs
/// cannot be set, and sysfs may not be mountable.
pub fn in_user_namespace() -> bool {
    static CACHED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CACHED.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|t| !is_identity_map(&t))
    })
}

/// Whether this process is kiln's own rootless child (see [`run_in_user_namespace`]).
pub fn is_rootless_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Whether `setgroups(2)` is denied in this namespace (the single-id mapping).
pub(crate) fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|t| t.trim() == "deny")
}

/// `lchown` that ignores `EINVAL`, which the kernel returns for an id the user namespace
/// does not map (the single-id mapping has only 0): the entry then stays owned by 0, like
/// podman's `ignore_chown_errors`. Outside a user namespace every id is mapped, so this is
/// plain `lchown` there.
pub(crate) fn lchown(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::debug!(path = %path.display(), uid, gid, "id not mapped here; chown skipped");
            Ok(())
        }
        r => r,
    }
}

/// The ranges of `user` (name or numeric `uid`) in a `/etc/subuid`-format text, in file order.
pub(crate) fn parse_subid(text: &str, user: &str, uid: u32) -> Vec<IdRange> {
    let uid = uid.to_string();
    text.lines()
        .filter_map(|line| {
            let mut f = line.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if who != user && who != uid {
                return None;
            }
            let r = IdRange {
                start: start.trim().parse().ok()?,
                count: count.trim().parse().ok()?,
            };
            (r.count > 0).then_some(r)
        })
        .collect()
}

/// The map: `0 → own`, then the ranges one after another from id 1.
pub(crate) fn id_map(own: u32, ranges: &[IdRange]) -> Vec<MapLine> {
    let mut out = vec![MapLine {
        inside: 0,
        outside: own,
        count: 1,
    }];
    let mut next: u32 = 1;
    for r in ranges {
        out.push(MapLine {
            inside: next,
            outside: r.start,
            count: r.count,
        });
        next = match next.checked_add(r.count) {
            Some(n) => n,
            None => break,
        };
    }
    out
}

/// What the parent writes for one kind of id.
#[derive(Debug)]
enum Mapper {
    /// `newuidmap`/`newgidmap` with this map.
    Helper(&'static str, Vec<MapLine>),
    /// The single line `0 own 1`, written to `/proc/PID/{u,g}id_map`.
    Single(u32),
}

fn mapper(helper: &'static str, subid: &str, user: &str, own: u32, force_single: bool) -> Mapper {
    if force_single || !Path::new(helper).exists() {
        return Mapper::Single(own);
    }
    let ranges = std::fs::read_to_string(subid)
        .map(|t| parse_subid(&t, user, own))
        .unwrap_or_default();
    if ranges.is_empty() {
        Mapper::Single(own)
    } else {
        Mapper::Helper(helper, id_map(own, &ranges))
    }
}

fn write_map(pid: Pid, file: &str, m: &Mapper) -> Result<(), String> {
    match m {
        Mapper::Helper(helper, lines) => {
            let mut cmd = Command::new(helper);
            cmd.arg(pid.to_string());
            for l in lines {
                cmd.args([
                    l.inside.to_string(),
                    l.outside.to_string(),
                    l.count.to_string(),
                ]);
            }
            let out = cmd.output().map_err(|e| format!("running {helper}: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "{helper} failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Ok(())
        }
        Mapper::Single(own) => {
            let dir = format!("/proc/{pid}");
            if file == "gid_map" {
                // An unprivileged writer may map its own gid only with setgroups denied.
                std::fs::write(format!("{dir}/setgroups"), "deny")
                    .map_err(|e| format!("writing {dir}/setgroups: {e}"))?;
            }
            std::fs::write(format!("{dir}/{file}"), format!("0 {own} 1\n"))
                .map_err(|e| format!("writing {dir}/{file}: {e}"))
        }
    }
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

const FORWARDED: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// For a non-root user not yet in kiln's namespace: runs this same command (argv and
/// environment) in a new user and mount namespace as uid 0 and returns its exit code.
/// Returns `None` (doing nothing) as root or in the re-executed child.
///
/// Call it before any thread starts (it forks). In the child it also ties the child's life
/// to the parent's.
pub fn run_in_user_namespace() -> Option<i32> {
    if is_rootless_child() {
        // Die with the parent (set again here: the exec may have reset it), and do not start
        // when it is already gone.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
        let parent = std::env::var(CHILD_ENV).unwrap_or_default();
        if parent != nix::unistd::getppid().to_string() {
            eprintln!("ERROR: rootless: the parent kiln process is gone");
            return Some(1);
        }
        return None;
    }
    if nix::unistd::geteuid().is_root() {
        return None;
    }
    Some(match reexec() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ERROR: rootless: {e}");
            1
        }
    })
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

fn reexec() -> Result<i32, String> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let name = user_name(uid);
    let single = std::env::var(MAPPING_ENV).is_ok_and(|v| v == "single");
    let uid_mapper = mapper("/usr/bin/newuidmap", "/etc/subuid", &name, uid, single);
    let gid_mapper = mapper("/usr/bin/newgidmap", "/etc/subgid", &name, gid, single);
    tracing::debug!(?uid_mapper, ?gid_mapper, "entering a user namespace");

    // Everything the child needs is allocated before fork.
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| "NUL byte in an argument".to_string());
    let exe = cstr(b"/proc/self/exe")?;
    let argv = std::env::args_os()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut envp = std::env::vars_os()
        .filter(|(k, _)| k != CHILD_ENV)
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstr(&kv)
        })
        .collect::<Result<Vec<_>, _>>()?;
    envp.push(cstr(
        format!("{CHILD_ENV}={}", nix::unistd::getpid()).as_bytes(),
    )?);

    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask.add(Signal::SIGCHLD);
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))
        .map_err(|e| format!("sigprocmask: {e}"))?;

    // SAFETY: kiln calls this before any thread starts, so the child may run any code.
    let child = match unsafe { fork() } {
        Err(e) => return Err(format!("fork: {e}")),
        Ok(ForkResult::Child) => {
            drop(ready_r);
            drop(go_w);
            child_main(ready_w, go_r, &old, &exe, &argv, &envp)
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(ready_w);
    drop(go_r);
    let abort = |msg: String| {
        let _ = kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        msg
    };
    let mut byte = [0u8; 1];
    match std::fs::File::from(ready_r).read(&mut byte) {
        Ok(1) if byte[0] == b'1' => {}
        _ => {
            let _ = waitpid(child, None);
            return Err(
                "cannot create a user namespace (unprivileged user namespaces disabled?)"
                    .to_string(),
            );
        }
    }
    write_map(child, "uid_map", &uid_mapper).map_err(abort)?;
    write_map(child, "gid_map", &gid_mapper).map_err(abort)?;
    let mut go = std::fs::File::from(go_w);
    go.write_all(b"1")
        .map_err(|e| abort(format!("starting the namespace child: {e}")))?;
    drop(go);

    loop {
        match mask.wait() {
            Ok(Signal::SIGCHLD) => loop {
                match nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                    Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                    Ok(WaitStatus::StillAlive) => break,
                    Ok(_) => break,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(format!("waitpid: {e}")),
                }
            },
            Ok(sig) => {
                let _ = kill(child, sig);
            }
            Err(_) => continue,
        }
    }
}

/// In the forked child: unshare, report, wait for the maps, exec. Never returns.
fn child_main(
    ready: OwnedFd,
    go: OwnedFd,
    old_mask: &SigSet,
    exe: &CString,
    argv: &[CString],
    envp: &[CString],
) -> ! {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let mut ready = std::fs::File::from(ready);
    if unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).is_err() {
        let _ = ready.write_all(b"0");
        std::process::exit(1);
    }
    if ready.write_all(b"1").is_err() {
        std::process::exit(1);
    }
    drop(ready);
    let mut byte = [0u8; 1];
    match std::fs::File::from(go).read(&mut byte) {
        Ok(1) if byte[0] == b'1' => {}
        _ => std::process::exit(1),
    }
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(old_mask), None);
    let err = nix::unistd::execve(exe, argv, envp);
    eprintln!("ERROR: rootless: exec /proc/self/exe: {err:?}");
    std::process::exit(127)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_map_is_recognised() {
        assert!(is_identity_map("         0          0 4294967295\n"));
        assert!(!is_identity_map("         0       1000          1\n"));
        assert!(!is_identity_map("0 1000 1\n1 200000 65536\n"));
        assert!(!is_identity_map(""));
    }

    #[test]
    fn subid_lines_of_the_user_by_name_or_uid() {
        let text = "alice:100000:65536\nbob:165536:65536\n1001:300000:10\nbad line\nalice:x:1\n";
        assert_eq!(
            parse_subid(text, "alice", 1000),
            vec![IdRange {
                start: 100000,
                count: 65536
            }]
        );
        assert_eq!(
            parse_subid(text, "carol", 1001),
            vec![IdRange {
                start: 300000,
                count: 10
            }]
        );
        assert!(parse_subid(text, "dave", 1002).is_empty());
    }

    #[test]
    fn map_puts_own_id_at_zero_and_ranges_after_it() {
        let m = id_map(
            1000,
            &[
                IdRange {
                    start: 100000,
                    count: 65536,
                },
                IdRange {
                    start: 300000,
                    count: 10,
                },
            ],
        );
        assert_eq!(
            m,
            vec![
                MapLine {
                    inside: 0,
                    outside: 1000,
                    count: 1
                },
                MapLine {
                    inside: 1,
                    outside: 100000,
                    count: 65536
                },
                MapLine {
                    inside: 65537,
                    outside: 300000,
                    count: 10
                },
            ]
        );
    }
}
