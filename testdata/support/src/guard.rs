//! A guard shell that owns a daemon: it starts the daemon in the background, waits for its own
//! stdin to close, then stops the daemon by pid (TERM, then KILL after 10 s) and runs a cleanup.
//!
//! Our end of the pipe closes when the [`Guard`] is dropped *or* when the test process dies in
//! any way, so daemons held in `static`s (never dropped) are still stopped and their directories
//! removed. The guard runs in its own process group so a terminal's Ctrl-C reaches only the test.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::{Error, Result};

/// A running daemon under a guard shell.
#[derive(Debug)]
pub(crate) struct Guard {
    shell: Child,
    stdin: Option<ChildStdin>,
    pid_file: PathBuf,
}

/// Quote `s` for `/bin/sh`.
pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Guard {
    /// Start `argv` with stdout and stderr appended to `log`; `cleanup` is a shell snippet run
    /// after the daemon stopped (e.g. unmounts and `rm -rf` of its state directory).
    pub(crate) fn spawn(
        argv: &[String],
        log: &Path,
        state_dir: &Path,
        cleanup: &str,
    ) -> Result<Guard> {
        let pid_file = state_dir.join("guard.pid");
        let cmdline: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
        let script = format!(
            "{cmd} >>{log} 2>&1 </dev/null & p=$!\n\
             echo $p >{pidf}\n\
             read _ignored\n\
             kill $p 2>/dev/null\n\
             i=0; while kill -0 $p 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done\n\
             kill -9 $p 2>/dev/null; wait $p 2>/dev/null\n\
             {cleanup}\n",
            cmd = cmdline.join(" "),
            log = sh_quote(&log.to_string_lossy()),
            pidf = sh_quote(&pid_file.to_string_lossy()),
        );
        let log_file = File::create(state_dir.join("guard.log"))
            .map_err(|e| Error::io("create", state_dir.join("guard.log"), e))?;
        let mut shell = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Command {
                command: format!("/bin/sh -c {script:?}"),
                status: format!("spawn: {e}"),
                stderr: String::new(),
            })?;
        let stdin = shell.stdin.take();
        Ok(Guard {
            shell,
            stdin,
            pid_file,
        })
    }

    /// The daemon's pid, once the guard wrote it.
    pub(crate) fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the daemon process still exists.
    pub(crate) fn daemon_alive(&self) -> bool {
        self.daemon_pid()
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid))
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Closing the pipe tells the guard to stop the daemon and clean up; wait for it so the
        // next test starts from a clean slate.
        drop(self.stdin.take());
        let _ = self.shell.wait();
    }
}
