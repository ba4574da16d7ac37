//! A private `dockerd` (with its own containerd) for `docker load` / `docker run` checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::guard::{sh_quote, Guard};
use crate::{ensure_tools, run, Error, Result};

/// A running dockerd listening on a unix socket in a short temp dir (`/tmp/kd-XXXXXX`), stopped
/// by pid, unmounted and removed on drop.
#[derive(Debug)]
pub struct Dockerd {
    dir: PathBuf,
    guard: Guard,
}

impl Dockerd {
    /// Start dockerd (overlay2, no iptables, no bridge) and wait for `docker version` to work.
    pub fn start() -> Result<Dockerd> {
        Self::start_with(&[])
    }

    /// Like [`Dockerd::start`], with extra daemon flags (e.g. `--insecure-registry=ADDR`).
    pub fn start_with(extra: &[&str]) -> Result<Dockerd> {
        ensure_tools()?;
        // unix socket paths must stay under 108 bytes: keep the directory short.
        let dir = tempfile::Builder::new()
            .prefix("kd-")
            .tempdir_in("/tmp")
            .map_err(|e| Error::io("create tempdir", "/tmp", e))?
            .keep();
        let d = dir.display();
        let mut argv: Vec<String> = vec![
            "/usr/sbin/dockerd".into(),
            format!("--data-root={d}/data"),
            format!("--exec-root={d}/exec"),
            format!("--pidfile={d}/pid"),
            format!("--host=unix://{d}/sock"),
            "--storage-driver=overlay2".into(),
            "--iptables=false".into(),
            "--ip6tables=false".into(),
            "--bridge=none".into(),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        let q = sh_quote(&dir.to_string_lossy());
        // Unmount whatever dockerd left below its directory (deepest first), then remove it.
        let cleanup = format!(
            "for m in $(awk -v d={q} 'index($5, d \"/\") == 1 {{ print $5 }}' /proc/self/mountinfo | sort -r); do \
               umount -l \"$m\" 2>/dev/null; done\nrm -rf {q}"
        );
        let guard = Guard::spawn(&argv, &dir.join("dockerd.log"), &dir, &cleanup)?;
        let dockerd = Dockerd { dir, guard };
        dockerd.wait_ready()?;
        Ok(dockerd)
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.socket().exists() && self.docker(&["version"]).is_ok() {
                return Ok(());
            }
            if self.guard.daemon_pid().is_some() && !self.guard.daemon_alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(Error::Timeout {
            what: "dockerd".into(),
            secs: 60,
            log: self.log(),
        })
    }

    /// The daemon's unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// The daemon's state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// dockerd's log (stdout + stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// Run Debian's `/usr/bin/docker ARGS` against this daemon; a non-zero exit is an error.
    pub fn docker(&self, args: &[&str]) -> Result<Output> {
        run(Command::new("/usr/bin/docker")
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env("DOCKER_CONFIG", self.dir.join("client"))
            .args(args))
    }
}
