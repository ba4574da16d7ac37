//! The pest grammar (`grammar.pest`) for instruction arguments, and small wrappers that
//! return pieces with their byte offsets inside the argument text.

use pest::Parser;
use pest_derive::Parser;

#[derive(Parser)]
#[grammar = "grammar.pest"]
struct ArgsGrammar;

/// A piece of argument text and its byte range in that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) text: String,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// A `--name[=value]` flag as written (value with its quotes removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawFlag {
    pub(crate) name: String,
    pub(crate) value: Option<String>,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

fn pieces(rule: Rule, inner: Rule, text: &str) -> Vec<Piece> {
    // The grammar accepts any input; an Err cannot happen, but fall back to one piece.
    match ArgsGrammar::parse(rule, text) {
        Ok(mut pairs) => pairs
            .next()
            .map(|p| {
                p.into_inner()
                    .filter(|p| p.as_rule() == inner)
                    .map(|p| Piece {
                        text: p.as_str().to_string(),
                        start: p.as_span().start(),
                        end: p.as_span().end(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => vec![Piece {
            text: text.to_string(),
            start: 0,
            end: text.len(),
        }],
    }
}

/// Splits on whitespace only (BuildKit's `parseStringsWhitespaceDelimited`).
pub(crate) fn plain_words(text: &str) -> Vec<Piece> {
    pieces(Rule::plain_words, Rule::plain_word, text)
}

/// Splits on whitespace outside quotes, keeping quotes and escapes (BuildKit's `parseWords`).
pub(crate) fn quoted_words(text: &str, escape: char) -> Vec<Piece> {
    if escape == '`' {
        pieces(Rule::words_bt, Rule::word_bt, text)
    } else {
        pieces(Rule::words_bs, Rule::word_bs, text)
    }
}

/// Removes one level of quotes from a flag value (`"a b"` -> `a b`).
fn unquote_flag(value: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    for c in value.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            None if c == '"' || c == '\'' => quote = Some(c),
            _ => out.push(c),
        }
    }
    out
}

/// Splits leading `--flags` off the arguments; returns them and the offset of the rest.
pub(crate) fn flags(text: &str) -> (Vec<RawFlag>, usize) {
    let Ok(mut pairs) = ArgsGrammar::parse(Rule::flags_line, text) else {
        return (Vec::new(), 0);
    };
    let Some(line) = pairs.next() else {
        return (Vec::new(), 0);
    };
    let mut out = Vec::new();
    let mut rest_at = text.len();
    for p in line.into_inner() {
        match p.as_rule() {
            Rule::flag => {
                let span = p.as_span();
                let mut name = String::new();
                let mut value = None;
                for q in p.into_inner() {
                    match q.as_rule() {
                        Rule::flag_name => name = q.as_str().to_string(),
                        Rule::flag_value => value = Some(unquote_flag(q.as_str())),
                        _ => {}
                    }
                }
                out.push(RawFlag {
                    name,
                    value,
                    start: span.start(),
                    end: span.end(),
                });
            }
            Rule::rest => rest_at = p.as_span().start(),
            _ => {}
        }
    }
    (out, rest_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(p: Vec<Piece>) -> Vec<String> {
        p.into_iter().map(|p| p.text).collect()
    }

    #[test]
    fn splits_flags() {
        let (f, at) = flags("--from=build --chown=\"a b\" /x /y");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, "from");
        assert_eq!(f[0].value.as_deref(), Some("build"));
        assert_eq!(f[1].value.as_deref(), Some("a b"));
        assert_eq!(&"--from=build --chown=\"a b\" /x /y"[at..], "/x /y");
        let (f, at) = flags("-- --x");
        assert!(f.is_empty());
        assert_eq!(at, 3);
        let (f, at) = flags("--link");
        assert_eq!(f[0].value, None);
        assert_eq!(at, 6);
        let (f, at) = flags("echo --x");
        assert!(f.is_empty());
        assert_eq!(at, 0);
    }

    #[test]
    fn splits_words() {
        assert_eq!(texts(plain_words("  a  b\tc ")), vec!["a", "b", "c"]);
        assert_eq!(
            texts(quoted_words("a=\"x y\" b='p q' c=d\\ e", '\\')),
            vec!["a=\"x y\"", "b='p q'", "c=d\\ e"]
        );
        assert_eq!(
            texts(quoted_words("a=\"x`\" y\"", '`')),
            vec!["a=\"x`\" y\""]
        );
        assert_eq!(
            texts(quoted_words("a=\"unterminated", '\\')),
            vec!["a=\"unterminated"]
        );
    }
}
