//! Go's `filepath.Match` for one path component (Docker and BuildKit COPY wildcards).

/// True when `s` holds a character that `filepath.Match` treats specially.
pub(crate) fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

/// Why a pattern is malformed (Go's `ErrBadPattern`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern {0:?}")]
pub(crate) struct BadPattern(pub(crate) String);

/// Matches `name` (one component, no `/`) against `pattern`.
pub(crate) fn matches(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    match_from(&p, &s).map_err(|()| BadPattern(pattern.to_string()))
}

fn match_from(p: &[char], s: &[char]) -> Result<bool, ()> {
    let Some(&first) = p.first() else {
        return Ok(s.is_empty());
    };
    match first {
        '*' => {
            let rest = &p[1..];
            for i in 0..=s.len() {
                if s[..i].contains(&'/') {
                    break;
                }
                if match_from(rest, &s[i..])? {
                    return Ok(true);
                }
            }
            // Go validates the rest of the pattern even when nothing matches.
            validate(rest)?;
            Ok(false)
        }
        '?' => match s.first() {
            Some(&c) if c != '/' => match_from(&p[1..], &s[1..]),
            _ => validate(&p[1..]).map(|()| false),
        },
        '[' => {
            let (class_len, hit) = match_class(&p[1..], s.first().copied())?;
            if hit {
                match_from(&p[1 + class_len..], &s[1..])
            } else {
                validate(&p[1 + class_len..]).map(|()| false)
            }
        }
        '\\' => {
            let &lit = p.get(1).ok_or(())?;
            if s.first() == Some(&lit) {
                match_from(&p[2..], &s[1..])
            } else {
                validate(&p[2..]).map(|()| false)
            }
        }
        c => {
            if s.first() == Some(&c) {
                match_from(&p[1..], &s[1..])
            } else {
                validate(&p[1..]).map(|()| false)
            }
        }
    }
}

fn validate(p: &[char]) -> Result<(), ()> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '[' => {
                let (len, _) = match_class(&p[i + 1..], None)?;
                i += 1 + len;
            }
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(());
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Parses a class body (after `[`); returns its length including `]` and whether `c` is in
/// it (false for `None`).
fn match_class(p: &[char], c: Option<char>) -> Result<(usize, bool), ()> {
    let mut i = 0;
    let negated = p.first() == Some(&'^');
    if negated {
        i += 1;
    }
    let mut hit = false;
    let mut n = 0;
    loop {
        let &ch = p.get(i).ok_or(())?;
        if ch == ']' && n > 0 {
            i += 1;
            break;
        }
        let (lo, next) = class_char(p, i)?;
        i = next;
        let hi = if p.get(i) == Some(&'-') {
            let (hi, next) = class_char(p, i + 1)?;
            i = next;
            hi
        } else {
            lo
        };
        if let Some(c) = c {
            if lo <= c && c <= hi {
                hit = true;
            }
        }
        n += 1;
    }
    let matched = c.is_some_and(|c| c != '/') && (hit != negated);
    Ok((i, matched))
}

fn class_char(p: &[char], i: usize) -> Result<(char, usize), ()> {
    match p.get(i) {
        None | Some('-') | Some(']') => Err(()),
        Some('\\') => p.get(i + 1).map(|&c| (c, i + 2)).ok_or(()),
        Some(&c) => Ok((c, i + 1)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn go_match_cases() {
        let ok = |p, s| matches(p, s).unwrap();
        assert!(ok("*.go", "main.go"));
        assert!(!ok("*.go", "main.rs"));
        assert!(ok("f?o", "foo"));
        assert!(ok("[a-c]x", "bx"));
        assert!(!ok("[^a-c]x", "bx"));
        assert!(ok("\\*", "*"));
        assert!(ok("*", ""));
        assert!(ok("a*b*c", "axxbyyc"));
        assert!(matches("[", "a").is_err());
        assert!(matches("a[", "b").is_err());
        assert!(has_meta("a*") && !has_meta("plain"));
    }
}
