//! Loopback servers for remote sources: a tiny HTTP file server and `git daemon` serving a
//! repository made here.
//!
//! `git daemon` forks a listener child; it runs in its own process group and the whole group
//! is killed on drop, and its output goes to `/dev/null`, so a leaked child can never hold the
//! test's stdout open (which once kept CI's `cargo test | tee` waiting forever).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{Error, Result};

/// Files an [`HttpServer`] serves: URL path → (body, optional `Last-Modified` value).
pub type HttpFiles = Arc<Mutex<HashMap<String, (Vec<u8>, Option<String>)>>>;

/// An HTTP/1.1 server on 127.0.0.1 serving [`HttpFiles`] (404 for anything else); its thread
/// lives until the process ends.
#[derive(Debug, Clone)]
pub struct HttpServer {
    /// What the server serves; may be changed while it runs.
    pub files: HttpFiles,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl HttpServer {
    /// Starts a server for `files` on a free loopback port.
    pub fn start(files: HttpFiles) -> Result<HttpServer> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("bind", "127.0.0.1:0", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("local_addr", "127.0.0.1:0", e))?
            .port();
        let served = Arc::clone(&files);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                serve(conn, &served);
            }
        });
        Ok(HttpServer { files, port })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn serve(mut conn: TcpStream, files: &HttpFiles) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&req);
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let found = files.lock().ok().and_then(|f| f.get(&path).cloned());
    let resp = match found {
        Some((body, last_modified)) => {
            let mut h = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", body.len());
            if let Some(lm) = last_modified {
                h.push_str(&format!("Last-Modified: {lm}\r\n"));
            }
            h.push_str("Connection: close\r\n\r\n");
            let mut v = h.into_bytes();
            v.extend_from_slice(&body);
            v
        }
        None => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
    };
    let _ = conn.write_all(&resp);
}

/// `git daemon --export-all` on loopback; its whole process group is killed on drop.
#[derive(Debug)]
pub struct GitDaemon {
    child: Child,
    /// `git://127.0.0.1:PORT`.
    pub url: String,
}

impl GitDaemon {
    /// Serves the repositories under `base` (as `git://127.0.0.1:PORT/<name>`).
    pub fn start(base: &Path) -> Result<GitDaemon> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::io("bind", "127.0.0.1:0", e))?
            .port();
        let child = Command::new("git")
            .arg("daemon")
            .arg("--export-all")
            .arg("--reuseaddr")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::io("spawn git daemon", base, e))?;
        let daemon = GitDaemon {
            child,
            url: format!("git://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(daemon);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(Error::Command {
            command: format!("git daemon --port={port}"),
            status: "not listening after 5 s".into(),
            stderr: String::new(),
        })
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .env("GIT_AUTHOR_DATE", "1600000000 +0000")
        .env("GIT_COMMITTER_DATE", "1600000000 +0000")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("spawn git", dir, e))?;
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("git {args:?}"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Makes the bare repository `<base>/repo.git`: commit 1 (a.txt "one", tag v1), commit 2
/// (a.txt "two", sub/b.txt "b", sub/run.sh 0755) on `main`. Returns (commit 1, commit 2).
pub fn make_git_repo(base: &Path) -> Result<(String, String)> {
    let work = base.join("work");
    let write = |rel: &str, body: &str| {
        std::fs::write(work.join(rel), body).map_err(|e| Error::io("write", work.join(rel), e))
    };
    std::fs::create_dir_all(work.join("sub")).map_err(|e| Error::io("mkdir", &work, e))?;
    git(&work, &["init", "-q", "-b", "main"])?;
    write("a.txt", "one")?;
    git(&work, &["add", "a.txt"])?;
    git(&work, &["commit", "-q", "-m", "one"])?;
    git(&work, &["tag", "v1"])?;
    let c1 = git(&work, &["rev-parse", "HEAD"])?;
    write("a.txt", "two")?;
    write("sub/b.txt", "b")?;
    write("sub/run.sh", "#!/bin/sh\n")?;
    std::fs::set_permissions(work.join("sub/run.sh"), PermissionsExt::from_mode(0o755))
        .map_err(|e| Error::io("chmod", work.join("sub/run.sh"), e))?;
    git(&work, &["add", "."])?;
    git(&work, &["commit", "-q", "-m", "two"])?;
    let c2 = git(&work, &["rev-parse", "HEAD"])?;
    git(base, &["clone", "-q", "--bare", "work", "repo.git"])?;
    Ok((c1, c2))
}
