//! What a COPY's flags change in its file op's key: `--link` drops the parent, `--exclude`
//! drops excluded context paths from the selected digests, `--parents` selects from the
//! `/./` pivot.

use kiln_ir::{CopyAction, FileAction, FileOp};

use crate::context::{ContextError, ContextIndex, DockerIgnore, StatCache};
use crate::key;

/// True when the op is a `COPY --link`: it is applied onto an empty filesystem, so its key
/// and its layer do not depend on the parent (which it is only stacked on).
pub(crate) fn is_linked(op: &FileOp) -> bool {
    let mut copies = op.actions.iter().filter_map(|a| match a {
        FileAction::Copy(c) => Some(c),
        _ => None,
    });
    let mut any = false;
    let all = copies.all(|c| {
        any = true;
        c.link
    });
    any && all
}

/// The key entry of a wildcard source without `--exclude`: the digest of just the paths the
/// pattern selects (a matched directory with everything under it), so changing a file the
/// pattern does not match keeps the cache (BuildKit's testCopyWildcardCache). `None` when
/// the coarse literal-prefix key must be used instead: a `**` pattern, or symlinks in the
/// selection's reach (COPY follows them to paths the pattern does not name).
pub(crate) fn wildcard_digest(
    index: &ContextIndex,
    stat: &StatCache,
    src: &str,
) -> Result<Option<(String, String)>, ContextError> {
    let pattern = crate::context::relative_clean(src);
    let prefix = key::literal_prefix(src);
    if pattern.contains("**") || index.has_symlinks_under(&prefix) {
        return Ok(None);
    }
    // A `.dockerignore`-style rule matches a path or one of its parents: exactly "selected
    // by the pattern, or inside a selected directory".
    let Ok(rule) = DockerIgnore::from_patterns(&[pattern.as_str()]) else {
        return Ok(None);
    };
    let digest = index.digest_filtered(&prefix, Some(stat), &|p| !rule.is_excluded(p))?;
    Ok(Some((format!("{prefix}\u{0}{pattern}"), digest)))
}

/// The key entry of one context source of `copy`: a name for the selection and the digest
/// of what it selects.
pub(crate) fn source_digest(
    index: &ContextIndex,
    stat: &StatCache,
    copy: &CopyAction,
    src: &str,
) -> Result<(String, String), ContextError> {
    let prefix = key::literal_prefix(src);
    // Exceptions (`!`) can re-include anything: hash the whole selection then.
    let filter = match DockerIgnore::from_patterns(&copy.exclude) {
        Ok(f) if !f.is_empty() && !f.has_exceptions() => f,
        _ => return Ok((prefix.clone(), index.digest(&prefix, Some(stat))?)),
    };
    // The executor matches excludes relative to the directory being copied: the `/./` pivot
    // under --parents, else the literal prefix or (for wildcards) any directory below it. A
    // path leaves the key only when it is excluded relative to every such base.
    let pivot = copy
        .parents
        .then(|| src.split_once("/./").map(|(b, _)| key::literal_prefix(b)))
        .map(|p| p.unwrap_or_default());
    let wildcard = key::has_wildcard(src);
    let skip = |path: &str| -> bool {
        let rel_to = |base: &str| -> Option<String> {
            if base.is_empty() {
                Some(path.to_string())
            } else {
                path.strip_prefix(base)?
                    .strip_prefix('/')
                    .map(str::to_string)
            }
        };
        let excluded = |base: &str| rel_to(base).is_some_and(|r| filter.is_excluded(&r));
        if let Some(p) = &pivot {
            return excluded(p);
        }
        if !excluded(&prefix) {
            return false;
        }
        if !wildcard {
            return true;
        }
        // Every directory between the prefix and the path's parent.
        let rest = rel_to(&prefix).unwrap_or_default();
        let parts: Vec<&str> = rest.split('/').collect();
        (1..parts.len()).all(|k| {
            let base = if prefix.is_empty() {
                parts[..k].join("/")
            } else {
                format!("{prefix}/{}", parts[..k].join("/"))
            };
            excluded(&base)
        })
    };
    let name = format!("{prefix}\u{0}{src}\u{0}{}", copy.exclude.join("\u{0}"));
    Ok((name, index.digest_filtered(&prefix, Some(stat), &skip)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn copy(src: &str, exclude: &[&str], parents: bool) -> CopyAction {
        CopyAction {
            source_input: 1,
            sources: vec![src.into()],
            dest: "/d/".into(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            parents,
            ..Default::default()
        }
    }

    #[test]
    fn link_only_when_every_copy_links() {
        let mut c = copy("a", &[], false);
        let op = |actions: Vec<CopyAction>| FileOp {
            actions: actions.into_iter().map(FileAction::Copy).collect(),
        };
        assert!(!is_linked(&op(vec![c.clone()])));
        c.link = true;
        assert!(is_linked(&op(vec![c.clone()])));
        assert!(!is_linked(&op(vec![c, copy("b", &[], false)])));
        assert!(!is_linked(&op(vec![])));
    }

    #[test]
    fn excluded_paths_leave_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("app/vendor")).unwrap();
        std::fs::write(r.join("app/main.go"), "m").unwrap();
        std::fs::write(r.join("app/vendor/lib.go"), "l").unwrap();
        std::fs::write(r.join("app/x.txt"), "t").unwrap();
        let db = tempfile::tempdir().unwrap();
        let stat = StatCache::open(&db.path().join("stat.sqlite")).unwrap();
        let digest = |c: &CopyAction| {
            let index = ContextIndex::open(r).unwrap();
            source_digest(&index, &stat, c, &c.sources[0]).unwrap().1
        };
        let cases = [
            copy("app", &["vendor", "*.txt"], false),
            copy("ap*", &["vendor"], false),
            copy("./app/./vendor", &["vendor"], true),
        ];
        let before: Vec<String> = cases.iter().map(digest).collect();
        std::fs::write(r.join("app/vendor/lib.go"), "changed").unwrap();
        std::fs::write(r.join("app/x.txt"), "changed").unwrap();
        let after: Vec<String> = cases.iter().map(digest).collect();
        assert_eq!(before[0], after[0], "excluded files do not change the key");
        assert_ne!(before[1], after[1], "x.txt is not excluded here");
        assert_eq!(
            before[2], after[2],
            "relative to the pivot app/ the selection is vendor/…, all excluded"
        );
        std::fs::write(r.join("app/main.go"), "changed").unwrap();
        assert_ne!(after[0], digest(&cases[0]), "included files do");
    }
}
