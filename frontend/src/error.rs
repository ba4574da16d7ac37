//! The frontend's errors: each carries BuildKit's message and, where there is one, the byte
//! range of the Dockerfile text it is about.

use kiln_ir::Span;

/// A Dockerfile that cannot be read as instructions (syntax or argument shape).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// BuildKit's message, e.g. `unknown instruction: FNTRYPOINT (did you mean ENTRYPOINT?)`.
    pub message: String,
    /// Where in the text; `None` for whole-file errors (`file with no instructions`).
    pub span: Option<Span>,
}

impl ParseError {
    pub(crate) fn new(message: impl Into<String>, span: Option<Span>) -> Self {
        ParseError {
            message: message.into(),
            span,
        }
    }

    pub(crate) fn at(message: impl Into<String>, span: Span) -> Self {
        ParseError {
            message: message.into(),
            span: Some(span),
        }
    }

    /// The byte range the error points at.
    pub fn span(&self) -> Option<Span> {
        self.span
    }

    /// An extra hint for people, beyond BuildKit's message (none yet).
    pub fn help(&self) -> Option<String> {
        None
    }
}

/// Why a parsed Dockerfile could not be turned into a graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontendError {
    /// The instructions themselves are malformed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// An instruction is well-formed but cannot be applied (bad expansion, unknown stage…).
    #[error("{message}")]
    Instruction {
        /// BuildKit's message.
        message: String,
        /// The instruction's text.
        span: Option<Span>,
    },
    /// The image resolver failed for a reference.
    #[error("{message}")]
    Resolve {
        /// The reference as written after expansion.
        reference: String,
        /// The resolver's message prefixed with the reference.
        message: String,
        /// The FROM or COPY that needs the image.
        span: Option<Span>,
    },
    /// `--target` names no stage.
    #[error("{message}")]
    Target {
        /// `target stage "x" could not be found` (+ did-you-mean).
        message: String,
    },
}

impl FrontendError {
    pub(crate) fn at(message: impl Into<String>, span: Option<Span>) -> Self {
        FrontendError::Instruction {
            message: message.into(),
            span,
        }
    }

    /// The byte range the error points at, if any.
    pub fn span(&self) -> Option<Span> {
        match self {
            FrontendError::Parse(e) => e.span,
            FrontendError::Instruction { span, .. } | FrontendError::Resolve { span, .. } => *span,
            FrontendError::Target { .. } => None,
        }
    }

    /// An extra hint for people, beyond BuildKit's message.
    pub fn help(&self) -> Option<String> {
        match self {
            FrontendError::Resolve { .. } => {
                Some("check the image reference and that its registry is reachable".into())
            }
            _ => None,
        }
    }
}

/// 1-based line and column (in bytes) of `offset` in `text`; offsets past the end clamp.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let col = offset
        - before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, col)
}

/// BuildKit's `suggest.WrapError`: appends ` (did you mean X?)` when a candidate is close.
pub(crate) fn with_suggestion(
    message: String,
    value: &str,
    options: &[&str],
    case_sensitive: bool,
) -> String {
    match suggest(value, options, case_sensitive) {
        Some(s) => format!("{message} (did you mean {s}?)"),
        None => message,
    }
}

/// The closest candidate within BuildKit's threshold (distance < max(2, len/3)... ≤ 2).
pub(crate) fn suggest<'a>(
    value: &str,
    options: &[&'a str],
    case_sensitive: bool,
) -> Option<&'a str> {
    let norm = |s: &str| {
        if case_sensitive {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    let v = norm(value);
    let mut best: Option<(usize, &str)> = None;
    for o in options {
        let d = levenshtein(&v, &norm(o));
        if d == 0 {
            continue;
        }
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, o));
        }
    }
    let (d, s) = best?;
    let threshold = (v.chars().count() / 3).max(2);
    (d <= threshold).then_some(s)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("FNTRYPOINT", &["entrypoint", "run"], false),
            Some("entrypoint")
        );
        assert_eq!(suggest("mont", &["mount", "network"], true), Some("mount"));
        assert_eq!(suggest("zzzzzz", &["mount"], true), None);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }

    #[test]
    fn line_and_column() {
        let t = "FROM a\nRUN b\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 7), (2, 1));
        assert_eq!(line_col(t, 9), (2, 3));
        assert_eq!(line_col(t, 999), (3, 1));
    }
}
