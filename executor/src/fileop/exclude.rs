//! `COPY --exclude=PATTERN`: dockerignore-style patterns matched against paths relative to
//! the directory being copied (`*` stays within a component, `**` spans any number of them,
//! a matched directory drops its contents, `!pattern` re-includes; the last match wins).

use std::path::{Component, Path};

use super::pattern::{has_meta, matches};

/// One cleaned pattern.
#[derive(Debug, Clone)]
struct Pattern {
    /// `!pattern`.
    negate: bool,
    /// Components, `**` kept as is.
    parts: Vec<String>,
}

/// The exclude patterns of one COPY.
#[derive(Debug, Clone, Default)]
pub(crate) struct Excludes {
    patterns: Vec<Pattern>,
}

impl Excludes {
    /// Parses the patterns; a malformed one fails with Go's "syntax error in pattern".
    pub(crate) fn new(patterns: &[String]) -> Result<Self, String> {
        let mut out = Vec::new();
        for raw in patterns {
            let (negate, body) = match raw.trim().strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, raw.trim()),
            };
            let mut parts: Vec<String> = Vec::new();
            for c in Path::new(body).components() {
                match c {
                    Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
                    Component::ParentDir => {
                        parts.pop();
                    }
                    _ => {}
                }
            }
            if parts.is_empty() {
                continue;
            }
            for p in &parts {
                if p != "**" && has_meta(p) {
                    matches(p, "").map_err(|e| e.to_string())?;
                }
            }
            out.push(Pattern { negate, parts });
        }
        Ok(Excludes { patterns: out })
    }

    /// True when no pattern was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when some pattern re-includes (`!`): excluded directories must still be walked.
    pub(crate) fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.negate)
    }

    /// Whether `rel` (relative to the copied directory) is excluded.
    pub(crate) fn excluded(&self, rel: &Path) -> bool {
        let comps: Vec<String> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        if comps.is_empty() {
            return false;
        }
        let mut out = false;
        for p in &self.patterns {
            // A pattern matching the path or one of its parents applies to it.
            let hit = (1..=comps.len()).any(|k| match_parts(&p.parts, &comps[..k]));
            if hit {
                out = !p.negate;
            }
        }
        out
    }
}

fn match_parts(pat: &[String], path: &[String]) -> bool {
    let Some(first) = pat.first() else {
        return path.is_empty();
    };
    if first == "**" {
        return (0..=path.len()).any(|i| match_parts(&pat[1..], &path[i..]));
    }
    match path.first() {
        Some(name) => matches(first, name).unwrap_or(false) && match_parts(&pat[1..], &path[1..]),
        None => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ex(p: &[&str]) -> Excludes {
        Excludes::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn dockerignore_semantics() {
        let e = ex(&["*.txt", "build/", "**/*.o", "!keep.txt"]);
        let x = |p: &str| e.excluded(Path::new(p));
        assert!(x("a.txt"));
        assert!(!x("keep.txt"));
        assert!(!x("sub/a.txt"), "* does not cross /");
        assert!(x("build") && x("build/deep/file"));
        assert!(x("a.o") && x("x/y/z.o"));
        assert!(!x("src/main.rs"));
        assert!(e.has_exceptions());
        assert!(ex(&["*"]).excluded(Path::new("anything/below")));
        assert!(ex(&["./sub/*"]).excluded(Path::new("sub/f")));
        assert!(Excludes::new(&["[".to_string()]).is_err());
        assert!(ex(&[]).is_empty());
    }
}
