//! Making sure the external tools the tests drive are installed, and running them.

use std::fs::OpenOptions;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::{Error, Result};

/// Debian packages that provide every tool the tests use.
const PACKAGES: &[&str] = &[
    "docker-registry",
    "apache2-utils",
    "skopeo",
    "umoci",
    "busybox-static",
    "docker.io",
    "openssl",
    "uidmap",
];

/// Tools (absolute paths, as Debian installs them) that must exist.
const TOOLS: &[&str] = &[
    "/usr/bin/docker-registry",
    "/usr/bin/skopeo",
    "/usr/bin/umoci",
    "/usr/bin/htpasswd",
    "/usr/sbin/dockerd",
    "/usr/bin/docker",
    "/usr/bin/openssl",
    "/usr/bin/newuidmap",
    "/usr/bin/newgidmap",
];

/// Make sure docker-registry, skopeo, umoci, a static busybox, htpasswd, dockerd, openssl and
/// newuidmap/newgidmap (uidmap) are present; installs the Debian packages once if any is missing.
///
/// Safe to call from many threads and many test processes at once: a process-wide
/// [`OnceLock`] plus an exclusive file lock in `/tmp` serialise the `apt-get` run.
pub fn ensure_tools() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), (String, String)>> = OnceLock::new();
    DONE.get_or_init(install_missing)
        .clone()
        .map_err(|(missing, detail)| Error::Tools { missing, detail })
}

fn missing_tools() -> Vec<&'static str> {
    let mut missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|t| !Path::new(t).exists())
        .collect();
    if !busybox_is_static() {
        missing.push("/bin/busybox (static)");
    }
    missing
}

/// busybox-static's /bin/busybox has no program interpreter; the dynamic `busybox` package's does.
fn busybox_is_static() -> bool {
    let mut head = vec![0u8; 4096];
    let Ok(mut f) = std::fs::File::open("/bin/busybox") else {
        return false;
    };
    let Ok(n) = f.read(&mut head) else {
        return false;
    };
    !head[..n].windows(7).any(|w| w == b"ld-linu")
}

fn install_missing() -> std::result::Result<(), (String, String)> {
    if missing_tools().is_empty() {
        return Ok(());
    }
    let lock_path = "/tmp/kiln-testsupport-apt.lock";
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path)
        .map_err(|e| ("lock".to_string(), format!("open {lock_path}: {e}")))?;
    lock.lock()
        .map_err(|e| ("lock".to_string(), format!("flock {lock_path}: {e}")))?;
    // Another process may have installed everything while we waited for the lock.
    let missing = missing_tools();
    if missing.is_empty() {
        return Ok(());
    }
    let missing = missing.join(", ");
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null());
        run(&mut cmd)
            .map(|_| ())
            .map_err(|e| (missing.clone(), e.to_string()))
    };
    apt(&["update"])?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend_from_slice(PACKAGES);
    apt(&args)?;
    let still = missing_tools();
    if !still.is_empty() {
        return Err((
            still.join(", "),
            "still missing after apt-get install".to_string(),
        ));
    }
    Ok(())
}

/// Run `cmd` to completion, capturing output; an unsuccessful exit is an [`Error::Command`]
/// carrying its stderr.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let command = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            command: command.clone(),
            status: format!("spawn: {e}"),
            stderr: String::new(),
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}
