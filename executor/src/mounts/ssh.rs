//! `RUN --mount=type=ssh`: a socket owned and moded as the mount asks that forwards each
//! connection to the host's agent socket.
//!
//! Binding the host socket itself would show the host's owner and mode inside the sandbox
//! (and a `chmod` there would change the host's); BuildKit serves its own socket with the
//! mount's `uid`, `gid` and `mode` (default 0:0 0600), and so does this proxy.
#![allow(unsafe_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::ExecutorError;

/// A listening proxy socket; stops accepting when dropped (open connections run until
/// either side closes them).
pub(crate) struct SshProxy {
    stop: Arc<AtomicBool>,
    fd: i32,
    thread: Option<JoinHandle<()>>,
    _listener: Arc<UnixListener>,
}

impl SshProxy {
    /// Listens at `path` (owned `uid`:`gid`, mode `mode`), forwarding to `agent`.
    pub(crate) fn start(
        path: &Path,
        agent: &Path,
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<SshProxy, ExecutorError> {
        let listener = Arc::new(UnixListener::bind(path).map_err(ExecutorError::io(path))?);
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(ExecutorError::io(path))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(ExecutorError::io(path))?;
        let stop = Arc::new(AtomicBool::new(false));
        let fd = listener.as_raw_fd();
        let thread = {
            let (stop, listener, agent) = (stop.clone(), listener.clone(), agent.to_path_buf());
            std::thread::spawn(move || accept_loop(&listener, &agent, &stop))
        };
        Ok(SshProxy {
            stop,
            fd,
            thread: Some(thread),
            _listener: listener,
        })
    }
}

impl Drop for SshProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // SAFETY: `fd` is the listener's, kept open by `_listener` until after the join;
        // shutting it down wakes the blocked accept(2) with an error.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &UnixListener, agent: &Path, stop: &AtomicBool) {
    loop {
        let conn = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match conn {
            Ok((client, _)) => {
                let agent = agent.to_path_buf();
                std::thread::spawn(move || forward(client, &agent));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

/// Copies both ways between `client` and a new connection to `agent` until one side closes.
fn forward(client: UnixStream, agent: &PathBuf) {
    let Ok(upstream) = UnixStream::connect(agent) else {
        return;
    };
    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let one = std::thread::spawn(move || pump(client2, upstream2));
    pump(upstream, client);
    let _ = one.join();
}

fn pump(mut from: UnixStream, mut to: UnixStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn forwards_both_ways_with_the_requested_owner_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let agent_path = dir.path().join("agent.sock");
        let agent = UnixListener::bind(&agent_path).unwrap();
        // An "agent" that answers each request with its reverse.
        std::thread::spawn(move || {
            for mut c in agent.incoming().flatten() {
                let mut req = [0u8; 5];
                if c.read_exact(&mut req).is_ok() {
                    req.reverse();
                    let _ = c.write_all(&req);
                }
            }
        });
        let path = dir.path().join("proxy.sock");
        let proxy = SshProxy::start(&path, &agent_path, 1000, 1001, 0o640).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (1000, 1001, 0o640)
        );
        for _ in 0..3 {
            let mut c = UnixStream::connect(&path).unwrap();
            c.write_all(b"hello").unwrap();
            let mut resp = Vec::new();
            c.read_to_end(&mut resp).unwrap();
            assert_eq!(resp, b"olleh");
        }
        drop(proxy);
        assert!(UnixStream::connect(&path).is_err(), "stopped accepting");
    }
}
