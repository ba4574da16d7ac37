//! The line scanner: parser directives, comments, blank lines and continuation lines, as
//! BuildKit's `parser.Parse` handles them. It yields one logical line per instruction and
//! remembers where each piece of a joined line came from, so spans point at the file.

use kiln_ir::Span;

use crate::error::ParseError;
use crate::heredoc::{self, Marker};

/// BuildKit's bufio.Scanner limit on one physical line.
pub(crate) const MAX_LINE: usize = 65535;

/// A parser directive from the leading block (`# syntax=…`, `# escape=…`, `# check=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawDirective {
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) span: Span,
}

/// One instruction's text with continuation lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogicalLine {
    /// The joined text (escape+newline removed, comment and blank lines inside dropped).
    pub(crate) text: String,
    /// `(offset in text, offset in file)` at the start of each joined physical piece.
    pub(crate) pieces: Vec<(usize, usize)>,
    /// From the first non-blank byte of the first line to the end of the last line
    /// (heredoc bodies and their terminators included).
    pub(crate) span: Span,
    /// Whitespace-only lines dropped from inside the continuation.
    pub(crate) empty_lines: Vec<Span>,
    /// Heredoc bodies read after the line, in marker order.
    pub(crate) heredocs: Vec<RawHeredoc>,
}

/// A heredoc marker of a logical line with the body read from the following lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawHeredoc {
    /// The marker (offsets in the logical line's text).
    pub(crate) marker: Marker,
    /// The body lines with their line endings, verbatim.
    pub(crate) body: String,
    /// The body's bytes in the file.
    pub(crate) body_span: Span,
}

impl LogicalLine {
    /// Maps a byte offset of `text` to the file.
    pub(crate) fn file_offset(&self, at: usize) -> usize {
        let idx = self
            .pieces
            .partition_point(|(t, _)| *t <= at)
            .saturating_sub(1);
        let (t, f) = self
            .pieces
            .get(idx)
            .copied()
            .unwrap_or((0, self.span.start));
        f + (at - t.min(at))
    }

    /// Maps a byte range of `text` to the file.
    pub(crate) fn file_span(&self, start: usize, end: usize) -> Span {
        if end <= start {
            let s = self.file_offset(start);
            return Span { start: s, end: s };
        }
        Span {
            start: self.file_offset(start),
            end: self.file_offset(end - 1) + 1,
        }
    }
}

/// Directives plus logical lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scanned {
    pub(crate) directives: Vec<RawDirective>,
    pub(crate) escape: char,
    pub(crate) lines: Vec<LogicalLine>,
}

struct Physical<'a> {
    /// The line without its `\n` / `\r\n`.
    text: &'a str,
    start: usize,
    /// After the line's `\n` (or the end of the file).
    full_end: usize,
}

fn physical_lines(text: &str, first: usize) -> Result<Vec<Physical<'_>>, ParseError> {
    let mut out = Vec::new();
    let mut start = first;
    while start < text.len() {
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        if end - start > MAX_LINE {
            return Err(ParseError::at(
                format!("dockerfile line greater than max allowed size of {MAX_LINE}"),
                Span { start, end },
            ));
        }
        let line = text[start..end]
            .strip_suffix('\r')
            .unwrap_or(&text[start..end]);
        let full_end = (end + 1).min(text.len());
        out.push(Physical {
            text: line,
            start,
            full_end,
        });
        start = end + 1;
    }
    Ok(out)
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// `# key = value` with a key of letters and digits.
fn directive(line: &str) -> Option<(String, String)> {
    let body = line.strip_prefix('#')?.trim_start();
    let (key, value) = body.split_once('=')?;
    let key = key.trim_end();
    let mut chars = key.chars();
    if !chars.next()?.is_ascii_alphabetic() || !chars.all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    Some((key.to_ascii_lowercase(), value.to_string()))
}

/// BuildKit's line-continuation regex `([^E])E[ \t]*$|^E[ \t]*$`: if `line` ends with an
/// escape character (trailing blanks allowed) that is not itself preceded by one, the text
/// before it. So `foo\\` is not a continuation (nor, like BuildKit, `foo\\\`).
fn strip_continuation(line: &str, escape: char) -> Option<&str> {
    let trimmed = line.trim_end_matches([' ', '\t']);
    let head = trimmed.strip_suffix(escape)?;
    if head.ends_with(escape) {
        return None;
    }
    Some(head)
}

/// Scans the whole file.
pub(crate) fn scan(text: &str) -> Result<Scanned, ParseError> {
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let lines = physical_lines(text, bom)?;
    let mut directives: Vec<RawDirective> = Vec::new();
    let mut escape = '\\';
    let mut i = 0;

    // The directive block: leading `# key=value` lines for known keys.
    while let Some(l) = lines.get(i) {
        let Some((name, value)) = directive(l.text.trim_start()) else {
            break;
        };
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            break;
        }
        let span = Span {
            start: l.start,
            end: l.start + l.text.len(),
        };
        if directives.iter().any(|d| d.name == name) {
            return Err(ParseError::at(
                format!("only one {name} parser directive can be used"),
                span,
            ));
        }
        if name == "escape" {
            escape = match value.as_str() {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(ParseError::at(
                        format!("invalid escape token '{value}' does not match ` or \\"),
                        span,
                    ))
                }
            };
        }
        directives.push(RawDirective { name, value, span });
        i += 1;
    }

    let mut out = Vec::new();
    while let Some(first) = lines.get(i) {
        i += 1;
        let trimmed = first.text.trim_start();
        if trimmed.is_empty() || is_comment(trimmed) {
            continue;
        }
        let lead = first.text.len() - trimmed.len();
        let start = first.start + lead;
        let mut end = first.start + first.text.len();
        let mut pieces = vec![(0, start)];
        let mut empty_lines = Vec::new();
        let mut joined = String::new();
        let mut cont = match strip_continuation(trimmed, escape) {
            Some(head) => {
                joined.push_str(head);
                true
            }
            None => {
                joined.push_str(trimmed);
                false
            }
        };
        while cont {
            let Some(next) = lines.get(i) else { break };
            i += 1;
            end = next.start + next.text.len();
            // Comment lines and whitespace-only lines inside a continuation are dropped;
            // whitespace-only ones are remembered for the NoEmptyContinuation warning.
            if is_comment(next.text) {
                continue;
            }
            if next.text.trim().is_empty() {
                empty_lines.push(Span {
                    start: next.start,
                    end: next.start + next.text.len(),
                });
                continue;
            }
            pieces.push((joined.len(), next.start));
            match strip_continuation(next.text, escape) {
                Some(head) => joined.push_str(head),
                None => {
                    joined.push_str(next.text);
                    cont = false;
                }
            }
        }
        let mut heredocs = Vec::new();
        if heredoc::can_contain(&joined) {
            for marker in heredoc::markers_in(&joined) {
                let body_start = lines.get(i).map_or(text.len(), |l| l.start);
                let mut body_end = body_start;
                let mut terminated = false;
                while let Some(l) = lines.get(i) {
                    i += 1;
                    end = l.start + l.text.len();
                    let candidate = if marker.chomp {
                        l.text.trim_start_matches('\t')
                    } else {
                        l.text
                    };
                    if candidate == marker.name {
                        terminated = true;
                        break;
                    }
                    body_end = l.full_end;
                }
                if !terminated {
                    return Err(ParseError::at(
                        "unterminated heredoc",
                        Span {
                            start,
                            end: text.len(),
                        },
                    ));
                }
                heredocs.push(RawHeredoc {
                    marker,
                    body: text[body_start..body_end].to_string(),
                    body_span: Span {
                        start: body_start,
                        end: body_end,
                    },
                });
            }
        }
        out.push(LogicalLine {
            text: joined,
            pieces,
            span: Span { start, end },
            empty_lines,
            heredocs,
        });
    }
    Ok(Scanned {
        directives,
        escape,
        lines: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_continuations_and_drops_comments() {
        let text = "FROM a\nRUN echo hello\\\n# note\n\n  world \\\n  again\n";
        let s = scan(text).unwrap();
        assert_eq!(s.lines.len(), 2);
        assert_eq!(s.lines[1].text, "RUN echo hello  world   again");
        let l = &s.lines[1];
        assert_eq!(
            &text[l.span.start..l.span.end],
            "RUN echo hello\\\n# note\n\n  world \\\n  again"
        );
        // "world" starts at file offset of the 5th line + 2.
        let at = l.text.find("world").unwrap();
        assert_eq!(&text[l.file_offset(at)..l.file_offset(at) + 5], "world");
    }

    #[test]
    fn directives_and_escape() {
        let s = scan("\u{feff}# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN a `\n b\n")
            .unwrap();
        assert_eq!(s.escape, '`');
        assert_eq!(s.directives.len(), 2);
        assert_eq!(s.lines[1].text, "RUN a  b");
        // A directive after a comment is only a comment.
        let s = scan("# hello\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(s.escape, '\\');
        assert!(s.directives.is_empty());
        let e = scan("# escape=x\nFROM a\n").unwrap_err();
        assert!(e.message.contains("invalid escape token"));
        let e = scan("# escape=`\n# escape=\\\n").unwrap_err();
        assert_eq!(e.message, "only one escape parser directive can be used");
    }

    #[test]
    fn doubled_escape_is_not_continuation() {
        let s = scan("FROM a\nRUN foo\\\\\nRUN bar\\").unwrap();
        assert_eq!(s.lines.len(), 3);
        assert_eq!(s.lines[1].text, "RUN foo\\\\");
        assert_eq!(s.lines[2].text, "RUN bar");
    }

    #[test]
    fn long_line() {
        let text = format!("FROM a\nRUN {}\n", "x".repeat(70000));
        let e = scan(&text).unwrap_err();
        assert_eq!(
            e.message,
            "dockerfile line greater than max allowed size of 65535"
        );
    }

    #[test]
    fn empty_continuation_lines_and_heredoc_bodies() {
        let text = "FROM a\nRUN a \\\n  \n# c\n b\nRUN <<X 3<<-Y\nx1\nX\n\ty1\n\tY\nRUN z\n";
        let s = scan(text).unwrap();
        assert_eq!(s.lines.len(), 4);
        assert_eq!(s.lines[1].text, "RUN a  b");
        assert_eq!(s.lines[1].empty_lines.len(), 1);
        let h = &s.lines[2].heredocs;
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].body, "x1\n");
        assert_eq!(h[1].body, "\ty1\n");
        assert_eq!(&text[h[1].body_span.start..h[1].body_span.end], "\ty1\n");
        assert_eq!(s.lines[3].text, "RUN z");
        // A heredoc marker in a non-heredoc instruction reads no body.
        let s = scan("FROM a\nUSER <<X\nRUN b\n").unwrap();
        assert!(s.lines[1].heredocs.is_empty());
        assert_eq!(s.lines.len(), 3);
        assert_eq!(
            scan("FROM a\nRUN <<X\nbody\n").unwrap_err().message,
            "unterminated heredoc"
        );
    }

    #[test]
    fn triple_escape_is_not_continuation_like_buildkit() {
        let s = scan("FROM a\nRUN a\\\\\\\nRUN b\n").unwrap();
        assert_eq!(s.lines.len(), 3);
    }
}
