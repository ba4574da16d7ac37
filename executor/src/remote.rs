//! ADD's remote sources: an HTTP(S) download or a git checkout, fetched into a directory
//! under `<root>/downloads/` and handed to COPY as a context-like [`FileSource`].
//!
//! HTTP, as BuildKit's `llb.HTTP`: one file named after the URL path's basename, mode 0600,
//! mtime from `Last-Modified` (the epoch without one), `--checksum` checked against the
//! content's sha256. Git, with the system's `git`: a shallow fetch of the ref (a full fetch
//! when the server refuses it, for commits), `.git` removed unless `--keep-git-dir`, the
//! `--checksum` compared with the resolved commit; files get 0644 or 0755 (dirs 0755) and,
//! for reproducible layers, every mtime is the commit's time (BuildKit leaves checkout-time
//! mtimes).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use filetime::FileTime;
use kiln_ir::{ContextEntry, ContextFiles, Fetched, GitSource, HttpSource};
use kiln_oci::Digest;

use crate::error::ExecutorError;

/// Mode of a downloaded file (BuildKit's default for `llb.HTTP`).
const HTTP_MODE: u32 = 0o600;

/// A temporary download directory, removed on drop unless kept.
struct TempDir {
    path: PathBuf,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn fail(source: &str, reason: impl Into<String>) -> ExecutorError {
    ExecutorError::Fetch {
        remote: source.to_string(),
        reason: reason.into(),
    }
}

/// Moves a finished temp dir to `<downloads>/<name>` (reusing an existing one) and lists
/// `root` (the dir or a subdir of it).
fn publish(
    downloads: &Path,
    tmp: TempDir,
    name: &str,
    subdir: &str,
    digest: String,
) -> Result<Fetched, ExecutorError> {
    let dest = downloads.join(name);
    if !dest.is_dir() {
        std::fs::rename(&tmp.path, &dest).map_err(ExecutorError::io(&dest))?;
    }
    let root = if subdir.is_empty() {
        dest
    } else {
        dest.join(subdir)
    };
    let mut entries = Vec::new();
    list(&root, Path::new(""), &mut entries)?;
    entries.sort_by(|a: &ContextEntry, b| a.path.cmp(&b.path));
    Ok(Fetched {
        files: Arc::new(ContextFiles { root, entries }),
        digest,
    })
}

fn list(root: &Path, rel: &Path, out: &mut Vec<ContextEntry>) -> Result<(), ExecutorError> {
    let dir = root.join(rel);
    for e in std::fs::read_dir(&dir).map_err(ExecutorError::io(&dir))? {
        let e = e.map_err(ExecutorError::io(&dir))?;
        let path = rel.join(e.file_name());
        let is_dir = e.file_type().map_err(ExecutorError::io(e.path()))?.is_dir();
        out.push(ContextEntry {
            path: path.to_string_lossy().into_owned(),
            is_dir,
        });
        if is_dir {
            list(root, &path, out)?;
        }
    }
    Ok(())
}

fn temp_dir(downloads: &Path, seq: u64) -> Result<TempDir, ExecutorError> {
    let path = downloads.join(format!("tmp-{}-{seq}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).map_err(ExecutorError::io(&path))?;
    Ok(TempDir { path })
}

/// Downloads `src` into `<downloads>/<identity>/<filename>`.
pub(crate) fn fetch_http(
    downloads: &Path,
    seq: u64,
    runtime: &tokio::runtime::Handle,
    src: &HttpSource,
) -> Result<Fetched, ExecutorError> {
    let url = src.url.as_str();
    if src.filename.is_empty()
        || src.filename.contains('/')
        || src.filename == "."
        || src.filename == ".."
    {
        return Err(fail(url, format!("invalid file name {:?}", src.filename)));
    }
    // Streamed to the file while hashing: a large download never sits in memory.
    let tmp = temp_dir(downloads, seq)?;
    let file = tmp.path.join(&src.filename);
    let (digest, last_modified) = runtime.block_on(async {
        let mut resp = reqwest::get(url)
            .await
            .map_err(|e| fail(url, e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(
                url,
                format!("invalid response status {}", resp.status().as_u16()),
            ));
        }
        let lm = resp
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        let mut out = std::fs::File::create(&file).map_err(ExecutorError::io(&file))?;
        let mut hash = kiln_oci::Sha256Writer::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(url, e.to_string()))? {
            hash.update(&chunk);
            std::io::Write::write_all(&mut out, &chunk).map_err(ExecutorError::io(&file))?;
        }
        Ok((hash.finish().0.to_string(), lm))
    })?;
    if let Some(sum) = &src.checksum {
        // sha384/sha512 checksums are checked against the file with their own algorithm.
        let actual = match sum.split_once(':').map(|(alg, _)| alg) {
            Some(alg @ ("sha384" | "sha512")) => {
                file_digest(&file, alg).map_err(|e| fail(url, format!("hashing: {e}")))?
            }
            _ => digest.clone(),
        };
        if *sum != actual {
            return Err(fail(url, format!("digest mismatch {sum}: {actual}")));
        }
    }
    let mtime = last_modified.unwrap_or(0);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(HTTP_MODE))
        .map_err(ExecutorError::io(&file))?;
    let t = FileTime::from_unix_time(mtime, 0);
    filetime::set_file_times(&file, t, t).map_err(ExecutorError::io(&file))?;
    let identity = format!("http\n{url}\n{digest}\n{}\n{mtime}", src.filename);
    let name = format!("http-{}", Digest::of(identity.as_bytes()).hex());
    publish(downloads, tmp, &name, "", identity)
}

/// `alg:hex` of the file for `sha384` or `sha512`.
fn file_digest(path: &Path, alg: &str) -> std::io::Result<String> {
    use sha2::Digest as _;
    /// Feeds the file to `update` in chunks.
    fn feed(path: &Path, mut update: impl FnMut(&[u8])) -> std::io::Result<()> {
        let mut f = std::fs::File::open(path)?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match std::io::Read::read(&mut f, &mut buf)? {
                0 => return Ok(()),
                n => update(&buf[..n]),
            }
        }
    }
    let hex = if alg == "sha384" {
        let mut h = sha2::Sha384::new();
        feed(path, |b| h.update(b))?;
        hex::encode(h.finalize())
    } else {
        let mut h = sha2::Sha512::new();
        feed(path, |b| h.update(b))?;
        hex::encode(h.finalize())
    };
    Ok(format!("{alg}:{hex}"))
}

/// Runs `git args…` in `dir`; its stderr becomes the error.
fn git(dir: &Path, remote: &str, args: &[&str]) -> Result<String, ExecutorError> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .map_err(|e| fail(remote, format!("running git: {e}")))?;
    if !out.status.success() {
        return Err(fail(
            remote,
            format!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Fetches a git build context (`kiln build git://…`) into `<root>/downloads/` and returns
/// the checked-out directory (the subdir when the URL names one).
pub fn fetch_git_context(root: &Path, src: &GitSource) -> Result<PathBuf, ExecutorError> {
    /// Above any sequence number an executor of this process hands out.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 40);
    let downloads = root.join("downloads");
    std::fs::create_dir_all(&downloads).map_err(ExecutorError::io(&downloads))?;
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(fetch_git(&downloads, seq, src)?.files.root.clone())
}

/// Clones `src` at its ref into `<downloads>/<identity>/`.
pub(crate) fn fetch_git(
    downloads: &Path,
    seq: u64,
    src: &GitSource,
) -> Result<Fetched, ExecutorError> {
    let remote = src.remote.as_str();
    let tmp = temp_dir(downloads, seq)?;
    let dir = &tmp.path;
    git(dir, remote, &["init", "-q"])?;
    git(dir, remote, &["remote", "add", "origin", remote])?;
    let want = src.reference.as_deref().unwrap_or("HEAD");
    let shallow = git(
        dir,
        remote,
        &["fetch", "-q", "--depth", "1", "--no-tags", "origin", want],
    );
    if shallow.is_ok() {
        git(dir, remote, &["checkout", "-q", "FETCH_HEAD"])?;
    } else {
        // A commit the server does not let us want directly: fetch everything, then check it out.
        git(
            dir,
            remote,
            &[
                "fetch",
                "-q",
                "--tags",
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
            ],
        )?;
        git(dir, remote, &["checkout", "-q", want]).map_err(|_| match shallow {
            Err(e) => e,
            Ok(_) => fail(remote, format!("cannot check out {want}")),
        })?;
    }
    if dir.join(".gitmodules").exists() {
        git(
            dir,
            remote,
            &[
                "submodule",
                "update",
                "-q",
                "--init",
                "--recursive",
                "--depth",
                "1",
            ],
        )?;
    }
    let commit = git(dir, remote, &["rev-parse", "HEAD"])?;
    if let Some(sum) = &src.checksum {
        if sum.is_empty() || !commit.starts_with(sum.as_str()) {
            return Err(fail(
                remote,
                format!("expected checksum to match {sum}, got {commit}"),
            ));
        }
    }
    let time: i64 = git(dir, remote, &["log", "-1", "--format=%ct"])?
        .parse()
        .map_err(|e| fail(remote, format!("commit time: {e}")))?;
    if !src.keep_git_dir {
        let g = dir.join(".git");
        std::fs::remove_dir_all(&g).map_err(ExecutorError::io(&g))?;
    }
    normalize(dir, FileTime::from_unix_time(time, 0))?;
    if !src.subdir.is_empty() {
        let sub = dir.join(&src.subdir);
        let meta = std::fs::symlink_metadata(&sub);
        if !meta.is_ok_and(|m| m.is_dir()) {
            return Err(fail(
                remote,
                format!("subdir {} is not a directory of {commit}", src.subdir),
            ));
        }
    }
    let identity = format!(
        "git\n{remote}\n{commit}\n{}\n{}",
        src.subdir, src.keep_git_dir
    );
    let name = format!("git-{}", Digest::of(identity.as_bytes()).hex());
    publish(downloads, tmp, &name, &src.subdir, identity)
}

/// Sets git's modes (0644 or 0755 files, 0755 dirs, whatever the umask) and one mtime on
/// every entry under `dir` (children first, so directory times stick).
fn normalize(dir: &Path, time: FileTime) -> Result<(), ExecutorError> {
    for e in std::fs::read_dir(dir).map_err(ExecutorError::io(dir))? {
        let e = e.map_err(ExecutorError::io(dir))?;
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path).map_err(ExecutorError::io(&path))?;
        if meta.is_dir() {
            normalize(&path, time)?;
        }
        if !meta.file_type().is_symlink() {
            let mode = if meta.is_dir() || meta.permissions().mode() & 0o100 != 0 {
                0o755
            } else {
                0o644
            };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(ExecutorError::io(&path))?;
        }
        filetime::set_symlink_file_times(&path, time, time).map_err(ExecutorError::io(&path))?;
    }
    filetime::set_symlink_file_times(dir, time, time).map_err(ExecutorError::io(dir))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into Unix seconds.
pub(crate) fn parse_http_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == month)? as i64 + 1;
    let d: i64 = day.parse().ok()?;
    let y: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [hh, mm, ss] = hms.as_slice() else {
        return None;
    };
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::parse_http_date;

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Wed, 29 Feb 2024 12:00:00 GMT"),
            Some(1709208000)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}

#[cfg(test)]
#[path = "remote_tests.rs"]
mod remote_tests;
