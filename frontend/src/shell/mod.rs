//! Shell-style word expansion, as BuildKit's Dockerfile lexer (`frontend/dockerfile/shell`)
//! does it for ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ONBUILD
//! and RUN's mount and flag values.
//!
//! Supported: `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`,
//! `${VAR:?msg}`, `${VAR?msg}`, `${VAR#pat}`, `${VAR##pat}`, `${VAR%pat}`, `${VAR%%pat}`,
//! `${VAR/pat/repl}`, `${VAR//pat/repl}`, single and double quotes, and the escape character
//! (`\` or `` ` ``). Values substituted from variables are never re-scanned for quotes, but
//! unquoted they split into words in [`expand_words`]. `${VAR=x}`, `${VAR:=x}`, `${}` and other
//! malformed forms are errors with BuildKit's texts.
//!
//! ```
//! use std::collections::BTreeMap;
//! let env = BTreeMap::from([("TAG".to_string(), "1.36".to_string())]);
//! let word = kiln_frontend::shell::expand_word("busybox:${TAG:-latest}", &env, '\\').unwrap();
//! assert_eq!(word, "busybox:1.36");
//! let words = kiln_frontend::shell::expand_words("a \"b c\" $TAG", &env, '\\').unwrap();
//! assert_eq!(words, ["a", "b c", "1.36"]);
//! ```

mod pattern;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pattern::Pattern;

/// Why a word could not be expanded: BuildKit's message and the word it was about.
///
/// Displays as BuildKit does: `failed to process "${A:=x}": unsupported modifier (:=) in
/// substitution`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {message}", go_quote(word))]
pub struct ExpandError {
    /// The word as written.
    pub word: String,
    /// What is wrong with it (`FOO: custom error`, `syntax error: missing '}'`, …).
    pub message: String,
}

/// Go's `strconv.Quote`, as BuildKit's `%q` prints strings.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

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

/// How a word is processed; [`Lexer::new`] gives BuildKit's defaults for instruction arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    /// The escape character (`\` or `` ` ``).
    pub escape: char,
    /// Keep quote characters in the output (used for progress labels).
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters (heredoc bodies).
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written (used for progress labels).
    pub skip_unset: bool,
}

/// The full result of an expansion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The word with quotes removed and variables substituted.
    pub result: String,
    /// The same split into words on unquoted whitespace (including whitespace in unquoted
    /// variable values); empty words are dropped.
    pub words: Vec<String>,
    /// Variables the word referenced that were set.
    pub matched: BTreeSet<String>,
    /// Variables the word referenced that were unset.
    pub unmatched: BTreeSet<String>,
}

impl Lexer {
    /// A lexer with the given escape character and BuildKit's defaults.
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset: false,
        }
    }

    /// Expands `word`, reporting the words and the variables it used.
    pub fn process(&self, word: &str, env: &dyn EnvLookup) -> Result<Expansion, ExpandError> {
        let mut w = Walker {
            chars: word.chars().collect(),
            pos: 0,
            lex: *self,
            env,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match w.process_until(None, self.raw_escapes) {
            Ok((result, words)) => Ok(Expansion {
                result,
                words,
                matched: w.matched,
                unmatched: w.unmatched,
            }),
            Err(message) => Err(ExpandError {
                word: word.to_string(),
                message,
            }),
        }
    }

    /// Expands one word: quotes removed, variables substituted, no splitting.
    pub fn expand(&self, word: &str, env: &dyn EnvLookup) -> Result<String, ExpandError> {
        self.process(word, env).map(|e| e.result)
    }

    /// Expands and splits on whitespace outside quotes (unquoted variable values split too).
    pub fn expand_words(
        &self,
        word: &str,
        env: &dyn EnvLookup,
    ) -> Result<Vec<String>, ExpandError> {
        self.process(word, env).map(|e| e.words)
    }
}

/// Expands `word` with `env`: quotes removed, `$VAR`/`${VAR…}` substituted, escapes applied.
pub fn expand_word(word: &str, env: &dyn EnvLookup, escape: char) -> Result<String, ExpandError> {
    Lexer::new(escape).expand(word, env)
}

/// Like [`expand_word`], then splits the result into words on whitespace that was neither
/// quoted nor escaped (as EXPOSE does: `ARG P="80 443"` + `EXPOSE $P` gives two ports).
/// Empty words are dropped (`""` gives no word), as in BuildKit.
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
            if self.in_word && !self.current.is_empty() {
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
        if !self.current.is_empty() {
            self.words.push(self.current);
        }
        self.words
    }
}

const MISSING_BRACE: &str = "syntax error: missing '}'";

struct Walker<'a> {
    chars: Vec<char>,
    pos: usize,
    lex: Lexer,
    env: &'a dyn EnvLookup,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
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

    fn get_env(&mut self, name: &str) -> Option<String> {
        let v = self.env.lookup(name);
        if v.is_some() {
            self.matched.insert(name.to_string());
        } else {
            self.unmatched.insert(name.to_string());
        }
        v
    }

    /// BuildKit's `processStopOn`: processes until `stop` (consumed) or the end of input.
    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let mut out = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((out, words.finish()));
            }
            let quotes = !self.lex.skip_process_quotes;
            if ch == '$' {
                let s = self.dollar()?;
                words.add_string(&s);
                out.push_str(&s);
            } else if quotes && ch == '\'' {
                let s = self.single_quote()?;
                words.add_raw_string(&s);
                out.push_str(&s);
            } else if quotes && ch == '"' {
                let s = self.double_quote(raw_escapes)?;
                words.add_raw_string(&s);
                out.push_str(&s);
            } else if ch == self.lex.escape {
                self.pos += 1;
                if raw_escapes {
                    words.add_raw_char(ch);
                    out.push(ch);
                }
                // An escape at the very end is dropped.
                let Some(next) = self.next() else {
                    break;
                };
                words.add_raw_char(next);
                out.push(next);
            } else {
                self.pos += 1;
                words.add_char(ch);
                out.push(ch);
            }
        }
        match stop {
            Some(s) => Err(format!(
                "unexpected end of statement while looking for matching {s}"
            )),
            None => Ok((out, words.finish())),
        }
    }

    fn single_quote(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        if self.lex.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
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

    fn double_quote(&mut self, raw_escapes: bool) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        if self.lex.raw_quotes {
            out.push('"');
        }
        loop {
            let Some(ch) = self.peek() else {
                return Err(
                    "unexpected end of statement while looking for matching double-quote".into(),
                );
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
                if raw_escapes {
                    out.push(ch);
                }
                match self.peek() {
                    // An escape at the very end of the word is dropped.
                    None => continue,
                    // Only `"`, `$` and the escape itself can be escaped inside double quotes.
                    Some(n) if n == '"' || n == '$' || n == self.lex.escape => {
                        self.pos += 1;
                        out.push(n);
                        continue;
                    }
                    Some(_) => {}
                }
            }
            out.push(ch);
        }
    }

    /// A name, a run of digits, or one special parameter character.
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
            if name.is_empty() && "@*#?-$!".contains(ch) {
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

    /// A `}`-terminated word inside `${…}`; running out of input is a missing `}`.
    fn braced_word(&mut self, stop: char, raw: bool, missing: &str) -> Result<String, String> {
        match self.process_until(Some(stop), raw) {
            Ok((w, _)) => Ok(w),
            Err(_) if self.peek().is_none() => Err(missing.to_string()),
            Err(e) => Err(e),
        }
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1; // '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // '{'
        match self.peek() {
            None => return Err(MISSING_BRACE.into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        // BuildKit reports `${A` as an unsupported modifier U+FFFD; kiln says what is missing.
        let Some(ch) = self.next() else {
            return Err(MISSING_BRACE.into());
        };
        match ch {
            '}' => {
                let value = self.get_env(&name);
                Ok(match value {
                    Some(v) => v,
                    None if self.lex.skip_unset => format!("${{{name}}}"),
                    None => String::new(),
                })
            }
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = ch == ':';
                let op = if null_is_unset { self.next() } else { Some(ch) };
                let chs = match (null_is_unset, op) {
                    (true, Some(o)) => format!(":{o}"),
                    (true, None) => ":".to_string(),
                    (false, _) => ch.to_string(),
                };
                let raw = matches!(op, Some('#' | '%'));
                let word = self.braced_word('}', raw, MISSING_BRACE)?;
                let value = self.get_env(&name);
                if self.lex.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let set = value.is_some();
                let empty = value.as_deref().is_none_or(str::is_empty);
                let value = value.unwrap_or_default();
                match (op, null_is_unset) {
                    (Some('-'), _) => Ok(if !set || (null_is_unset && empty) {
                        word
                    } else {
                        value
                    }),
                    (Some('+'), _) => Ok(if !set || (null_is_unset && empty) {
                        String::new()
                    } else {
                        word
                    }),
                    (Some('?'), _) if !set => Err(format!(
                        "{name}: {}",
                        if word.is_empty() {
                            "is not allowed to be unset"
                        } else {
                            &word
                        }
                    )),
                    (Some('?'), _) if null_is_unset && empty => Err(format!(
                        "{name}: {}",
                        if word.is_empty() {
                            "is not allowed to be empty"
                        } else {
                            &word
                        }
                    )),
                    (Some('?'), _) => Ok(value),
                    (Some(c @ ('#' | '%')), false) => {
                        let (longest, pat) = match word.strip_prefix(c) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word.clone()),
                        };
                        let p = Pattern::new(&pat)
                            .map_err(|e| format!("invalid pattern ({pat}) in substitution: {e}"))?;
                        Ok(if c == '%' {
                            pattern::trim_suffix(&value, &p, longest)
                        } else {
                            pattern::trim_prefix(&value, &p, longest)
                        })
                    }
                    _ => Err(format!("unsupported modifier ({chs}) in substitution")),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let pat = self.braced_word('/', true, "syntax error: missing '/' in ${}")?;
                let replacement = self.braced_word('}', true, MISSING_BRACE)?;
                let value = self.get_env(&name);
                if self.lex.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}/{pat}/{replacement}}}"));
                }
                let value = value.unwrap_or_default();
                let p = Pattern::new(&pat)
                    .map_err(|e| format!("invalid pattern ({pat}) in substitution: {e}"))?;
                Ok(pattern::replace(&value, &p, &replacement, all))
            }
            other => Err(format!("unsupported modifier ({other}) in substitution")),
        }
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
            ("FOO", "xxyy"),
            ("P", "/tmp/tmp/bar.txt"),
            ("NEEDLE", "/tmp"),
            ("STAR", "\\*/"),
            ("G", "/foo*/*/*.txt"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn ok(w: &str) -> String {
        expand_word(w, &env(), '\\').unwrap_or_else(|e| panic!("{w:?}: {e}"))
    }

    fn err(w: &str) -> String {
        expand_word(w, &env(), '\\').unwrap_err().message
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
            ("${A:-}", "a"),
            ("${A:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET:+alt}", ""),
            ("${UNSET+alt}", ""),
            ("${A?x}", "a"),
            ("${EMPTY?x}", ""),
            ("'$A'", "$A"),
            ("\"$A\"", "a"),
            ("\"a b\"", "a b"),
            ("\\$A", "$A"),
            ("a\\ b", "a b"),
            ("\"\\$A\"", "$A"),
            ("\"\\n\"", "\\n"),
            ("\"\\\\\"", "\\"),
            ("$", "$"),
            ("a$", "a$"),
            ("$1", ""),
            ("$-x", "x"),
            ("${UNSET:-${A}b}", "ab"),
            ("${UNSET:-\"q q\"}", "q q"),
            ("${UNSET:-\\}}", "}"),
            ("${V#*.}", "2.3-alpine"),
            ("${V##*.}", "3-alpine"),
            ("${V%-*}", "1.2.3"),
            ("${V%%.*}", "1"),
            ("${FOO#*x*y}", "y"),
            ("${FOO#*}", "xxyy"),
            ("${FOO#$A}", "xxyy"),
            ("${FOO#}", "xxyy"),
            ("${FOO##}", "xxyy"),
            ("${FOO##*x}", "yy"),
            ("${FOO%}", "xxyy"),
            ("${FOO%%y}", "xxy"),
            ("${UNSET:-.}${FOO%x}${UNSET:-.}", ".xxyy."),
            ("${P/$NEEDLE/} - ${P//$NEEDLE/}", "/tmp/bar.txt - /bar.txt"),
            ("${G/$STAR/.} - ${G//$STAR/.}", "/foo.*/*.txt - /foo..*.txt"),
            ("${P//\\//\\/}", "\\/tmp\\/tmp\\/bar.txt"),
            ("${FOO/$EMPTY/ww}", "wwxxyy"),
            ("${FOO///}", "xxyy"),
            ("${UNSET///}", ""),
            ("trailing\\", "trailing"),
        ];
        for (input, want) in cases {
            assert_eq!(&ok(input), want, "input {input:?}");
        }
    }

    #[test]
    fn platform_release_name() {
        let mut e = env();
        for (k, v) in [
            ("TARGETOS", "linux"),
            ("TARGETARCH", "arm"),
            ("TARGETVARIANT", "v7"),
        ] {
            e.push((k.into(), v.into()));
        }
        let w = "x-${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
        assert_eq!(expand_word(w, &e, '\\').unwrap(), "x-linux-arm-v7.tar.gz");
        e.pop();
        assert_eq!(expand_word(w, &e, '\\').unwrap(), "x-linux-arm.tar.gz");
    }

    #[test]
    fn backtick_escape() {
        assert_eq!(expand_word("`$A", &env(), '`').unwrap(), "$A");
        assert_eq!(expand_word("C:\\dir", &env(), '`').unwrap(), "C:\\dir");
        assert_eq!(expand_word("\"a`\"b\"", &env(), '`').unwrap(), "a\"b");
    }

    #[test]
    fn errors() {
        assert_eq!(err("${UNSET:?custom error}"), "UNSET: custom error");
        assert_eq!(err("${UNSET:?msg $A}"), "UNSET: msg a");
        assert_eq!(err("${EMPTY:?oops}"), "EMPTY: oops");
        assert_eq!(err("${EMPTY:?}"), "EMPTY: is not allowed to be empty");
        assert_eq!(err("${UNSET?}"), "UNSET: is not allowed to be unset");
        assert_eq!(
            err("'abc"),
            "unexpected end of statement while looking for matching single-quote"
        );
        assert_eq!(
            err("\"abc"),
            "unexpected end of statement while looking for matching double-quote"
        );
        assert_eq!(err("${A"), "syntax error: missing '}'");
        assert_eq!(err("${"), "syntax error: missing '}'");
        assert_eq!(err("${A:-x"), "syntax error: missing '}'");
        assert_eq!(err("${}"), "syntax error: bad substitution");
        assert_eq!(err("${:a}"), "syntax error: bad substitution");
        assert_eq!(err("${{a}"), "syntax error: bad substitution");
        assert_eq!(err("${A:=x}"), "unsupported modifier (:=) in substitution");
        assert_eq!(err("${A=x}"), "unsupported modifier (=) in substitution");
        assert_eq!(err("${A=}"), "unsupported modifier (=) in substitution");
        assert_eq!(err("${A:#x}"), "unsupported modifier (:#) in substitution");
        assert_eq!(err("${A:%x}"), "unsupported modifier (:%) in substitution");
        assert_eq!(err("${A x}"), "unsupported modifier ( ) in substitution");
        assert_eq!(err("${FOO//ww}"), "syntax error: missing '/' in ${}");
        assert_eq!(err("${FOO//}"), "syntax error: missing '/' in ${}");
        assert_eq!(
            err("${FOO#\\x}"),
            "invalid pattern (\\x) in substitution: invalid escape '\\x'"
        );
        let e = expand_word("${A:=x}", &env(), '\\').unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to process \"${A:=x}\": unsupported modifier (:=) in substitution"
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
        assert_eq!(expand_words("\"\" a", &env(), '\\').unwrap(), vec!["a"]);
        assert_eq!(expand_words("\"$SP\"", &env(), '\\').unwrap(), vec!["x y"]);
    }

    #[test]
    fn matches_are_reported() {
        let e = Lexer::new('\\')
            .process("$A ${UNSET:-x} ${EMPTY}", &env())
            .unwrap();
        assert_eq!(e.result, "a x ");
        assert_eq!(e.matched, BTreeSet::from(["A".to_string(), "EMPTY".into()]));
        assert_eq!(e.unmatched, BTreeSet::from(["UNSET".to_string()]));
    }

    #[test]
    fn raw_label_mode() {
        let lex = Lexer {
            raw_quotes: true,
            skip_unset: true,
            ..Lexer::new('\\')
        };
        assert_eq!(
            lex.expand("echo \"$A\" $NOPE '${X}' ${NOPE:-d}", &env())
                .unwrap(),
            "echo \"a\" $NOPE '${X}' ${NOPE:-d}"
        );
    }

    #[test]
    fn heredoc_mode_keeps_quotes() {
        let lex = Lexer {
            skip_process_quotes: true,
            ..Lexer::new('\\')
        };
        assert_eq!(
            lex.expand("'$A' \"$A\" \\$A \\\\ x\\", &env()).unwrap(),
            "'a' \"a\" $A \\ x"
        );
    }
}
