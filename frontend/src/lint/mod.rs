//! Build checks: BuildKit's Dockerfile lint rules (`docker build --check`), with their
//! names, messages and documentation URLs, honouring the `# check=skip=…;error=true`
//! directive.
//!
//! ```
//! let text = "FROM busybox as base\nRUN true\n";
//! let report = kiln_frontend::lint::lint(text, &Default::default(), None).unwrap();
//! assert_eq!(report.warnings[0].rule_name, "FromAsCasing");
//! assert_eq!(report.warnings[0].detail, "'as' and 'FROM' keywords' casing do not match");
//! assert_eq!(report.warnings[0].start_line, 1);
//! ```

pub(crate) mod dispatch;
pub mod rules;
pub(crate) mod stages;

use kiln_ir::Span;
use serde::{Deserialize, Serialize};

use crate::ast::{parse, Dockerfile};
use crate::error::{line_col, FrontendError, ParseError};
use crate::lower::{ImageResolver, LowerOptions};

/// One rule that fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LintWarning {
    /// The rule's name (`FromAsCasing`).
    pub rule_name: String,
    /// What the rule wants.
    pub description: String,
    /// The rule's documentation page.
    pub url: String,
    /// This occurrence (`'as' and 'FROM' keywords' casing do not match`).
    pub detail: String,
    /// The instruction it is about.
    pub span: Span,
    /// 1-based first line of `span`.
    pub start_line: usize,
    /// 1-based last line of `span`.
    pub end_line: usize,
}

impl LintWarning {
    /// BuildKit's one-line form: `FromAsCasing: 'as' and 'FROM' … do not match (line 1)`.
    pub fn short(&self) -> String {
        format!(
            "{}: {} (line {})",
            self.rule_name, self.detail, self.start_line
        )
    }
}

/// The `# check=` directive: which rules to skip and whether warnings fail the build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckConfig {
    /// `skip=Rule1,Rule2`.
    pub skip: Vec<String>,
    /// `skip=all`.
    pub skip_all: bool,
    /// `error=true`: any warning is an error.
    pub error: bool,
}

impl CheckConfig {
    /// Parses a directive value as BuildKit's `ParseLintOptions` does.
    pub fn parse(value: &str) -> Result<CheckConfig, String> {
        let value = value.trim();
        let mut cfg = CheckConfig::default();
        if value.is_empty() {
            return Ok(cfg);
        }
        for part in value.splitn(3, ';') {
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!("invalid check option {}", rules::go_quote(part)));
            };
            match k.trim() {
                "skip" if v.trim() == "all" => cfg.skip_all = true,
                "skip" => cfg.skip = v.split(',').map(|r| r.trim().to_string()).collect(),
                "experimental" => {}
                "error" => {
                    cfg.error = match v.trim() {
                        "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                        "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                        other => {
                            return Err(format!(
                                "failed to parse check option {}: strconv.ParseBool: parsing {}: invalid syntax",
                                rules::go_quote(part),
                                rules::go_quote(other)
                            ))
                        }
                    }
                }
                other => return Err(format!("invalid check option {}", rules::go_quote(other))),
            }
        }
        Ok(cfg)
    }

    /// The configuration of a parsed Dockerfile's `# check=` directive (default if none).
    pub fn of(df: &Dockerfile) -> Result<CheckConfig, ParseError> {
        match df.directives.iter().find(|d| d.name == "check") {
            None => Ok(CheckConfig::default()),
            Some(d) => CheckConfig::parse(&d.value).map_err(|e| {
                ParseError::new(format!("failed to parse check options: {e}"), Some(d.span))
            }),
        }
    }

    /// Whether warnings of `rule` are reported.
    pub fn enabled(&self, rule: &str) -> bool {
        !self.skip_all && !self.skip.iter().any(|s| s == rule)
    }
}

/// The result of linting a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LintReport {
    /// Warnings in file order.
    pub warnings: Vec<LintWarning>,
    /// The `# check=` directive in force.
    pub config: CheckConfig,
}

impl LintReport {
    /// `lint violation found for rules: A, B` when `error=true` and a rule fired.
    pub fn error(&self) -> Option<String> {
        if !self.config.error || self.warnings.is_empty() {
            return None;
        }
        let mut names: Vec<&str> = self.warnings.iter().map(|w| w.rule_name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        Some(format!(
            "lint violation found for rules: {}",
            names.join(", ")
        ))
    }
}

/// Lints Dockerfile text for `opts.target` (default: the last stage).
///
/// Checks that depend on dispatch (UndefinedVar, WorkdirRelativePath, JSONArgsRecommended,
/// MultipleInstructionsDisallowed, ENV's LegacyKeyValueFormat, SecretsUsedInArgOrEnv,
/// ExposeProtoCasing, ExposeInvalidFormat) run only on the stages the target needs, as in
/// BuildKit. With a `resolver`, base images' ENV and SHELL are known; without one,
/// UndefinedVar stays silent in stages built on an image (their ENV is unknown).
///
/// Syntax and argument errors are returned as errors.
pub fn lint(
    text: &str,
    opts: &LowerOptions,
    resolver: Option<&dyn ImageResolver>,
) -> Result<LintReport, FrontendError> {
    let df = parse(text)?;
    let config = CheckConfig::of(&df)?;
    crate::instructions::parse(&df)?;
    let sim = dispatch::simulate(&df, text, opts, resolver)?;
    let warnings = sim
        .fired
        .into_iter()
        .filter(|f| config.enabled(f.rule.name))
        .map(|f| LintWarning {
            rule_name: f.rule.name.to_string(),
            description: f.rule.description.to_string(),
            url: f.rule.url.to_string(),
            detail: f.detail,
            span: f.span,
            start_line: line_col(text, f.span.start).0,
            end_line: line_col(text, f.span.end.saturating_sub(1).max(f.span.start)).0,
        })
        .collect();
    Ok(LintReport { warnings, config })
}
