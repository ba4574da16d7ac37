//! The shell patterns of `${V#p}`, `${V%p}` and `${V/p/r}`: `*` (any string), `?` (any one
//! character), everything else literal. As in BuildKit, a `\` makes the next `*`, `?` or `\`
//! literal, is dropped before `}` and `/` (which needed escaping inside `${}`), and is an
//! error before anything else. There are no bracket expressions.

/// One element of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern(Vec<Tok>);

impl Pattern {
    /// Compiles `pattern`; the error is BuildKit's text.
    pub(crate) fn new(pattern: &str) -> Result<Pattern, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut toks = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                '\\' => match chars.get(i) {
                    // `}` and `/` were escaped for `${}`; the escape is not part of the pattern.
                    Some('}') | Some('/') => {}
                    Some(&n @ ('*' | '?' | '\\')) => {
                        toks.push(Tok::Lit(n));
                        i += 1;
                    }
                    Some(n) => return Err(format!("invalid escape '\\{n}'")),
                    None => return Err("invalid escape '\\'".into()),
                },
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Pattern(toks))
    }

    /// The pattern read backwards (for suffix matching on a reversed value).
    fn reversed(&self) -> Pattern {
        Pattern(self.0.iter().rev().copied().collect())
    }

    /// `ends[k]` is true when the pattern matches `s[..k]` exactly.
    fn match_ends(&self, s: &[char]) -> Vec<bool> {
        let m = self.0.len();
        // `states[j]`: the first j tokens match the input read so far.
        let mut states = vec![false; m + 1];
        states[0] = true;
        self.close(&mut states);
        let mut ends = Vec::with_capacity(s.len() + 1);
        ends.push(states[m]);
        for &c in s {
            let mut next = vec![false; m + 1];
            for j in 0..m {
                if !states[j] {
                    continue;
                }
                match self.0[j] {
                    Tok::Star => next[j] = true,
                    Tok::Any => next[j + 1] = true,
                    Tok::Lit(l) if l == c => next[j + 1] = true,
                    Tok::Lit(_) => {}
                }
            }
            self.close(&mut next);
            ends.push(next[m]);
            if !next.iter().any(|b| *b) {
                ends.resize(s.len() + 1, false);
                break;
            }
            states = next;
        }
        ends
    }

    /// A star may match nothing: a state before a star also reaches the state after it.
    fn close(&self, states: &mut [bool]) {
        for j in 0..self.0.len() {
            if states[j] && self.0[j] == Tok::Star {
                states[j + 1] = true;
            }
        }
    }
}

/// `${V#p}` (`longest`: `##`): removes the shortest (longest) prefix matching the pattern.
pub(crate) fn trim_prefix(value: &str, pattern: &Pattern, longest: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let ends = pattern.match_ends(&chars);
    let cut = if longest {
        ends.iter().rposition(|b| *b)
    } else {
        ends.iter().position(|b| *b)
    };
    match cut {
        Some(k) => chars[k..].iter().collect(),
        None => value.to_string(),
    }
}

/// `${V%p}` (`longest`: `%%`): removes the shortest (longest) suffix matching the pattern.
pub(crate) fn trim_suffix(value: &str, pattern: &Pattern, longest: bool) -> String {
    let reversed: String = value.chars().rev().collect();
    trim_prefix(&reversed, &pattern.reversed(), longest)
        .chars()
        .rev()
        .collect()
}

/// The leftmost match at or after `from`, longest at that start: `(start, end)`.
fn find(pattern: &Pattern, chars: &[char], from: usize) -> Option<(usize, usize)> {
    (from..=chars.len()).find_map(|s| {
        pattern
            .match_ends(&chars[s..])
            .iter()
            .rposition(|b| *b)
            .map(|k| (s, s + k))
    })
}

/// `${V/p/r}` (`all`: `${V//p/r}`): replaces the first (every) match, like Go's regexp
/// replacement BuildKit uses: matches do not overlap and an empty match right after a
/// previous match is skipped.
pub(crate) fn replace(value: &str, pattern: &Pattern, replacement: &str, all: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::new();
    let mut pos = 0;
    let mut prev_end = None;
    while pos <= chars.len() {
        let Some((s, e)) = find(pattern, &chars, pos) else {
            break;
        };
        if s == e && prev_end == Some(s) {
            // An empty match abutting the previous one: step over one character.
            if let Some(c) = chars.get(s) {
                out.push(*c);
            }
            pos = s + 1;
            continue;
        }
        out.extend(&chars[pos..s]);
        out.push_str(replacement);
        prev_end = Some(e);
        if s == e {
            if let Some(c) = chars.get(s) {
                out.push(*c);
            }
            pos = s + 1;
        } else {
            pos = e;
        }
        if !all {
            break;
        }
    }
    if pos < chars.len() {
        out.extend(&chars[pos..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }

    #[test]
    fn escapes() {
        assert_eq!(p("\\*"), Pattern(vec![Tok::Lit('*')]));
        assert_eq!(p("a\\}"), Pattern(vec![Tok::Lit('a'), Tok::Lit('}')]));
        assert_eq!(Pattern::new("\\x").unwrap_err(), "invalid escape '\\x'");
        assert!(Pattern::new("\\").is_err());
        assert!(Pattern::new("\\\\\\").is_err());
    }

    #[test]
    fn trims() {
        assert_eq!(trim_prefix("xxyy", &p("*x*y"), false), "y");
        assert_eq!(trim_prefix("xxyy", &p("*"), false), "xxyy");
        assert_eq!(trim_prefix("xxyy", &p("*x"), true), "yy");
        assert_eq!(trim_prefix("???y", &p("?\\?"), false), "?y");
        assert_eq!(trim_suffix("a***yy*", &p("\\**\\*"), true), "a");
        assert_eq!(trim_suffix("xx**", &p("\\**"), true), "xx");
        assert_eq!(trim_suffix("1.2.3", &p(".*"), false), "1.2");
        assert_eq!(trim_suffix("1.2.3", &p(".*"), true), "1");
    }

    #[test]
    fn replaces() {
        assert_eq!(
            replace("/foo*/*/*.txt", &p("\\*/"), ".", false),
            "/foo.*/*.txt"
        );
        assert_eq!(
            replace("/foo*/*/*.txt", &p("\\*/"), ".", true),
            "/foo..*.txt"
        );
        assert_eq!(
            replace("/a/foo/b/c.txt", &p("/?/"), "/", true),
            "/foo/c.txt"
        );
        assert_eq!(replace("xxyy", &p(""), "ww", false), "wwxxyy");
        assert_eq!(replace("xxyy", &p(""), "", true), "xxyy");
        assert_eq!(replace("abc", &p(""), "-", true), "-a-b-c-");
        assert_eq!(replace("aaa", &p("a*"), "b", true), "b");
    }
}
