//! Shell-style word expansion, as BuildKit's Dockerfile lexer (`frontend/dockerfile/shell`)
//! does it for FROM, COPY, ENV, LABEL, WORKDIR, USER, EXPOSE, ARG, VOLUME and STOPSIGNAL.
//!
//! Supported: `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`,
//! `${VAR:?msg}`, `${VAR?msg}`, `${VAR#glob}`, `${VAR##glob}`, `${VAR%glob}`, `${VAR%%glob}`,
//! single and double quotes, and the escape character (`\` or `` ` ``). Values substituted
//! from variables are never re-scanned for quotes.
//!
//! ```
//! use std::collections::BTreeMap;
//! let env = BTreeMap::from([("TAG".to_string(), "1.36".to_string())]);
//! let word = kiln_frontend::shell::expand_word("busybox:${TAG:-latest}", &env, '\\').unwrap();
//! assert_eq!(word, "busybox:1.36");
//! ```

use std::collections::{BTreeMap, HashMap};

/// Why a word could not be expanded, in BuildKit's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExpandError(pub String);

/// Variables an expansion can see, looked up by exact (case-sensitive) name.
pub trait EnvLookup {
    /// The value of `name`, or `None` when it is unset.
    fn lookup(&self, name: &str) -> Option<String>;
}

impl EnvLookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl EnvLookup for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// An ordered list of `(name, value)`; the last entry of a name wins.
impl EnvLookup for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl EnvLookup for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.as_slice().lookup(name)
    }
}

/// How a word is processed; the defaults are BuildKit's for instruction arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    /// The escape character (`\` or `` ` ``).
    pub escape: char,
    /// Keep quote characters in the output (used for progress labels).
    pub raw_quotes: bool,
    /// Leave references to unset variables as written (used for progress labels).
    pub skip_unset: bool,
}

impl Lexer {
    /// A lexer with the given escape character and BuildKit's defaults.
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            skip_unset: false,
        }
    }

    /// Expands one word: quotes removed, variables substituted, no splitting.
    pub fn expand(&self, word: &str, env: &dyn EnvLookup) -> Result<String, ExpandError> {
        let mut w = Walker {
            chars: word.chars().collect(),
            pos: 0,
            lex: *self,
            env,
        };
        let mut words = Words::default();
        w.process(None, &mut words)
    }

    /// Expands and splits on whitespace outside quotes (unquoted variable values split too).
    pub fn expand_words(
        &self,
        word: &str,
        env: &dyn EnvLookup,
    ) -> Result<Vec<String>, ExpandError> {
        let mut w = Walker {
            chars: word.chars().collect(),
            pos: 0,
            lex: *self,
            env,
        };
        let mut words = Words::default();
        w.process(None, &mut words)?;
        Ok(words.finish())
    }
}

/// Expands `word` with `env`: quotes removed, `$VAR`/`${VAR…}` substituted, escapes applied.
pub fn expand_word(word: &str, env: &dyn EnvLookup, escape: char) -> Result<String, ExpandError> {
    Lexer::new(escape).expand(word, env)
}

/// Like [`expand_word`], then splits the result into words on whitespace that was neither
/// quoted nor escaped (as EXPOSE does: `ARG P="80 443"` + `EXPOSE $P` gives two ports).
pub fn expand_words(
    word: &str,
    env: &dyn EnvLookup,
    escape: char,
) -> Result<Vec<String>, ExpandError> {
    Lexer::new(escape).expand_words(word, env)
}

/// Collects words while expanding; whitespace added with `add_char` splits.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    current: String,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word {
                self.words.push(std::mem::take(&mut self.current));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.current.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.current.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if self.in_word {
            self.words.push(self.current);
        }
        self.words
    }
}

struct Walker<'a> {
    chars: Vec<char>,
    pos: usize,
    lex: Lexer,
    env: &'a dyn EnvLookup,
}

impl Walker<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes until `stop` (consumed) or the end of input.
    fn process(&mut self, stop: Option<char>, words: &mut Words) -> Result<String, ExpandError> {
        let mut out = String::new();
        loop {
            let Some(ch) = self.peek() else {
                if let Some(s) = stop {
                    return Err(ExpandError(format!(
                        "unexpected end of statement while looking for matching {s}"
                    )));
                }
                return Ok(out);
            };
            if Some(ch) == stop {
                self.pos += 1;
                return Ok(out);
            }
            match ch {
                '\'' => {
                    let s = self.single_quote()?;
                    words.add_raw_string(&s);
                    out.push_str(&s);
                }
                '"' => {
                    let s = self.double_quote()?;
                    words.add_raw_string(&s);
                    out.push_str(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    words.add_string(&s);
                    out.push_str(&s);
                }
                c if c == self.lex.escape => {
                    self.pos += 1;
                    // An escape at the very end is dropped.
                    let Some(next) = self.next() else {
                        return Ok(out);
                    };
                    if self.lex.raw_quotes {
                        out.push(c);
                    }
                    words.add_raw_char(next);
                    out.push(next);
                }
                c => {
                    self.pos += 1;
                    words.add_char(c);
                    out.push(c);
                }
            }
        }
    }

    fn single_quote(&mut self) -> Result<String, ExpandError> {
        self.pos += 1;
        let mut out = String::new();
        if self.lex.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(ExpandError(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    ))
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, ExpandError> {
        self.pos += 1;
        let mut out = String::new();
        if self.lex.raw_quotes {
            out.push('"');
        }
        loop {
            let Some(ch) = self.peek() else {
                return Err(ExpandError(
                    "unexpected end of statement while looking for matching double-quote".into(),
                ));
            };
            if ch == '"' {
                self.pos += 1;
                if self.lex.raw_quotes {
                    out.push('"');
                }
                return Ok(out);
            }
            if ch == '$' {
                out.push_str(&self.dollar()?);
                continue;
            }
            self.pos += 1;
            if ch == self.lex.escape {
                match self.peek() {
                    // An escape at the very end of the word is dropped.
                    None => continue,
                    // Only `"`, `$` and the escape itself can be escaped inside double quotes.
                    Some(n) if n == '"' || n == '$' || n == self.lex.escape => {
                        self.pos += 1;
                        if self.lex.raw_quotes {
                            out.push(ch);
                        }
                        out.push(n);
                        continue;
                    }
                    Some(_) => {}
                }
            }
            out.push(ch);
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && "*#@!?-$".contains(ch) {
                self.pos += 1;
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            self.pos += 1;
            name.push(ch);
        }
        name
    }

    fn dollar(&mut self) -> Result<String, ExpandError> {
        self.pos += 1; // '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.env.lookup(&name) {
                Some(v) => v,
                None if self.lex.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // '{'
        let name = self.name();
        let value = self.env.lookup(&name);
        let missing = || ExpandError("syntax error: missing '}'".into());
        let ch = self.next().ok_or_else(missing)?;
        match ch {
            '}' => Ok(match value {
                Some(v) => v,
                None if self.lex.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' => {
                let modifier = self.next().ok_or_else(missing)?;
                match modifier {
                    '-' | '+' | '?' => {
                        let word = self.process(Some('}'), &mut Words::default())?;
                        let set = value.as_deref().is_some_and(|v| !v.is_empty());
                        Self::apply(&name, modifier, set, value, word)
                    }
                    other => Err(ExpandError(format!(
                        "unsupported modifier ({other}) in substitution"
                    ))),
                }
            }
            '-' | '+' | '?' => {
                let word = self.process(Some('}'), &mut Words::default())?;
                let set = value.is_some();
                Self::apply(&name, ch, set, value, word)
            }
            '#' | '%' => {
                let longest = self.peek() == Some(ch);
                if longest {
                    self.pos += 1;
                }
                let pattern = self.process(Some('}'), &mut Words::default())?;
                let value = value.unwrap_or_default();
                Ok(trim_glob(&value, &pattern, ch == '#', longest))
            }
            other => Err(ExpandError(format!(
                "unsupported modifier ({other}) in substitution"
            ))),
        }
    }

    fn apply(
        name: &str,
        modifier: char,
        set: bool,
        value: Option<String>,
        word: String,
    ) -> Result<String, ExpandError> {
        match (modifier, set) {
            ('-', true) => Ok(value.unwrap_or_default()),
            ('-', false) => Ok(word),
            ('+', true) => Ok(word),
            ('+', false) => Ok(String::new()),
            ('?', true) => Ok(value.unwrap_or_default()),
            _ if word.is_empty() => Err(ExpandError(format!("{name}: is not allowed to be unset"))),
            _ => Err(ExpandError(format!("{name}: {word}"))),
        }
    }
}

/// Removes the shortest/longest prefix (`#`) or suffix (`%`) of `value` matching `pattern`.
fn trim_glob(value: &str, pattern: &str, prefix: bool, longest: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let pat: Vec<char> = pattern.chars().collect();
    let n = chars.len();
    let cuts: Box<dyn Iterator<Item = usize>> = match (prefix, longest) {
        (true, false) => Box::new(0..=n),
        (true, true) => Box::new((0..=n).rev()),
        (false, false) => Box::new((0..=n).rev()),
        (false, true) => Box::new(0..=n),
    };
    for cut in cuts {
        let (part, rest) = if prefix {
            (&chars[..cut], &chars[cut..])
        } else {
            (&chars[cut..], &chars[..cut])
        };
        if glob_match(&pat, part) {
            return rest.iter().collect();
        }
    }
    value.to_string()
}

/// `*` and `?` glob matching; `\` makes the next pattern character literal.
fn glob_match(pat: &[char], s: &[char]) -> bool {
    match pat.first() {
        None => s.is_empty(),
        Some('*') => (0..=s.len()).any(|i| glob_match(&pat[1..], &s[i..])),
        Some('?') => !s.is_empty() && glob_match(&pat[1..], &s[1..]),
        Some('\\') if pat.len() > 1 => s.first() == Some(&pat[1]) && glob_match(&pat[2..], &s[1..]),
        Some(c) => s.first() == Some(c) && glob_match(&pat[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [
            ("A", "a"),
            ("EMPTY", ""),
            ("SP", "x y"),
            ("V", "1.2.3-alpine"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn expansion_table() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("$A", "a"),
            ("${A}", "a"),
            ("x${A}y", "xay"),
            ("$UNSET", ""),
            ("${UNSET:-def}", "def"),
            ("${EMPTY:-def}", "def"),
            ("${EMPTY-def}", ""),
            ("${UNSET-def}", "def"),
            ("${A:-def}", "a"),
            ("${A:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET:+alt}", ""),
            ("'$A'", "$A"),
            ("\"$A\"", "a"),
            ("\"a b\"", "a b"),
            ("\\$A", "$A"),
            ("a\\ b", "a b"),
            ("\"\\$A\"", "$A"),
            ("\"\\n\"", "\\n"),
            ("$", "$"),
            ("a$", "a$"),
            ("$1", ""),
            ("${UNSET:-${A}b}", "ab"),
            ("${UNSET:-\"q q\"}", "q q"),
            ("${V#*.}", "2.3-alpine"),
            ("${V##*.}", "3-alpine"),
            ("${V%-*}", "1.2.3"),
            ("${V%%.*}", "1"),
            ("trailing\\", "trailing"),
        ];
        for (input, want) in cases {
            assert_eq!(
                &expand_word(input, &env(), '\\').unwrap(),
                want,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn backtick_escape() {
        assert_eq!(expand_word("`$A", &env(), '`').unwrap(), "$A");
        assert_eq!(expand_word("C:\\dir", &env(), '`').unwrap(), "C:\\dir");
    }

    #[test]
    fn errors() {
        let e = |w: &str| expand_word(w, &env(), '\\').unwrap_err().0;
        assert_eq!(e("${UNSET:?custom error}"), "UNSET: custom error");
        assert_eq!(e("${EMPTY:?oops}"), "EMPTY: oops");
        assert!(expand_word("${EMPTY?oops}", &env(), '\\').is_ok());
        assert_eq!(
            e("'abc"),
            "unexpected end of statement while looking for matching single-quote"
        );
        assert_eq!(
            e("\"abc"),
            "unexpected end of statement while looking for matching double-quote"
        );
        assert_eq!(e("${A"), "syntax error: missing '}'");
        assert_eq!(e("${A:=x}"), "unsupported modifier (=) in substitution");
        assert_eq!(
            e("${A:-x"),
            "unexpected end of statement while looking for matching }"
        );
    }

    #[test]
    fn words_split_unquoted_values() {
        let w = expand_words("$SP \"c d\" e\\ f", &env(), '\\').unwrap();
        assert_eq!(w, vec!["x", "y", "c d", "e f"]);
        assert_eq!(
            expand_words("  ", &env(), '\\').unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn raw_label_mode() {
        let lex = Lexer {
            escape: '\\',
            raw_quotes: true,
            skip_unset: true,
        };
        assert_eq!(
            lex.expand("echo \"$A\" $NOPE '${X}'", &env()).unwrap(),
            "echo \"a\" $NOPE '${X}'"
        );
    }
}
