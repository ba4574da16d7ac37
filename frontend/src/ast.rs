//! The syntax tree: one [`Instruction`] per logical line, arguments split the way BuildKit's
//! parser splits them for that instruction, every piece with its byte span in the file.

use kiln_ir::Span;
use serde::{Deserialize, Serialize};

use crate::error::{with_suggestion, ParseError};
use crate::scanner::{self, LogicalLine};
use crate::syntax;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dockerfile {
    /// The escape character in force (`\` or `` ` ``).
    pub escape: char,
    /// The leading parser directives.
    pub directives: Vec<Directive>,
    /// Instructions in order.
    pub instructions: Vec<Instruction>,
    /// Things BuildKit's parser warns about (empty continuation lines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

/// A parser warning (not an error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// The build-check rule it belongs to (`NoEmptyContinuation`).
    pub rule: String,
    /// BuildKit's text: `Empty continuation line found in: RUN echo a b`.
    pub message: String,
    /// The instruction it is about.
    pub span: Span,
    /// The offending lines (the empty lines inside the continuation).
    pub lines: Vec<Span>,
}

/// A heredoc of RUN, COPY or ADD (also inside ONBUILD).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heredoc {
    /// The delimiter with quotes removed (`EOF` for `<<'EOF'`).
    pub name: String,
    /// The body lines, verbatim with their line endings (tabs not yet stripped for `<<-`).
    pub body: String,
    /// `false` when the delimiter was quoted: no expansion of the body.
    pub expand: bool,
    /// `<<-`: strip leading tabs from body lines ([`Heredoc::content`]).
    pub chomp: bool,
    /// `3<<EOF`: the file descriptor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd: Option<u32>,
    /// The `<<EOF` marker in the instruction line.
    pub span: Span,
    /// The body's bytes in the file (terminator line excluded).
    pub body_span: Span,
}

impl Heredoc {
    /// The body as the instruction uses it: leading tabs removed for `<<-`.
    pub fn content(&self) -> String {
        if self.chomp {
            crate::heredoc::chomp(&self.body)
        } else {
            self.body.clone()
        }
    }
}

impl Dockerfile {
    /// The `# syntax=` directive, if any.
    pub fn syntax(&self) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name == "syntax")
            .map(|d| d.value.as_str())
    }
}

/// A parser directive (`# name=value`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directive {
    /// Lower-cased name: `syntax`, `escape` or `check`.
    pub name: String,
    /// Value as written.
    pub value: String,
    /// The directive line.
    pub span: Span,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instruction {
    /// Upper-cased keyword (`RUN`).
    pub keyword: String,
    /// The keyword as written.
    pub keyword_span: Span,
    /// The whole joined line (BuildKit's `Original`), e.g. `RUN make all`.
    pub original: String,
    /// `--name[=value]` flags before the arguments.
    pub flags: Vec<Flag>,
    /// The arguments after the flags, unsplit.
    pub rest: Word,
    /// The arguments split for this instruction.
    pub args: Args,
    /// The whole instruction, continuation lines and heredoc bodies included.
    pub span: Span,
    /// Heredocs in marker order (RUN, COPY, ADD and their ONBUILD form only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heredocs: Vec<Heredoc>,
    /// ONBUILD: the trigger parsed as an instruction, if it parses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Box<Instruction>>,
}

/// A `--name[=value]` flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// Name without the dashes.
    pub name: String,
    /// Value (quotes removed); `None` for a bare `--name`.
    pub value: Option<String>,
    /// The flag as written.
    pub span: Span,
}

/// A piece of text and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Word {
    /// The text as written (quotes and escapes kept).
    pub text: String,
    /// Its bytes in the file (approximate across joined continuation lines).
    pub span: Span,
}

/// Arguments, split the way the instruction's parser does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Args {
    /// Exec form: a JSON array of strings.
    Json(Vec<String>),
    /// Shell form: the text as one string (RUN, CMD, ENTRYPOINT, SHELL).
    Shell(String),
    /// Words (FROM, COPY, EXPOSE, VOLUME: on whitespace; ENV, LABEL, ARG: outside quotes).
    Words(Vec<Word>),
    /// The rest of the line as one string (WORKDIR, USER, MAINTAINER, STOPSIGNAL, ONBUILD…).
    Text(String),
}

/// Every instruction keyword BuildKit knows, lower-case.
pub(crate) const KEYWORDS: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// BuildKit's message for a JSON array holding something other than strings.
pub(crate) const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// What the argument text is as JSON.
pub(crate) enum Json {
    /// Not a JSON array: shell form.
    No,
    /// A JSON array of strings: exec form.
    Yes(Vec<String>),
    /// A JSON array holding something else: an error.
    NotStrings,
}

/// Exec form only for a valid JSON array of strings; a valid array of other things is an error.
pub(crate) fn maybe_json(rest: &str) -> Json {
    if !rest.starts_with('[') {
        return Json::No;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(rest) {
        Ok(values) => {
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return Json::NotStrings,
                }
            }
            Json::Yes(out)
        }
        Err(_) => Json::No,
    }
}

fn json_args(rest: &str, span: Span) -> Result<Option<Vec<String>>, ParseError> {
    match maybe_json(rest) {
        Json::No => Ok(None),
        Json::Yes(v) => Ok(Some(v)),
        Json::NotStrings => Err(ParseError::at(NOT_STRING_ARRAY, span)),
    }
}

fn words(line: &LogicalLine, rest_at: usize, pieces: Vec<syntax::Piece>) -> Vec<Word> {
    pieces
        .into_iter()
        .map(|p| Word {
            span: line.file_span(rest_at + p.start, rest_at + p.end),
            text: p.text,
        })
        .collect()
}

/// Parses the instruction starting at byte `base` of the logical line (0, or the trigger
/// of an ONBUILD).
fn instruction(line: &LogicalLine, base: usize, escape: char) -> Result<Instruction, ParseError> {
    let full = line.text.trim_end();
    let text = &full[base.min(full.len())..];
    let kw_end = text.find(char::is_whitespace).unwrap_or(text.len());
    let keyword_raw = &text[..kw_end];
    let keyword_span = line.file_span(base, base + kw_end);
    let lower = keyword_raw.to_ascii_lowercase();
    if !KEYWORDS.contains(&lower.as_str()) {
        let upper: Vec<String> = KEYWORDS.iter().map(|k| k.to_ascii_uppercase()).collect();
        let options: Vec<&str> = upper.iter().map(String::as_str).collect();
        let msg = with_suggestion(
            format!("unknown instruction: {keyword_raw}"),
            keyword_raw,
            &options,
            false,
        );
        return Err(ParseError::at(msg, keyword_span));
    }
    let args_at = kw_end + (text[kw_end..].len() - text[kw_end..].trim_start().len());
    let args_text = &text[args_at..];
    let (raw_flags, rel_rest) = syntax::flags(args_text);
    let flags = raw_flags
        .into_iter()
        .map(|f| Flag {
            name: f.name,
            value: f.value,
            span: line.file_span(base + args_at + f.start, base + args_at + f.end),
        })
        .collect();
    let rest_at = args_at + rel_rest;
    let rest_text = &text[rest_at..];
    let rest = Word {
        text: rest_text.to_string(),
        span: line.file_span(base + rest_at, base + text.len()),
    };
    let word_list = |pieces| words(line, base + rest_at, pieces);
    let args = match lower.as_str() {
        "run" | "cmd" | "entrypoint" | "shell" => match json_args(rest_text, rest.span)? {
            Some(v) => Args::Json(v),
            None => Args::Shell(rest_text.to_string()),
        },
        "copy" | "add" | "volume" => match json_args(rest_text, rest.span)? {
            Some(v) => Args::Json(v),
            None => Args::Words(word_list(syntax::plain_words(rest_text))),
        },
        "healthcheck" => {
            // `CMD` (or `NONE`) then the command, exec or shell form.
            let typ_end = rest_text
                .find(char::is_whitespace)
                .unwrap_or(rest_text.len());
            let after = rest_text[typ_end..].trim_start();
            match json_args(after, rest.span)? {
                Some(v) if rest_text[..typ_end].eq_ignore_ascii_case("cmd") => Args::Json(v),
                _ => Args::Text(rest_text.to_string()),
            }
        }
        "from" | "expose" => Args::Words(word_list(syntax::plain_words(rest_text))),
        "env" | "label" | "arg" => Args::Words(word_list(syntax::quoted_words(rest_text, escape))),
        _ => Args::Text(rest_text.to_string()),
    };
    let heredocs = line
        .heredocs
        .iter()
        .filter(|h| h.marker.start >= base)
        .map(|h| Heredoc {
            name: h.marker.name.clone(),
            body: h.body.clone(),
            expand: h.marker.expand,
            chomp: h.marker.chomp,
            fd: h.marker.fd,
            span: line.file_span(h.marker.start, h.marker.end),
            body_span: h.body_span,
        })
        .collect();
    let trigger = if lower == "onbuild" && !rest_text.is_empty() {
        instruction(line, base + rest_at, escape).ok().map(Box::new)
    } else {
        None
    };
    let span = if base == 0 {
        line.span
    } else {
        Span {
            start: keyword_span.start,
            end: line.span.end,
        }
    };
    Ok(Instruction {
        keyword: lower.to_ascii_uppercase(),
        keyword_span,
        original: text.to_string(),
        flags,
        rest,
        args,
        span,
        heredocs,
        trigger,
    })
}

/// Parses Dockerfile text into its syntax tree.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let scanned = scanner::scan(text)?;
    let instructions = scanned
        .lines
        .iter()
        .map(|l| instruction(l, 0, scanned.escape))
        .collect::<Result<Vec<_>, _>>()?;
    if instructions.is_empty() {
        return Err(ParseError::at(
            "file with no instructions",
            Span {
                start: text.len(),
                end: text.len(),
            },
        ));
    }
    let directives = scanned
        .directives
        .into_iter()
        .map(|d| Directive {
            name: d.name,
            value: d.value,
            span: d.span,
        })
        .collect();
    let warnings = scanned
        .lines
        .iter()
        .filter(|l| !l.empty_lines.is_empty())
        .map(|l| Warning {
            rule: "NoEmptyContinuation".into(),
            message: format!("Empty continuation line found in: {}", l.text.trim_end()),
            span: l.span,
            lines: l.empty_lines.clone(),
        })
        .collect();
    Ok(Dockerfile {
        escape: scanned.escape,
        directives,
        instructions,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_per_instruction() {
        let df = parse(
            "from busybox AS b\nRUN [\"echo\", \"hi\"]\nCMD [\"a\", 'b']\nENV a=\"x y\" b=c\n",
        )
        .unwrap();
        let i = &df.instructions;
        assert_eq!(i[0].keyword, "FROM");
        assert!(matches!(&i[0].args, Args::Words(w) if w.len() == 3));
        assert_eq!(i[1].args, Args::Json(vec!["echo".into(), "hi".into()]));
        assert_eq!(i[2].args, Args::Shell("[\"a\", 'b']".into()));
        match &i[3].args {
            Args::Words(w) => assert_eq!(w[0].text, "a=\"x y\""),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors() {
        let e = parse("FROM a\nFNTRYPOINT x\n").unwrap_err();
        assert_eq!(
            e.message,
            "unknown instruction: FNTRYPOINT (did you mean ENTRYPOINT?)"
        );
        assert_eq!(e.span, Some(Span { start: 7, end: 17 }));
        assert_eq!(
            parse("# c\n\n").unwrap_err().message,
            "file with no instructions"
        );
        assert_eq!(
            parse("FROM a\nCMD [[\"a\"]]\n").unwrap_err().message,
            NOT_STRING_ARRAY
        );
    }

    #[test]
    fn flags_have_spans() {
        let text = "FROM a\nRUN --network=none echo\n";
        let df = parse(text).unwrap();
        let f = &df.instructions[1].flags[0];
        assert_eq!(&text[f.span.start..f.span.end], "--network=none");
        assert_eq!(df.instructions[1].args, Args::Shell("echo".into()));
    }
}
