//! Typed instructions: the syntax tree checked for argument shapes and flags and grouped into
//! stages (BuildKit's `instructions.Parse`). Words stay unexpanded: expansion needs the
//! environment, which only lowering knows. Values that need expansion before they can be
//! checked (mount fields, `--chmod`) come with a public parser that lowering calls after
//! expanding them ([`MountSpec::resolve`], [`Chmod::parse`]).

mod commands;
mod duration;
mod flags;
mod mount;

use std::time::Duration;

use kiln_ir::{NetworkMode, SecurityMode, Span};
use serde::{Deserialize, Serialize};

use crate::ast::Dockerfile;
use crate::error::ParseError;

pub use duration::parse_go_duration;
pub use kiln_ir::{Chmod, ChmodClause};
pub use mount::{parse_size, Mount, MountField, MountSpec, MountType};

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

/// A heredoc attached to RUN, COPY or ADD (BuildKit's `ShellInlineFile` / `SourceContent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineFile {
    /// The delimiter word with quotes removed (`EOF`); COPY uses it as the file name.
    pub name: String,
    /// The body with its line endings, leading tabs already removed for `<<-`.
    pub data: String,
    /// `false` when the delimiter was quoted: the body is taken verbatim.
    pub expand: bool,
    /// `<<-`: leading tabs were stripped.
    pub chomp: bool,
    /// `3<<EOF`: the file descriptor the shell feeds the body to.
    pub fd: Option<u32>,
    /// The `<<EOF` marker in the instruction line.
    pub span: Span,
}

/// COPY's arguments and flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    /// `--from`: a stage name, a stage index or an image reference.
    pub from: Option<String>,
    /// `--chown` (unexpanded).
    pub chown: Option<String>,
    /// `--chmod` (unexpanded; check with [`Chmod::parse`] after expansion).
    pub chmod: Option<String>,
    /// `--link`.
    #[serde(default)]
    pub link: bool,
    /// `--parents`.
    #[serde(default)]
    pub parents: bool,
    /// `--exclude` patterns (repeatable, unexpanded).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Source paths (unexpanded); heredoc sources are in `contents`.
    pub sources: Vec<String>,
    /// Heredoc sources: files named after the delimiter with the body as content.
    #[serde(default)]
    pub contents: Vec<InlineFile>,
    /// Destination (unexpanded).
    pub dest: String,
}

/// ADD's arguments and flags: COPY's (without `--from` and `--parents`) plus its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Add {
    /// Sources, destination, `--chown`, `--chmod`, `--link`, `--exclude`, heredocs.
    pub files: Copy,
    /// `--keep-git-dir` (`None` when not given).
    pub keep_git_dir: Option<bool>,
    /// `--checksum` (unexpanded).
    pub checksum: Option<String>,
    /// `--unpack` (`None` when not given: local archives unpack, URLs do not).
    pub unpack: Option<bool>,
}

/// `RUN --network=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunNetwork {
    /// Not given or `default`.
    #[default]
    Default,
    /// `none`.
    None,
    /// `host` (needs the network.host entitlement).
    Host,
}

/// RUN's command and flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// argv or shell text (heredoc bodies are in `heredocs`).
    pub cmd: CommandLine,
    /// `--mount` values, in order, checked as far as possible without expansion.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// `--network`.
    #[serde(default)]
    pub network: RunNetwork,
    /// `--security`.
    #[serde(default)]
    pub security: SecurityMode,
    /// Heredocs of the command line, in order.
    #[serde(default)]
    pub heredocs: Vec<InlineFile>,
}

impl Run {
    /// The graph's network mode (`default` runs with the host network, like BuildKit
    /// without CNI).
    pub fn network_mode(&self) -> NetworkMode {
        match self.network {
            RunNetwork::None => NetworkMode::None,
            RunNetwork::Default | RunNetwork::Host => NetworkMode::Host,
        }
    }
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check (config Test `["NONE"]`).
    None,
    /// `HEALTHCHECK [flags] CMD …`.
    Check(HealthcheckCmd),
}

/// `HEALTHCHECK [flags] CMD …`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthcheckCmd {
    /// The command; config Test is `["CMD", …]` for exec form, `["CMD-SHELL", text]` for shell.
    pub cmd: CommandLine,
    /// `--interval` (`None` when not given or 0).
    pub interval: Option<Duration>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--start-period`.
    pub start_period: Option<Duration>,
    /// `--start-interval`.
    pub start_interval: Option<Duration>,
    /// `--retries` (0 when not given).
    pub retries: u32,
}

impl HealthcheckCmd {
    /// The config's `Test` array.
    pub fn test(&self) -> Vec<String> {
        match &self.cmd {
            CommandLine::Exec(v) => std::iter::once("CMD".to_string())
                .chain(v.iter().cloned())
                .collect(),
            CommandLine::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
        }
    }
}

/// ONBUILD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Onbuild {
    /// The trigger as stored in the image config: the instruction text after `ONBUILD`,
    /// followed by `\n<body><name>` for each heredoc (BuildKit's format).
    pub trigger: String,
    /// The trigger parsed as an instruction, when it parses (BuildKit only checks it when
    /// a child build runs it, so a bad trigger is not an error here).
    pub instruction: Option<Box<Command>>,
}

/// What one instruction inside a stage does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandKind {
    /// RUN.
    Run(Run),
    /// COPY.
    Copy(Copy),
    /// ADD.
    Add(Add),
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
    /// HEALTHCHECK.
    Healthcheck(Healthcheck),
    /// ONBUILD trigger.
    Onbuild(Onbuild),
    /// A known instruction kiln cannot build (kept for compatibility; not produced now).
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

/// Groups instructions into stages and checks every instruction's arguments and flags.
pub fn parse(df: &Dockerfile) -> Result<Instructions, ParseError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        if ins.keyword == "FROM" {
            stages.push(commands::from(ins)?);
            continue;
        }
        let command = commands::command(ins)?;
        match stages.last_mut() {
            Some(stage) => stage.commands.push(command),
            None => match command.kind {
                CommandKind::Arg(pairs) => meta_args.push((pairs, ins.span)),
                _ => {
                    return Err(ParseError::at(
                        "no build stage in current context",
                        ins.span,
                    ))
                }
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

/// Parses one instruction of a stage (not FROM) into its typed form.
pub fn parse_command(ins: &crate::ast::Instruction) -> Result<Command, ParseError> {
    commands::command(ins)
}
