//! The syntax tree seen as stages, without checking arguments (BuildKit's checks run on
//! instructions kiln may not lower yet): the ARGs before the first FROM, each FROM with its
//! instructions, which stages a stage needs, and the comments above each instruction.

use kiln_ir::Span;

use crate::ast::{Args, Dockerfile, Instruction, Word};
use crate::error::{with_suggestion, FrontendError};

/// A FROM and the instructions up to the next FROM.
#[derive(Debug, Clone)]
pub(crate) struct AstStage<'a> {
    /// The FROM instruction.
    pub(crate) from: &'a Instruction,
    /// Its index in the file's instructions (for comments).
    pub(crate) from_index: usize,
    /// `AS name`, lower-cased (BuildKit's stage name).
    pub(crate) name: Option<String>,
    /// The base as written.
    pub(crate) base: String,
    /// `--platform` as written.
    pub(crate) platform: Option<String>,
    /// The instructions after FROM, with their index in the file.
    pub(crate) commands: Vec<(usize, &'a Instruction)>,
}

/// The Dockerfile as global ARGs and stages.
#[derive(Debug, Clone)]
pub(crate) struct AstStages<'a> {
    /// ARG instructions before the first FROM, with their index.
    pub(crate) meta: Vec<(usize, &'a Instruction)>,
    /// Stages in order.
    pub(crate) stages: Vec<AstStage<'a>>,
}

/// The words of an instruction as written (quotes kept).
pub(crate) fn words(ins: &Instruction) -> Vec<String> {
    match &ins.args {
        Args::Words(w) => w.iter().map(|w| w.text.clone()).collect(),
        Args::Json(v) => v.clone(),
        Args::Shell(s) | Args::Text(s) => s.split_whitespace().map(String::from).collect(),
    }
}

/// The value of the last `--name` flag.
pub(crate) fn flag<'a>(ins: &'a Instruction, name: &str) -> Option<&'a str> {
    ins.flags
        .iter()
        .rev()
        .find(|f| f.name == name)
        .and_then(|f| f.value.as_deref())
}

/// The keyword as written (`from`, `Run`).
pub(crate) fn keyword_written(ins: &Instruction) -> &str {
    ins.original
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or(&ins.keyword)
}

impl<'a> AstStages<'a> {
    /// Groups instructions; an instruction other than ARG before the first FROM is an error.
    pub(crate) fn new(df: &'a Dockerfile) -> Result<AstStages<'a>, FrontendError> {
        let mut meta = Vec::new();
        let mut stages: Vec<AstStage<'a>> = Vec::new();
        for (i, ins) in df.instructions.iter().enumerate() {
            if ins.keyword == "FROM" {
                let w = words(ins);
                stages.push(AstStage {
                    from: ins,
                    from_index: i,
                    name: (w.len() == 3).then(|| w[2].to_lowercase()),
                    base: w.first().cloned().unwrap_or_default(),
                    platform: flag(ins, "platform").map(String::from),
                    commands: Vec::new(),
                });
                continue;
            }
            match stages.last_mut() {
                Some(s) => s.commands.push((i, ins)),
                None if ins.keyword == "ARG" => meta.push((i, ins)),
                None => {
                    return Err(FrontendError::at(
                        "no build stage in current context",
                        Some(ins.span),
                    ))
                }
            }
        }
        if stages.is_empty() {
            return Err(FrontendError::at(
                "dockerfile contains no stages to build",
                None,
            ));
        }
        Ok(AstStages { meta, stages })
    }

    /// The stage named `name` (case-insensitive), among all stages.
    pub(crate) fn by_name(&self, name: &str) -> Option<usize> {
        let lower = name.to_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
    }

    /// The index of `--target` (default: the last stage), with BuildKit's error.
    pub(crate) fn target(&self, target: Option<&str>) -> Result<usize, FrontendError> {
        let Some(t) = target else {
            return Ok(self.stages.len() - 1);
        };
        self.by_name(t).ok_or_else(|| {
            let names: Vec<String> = self
                .stages
                .iter()
                .enumerate()
                .map(|(i, s)| s.name.clone().unwrap_or_else(|| format!("stage-{i}")))
                .collect();
            let options: Vec<&str> = names.iter().map(String::as_str).collect();
            FrontendError::Target {
                message: with_suggestion(
                    format!("target stage \"{t}\" could not be found"),
                    t,
                    &options,
                    true,
                ),
            }
        })
    }

    /// A stage reference (`COPY --from`, `RUN --mount from=`): a name or an index.
    fn stage_ref(&self, r: &str) -> Option<usize> {
        match r.parse::<usize>() {
            Ok(i) if i < self.stages.len() => Some(i),
            Ok(_) => None,
            Err(_) => self.by_name(r),
        }
    }

    /// The earlier stage a stage is built on, if its base names one (unexpanded match).
    pub(crate) fn base_stage(&self, i: usize, expanded_base: &str) -> Option<usize> {
        let lower = expanded_base.to_lowercase();
        self.stages[..i]
            .iter()
            .rposition(|s| s.name.as_deref() == Some(lower.as_str()))
    }

    /// Stages a stage reads from with `COPY --from` or `RUN --mount from=`.
    pub(crate) fn deps(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for (_, ins) in &self.stages[i].commands {
            let mut refs: Vec<String> = Vec::new();
            if matches!(ins.keyword.as_str(), "COPY" | "ADD") {
                refs.extend(flag(ins, "from").map(String::from));
            }
            if ins.keyword == "RUN" {
                refs.extend(mounts(ins).into_iter().filter_map(|m| m.from));
            }
            for r in refs {
                if let Some(j) = self.stage_ref(&r) {
                    if j != i && !out.contains(&j) {
                        out.push(j);
                    }
                }
            }
        }
        out
    }
}

/// One `RUN --mount=…` as far as outline and lint need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountRef {
    /// `type=` (default `bind`).
    pub(crate) kind: String,
    /// `id=`, or BuildKit's default (secret: the target's base name; ssh: `default`).
    pub(crate) id: String,
    /// `from=`.
    pub(crate) from: Option<String>,
    /// `required=true`.
    pub(crate) required: bool,
}

/// The `--mount` flags of a RUN, read loosely (comma-separated `key=value`).
pub(crate) fn mounts(ins: &Instruction) -> Vec<MountRef> {
    let mut out = Vec::new();
    for f in ins.flags.iter().filter(|f| f.name == "mount") {
        let Some(v) = &f.value else { continue };
        let mut kind = "bind".to_string();
        let (mut id, mut from, mut target, mut required) = (None, None, None, false);
        for field in v.split(',') {
            let (k, val) = field.split_once('=').unwrap_or((field, "true"));
            let val = val.trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "type" => kind = val.to_ascii_lowercase(),
                "id" => id = Some(val.to_string()),
                "from" => from = Some(val.to_string()),
                "target" | "dst" | "destination" => target = Some(val.to_string()),
                "required" => required = matches!(val, "true" | "1" | "True" | "TRUE"),
                _ => {}
            }
        }
        let id = match (id, kind.as_str()) {
            (Some(id), _) if !id.is_empty() => id,
            (_, "secret") => target
                .as_deref()
                .map(|t| t.trim_end_matches('/').rsplit('/').next().unwrap_or(t))
                .unwrap_or_default()
                .to_string(),
            (_, "ssh") => "default".to_string(),
            _ => String::new(),
        };
        out.push(MountRef {
            kind,
            id,
            from,
            required,
        });
    }
    out
}

/// `key=value` pairs of ENV, LABEL or ARG as written (values raw), and whether the legacy
/// `key value` form was used.
pub(crate) fn pairs(ins: &Instruction) -> (Vec<(String, Option<String>)>, bool) {
    let Args::Words(ws) = &ins.args else {
        return (Vec::new(), false);
    };
    let Some(first) = ws.first() else {
        return (Vec::new(), false);
    };
    if ins.keyword != "ARG" && !first.text.contains('=') {
        let after = ins
            .rest
            .text
            .get(first.text.len()..)
            .unwrap_or_default()
            .trim_start();
        return (vec![(first.text.clone(), Some(after.to_string()))], true);
    }
    let out = ws
        .iter()
        .map(|Word { text, .. }| match text.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (text.clone(), None),
        })
        .collect();
    (out, false)
}

/// BuildKit's `PrevComment` of every instruction: the comment lines above it since the
/// previous instruction (an empty `#` line starts over), `#` and surrounding blanks removed.
pub(crate) fn prev_comments(text: &str, df: &Dockerfile) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new(); df.instructions.len()];
    let mut comments: Vec<String> = Vec::new();
    let mut idx = 0;
    let mut start = 0;
    while start < text.len() && idx < df.instructions.len() {
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let span: Span = df.instructions[idx].span;
        if end >= span.start {
            // This line starts instruction `idx`: it takes the comments; skip its lines.
            out[idx] = std::mem::take(&mut comments);
            idx += 1;
            start = span.end.max(end);
            start = text[start..]
                .find('\n')
                .map_or(text.len(), |i| start + i + 1);
            continue;
        }
        let line = text[start..end].trim_start_matches('\u{feff}').trim_start();
        if let Some(c) = line.strip_prefix('#') {
            let c = c.trim();
            if c.is_empty() {
                comments.clear();
            } else {
                comments.push(c.to_string());
            }
        }
        start = end + 1;
    }
    out
}

/// BuildKit's `getComment`: the comment line that starts with `name `, without the name.
pub(crate) fn description(comments: &[String], name: &str) -> String {
    if name.is_empty() {
        return String::new();
    }
    let prefix = format!("{name} ");
    comments
        .iter()
        .find_map(|c| c.strip_prefix(&prefix))
        .unwrap_or_default()
        .to_string()
}
