//! `docker buildx build --call=outline` and `--call=targets`: what a build of a target takes
//! (ARGs with defaults and descriptions, secrets, ssh ids) and which stages can be built.
//! Pure: no image is resolved, so image ENV does not reach ARG defaults.
//!
//! ```
//! let text = "# base The base stage\nFROM scratch AS base\n# VERSION Release to build\nARG VERSION=1.0\n";
//! let o = kiln_frontend::outline::outline(text, &Default::default()).unwrap();
//! assert_eq!(o.name, "base");
//! assert_eq!(o.description, "The base stage");
//! assert_eq!((o.args[0].name.as_str(), o.args[0].value.as_str()), ("VERSION", "1.0"));
//! assert_eq!(o.args[0].description, "Release to build");
//! ```

use std::collections::HashSet;

use kiln_ir::Span;
use serde::{Deserialize, Serialize};

use crate::ast::parse;
use crate::error::{line_col, FrontendError};
use crate::lint::dispatch::{self, ArgInfo, Capture, MountUse, Simulation};
use crate::lint::stages;
use crate::lower::LowerOptions;

/// What a build of one target takes (BuildKit's `outline.Outline`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outline {
    /// The target stage's name (empty for an unnamed stage).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its `# name description` comment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Build ARGs the target uses, in file order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<OutlineArg>,
    /// Secret ids RUN --mount=type=secret uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<OutlineMount>,
    /// Ssh ids RUN --mount=type=ssh uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh: Vec<OutlineMount>,
}

/// A build ARG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutlineArg {
    /// Its name.
    pub name: String,
    /// The comment above its ARG (`# NAME description`), without the name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Its value: the expanded default or the `--build-arg` override.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// The ARG instruction.
    pub span: Span,
    /// 1-based line of the ARG instruction.
    pub line: usize,
}

/// A secret or ssh id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutlineMount {
    /// The id.
    pub name: String,
    /// `required=true` on the mount.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// The RUN instruction.
    pub span: Span,
    /// 1-based line of the RUN instruction.
    pub line: usize,
}

/// The stages of a Dockerfile (BuildKit's `targets.List`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    /// Every stage, in file order.
    pub targets: Vec<Target>,
}

/// A stage that can be built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Its `AS` name, lower-cased (empty if unnamed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Built when no `--target` is given (the last stage).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// Its `# name description` comment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The base as written.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub base: String,
    /// `--platform` as written.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub platform: String,
    /// The FROM instruction.
    pub span: Span,
    /// 1-based line of the FROM instruction.
    pub line: usize,
}

/// The outline of `opts.target` (default: the last stage).
pub fn outline(text: &str, opts: &LowerOptions) -> Result<Outline, FrontendError> {
    let df = parse(text)?;
    let sim = dispatch::simulate(&df, text, opts, None)?;
    let target = &sim.stages.stages[sim.target];
    let name = target.name.clone().unwrap_or_default();
    let description = stage_description(&sim, sim.target);

    let mut visited = HashSet::new();
    let mut args = Vec::new();
    collect(&sim, sim.target, &mut HashSet::new(), &mut |c: &Capture| {
        for k in used_closure(c) {
            if let Some(a) = c.all.get(&k) {
                if visited.insert(k.clone()) {
                    args.push(arg(text, a));
                }
            }
        }
    });
    args.sort_by_key(|a| a.span.start);

    let mounts = |pick: fn(&Capture) -> &Vec<MountUse>| {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        collect(&sim, sim.target, &mut HashSet::new(), &mut |c: &Capture| {
            for m in pick(c) {
                if seen.insert(m.id.clone()) {
                    out.push(OutlineMount {
                        name: m.id.clone(),
                        required: m.required,
                        span: m.span,
                        line: line_col(text, m.span.start).0,
                    });
                }
            }
        });
        out.sort_by_key(|m| m.span.start);
        out
    };
    Ok(Outline {
        name,
        description,
        args,
        secrets: mounts(|c| &c.secrets),
        ssh: mounts(|c| &c.ssh),
    })
}

/// Every stage, the last one marked default.
pub fn targets(text: &str) -> Result<Targets, FrontendError> {
    let df = parse(text)?;
    let st = stages::AstStages::new(&df)?;
    let comments = stages::prev_comments(text, &df);
    let n = st.stages.len();
    let targets = st
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| Target {
            name: s.name.clone().unwrap_or_default(),
            default: i + 1 == n,
            description: s
                .name
                .as_deref()
                .map(|name| stages::description(&comments[s.from_index], name))
                .unwrap_or_default(),
            base: s.base.clone(),
            platform: s.platform.clone().unwrap_or_default(),
            span: s.from.span,
            line: line_col(text, s.from.span.start).0,
        })
        .collect();
    Ok(Targets { targets })
}

fn stage_description(sim: &Simulation<'_>, i: usize) -> String {
    let s = &sim.stages.stages[i];
    s.name
        .as_deref()
        .map(|n| stages::description(&sim.comments[s.from_index], n))
        .unwrap_or_default()
}

fn arg(text: &str, a: &ArgInfo) -> OutlineArg {
    OutlineArg {
        name: a.name.clone(),
        description: a.comment.clone(),
        value: a.value.clone().unwrap_or_default(),
        span: a.span,
        line: line_col(text, a.span.start).0,
    }
}

/// The used ARGs plus the global ARGs their defaults referenced (BuildKit's `markAllUsed`).
fn used_closure(c: &Capture) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut todo: Vec<String> = c.used.iter().rev().cloned().collect();
    while let Some(k) = todo.pop() {
        if out.contains(&k) {
            continue;
        }
        if let Some(a) = c.all.get(&k) {
            todo.extend(a.deps.iter().rev().cloned());
        }
        out.push(k);
    }
    out
}

/// Visits a stage, then its base, then the stages it copies or mounts from.
fn collect(sim: &Simulation<'_>, i: usize, seen: &mut HashSet<usize>, f: &mut dyn FnMut(&Capture)) {
    if !seen.insert(i) {
        return;
    }
    f(&sim.captures[i]);
    if let Some(b) = sim.bases[i] {
        collect(sim, b, seen, f);
    }
    for d in &sim.deps[i] {
        collect(sim, *d, seen, f);
    }
}

/// Go's `text/tabwriter` with minwidth 0, tabwidth 0, padding `pad`, padchar ' '.
fn table(rows: &[Vec<String>], pad: usize) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in rows {
        for (c, cell) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            widths[c] = widths[c].max(cell.chars().count() + pad);
        }
    }
    let mut out = String::new();
    for r in rows {
        for (c, cell) in r.iter().enumerate() {
            out.push_str(cell);
            if c + 1 < r.len() {
                out.push_str(&" ".repeat(widths[c] - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

impl Outline {
    /// BuildKit's text form (`outline.PrintOutline`).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if !self.name.is_empty() || !self.description.is_empty() {
            let name = if self.name.is_empty() {
                "(default)"
            } else {
                &self.name
            };
            let mut rows = vec![vec!["TARGET:".to_string(), name.to_string()]];
            if !self.description.is_empty() {
                rows.push(vec!["DESCRIPTION:".into(), self.description.clone()]);
            }
            out.push_str(&table(&rows, 1));
            out.push('\n');
        }
        if !self.args.is_empty() {
            let mut rows = vec![vec![
                "BUILD ARG".into(),
                "VALUE".into(),
                "DESCRIPTION".into(),
            ]];
            rows.extend(
                self.args
                    .iter()
                    .map(|a| vec![a.name.clone(), a.value.clone(), a.description.clone()]),
            );
            out.push_str(&table(&rows, 3));
            out.push('\n');
        }
        for (title, list) in [("SECRET", &self.secrets), ("SSH", &self.ssh)] {
            if list.is_empty() {
                continue;
            }
            let mut rows = vec![vec![title.to_string(), "REQUIRED".into()]];
            rows.extend(list.iter().map(|m| {
                vec![
                    m.name.clone(),
                    if m.required {
                        "true".into()
                    } else {
                        String::new()
                    },
                ]
            }));
            out.push_str(&table(&rows, 3));
            out.push('\n');
        }
        out
    }
}

impl Targets {
    /// BuildKit's text form (`targets.PrintTargets`).
    pub fn to_text(&self) -> String {
        let mut rows = vec![vec!["TARGET".to_string(), "DESCRIPTION".to_string()]];
        for t in &self.targets {
            let name = match (t.name.is_empty(), t.default) {
                (true, true) => "(default)".to_string(),
                (false, true) => format!("{} (default)", t.name),
                _ => t.name.clone(),
            };
            rows.push(vec![name, t.description.clone()]);
        }
        table(&rows, 1)
    }
}
