//! Starting the sandbox init, forwarding its output (secret values masked), cancelling it.
#![allow(unsafe_code)]

mod mask;

use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_ir::{ExecIo, ProgressEvent, WorkerError};

use crate::executor::InitCommand;
use crate::init::ERROR_FD;
use crate::spec::InitFailure;

/// Lines of output kept for [`WorkerError::ExitCode`].
const TAIL_LINES: usize = 10;

/// How often a waiting run looks at the cancel flags.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// Wakes as soon as a child exits (a pidfd), or after a timeout; a RUN's end is seen at once
/// instead of at the next tick of a sleep loop (which cost up to 10 ms per RUN).
struct ExitWatch(Option<OwnedFd>);

impl ExitWatch {
    fn new(pid: i32) -> ExitWatch {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is
        // passed. The child is not reaped before this (only try_wait, after), so the pid is ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0);
        // SAFETY: a non-negative return is a new fd that nothing else owns.
        ExitWatch(fd.map(|fd| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }))
    }

    /// Blocks until the child exits or `timeout` passes (just sleeps without a pidfd).
    fn wait(&self, timeout: Duration) {
        let Some(fd) = &self.0 else {
            std::thread::sleep(Duration::from_millis(10));
            return;
        };
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe {
            libc::poll(&mut pfd, 1, ms);
        }
    }
}

static CANCEL_ALL: AtomicBool = AtomicBool::new(false);
static RUNNING: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

/// Kills every running sandbox init at once (SIGKILL) and makes later runs fail as
/// cancelled. Meant for the binary's SIGINT handler.
pub fn cancel_all() {
    CANCEL_ALL.store(true, Ordering::SeqCst);
    if let Ok(guard) = RUNNING.lock() {
        for pid in guard.iter().flatten() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn register(pid: i32, add: bool) {
    if let Ok(mut guard) = RUNNING.lock() {
        let set = guard.get_or_insert_with(HashSet::new);
        if add {
            set.insert(pid);
        } else {
            set.remove(&pid);
        }
    }
}

/// How an init run ended.
pub(crate) struct Outcome {
    /// Exit code (128+n for a signal).
    pub(crate) code: i32,
    /// What the init reported on its error pipe.
    pub(crate) failure: Option<InitFailure>,
    /// The last lines of output.
    pub(crate) tail: Vec<String>,
}

#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    partial: [Vec<u8>; 2],
}

impl Tail {
    fn push(&mut self, stream: usize, data: &[u8]) {
        for &b in data {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&self.partial[stream]).into_owned();
                self.partial[stream].clear();
                self.lines.push_back(line);
                if self.lines.len() > TAIL_LINES {
                    self.lines.pop_front();
                }
            } else {
                self.partial[stream].push(b);
            }
        }
    }

    fn finish(mut self) -> Vec<String> {
        for p in &self.partial {
            if !p.is_empty() {
                self.lines
                    .push_back(String::from_utf8_lossy(p).into_owned());
            }
        }
        let skip = self.lines.len().saturating_sub(TAIL_LINES);
        self.lines.into_iter().skip(skip).collect()
    }
}

/// Runs the init on `spec_path`, forwarding stdout/stderr as log events, until it exits or
/// `io.cancel` (or [`cancel_all`]) is set. `secrets` are masked in the forwarded output and
/// in the kept tail.
pub(crate) fn run_init(
    init: &InitCommand,
    spec_path: &Path,
    io: &ExecIo<'_>,
    secrets: &[Vec<u8>],
) -> Result<Outcome, WorkerError> {
    let other = |m: String| WorkerError::Other(format!("sandbox: {m}"));
    if CANCEL_ALL.load(Ordering::SeqCst) || io.cancel.load(Ordering::SeqCst) {
        return Err(WorkerError::Cancelled);
    }
    let (err_read, err_write): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| other(format!("pipe: {e}")))?;
    let write_raw = err_write.as_raw_fd();
    let mut cmd = Command::new(&init.program);
    cmd.args(&init.args)
        .arg(spec_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Terminal signals go to kiln, which cancels; the init never sees a Ctrl-C directly.
        .process_group(0);
    // SAFETY: between fork and exec only async-signal-safe calls (prctl, dup2) run. The
    // death signal is tied to this thread, which stays in this function until the child
    // has exited.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::dup2(write_raw, ERROR_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| other(format!("starting {}: {e}", init.program.display())))?;
    drop(err_write);
    let pid = child.id() as i32;
    register(pid, true);

    let tail = Arc::new(Mutex::new(Tail::default()));
    let streams: [(u8, Option<Box<dyn Read + Send>>); 2] = [
        (
            1,
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
        (
            2,
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
    ];
    let result = std::thread::scope(|scope| {
        for (stream, reader) in streams {
            let Some(mut reader) = reader else { continue };
            let tail = Arc::clone(&tail);
            let progress = io.progress;
            let node = io.node;
            scope.spawn(move || {
                let mut masker = mask::Masker::new(secrets);
                let forward = |data: Vec<u8>| {
                    if data.is_empty() {
                        return;
                    }
                    if let Ok(mut t) = tail.lock() {
                        t.push(usize::from(stream - 1), &data);
                    }
                    progress.event(ProgressEvent::Log { node, stream, data });
                };
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => forward(masker.push(&buf[..n])),
                    }
                }
                forward(masker.finish());
            });
        }
        let exited = ExitWatch::new(pid);
        let status = loop {
            if CANCEL_ALL.load(Ordering::SeqCst) || io.cancel.load(Ordering::SeqCst) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(WorkerError::Cancelled);
            }
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => exited.wait(CANCEL_POLL),
                Err(e) => return Err(other(format!("waiting for the init: {e}"))),
            }
        };
        Ok(status)
    });
    register(pid, false);
    let status = result?;
    let mut report = Vec::new();
    let _ = std::fs::File::from(err_read).read_to_end(&mut report);
    let failure =
        if report.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(&report).unwrap_or_else(|_| {
                InitFailure::Other(String::from_utf8_lossy(&report).into_owned())
            }))
        };
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let tail = match Arc::try_unwrap(tail) {
        Ok(m) => m.into_inner().map(Tail::finish).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    Ok(Outcome {
        code,
        failure,
        tail,
    })
}
