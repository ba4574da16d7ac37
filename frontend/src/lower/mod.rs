//! Lowering: typed instructions → [`kiln_ir::Graph`], following BuildKit's `dockerfile2llb`:
//! global ARGs expand FROM lines, stages resolve their bases (images through the injected
//! [`ImageResolver`]), only the stages the target needs are dispatched, and each instruction
//! updates the stage's config, history and node chain.

mod dispatch;
mod format;

use std::collections::{BTreeMap, HashMap};

use kiln_ir::{ContextSource, Graph, Node, NodeId, Op, ResolvedImage, SourceOp, Span, Stage};
use kiln_oci::{ContainerConfig, ImageConfig};

use crate::ast::Dockerfile;
use crate::error::{with_suggestion, FrontendError};
use crate::instructions::{self, CommandKind, Instructions};
use crate::shell::Lexer;

/// Resolves an image reference to one platform's manifest and config. The binary implements
/// it against registries; tests pass a fake.
pub trait ImageResolver {
    /// `reference` is the name as written after expansion (`busybox:1.36`, `127.0.0.1:5000/x@sha256:…`).
    fn resolve(&self, reference: &str) -> Result<ResolvedImage, String>;
}

/// What the build asks of the frontend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LowerOptions {
    /// `--build-arg NAME=VALUE`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build (default: the last).
    pub target: Option<String>,
}

/// Linux's default PATH, which BuildKit adds when the base config has none.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// History comment BuildKit writes.
pub(crate) const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// Where a stage starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Base {
    Scratch,
    Image(String),
    Stage(usize),
}

/// A COPY --from source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FromRef {
    Stage(usize),
    Image(String),
}

/// The state of a stage while its instructions are dispatched (BuildKit's dispatchState).
#[derive(Debug, Clone)]
pub(crate) struct StageState {
    /// The environment RUN sees and expansion uses: config ENV plus ARGs.
    pub(crate) env: Vec<(String, String)>,
    pub(crate) config: ImageConfig,
    /// ARGs declared in the stage (and its base stages), for RUN history.
    pub(crate) build_args: Vec<(String, Option<String>)>,
    pub(crate) cwd: String,
    pub(crate) last: NodeId,
    pub(crate) base_node: NodeId,
    pub(crate) history: Vec<kiln_ir::HistoryStep>,
    pub(crate) cmd_set: bool,
    pub(crate) index: usize,
    pub(crate) total: usize,
    /// Stage name shown in labels (empty for a single-stage build).
    pub(crate) label: String,
}

/// BuildKit's `EnvList.AddOrReplace`: remove the key, then append.
pub(crate) fn add_or_replace(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_string(), value.to_string()));
}

/// The shared context of one lowering.
pub(crate) struct Lowering<'a> {
    pub(crate) lexer: Lexer,
    pub(crate) opts: &'a LowerOptions,
    pub(crate) resolver: &'a dyn ImageResolver,
    pub(crate) global_args: Vec<(String, String)>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) resolved: HashMap<String, ResolvedImage>,
    pub(crate) image_nodes: HashMap<String, NodeId>,
    pub(crate) context_node: Option<NodeId>,
    pub(crate) done: Vec<Option<StageState>>,
    pub(crate) stage_deps: Vec<Vec<Option<FromRef>>>,
}

impl Lowering<'_> {
    pub(crate) fn add_node(
        &mut self,
        op: Op,
        inputs: Vec<NodeId>,
        name: String,
        span: Option<Span>,
        stage: usize,
    ) -> NodeId {
        self.nodes.push(Node {
            op,
            inputs,
            name,
            span,
            stage,
        });
        self.nodes.len() - 1
    }

    pub(crate) fn resolve(
        &mut self,
        reference: &str,
        span: Span,
    ) -> Result<ResolvedImage, FrontendError> {
        if let Some(r) = self.resolved.get(reference) {
            return Ok(r.clone());
        }
        let r = self
            .resolver
            .resolve(reference)
            .map_err(|e| FrontendError::Resolve {
                reference: reference.to_string(),
                message: format!("{reference}: {e}"),
                span: Some(span),
            })?;
        self.resolved.insert(reference.to_string(), r.clone());
        Ok(r)
    }

    /// The reference BuildKit prints for a resolved image: `name:tag@sha256:…`.
    pub(crate) fn display_ref(r: &ResolvedImage) -> String {
        if r.reference.contains('@') {
            r.reference.clone()
        } else {
            format!("{}@{}", r.reference, r.manifest_digest)
        }
    }

    /// The image source node of a COPY --from=<image>, made once per reference.
    pub(crate) fn implicit_image(
        &mut self,
        reference: &str,
        span: Span,
        stage: usize,
    ) -> Result<NodeId, FrontendError> {
        if let Some(n) = self.image_nodes.get(reference) {
            return Ok(*n);
        }
        let r = self.resolve(reference, span)?;
        let name = format!("FROM {}", Self::display_ref(&r));
        let id = self.add_node(
            Op::Source(SourceOp::Image(r)),
            vec![],
            name,
            Some(span),
            stage,
        );
        self.image_nodes.insert(reference.to_string(), id);
        Ok(id)
    }

    pub(crate) fn context(&mut self, stage: usize) -> NodeId {
        if let Some(n) = self.context_node {
            return n;
        }
        let op = Op::Source(SourceOp::Context(ContextSource {
            name: "context".into(),
        }));
        let id = self.add_node(
            op,
            vec![],
            "[internal] load build context".into(),
            None,
            stage,
        );
        self.context_node = Some(id);
        id
    }
}

/// The config of `FROM scratch` (BuildKit's `emptyImage` for linux/amd64).
fn empty_config() -> ImageConfig {
    ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        config: ContainerConfig {
            working_dir: Some("/".into()),
            env: Some(vec![format!("PATH={DEFAULT_PATH}")]),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Global ARGs: the platform defaults, then the ARGs before the first FROM.
fn meta_args(
    ins: &Instructions,
    opts: &LowerOptions,
    lexer: &Lexer,
) -> Result<Vec<(String, String)>, FrontendError> {
    let mut args: Vec<(String, String)> = Vec::new();
    for (k, v) in [
        ("BUILDPLATFORM", "linux/amd64"),
        ("BUILDOS", "linux"),
        ("BUILDARCH", "amd64"),
        ("BUILDVARIANT", ""),
        ("TARGETPLATFORM", "linux/amd64"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "amd64"),
        ("TARGETVARIANT", ""),
    ] {
        let v = opts.build_args.get(k).map_or(v, String::as_str);
        add_or_replace(&mut args, k, v);
    }
    for (pairs, span) in &ins.meta_args {
        for kv in pairs {
            let value = match (opts.build_args.get(&kv.key), &kv.value) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => Some(
                    lexer
                        .expand(d, &args)
                        .map_err(|e| FrontendError::at(e.to_string(), Some(*span)))?,
                ),
                (None, None) => None,
            };
            if let Some(v) = value {
                add_or_replace(&mut args, &kv.key, &v);
            }
        }
    }
    Ok(args)
}

/// Lowers a parsed Dockerfile into the build graph of the target stage.
pub fn lower(
    df: &Dockerfile,
    opts: &LowerOptions,
    resolver: &dyn ImageResolver,
) -> Result<Graph, FrontendError> {
    let ins = instructions::parse(df)?;
    let lexer = Lexer::new(df.escape);
    let global_args = meta_args(&ins, opts, &lexer)?;

    // Expand FROM lines and find each stage's base.
    let mut bases = Vec::with_capacity(ins.stages.len());
    let mut names: Vec<String> = Vec::new();
    for (i, st) in ins.stages.iter().enumerate() {
        let name = lexer
            .expand(&st.base, &global_args)
            .map_err(|e| FrontendError::at(e.to_string(), Some(st.span)))?;
        if name.is_empty() {
            return Err(FrontendError::at(
                format!("base name ({}) should not be blank", st.base),
                Some(st.span),
            ));
        }
        let lower = name.to_lowercase();
        let base = match ins.stages[..i]
            .iter()
            .rposition(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            Some(j) => Base::Stage(j),
            None if lower == "scratch" => Base::Scratch,
            None => Base::Image(name),
        };
        bases.push(base);
        names.push(st.name.clone().unwrap_or_else(|| format!("stage-{i}")));
    }

    // COPY --from dependencies.
    let mut implicit = 0;
    let mut stage_deps = Vec::with_capacity(ins.stages.len());
    for (i, st) in ins.stages.iter().enumerate() {
        let mut deps = Vec::with_capacity(st.commands.len());
        for c in &st.commands {
            let CommandKind::Copy(copy) = &c.kind else {
                deps.push(None);
                continue;
            };
            let Some(from) = &copy.from else {
                deps.push(None);
                continue;
            };
            if lexer.expand(from, &Vec::new()).ok().as_deref() != Some(from.as_str()) {
                return Err(FrontendError::at(
                    "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
                    Some(c.span),
                ));
            }
            let dep = if let Ok(idx) = from.parse::<i64>() {
                if idx < 0 || idx as usize >= ins.stages.len() {
                    return Err(FrontendError::at(
                        format!("invalid stage index {idx}"),
                        Some(c.span),
                    ));
                }
                FromRef::Stage(idx as usize)
            } else if let Some(j) = ins
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(from.to_lowercase().as_str()))
            {
                FromRef::Stage(j)
            } else {
                implicit += 1;
                FromRef::Image(from.clone())
            };
            if dep == FromRef::Stage(i) {
                return Err(FrontendError::at(
                    format!("circular dependency detected on stage: {}", names[i]),
                    Some(c.span),
                ));
            }
            deps.push(Some(dep));
        }
        stage_deps.push(deps);
    }

    // The target and what it needs.
    let target = match &opts.target {
        None => ins.stages.len() - 1,
        Some(t) => ins
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(t.to_lowercase().as_str()))
            .ok_or_else(|| {
                let options: Vec<&str> = names.iter().map(String::as_str).collect();
                FrontendError::Target {
                    message: with_suggestion(
                        format!("target stage \"{t}\" could not be found"),
                        t,
                        &options,
                        true,
                    ),
                }
            })?,
    };
    let mut reachable = vec![false; ins.stages.len()];
    let mut todo = vec![target];
    while let Some(s) = todo.pop() {
        if std::mem::replace(&mut reachable[s], true) {
            continue;
        }
        if let Base::Stage(j) = bases[s] {
            todo.push(j);
        }
        todo.extend(stage_deps[s].iter().filter_map(|d| match d {
            Some(FromRef::Stage(j)) => Some(*j),
            _ => None,
        }));
    }

    let multi = ins.stages.len() + implicit > 1;
    let mut lw = Lowering {
        lexer,
        opts,
        resolver,
        global_args,
        nodes: Vec::new(),
        resolved: HashMap::new(),
        image_nodes: HashMap::new(),
        context_node: None,
        done: vec![None; ins.stages.len()],
        stage_deps,
    };
    for (i, st) in ins.stages.iter().enumerate() {
        if !reachable[i] {
            continue;
        }
        let label = if multi {
            names[i].clone()
        } else {
            String::new()
        };
        let state = start_stage(&mut lw, i, st, &bases[i], label)?;
        let state = dispatch::run_stage(&mut lw, i, st, state)?;
        lw.done[i] = Some(state);
    }

    let stages = ins
        .stages
        .iter()
        .zip(lw.done)
        .map(|(st, state)| match state {
            Some(s) => Stage {
                name: st.name.clone(),
                base: s.base_node,
                last: s.last,
                config: s.config,
                history: s.history,
                span: Some(st.span),
            },
            None => Stage {
                name: st.name.clone(),
                base: 0,
                last: 0,
                config: ImageConfig::default(),
                history: Vec::new(),
                span: Some(st.span),
            },
        })
        .collect();
    Ok(Graph {
        nodes: lw.nodes,
        stages,
        target,
    })
}

/// Sets a stage up from its base: config, env (with PATH), working directory, first node.
fn start_stage(
    lw: &mut Lowering<'_>,
    i: usize,
    st: &instructions::Stage,
    base: &Base,
    label: String,
) -> Result<StageState, FrontendError> {
    let layer_cmds = st
        .commands
        .iter()
        .filter(|c| {
            matches!(
                c.kind,
                CommandKind::Run { .. } | CommandKind::Copy(_) | CommandKind::Workdir(_)
            )
        })
        .count();
    let mut state = match base {
        Base::Stage(j) => {
            let parent = lw.done[*j].clone().ok_or_else(|| {
                FrontendError::at(
                    format!("stage {j} was not built before stage {i}"),
                    Some(st.span),
                )
            })?;
            let mut config = parent.config;
            config.config.on_build = None;
            StageState {
                config,
                history: Vec::new(),
                cmd_set: false,
                index: 0,
                total: layer_cmds,
                label,
                base_node: parent.last,
                ..parent
            }
        }
        Base::Scratch => {
            let node = lw.add_node(
                Op::Source(SourceOp::Scratch),
                vec![],
                "[internal] scratch".into(),
                Some(st.span),
                i,
            );
            StageState {
                env: Vec::new(),
                config: empty_config(),
                build_args: Vec::new(),
                cwd: "/".into(),
                last: node,
                base_node: node,
                history: Vec::new(),
                cmd_set: false,
                index: 0,
                total: layer_cmds,
                label,
            }
        }
        Base::Image(name) => {
            let r = lw.resolve(name, st.span)?;
            let mut config = r.config.clone();
            config.created = None;
            let mut state = StageState {
                env: Vec::new(),
                config,
                build_args: Vec::new(),
                cwd: "/".into(),
                last: 0,
                base_node: 0,
                history: Vec::new(),
                cmd_set: false,
                index: 1,
                total: layer_cmds + 1,
                label,
            };
            let text = format!("FROM {}", Lowering::display_ref(&r));
            let name = format::prefix(&state.label, 1, state.total, &text);
            let node = lw.add_node(
                Op::Source(SourceOp::Image(r)),
                vec![],
                name,
                Some(st.span),
                i,
            );
            state.last = node;
            state.base_node = node;
            state
        }
    };
    // BuildKit makes sure PATH is set (except on Windows).
    let env = state.config.config.env.get_or_insert_with(Vec::new);
    if !env
        .iter()
        .any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == "PATH")
    {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    for e in env.clone() {
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        add_or_replace(&mut state.env, k, v);
    }
    if let Some(wd) = state
        .config
        .config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
    {
        let wd = format::normalize_workdir(&state.cwd, &wd);
        state.cwd = wd.clone();
        state.config.config.working_dir = Some(wd);
    }
    Ok(state)
}
