//! Typed instructions: the syntax tree checked for argument shapes and flags and grouped into
//! stages (BuildKit's `instructions.Parse`). Words stay unexpanded: expansion needs the
//! environment, which only lowering knows.

use kiln_ir::{NetworkMode, Span};
use serde::{Deserialize, Serialize};

use crate::ast::{Args, Dockerfile, Flag, Instruction, Word};
use crate::error::{with_suggestion, ParseError};

/// `key=value` (value raw, still to be expanded) from ENV, LABEL or ARG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// Key as written.
    pub key: String,
    /// Value as written; `None` for a bare `ARG name`.
    pub value: Option<String>,
}

/// A command line in exec (JSON) or shell form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandLine {
    /// `["a", "b"]`: run as is.
    Exec(Vec<String>),
    /// `a b`: wrapped in the stage's SHELL.
    Shell(String),
}

/// COPY's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    /// `--from`: a stage name, a stage index or an image reference.
    pub from: Option<String>,
    /// `--chown` (unexpanded).
    pub chown: Option<String>,
    /// `--chmod` (unexpanded).
    pub chmod: Option<String>,
    /// Sources (unexpanded).
    pub sources: Vec<String>,
    /// Destination (unexpanded).
    pub dest: String,
}

/// What one instruction inside a stage does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandKind {
    /// RUN.
    Run {
        /// argv or shell text.
        cmd: CommandLine,
        /// `--network`.
        network: NetworkMode,
    },
    /// COPY.
    Copy(Copy),
    /// ENV pairs.
    Env(Vec<KeyValue>),
    /// LABEL pairs.
    Label(Vec<KeyValue>),
    /// ARG names with optional defaults.
    Arg(Vec<KeyValue>),
    /// WORKDIR path.
    Workdir(String),
    /// USER.
    User(String),
    /// EXPOSE port words.
    Expose(Vec<String>),
    /// CMD.
    Cmd(CommandLine),
    /// ENTRYPOINT.
    Entrypoint(CommandLine),
    /// SHELL argv.
    Shell(Vec<String>),
    /// MAINTAINER.
    Maintainer(String),
    /// STOPSIGNAL.
    StopSignal(String),
    /// VOLUME paths.
    Volume(Vec<String>),
    /// ONBUILD trigger text, stored in the config.
    Onbuild(String),
    /// A known instruction kiln cannot build yet (ADD, HEALTHCHECK).
    Unsupported(String),
}

/// One instruction inside a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// What it does.
    pub kind: CommandKind,
    /// The joined source line (BuildKit's `Original`), used for progress labels.
    pub original: String,
    /// The instruction's text.
    pub span: Span,
}

/// A FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The base as written (unexpanded): an image, `scratch` or an earlier stage.
    pub base: String,
    /// `--platform` as written.
    pub platform: Option<String>,
    /// Instructions after FROM.
    pub commands: Vec<Command>,
    /// The FROM instruction's text.
    pub span: Span,
}

/// ARGs before the first FROM, and the stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instructions {
    /// Global ARGs, in order.
    pub meta_args: Vec<(Vec<KeyValue>, Span)>,
    /// Stages in Dockerfile order.
    pub stages: Vec<Stage>,
}

fn err(message: impl Into<String>, ins: &Instruction) -> ParseError {
    ParseError::at(message, ins.span)
}

/// Checks flags against the allowed names; returns `(name, value)` pairs.
fn check_flags<'a>(
    ins: &'a Instruction,
    allowed: &[&str],
    known_unsupported: &[&str],
) -> Result<Vec<(&'a str, Option<&'a str>)>, ParseError> {
    let mut out = Vec::new();
    for Flag { name, value, span } in &ins.flags {
        if known_unsupported.contains(&name.as_str()) {
            return Err(ParseError::at(
                format!("{} --{name} is not supported by kiln yet", ins.keyword),
                *span,
            ));
        }
        if !allowed.contains(&name.as_str()) {
            let mut options = allowed.to_vec();
            options.extend_from_slice(known_unsupported);
            let msg = with_suggestion(format!("unknown flag: {name}"), name, &options, true);
            return Err(ParseError::at(msg, *span));
        }
        out.push((name.as_str(), value.as_deref()));
    }
    Ok(out)
}

fn string_flag(
    ins: &Instruction,
    flags: &[(&str, Option<&str>)],
    name: &str,
) -> Result<Option<String>, ParseError> {
    match flags.iter().rev().find(|(n, _)| *n == name) {
        None => Ok(None),
        Some((_, Some(v))) => Ok(Some((*v).to_string())),
        Some((_, None)) => Err(err(format!("missing a value on flag: {name}"), ins)),
    }
}

fn words(ins: &Instruction) -> Vec<String> {
    match &ins.args {
        Args::Words(w) => w.iter().map(|w| w.text.clone()).collect(),
        Args::Json(v) => v.clone(),
        Args::Shell(s) | Args::Text(s) => s.split_whitespace().map(String::from).collect(),
    }
}

fn command_line(ins: &Instruction) -> CommandLine {
    match &ins.args {
        Args::Json(v) => CommandLine::Exec(v.clone()),
        Args::Shell(s) | Args::Text(s) => CommandLine::Shell(s.clone()),
        Args::Words(w) => CommandLine::Shell(
            w.iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

fn exactly_one(ins: &Instruction) -> Result<String, ParseError> {
    if ins.rest.text.is_empty() {
        return Err(err(
            format!("{} requires exactly one argument", ins.keyword),
            ins,
        ));
    }
    Ok(ins.rest.text.clone())
}

fn at_least_one(ins: &Instruction) -> Result<Vec<String>, ParseError> {
    let w = words(ins);
    if w.is_empty() {
        return Err(err(
            format!("{} requires at least one argument", ins.keyword),
            ins,
        ));
    }
    Ok(w)
}

/// BuildKit's `parseNameVal`: `k=v …`, or the legacy `k value with spaces`.
fn name_vals(ins: &Instruction) -> Result<Vec<KeyValue>, ParseError> {
    let Args::Words(ws) = &ins.args else {
        return Ok(Vec::new());
    };
    let Some(first) = ws.first() else {
        return Err(err(
            format!("{} requires at least one argument", ins.keyword),
            ins,
        ));
    };
    if !first.text.contains('=') {
        if ws.len() == 1 {
            return Err(err(format!("{} must have two arguments", ins.keyword), ins));
        }
        let after = ins.rest.text[first.text.len()..].trim_start();
        return Ok(vec![KeyValue {
            key: first.text.clone(),
            value: Some(after.to_string()),
        }]);
    }
    ws.iter()
        .map(|Word { text, .. }| match text.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok(KeyValue {
                key: k.into(),
                value: Some(v.into()),
            }),
            _ => Err(err(
                format!(
                    "Syntax error - can't find = in \"{text}\". Must be of the form: name=value"
                ),
                ins,
            )),
        })
        .collect()
}

fn arg_pairs(ins: &Instruction) -> Result<Vec<KeyValue>, ParseError> {
    let Args::Words(ws) = &ins.args else {
        return Ok(Vec::new());
    };
    if ws.is_empty() {
        return Err(err("ARG requires at least one argument", ins));
    }
    ws.iter()
        .map(|w| match w.text.split_once('=') {
            Some(("", _)) => Err(err(format!("invalid ARG name in \"{}\"", w.text), ins)),
            Some((k, v)) => Ok(KeyValue {
                key: k.into(),
                value: Some(v.into()),
            }),
            None => Ok(KeyValue {
                key: w.text.clone(),
                value: None,
            }),
        })
        .collect()
}

fn valid_stage_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "-_.".contains(ch))
}

fn from(ins: &Instruction) -> Result<Stage, ParseError> {
    let flags = check_flags(ins, &["platform"], &[])?;
    let platform = string_flag(ins, &flags, "platform")?;
    let w = words(ins);
    if w.len() != 1 && w.len() != 3 {
        return Err(err("FROM requires either one or three arguments", ins));
    }
    let name = if w.len() == 3 {
        if !w[1].eq_ignore_ascii_case("as") {
            return Err(err("Second argument should be AS", ins));
        }
        let n = w[2].to_lowercase();
        if !valid_stage_name(&n) {
            return Err(err(
                format!("invalid name for build stage: \"{}\", name can't start with a number or contain symbols", w[2]),
                ins,
            ));
        }
        Some(n)
    } else {
        None
    };
    Ok(Stage {
        name,
        base: w[0].clone(),
        platform,
        commands: Vec::new(),
        span: ins.span,
    })
}

fn command(ins: &Instruction) -> Result<CommandKind, ParseError> {
    let no_flags = |ins| check_flags(ins, &[], &[]).map(|_| ());
    Ok(match ins.keyword.as_str() {
        "RUN" => {
            let flags = check_flags(ins, &["network"], &["mount", "security", "device"])?;
            let network = match string_flag(ins, &flags, "network")?.as_deref() {
                None | Some("default") | Some("host") => NetworkMode::Host,
                Some("none") => NetworkMode::None,
                Some(other) => {
                    return Err(err(format!("unsupported network mode \"{other}\""), ins))
                }
            };
            if ins.rest.text.is_empty() {
                return Err(err("RUN requires at least one argument", ins));
            }
            CommandKind::Run {
                cmd: command_line(ins),
                network,
            }
        }
        "COPY" => {
            let flags = check_flags(
                ins,
                &["from", "chown", "chmod", "link"],
                &["parents", "exclude"],
            )?;
            let mut w = words(ins);
            if w.len() < 2 {
                return Err(err(
                    "COPY requires at least two arguments, but only one was provided. Destination could not be determined",
                    ins,
                ));
            }
            let dest = w.pop().unwrap_or_default();
            CommandKind::Copy(Copy {
                from: string_flag(ins, &flags, "from")?,
                chown: string_flag(ins, &flags, "chown")?,
                chmod: string_flag(ins, &flags, "chmod")?,
                sources: w,
                dest,
            })
        }
        "ENV" => {
            no_flags(ins)?;
            CommandKind::Env(name_vals(ins)?)
        }
        "LABEL" => {
            no_flags(ins)?;
            CommandKind::Label(name_vals(ins)?)
        }
        "ARG" => {
            no_flags(ins)?;
            CommandKind::Arg(arg_pairs(ins)?)
        }
        "WORKDIR" => {
            no_flags(ins)?;
            CommandKind::Workdir(exactly_one(ins)?)
        }
        "USER" => {
            no_flags(ins)?;
            CommandKind::User(exactly_one(ins)?)
        }
        "MAINTAINER" => {
            no_flags(ins)?;
            CommandKind::Maintainer(exactly_one(ins)?)
        }
        "STOPSIGNAL" => {
            no_flags(ins)?;
            CommandKind::StopSignal(exactly_one(ins)?)
        }
        "EXPOSE" => {
            no_flags(ins)?;
            CommandKind::Expose(at_least_one(ins)?)
        }
        "VOLUME" => {
            no_flags(ins)?;
            CommandKind::Volume(at_least_one(ins)?)
        }
        "CMD" => {
            no_flags(ins)?;
            CommandKind::Cmd(command_line(ins))
        }
        "ENTRYPOINT" => {
            no_flags(ins)?;
            CommandKind::Entrypoint(command_line(ins))
        }
        "SHELL" => {
            no_flags(ins)?;
            match &ins.args {
                Args::Json(v) if v.is_empty() => {
                    return Err(err("SHELL requires at least one argument", ins))
                }
                Args::Json(v) => CommandKind::Shell(v.clone()),
                _ => return Err(err("SHELL requires the arguments to be in JSON form", ins)),
            }
        }
        "ONBUILD" => {
            let trigger = at_least_one(ins).map(|_| ins.rest.text.clone())?;
            let first = trigger
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            match first.as_str() {
                "ONBUILD" => {
                    return Err(err(
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                        ins,
                    ))
                }
                "FROM" | "MAINTAINER" => {
                    return Err(err(
                        format!("{first} isn't allowed as an ONBUILD trigger"),
                        ins,
                    ))
                }
                _ => CommandKind::Onbuild(trigger),
            }
        }
        other => CommandKind::Unsupported(other.to_string()),
    })
}

/// Groups instructions into stages and checks every instruction's arguments and flags.
pub fn parse(df: &Dockerfile) -> Result<Instructions, ParseError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        if ins.keyword == "FROM" {
            stages.push(from(ins)?);
            continue;
        }
        let kind = command(ins)?;
        match stages.last_mut() {
            Some(stage) => stage.commands.push(Command {
                kind,
                original: ins.original.clone(),
                span: ins.span,
            }),
            None => match kind {
                CommandKind::Arg(pairs) => meta_args.push((pairs, ins.span)),
                _ => return Err(err("no build stage in current context", ins)),
            },
        }
    }
    if stages.is_empty() {
        return Err(ParseError::new(
            "dockerfile contains no stages to build",
            None,
        ));
    }
    Ok(Instructions { meta_args, stages })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Instructions, ParseError> {
        parse(&crate::ast::parse(text)?)
    }

    #[test]
    fn env_forms() {
        let i = p("FROM a\nENV a=1 b=\"x y\"\nENV k some value\n").unwrap();
        let c = &i.stages[0].commands;
        assert_eq!(
            c[0].kind,
            CommandKind::Env(vec![
                KeyValue {
                    key: "a".into(),
                    value: Some("1".into())
                },
                KeyValue {
                    key: "b".into(),
                    value: Some("\"x y\"".into())
                },
            ])
        );
        assert_eq!(
            c[1].kind,
            CommandKind::Env(vec![KeyValue {
                key: "k".into(),
                value: Some("some value".into())
            }])
        );
        assert_eq!(
            p("FROM a\nENV PATH\n").unwrap_err().message,
            "ENV must have two arguments"
        );
    }

    #[test]
    fn shapes() {
        let m = |t: &str| p(t).unwrap_err().message;
        assert_eq!(
            m("FROM a b\n"),
            "FROM requires either one or three arguments"
        );
        assert!(m("FROM a\nCOPY x\n").starts_with("COPY requires at least two arguments"));
        assert_eq!(
            m("FROM a\nRUN --mont=x true\n"),
            "unknown flag: mont (did you mean mount?)"
        );
        assert_eq!(
            m("FROM a\nWORKDIR\n"),
            "WORKDIR requires exactly one argument"
        );
        assert_eq!(m("ARG a\n"), "dockerfile contains no stages to build");
        assert_eq!(m("ENV a=b\nFROM a\n"), "no build stage in current context");
        assert_eq!(
            m("FROM a\nSHELL sh -c\n"),
            "SHELL requires the arguments to be in JSON form"
        );
    }

    #[test]
    fn stages_and_flags() {
        let i = p("ARG v=1\nFROM --platform=linux/amd64 img:$v AS Build\nRUN --network=none x\nCOPY --from=build --chmod=644 a b /d/\n").unwrap();
        assert_eq!(i.meta_args.len(), 1);
        let s = &i.stages[0];
        assert_eq!(s.name.as_deref(), Some("build"));
        assert_eq!(s.platform.as_deref(), Some("linux/amd64"));
        assert_eq!(
            s.commands[0].kind,
            CommandKind::Run {
                cmd: CommandLine::Shell("x".into()),
                network: NetworkMode::None
            }
        );
        match &s.commands[1].kind {
            CommandKind::Copy(c) => {
                assert_eq!(c.sources, vec!["a", "b"]);
                assert_eq!(c.dest, "/d/");
                assert_eq!(c.chmod.as_deref(), Some("644"));
            }
            other => panic!("{other:?}"),
        }
    }
}
