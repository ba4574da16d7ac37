//! `.dockerignore` rules, as Docker applies them.
//!
//! This reimplements moby's `patternmatcher` (and `patternmatcher/ignorefile`) so that kiln
//! excludes exactly what `docker build` excludes:
//! <https://docs.docker.com/build/concepts/context/#dockerignore-files>.
//!
//! - lines starting with `#` are comments; surrounding whitespace is trimmed; blank lines are
//!   skipped; a UTF-8 BOM on the first line is dropped;
//! - each pattern is cleaned with Go's `filepath.Clean` and a leading `/` is dropped (patterns are
//!   anchored at the context root);
//! - a pattern is matched like Go's `filepath.Match` (`*`, `?`, `[...]`, `\` escapes), where `**`
//!   matches any number of path components (including none);
//! - a pattern matches a path when it matches the path or one of its parent directories;
//! - `!pattern` re-includes; the last matching pattern wins.

use regex::Regex;

/// Why a `.dockerignore` cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IgnoreError {
    /// A line that is only `!`.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    /// A pattern that Go's `filepath.Match` would reject (an unterminated `[`, …).
    #[error("syntax error in .dockerignore pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The cleaned pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// How a pattern is matched, as moby's `patternmatcher` decides when compiling it.
#[derive(Debug, Clone)]
enum Matcher {
    /// No wildcard: the path must equal the pattern.
    Exact,
    /// `prefix**`: the path must start with the prefix.
    Prefix(String),
    /// `**suffix` with no other wildcard: the path must end with the suffix.
    Suffix(String),
    /// Anything else: the translated regular expression.
    Regexp(Regex),
}

/// One compiled line.
#[derive(Debug, Clone)]
struct Pattern {
    cleaned: String,
    exclusion: bool,
    matcher: Matcher,
}

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
    exceptions: bool,
}

impl DockerIgnore {
    /// No patterns: nothing is excluded.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Self, IgnoreError> {
        let mut lines = Vec::new();
        for (i, line) in text.split('\n').enumerate() {
            let mut line = line.strip_suffix('\r').unwrap_or(line);
            if i == 0 {
                line = line.strip_prefix('\u{feff}').unwrap_or(line);
            }
            // Comments are recognised before trimming, as moby's ignorefile.ReadAll does.
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let invert = pattern.starts_with('!');
            if invert {
                pattern = pattern[1..].trim();
            }
            let mut p = String::new();
            if !pattern.is_empty() {
                p = go_clean(pattern);
                if p.len() > 1 && p.starts_with('/') {
                    p.remove(0);
                }
            }
            if invert {
                p.insert(0, '!');
            }
            lines.push(p);
        }
        Self::from_patterns(&lines)
    }

    /// Compiles already-read patterns (moby's `patternmatcher.New`).
    pub fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<Self, IgnoreError> {
        let mut out = DockerIgnore::default();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let mut p = go_clean(p);
            let exclusion = p.starts_with('!');
            if exclusion {
                if p.len() == 1 {
                    return Err(IgnoreError::IllegalExclusion);
                }
                p.remove(0);
                out.exceptions = true;
            }
            let matcher = compile(&p)?;
            out.patterns.push(Pattern {
                cleaned: p,
                exclusion,
                matcher,
            });
        }
        Ok(out)
    }

    /// True when some `!` exception exists, so an excluded directory may still hold included
    /// paths and has to be walked.
    pub fn has_exceptions(&self) -> bool {
        self.exceptions
    }

    /// True when there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when `path` (relative to the context root, `/`-separated) is excluded: the last
    /// pattern that matches it or one of its parents decides (moby's
    /// `MatchesOrParentMatches`).
    pub fn is_excluded(&self, path: &str) -> bool {
        let parent = go_dir(path);
        let parents: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for pattern in &self.patterns {
            // An inclusion pattern cannot change an already-excluded path and an exception
            // cannot change a path that is not excluded.
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(path);
            if !hit && parent != "." {
                for i in 0..parents.len() {
                    if pattern.matches(&parents[..=i].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact => path == self.cleaned,
            Matcher::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Matcher::Suffix(suffix) => {
                if path.ends_with(suffix.as_str()) {
                    return true;
                }
                // `**/foo` also matches `foo` itself.
                suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Matcher::Regexp(re) => re.is_match(path),
        }
    }
}

/// Translates a cleaned pattern the way moby's `Pattern.compile` does.
fn compile(pattern: &str) -> Result<Matcher, IgnoreError> {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let bad = |reason: String| IgnoreError::BadPattern {
        pattern: pattern.to_string(),
        reason,
    };
    check_go_match_syntax(pattern).map_err(|r| bad(r.to_string()))?;

    let mut re = String::from("^");
    let mut kind = Kind::Exact;
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                // `**/` is the same as `**`.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    // `**` at the end accepts everything, as in .gitignore.
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Kind::Regexp;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = Kind::Regexp;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = Kind::Regexp;
            }
            '?' => {
                re.push_str("[^/]");
                kind = Kind::Regexp;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => {
                if let Some(&next) = chars.get(i) {
                    i += 1;
                    re.push('\\');
                    re.push(next);
                    kind = Kind::Regexp;
                } else {
                    re.push_str("\\\\");
                }
            }
            '[' | ']' => {
                re.push(ch);
                kind = Kind::Regexp;
            }
            _ => re.push(ch),
        }
        first = false;
    }
    match kind {
        Kind::Exact => Ok(Matcher::Exact),
        Kind::Prefix => {
            let prefix = pattern.strip_suffix("**").unwrap_or(pattern);
            Ok(Matcher::Prefix(prefix.to_string()))
        }
        Kind::Suffix => {
            // Only patterns whose sole wildcard is the leading `**` get here.
            Ok(Matcher::Suffix(pattern.get(2..).unwrap_or("").to_string()))
        }
        Kind::Regexp => finish_regexp(re, pattern),
    }
}

fn finish_regexp(mut re: String, pattern: &str) -> Result<Matcher, IgnoreError> {
    re.push('$');
    Regex::new(&re)
        .map(Matcher::Regexp)
        .map_err(|e| IgnoreError::BadPattern {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })
}

/// The syntax check Go's `filepath.Match(pattern, ".")` performs (its `matchChunk` and
/// `getEsc`): bracket expressions must be closed and non-empty, range ends must be present, and
/// `\\` must not end the pattern.
fn check_go_match_syntax(pattern: &str) -> Result<(), &'static str> {
    fn get_esc(chars: &[char], mut i: usize) -> Result<usize, &'static str> {
        match chars.get(i) {
            None | Some('-') | Some(']') => return Err("bad range in character class"),
            Some('\\') => {
                i += 1;
                if i >= chars.len() {
                    return Err("trailing backslash in character class");
                }
            }
            Some(_) => {}
        }
        i += 1;
        if i >= chars.len() {
            return Err("unterminated character class");
        }
        Ok(i)
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err("trailing backslash");
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    if chars.get(i) == Some(&']') && ranges > 0 {
                        i += 1;
                        break;
                    }
                    i = get_esc(&chars, i)?;
                    if chars.get(i) == Some(&'-') {
                        i = get_esc(&chars, i + 1)?;
                    }
                    ranges += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Go's `filepath.Clean` on a `/`-separated path.
pub(crate) fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Dir` on a relative `/`-separated path.
fn go_dir(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => go_clean(&path[..i]),
        None => ".".to_string(),
    }
}
