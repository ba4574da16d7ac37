//! One parser per instruction (BuildKit's `parseRun`, `parseCopy`, …): flags, argument
//! counts and forms, with BuildKit's messages.

use std::time::Duration;

use kiln_ir::SecurityMode;

use super::flags::{self, Kind};
use super::{
    parse_go_duration, Add, Chmod, Command, CommandKind, CommandLine, Copy, Healthcheck,
    HealthcheckCmd, InlineFile, KeyValue, MountSpec, Onbuild, Run, RunNetwork, Stage,
};
use crate::ast::{Args, Heredoc, Instruction, Word};
use crate::error::ParseError;

fn err(message: impl Into<String>, ins: &Instruction) -> ParseError {
    ParseError::at(message, ins.span)
}

fn no_flags(ins: &Instruction) -> Result<(), ParseError> {
    flags::parse(ins, &[]).map(|_| ())
}

/// The arguments as BuildKit's parser node list (`req.args`).
fn words(ins: &Instruction) -> Vec<String> {
    match &ins.args {
        Args::Words(w) => w.iter().map(|w| w.text.clone()).collect(),
        Args::Json(v) => v.clone(),
        Args::Shell(s) | Args::Text(s) if s.is_empty() => Vec::new(),
        Args::Shell(s) | Args::Text(s) => vec![s.clone()],
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

fn inline_file(h: &Heredoc) -> InlineFile {
    InlineFile {
        name: h.name.clone(),
        data: h.content(),
        expand: h.expand,
        chomp: h.chomp,
        fd: h.fd,
        span: h.span,
    }
}

/// BuildKit's `parseNameVal`: `k=v …`, or the legacy `k value with spaces`.
fn name_vals(ins: &Instruction) -> Result<Vec<KeyValue>, ParseError> {
    let ws: &[Word] = match &ins.args {
        Args::Words(w) => w,
        _ => &[],
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
        let after = ins.rest.text[first.text.len().min(ins.rest.text.len())..].trim_start();
        return Ok(vec![KeyValue {
            key: first.text.clone(),
            value: Some(after.to_string()),
        }]);
    }
    ws.iter()
        .map(|w| match w.text.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok(KeyValue {
                key: k.into(),
                value: Some(v.into()),
            }),
            Some(_) => Err(ParseError::at(
                format!("{} names can not be blank", ins.keyword),
                w.span,
            )),
            None => Err(ParseError::at(
                format!(
                    "Syntax error - can't find = in \"{}\". Must be of the form: name=value",
                    w.text
                ),
                w.span,
            )),
        })
        .collect()
}

fn arg_pairs(ins: &Instruction) -> Result<Vec<KeyValue>, ParseError> {
    let ws: &[Word] = match &ins.args {
        Args::Words(w) => w,
        _ => &[],
    };
    if ws.is_empty() {
        return Err(err("ARG requires at least one argument", ins));
    }
    ws.iter()
        .map(|w| match w.text.split_once('=') {
            Some(("", _)) => Err(ParseError::at("ARG names can not be blank", w.span)),
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

/// FROM [--platform=…] image [AS name].
pub(super) fn from(ins: &Instruction) -> Result<Stage, ParseError> {
    let f = flags::parse(ins, &[("platform", Kind::String)])?;
    let w = words(ins);
    let name = match w.len() {
        3 if w[1].eq_ignore_ascii_case("as") => {
            let n = w[2].to_lowercase();
            if !valid_stage_name(&n) {
                return Err(err(
                    format!("invalid name for build stage: \"{}\", name can't start with a number or contain symbols", w[2]),
                    ins,
                ));
            }
            Some(n)
        }
        1 => None,
        _ => return Err(err("FROM requires either one or three arguments", ins)),
    };
    Ok(Stage {
        name,
        base: w[0].clone(),
        platform: f.string("platform"),
        commands: Vec::new(),
        span: ins.span,
    })
}

/// Sources and destination of COPY/ADD, heredoc sources split off.
fn copy_args(ins: &Instruction, f: &flags::Parsed, from: bool) -> Result<Copy, ParseError> {
    let mut w = words(ins);
    let dest = w.pop().unwrap_or_default();
    if crate::heredoc::marker(&dest).is_some() {
        return Err(err(
            format!("{} cannot accept a heredoc as a destination", ins.keyword),
            ins,
        ));
    }
    let mut sources = Vec::new();
    let mut contents = Vec::new();
    for src in w {
        match crate::heredoc::marker(&src) {
            Some(m) => {
                if let Some(h) = ins.heredocs.iter().find(|h| h.name == m.name) {
                    contents.push(inline_file(h));
                }
            }
            None => sources.push(src),
        }
    }
    let chmod = f.string("chmod");
    if let Some(c) = chmod.as_deref().filter(|c| !c.contains('$')) {
        Chmod::parse(c).map_err(|m| ParseError::at(m, f.span_of("chmod").unwrap_or(ins.span)))?;
    }
    Ok(Copy {
        from: if from { f.string("from") } else { None },
        chown: f.string("chown"),
        chmod,
        link: f.bool("link").unwrap_or(false),
        parents: f.bool("parents").unwrap_or(false),
        exclude: f.strings("exclude"),
        sources,
        contents,
        dest,
    })
}

fn need_two(ins: &Instruction) -> Result<(), ParseError> {
    if words(ins).len() < 2 {
        return Err(err(
            format!("{} requires at least two arguments, but only one was provided. Destination could not be determined", ins.keyword),
            ins,
        ));
    }
    Ok(())
}

fn run(ins: &Instruction) -> Result<Run, ParseError> {
    let f = flags::parse(
        ins,
        &[
            ("mount", Kind::Strings),
            ("network", Kind::String),
            ("security", Kind::String),
        ],
    )?;
    let mut mounts = Vec::new();
    for flag in ins.flags.iter().filter(|f| f.name == "mount") {
        let value = flag.value.as_deref().unwrap_or_default();
        mounts.push(MountSpec::parse(value, flag.span).map_err(|m| ParseError::at(m, flag.span))?);
    }
    let flag_span = |name: &str| f.span_of(name).unwrap_or(ins.span);
    let network = match f.string("network").as_deref() {
        None | Some("default") => RunNetwork::Default,
        Some("none") => RunNetwork::None,
        Some("host") => RunNetwork::Host,
        Some(other) => {
            return Err(ParseError::at(
                format!("unsupported network mode \"{other}\""),
                flag_span("network"),
            ))
        }
    };
    let security = match f.string("security").as_deref() {
        None | Some("sandbox") => SecurityMode::Sandbox,
        Some("insecure") => SecurityMode::Insecure,
        Some(other) => {
            return Err(ParseError::at(
                format!("unsupported security mode \"{other}\""),
                flag_span("security"),
            ))
        }
    };
    if ins.rest.text.is_empty() {
        return Err(err("RUN requires at least one argument", ins));
    }
    Ok(Run {
        cmd: command_line(ins),
        mounts,
        network,
        security,
        heredocs: ins.heredocs.iter().map(inline_file).collect(),
    })
}

fn interval(
    f: &flags::Parsed,
    name: &str,
    ins: &Instruction,
) -> Result<Option<Duration>, ParseError> {
    let Some(v) = f.string(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let at = f.span_of(name).unwrap_or(ins.span);
    let ns = parse_go_duration(&v).map_err(|m| ParseError::at(m, at))?;
    if ns == 0 {
        return Ok(None);
    }
    if ns < 1_000_000 {
        return Err(ParseError::at(
            format!("Interval \"{name}\" cannot be less than 1ms"),
            at,
        ));
    }
    Ok(Some(Duration::from_nanos(
        u64::try_from(ns).unwrap_or(u64::MAX),
    )))
}

fn healthcheck(ins: &Instruction) -> Result<Healthcheck, ParseError> {
    let text = ins.rest.text.as_str();
    if text.is_empty() {
        return Err(err("HEALTHCHECK requires at least one argument", ins));
    }
    let typ_end = text.find(char::is_whitespace).unwrap_or(text.len());
    let typ = text[..typ_end].to_ascii_uppercase();
    let args = text[typ_end..].trim_start();
    if typ == "NONE" {
        if !args.is_empty() {
            return Err(err("HEALTHCHECK NONE takes no arguments", ins));
        }
        return Ok(Healthcheck::None);
    }
    let f = flags::parse(
        ins,
        &[
            ("interval", Kind::String),
            ("timeout", Kind::String),
            ("start-period", Kind::String),
            ("start-interval", Kind::String),
            ("retries", Kind::String),
        ],
    )?;
    if typ != "CMD" {
        return Err(err(
            format!("Unknown type \"{typ}\" in HEALTHCHECK (try CMD)"),
            ins,
        ));
    }
    let cmd = match &ins.args {
        Args::Json(v) => CommandLine::Exec(v.clone()),
        _ => CommandLine::Shell(args.to_string()),
    };
    if matches!(&cmd, CommandLine::Exec(v) if v.is_empty())
        || matches!(&cmd, CommandLine::Shell(s) if s.is_empty())
    {
        return Err(err("Missing command after HEALTHCHECK CMD", ins));
    }
    let interval_v = interval(&f, "interval", ins)?;
    let timeout = interval(&f, "timeout", ins)?;
    let start_period = interval(&f, "start-period", ins)?;
    let start_interval = interval(&f, "start-interval", ins)?;
    let retries = match f.string("retries").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => {
            let at = f.span_of("retries").unwrap_or(ins.span);
            let n: i64 = v.parse().map_err(|_| {
                ParseError::at(
                    format!("strconv.ParseInt: parsing \"{v}\": invalid syntax"),
                    at,
                )
            })?;
            if n < 0 {
                return Err(ParseError::at(
                    format!("--retries cannot be negative ({n})"),
                    at,
                ));
            }
            u32::try_from(n).map_err(|_| {
                ParseError::at(
                    format!("strconv.ParseInt: parsing \"{v}\": value out of range"),
                    at,
                )
            })?
        }
    };
    Ok(Healthcheck::Check(HealthcheckCmd {
        cmd,
        interval: interval_v,
        timeout,
        start_period,
        start_interval,
        retries,
    }))
}

fn onbuild(ins: &Instruction) -> Result<Onbuild, ParseError> {
    if ins.rest.text.is_empty() {
        return Err(err("ONBUILD requires at least one argument", ins));
    }
    let first = ins
        .rest
        .text
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
        _ => {}
    }
    let mut trigger = ins.rest.text.clone();
    for h in &ins.heredocs {
        trigger.push('\n');
        trigger.push_str(&h.body);
        trigger.push_str(&h.name);
    }
    let instruction = ins
        .trigger
        .as_deref()
        .and_then(|t| command(t).ok())
        .map(Box::new);
    Ok(Onbuild {
        trigger,
        instruction,
    })
}

/// Any instruction but FROM.
pub(super) fn command(ins: &Instruction) -> Result<Command, ParseError> {
    let kind = match ins.keyword.as_str() {
        "RUN" => CommandKind::Run(run(ins)?),
        "COPY" => {
            need_two(ins)?;
            let f = flags::parse(
                ins,
                &[
                    ("chown", Kind::String),
                    ("from", Kind::String),
                    ("chmod", Kind::String),
                    ("link", Kind::Bool),
                    ("parents", Kind::Bool),
                    ("exclude", Kind::Strings),
                ],
            )?;
            CommandKind::Copy(copy_args(ins, &f, true)?)
        }
        "ADD" => {
            need_two(ins)?;
            let f = flags::parse(
                ins,
                &[
                    ("chown", Kind::String),
                    ("chmod", Kind::String),
                    ("link", Kind::Bool),
                    ("keep-git-dir", Kind::Bool),
                    ("checksum", Kind::String),
                    ("exclude", Kind::Strings),
                    ("unpack", Kind::Bool),
                ],
            )?;
            CommandKind::Add(Add {
                files: copy_args(ins, &f, false)?,
                keep_git_dir: f.bool("keep-git-dir"),
                checksum: f.string("checksum"),
                unpack: f.bool("unpack"),
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
            let vols = at_least_one(ins)?;
            if vols.iter().any(|v| v.trim().is_empty()) {
                return Err(err("VOLUME specified can not be an empty string", ins));
            }
            CommandKind::Volume(vols)
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
        "HEALTHCHECK" => CommandKind::Healthcheck(healthcheck(ins)?),
        "ONBUILD" => {
            no_flags(ins)?;
            CommandKind::Onbuild(onbuild(ins)?)
        }
        other => {
            return Err(err(format!("unknown instruction: {other}"), ins));
        }
    };
    Ok(Command {
        kind,
        original: ins.original.clone(),
        span: ins.span,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Instructions};
    use super::*;

    fn p(text: &str) -> Result<Instructions, ParseError> {
        parse(&crate::ast::parse(text)?)
    }

    fn m(text: &str) -> String {
        p(text).unwrap_err().message
    }

    #[test]
    fn env_forms() {
        let i = p("FROM a\nENV a=1 b=\"x y\"\nENV k some value\n").unwrap();
        let c = &i.stages[0].commands;
        let kv = |k: &str, v: &str| KeyValue {
            key: k.into(),
            value: Some(v.into()),
        };
        assert_eq!(
            c[0].kind,
            CommandKind::Env(vec![kv("a", "1"), kv("b", "\"x y\"")])
        );
        assert_eq!(c[1].kind, CommandKind::Env(vec![kv("k", "some value")]));
        assert_eq!(m("FROM a\nENV PATH\n"), "ENV must have two arguments");
    }

    #[test]
    fn shapes() {
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
    fn run_copy_add() {
        let i = p("FROM --platform=linux/amd64 img AS Build\nRUN --network=none --mount=type=cache,target=/c x\nCOPY --from=build --chmod=644 --exclude=a --exclude=b <<EOF s /d/\nhi\nEOF\nADD --unpack u /d\n").unwrap();
        let s = &i.stages[0];
        assert_eq!(s.name.as_deref(), Some("build"));
        assert_eq!(s.platform.as_deref(), Some("linux/amd64"));
        let CommandKind::Run(r) = &s.commands[0].kind else {
            panic!("{:?}", s.commands[0]);
        };
        assert_eq!(r.network, RunNetwork::None);
        assert_eq!(r.network_mode(), kiln_ir::NetworkMode::None);
        assert_eq!(
            r.mounts[0].literal.as_ref().map(|m| m.kind),
            Some(super::super::MountType::Cache)
        );
        let CommandKind::Copy(c) = &s.commands[1].kind else {
            panic!("{:?}", s.commands[1]);
        };
        assert_eq!(c.sources, vec!["s"]);
        assert_eq!(c.contents[0].name, "EOF");
        assert_eq!(c.contents[0].data, "hi\n");
        assert_eq!(c.exclude, vec!["a", "b"]);
        let CommandKind::Add(a) = &s.commands[2].kind else {
            panic!("{:?}", s.commands[2]);
        };
        assert_eq!(a.unpack, Some(true));
    }

    #[test]
    fn onbuild_trigger_keeps_heredocs() {
        let i = p("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n").unwrap();
        let CommandKind::Onbuild(o) = &i.stages[0].commands[0].kind else {
            panic!();
        };
        assert_eq!(o.trigger, "RUN <<EOF\necho hi\nEOF");
        let inner = o.instruction.as_ref().unwrap();
        let CommandKind::Run(r) = &inner.kind else {
            panic!();
        };
        assert_eq!(r.heredocs[0].data, "echo hi\n");
    }

    #[test]
    fn healthcheck_test_array() {
        let i = p("FROM a\nHEALTHCHECK CMD hello world\n").unwrap();
        let CommandKind::Healthcheck(Healthcheck::Check(h)) = &i.stages[0].commands[0].kind else {
            panic!();
        };
        assert_eq!(h.test(), vec!["CMD-SHELL", "hello world"]);
    }
}
