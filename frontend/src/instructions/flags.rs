//! BuildKit's `BFlags`: each instruction declares its flags (bool, string or repeatable
//! string) and the flags written on the line are checked against them.

use kiln_ir::Span;

use crate::ast::Instruction;
use crate::error::{with_suggestion, ParseError};

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `--link`, `--link=true|false`.
    Bool,
    /// `--from=x`; the last one wins.
    String,
    /// `--exclude=x`, repeatable.
    Strings,
}

/// The flags of one instruction after checking.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    values: Vec<(String, Vec<String>, Span)>,
}

impl Parsed {
    /// A string flag's value.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .find(|(n, _, _)| n == name)
            .and_then(|(_, v, _)| v.last().cloned())
    }

    /// A bool flag: `None` when not given.
    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }

    /// A repeatable flag's values.
    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.values
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, v, _)| v.clone())
            .unwrap_or_default()
    }

    /// The values of a repeatable flag with the span of the flag that gave each.
    pub(crate) fn span_of(&self, name: &str) -> Option<Span> {
        self.values
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, s)| *s)
    }
}

/// Checks `ins.flags` against `spec` with BuildKit's messages.
pub(crate) fn parse(ins: &Instruction, spec: &[(&str, Kind)]) -> Result<Parsed, ParseError> {
    let mut out = Parsed::default();
    for f in &ins.flags {
        let name = f.name.as_str();
        let Some((_, kind)) = spec.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
            let msg = with_suggestion(format!("unknown flag: {name}"), name, &names, true);
            return Err(ParseError::at(msg, f.span));
        };
        let seen = out.values.iter().position(|(n, _, _)| n == name);
        if seen.is_some() && *kind != Kind::Strings {
            return Err(ParseError::at(
                format!("duplicate flag specified: {name}"),
                f.span,
            ));
        }
        let value = match (kind, f.value.as_deref()) {
            (Kind::Bool, None) => "true".to_string(),
            (Kind::Bool, Some("")) => {
                return Err(ParseError::at(
                    format!("missing a value on flag: {name}"),
                    f.span,
                ))
            }
            (Kind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                "true" => "true".to_string(),
                "false" => "false".to_string(),
                _ => {
                    return Err(ParseError::at(
                        format!("expecting boolean value for flag {name}, not: {v}"),
                        f.span,
                    ))
                }
            },
            (_, None) => {
                return Err(ParseError::at(
                    format!("missing a value on flag: {name}"),
                    f.span,
                ))
            }
            (_, Some(v)) => v.to_string(),
        };
        match seen {
            Some(i) => out.values[i].1.push(value),
            None => out.values.push((name.to_string(), vec![value], f.span)),
        }
    }
    Ok(out)
}
