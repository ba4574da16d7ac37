//! Path resolution confined to a root directory (symlinks are followed as if `root` were `/`).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Splits `path` into plain components (`.` dropped, `..` kept), ignoring a leading `/`.
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// Resolves `path` inside `root` and returns it relative to `root` (no leading `/`, no `..`).
///
/// Every symlink met is read and its target resolved against `root` (absolute targets
/// restart at `root`, `..` stops at `root`), so the result never names a host path outside
/// `root`. The final component is followed only when `follow_final` is set. Missing
/// components are kept as written.
pub(crate) fn resolve(root: &Path, path: &Path, follow_final: bool) -> io::Result<PathBuf> {
    let mut stack: Vec<OsString> = Vec::new();
    let mut pending = components(path);
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            stack.pop();
            continue;
        }
        stack.push(c);
        if pending.is_empty() && !follow_final {
            break;
        }
        let host: PathBuf = stack.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        links += 1;
        if links > 255 {
            return Err(io::Error::other(format!(
                "{}: too many levels of symbolic links",
                path.display()
            )));
        }
        let target = std::fs::read_link(&host)?;
        stack.pop();
        if target.is_absolute() {
            stack.clear();
        }
        let mut next = components(&target);
        next.extend(pending.drain(..));
        pending = next;
    }
    Ok(stack.iter().collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_stay_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/", root.join("esc")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("a/up")).unwrap();
        std::os::unix::fs::symlink("b", root.join("a/rel")).unwrap();
        let r = |p: &str, f| resolve(root, Path::new(p), f).unwrap();
        assert_eq!(r("/esc/tmp/x", true), PathBuf::from("tmp/x"));
        assert_eq!(r("/a/up/etc", true), PathBuf::from("etc"));
        assert_eq!(r("/a/rel/c", true), PathBuf::from("a/b/c"));
        assert_eq!(r("/a/rel", false), PathBuf::from("a/rel"));
        assert_eq!(r("/../../x", true), PathBuf::from("x"));
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(resolve(root, Path::new("/loop/x"), true).is_err());
    }
}
