//! Renders errors for people: a first line that says it all, then the Dockerfile snippet
//! with a caret (miette), then a help line.

use kiln_frontend::line_col;
use kiln_ir::Span;
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};

/// An error tied to a place in the Dockerfile.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct SourceError {
    message: String,
    src: NamedSource<String>,
    span: Span,
    help: Option<String>,
}

impl Diagnostic for SourceError {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let len = self.span.end.saturating_sub(self.span.start).max(1);
        Some(Box::new(std::iter::once(LabeledSpan::new(
            Some("here".into()),
            self.span.start,
            len,
        ))))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h.as_str()) as Box<dyn std::fmt::Display>)
    }
}

/// `Dockerfile:3: <message>` followed by the snippet with a caret under `span`.
///
/// `name` is the Dockerfile's path as the user gave it.
pub(crate) fn source_error(
    name: &str,
    text: &str,
    span: Option<Span>,
    message: &str,
    help: Option<String>,
) -> String {
    let Some(span) = span.filter(|s| s.start <= text.len()) else {
        return format!("{name}: {message}\n");
    };
    let span = Span {
        start: span.start,
        end: span.end.min(text.len()),
    };
    let (line, _) = line_col(text, span.start);
    let (end_line, _) = line_col(text, span.end.saturating_sub(1).max(span.start));
    let lines = if end_line > line {
        format!("{line}-{end_line}")
    } else {
        line.to_string()
    };
    let mut out = format!("{name}:{lines}: {message}\n");
    let diag = SourceError {
        message: message.to_string(),
        src: NamedSource::new(name, text.to_string()),
        span,
        help,
    };
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor());
    let mut rendered = String::new();
    if handler.render_report(&mut rendered, &diag).is_ok() {
        out.push_str(&rendered);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_names_file_and_line() {
        let text = "FROM scratch\nFNTRYPOINT [\"sh\"]\n";
        let out = source_error(
            "Dockerfile",
            text,
            Some(Span { start: 13, end: 23 }),
            "unknown instruction: FNTRYPOINT",
            Some("did you mean ENTRYPOINT?".into()),
        );
        let first = out.lines().next().unwrap();
        assert_eq!(first, "Dockerfile:2: unknown instruction: FNTRYPOINT");
        assert!(out.contains("FNTRYPOINT [\"sh\"]"), "{out}");
        assert!(out.contains("did you mean ENTRYPOINT?"), "{out}");
    }
}
