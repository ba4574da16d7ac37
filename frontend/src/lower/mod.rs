//! Lowering: typed instructions → [`kiln_ir::Graph`], following BuildKit's `dockerfile2llb`:
//! global ARGs expand FROM lines, stages resolve their bases (images through the injected
//! [`ImageResolver`]), only the stages the target needs are dispatched, and each instruction
//! updates the stage's config, history and node chain.

mod args;
mod copy;
mod dispatch;
mod format;
mod named;
mod remote;
mod run;

use std::collections::{BTreeMap, HashMap};

use kiln_ir::{ContextSource, Graph, Node, NodeId, Op, ResolvedImage, SourceOp, Span, Stage};
use kiln_oci::{ContainerConfig, ImageConfig};

use crate::ast::Dockerfile;
use crate::error::{with_suggestion, FrontendError};
use crate::instructions::{self, CommandKind, Instructions};
use crate::shell::Lexer;

pub use args::is_build_platform;
use args::{check_platform, meta_args};
pub(crate) use named::lookup as lookup_named;
pub use named::{local_context_name, named_context_key, NamedContext};
pub use remote::git_context;

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
    /// `--build-context NAME=VALUE`, keyed by [`named_context_key`] of the name.
    pub named_contexts: BTreeMap<String, NamedContext>,
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
    /// A local named context (its key).
    Local(String),
}

/// A COPY --from source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FromRef {
    Stage(usize),
    Image(String),
    /// A local named context (its key).
    Local(String),
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
    /// Source nodes of local named contexts, by key.
    pub(crate) named_nodes: HashMap<String, NodeId>,
    /// The filesystems of local named contexts used as a FROM, by key.
    pub(crate) named_rootfs: HashMap<String, NodeId>,
    pub(crate) done: Vec<Option<StageState>>,
    pub(crate) stage_deps: Vec<Vec<Option<FromRef>>>,
    /// `AS` names of every stage (lower-cased), in order.
    pub(crate) stage_names: Vec<Option<String>>,
    /// Labels of stages in errors (`build`, `stage-1`).
    pub(crate) labels: Vec<String>,
}

/// BuildKit's `--from` resolution: a stage index, a stage name (case-insensitive), or else
/// an image reference (an implicit stage). A named context replaces a stage of its name and
/// comes before an image of its name (see [`named`]).
fn resolve_from(
    from: &str,
    names: &[Option<String>],
    named: &BTreeMap<String, NamedContext>,
) -> Result<FromRef, String> {
    let stage = if let Ok(idx) = from.parse::<i64>() {
        match usize::try_from(idx) {
            Ok(i) if i < names.len() => Some(i),
            _ => return Err(format!("invalid stage index {idx}")),
        }
    } else {
        let lower = from.to_lowercase();
        names
            .iter()
            .position(|n| n.as_deref() == Some(lower.as_str()))
    };
    let name = match stage {
        Some(j) => names[j].as_deref(),
        None => Some(from),
    };
    if let Some((key, c)) = name.and_then(|n| named::lookup(named, n)) {
        return Ok(match c {
            NamedContext::Local => FromRef::Local(key),
            NamedContext::Image(r) => FromRef::Image(r.clone()),
        });
    }
    Ok(match stage {
        Some(j) => FromRef::Stage(j),
        None => FromRef::Image(from.to_string()),
    })
}

impl Lowering<'_> {
    /// What a `--from` names.
    pub(crate) fn resolve_from_ref(&self, from: &str) -> Result<FromRef, String> {
        resolve_from(from, &self.stage_names, &self.opts.named_contexts)
    }

    /// The stage's name in messages (`build`, `stage-1`).
    pub(crate) fn stage_label(&self, stage: usize) -> String {
        self.labels.get(stage).cloned().unwrap_or_default()
    }

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

/// The first stage on a dependency cycle, if any.
fn find_cycle(needs: &[Vec<usize>]) -> Option<usize> {
    // 0 unvisited, 1 on the current path, 2 done.
    fn visit(s: usize, needs: &[Vec<usize>], state: &mut [u8]) -> bool {
        match state[s] {
            1 => return true,
            2 => return false,
            _ => {}
        }
        state[s] = 1;
        if needs[s].iter().any(|&d| visit(d, needs, state)) {
            return true;
        }
        state[s] = 2;
        false
    }
    let mut state = vec![0u8; needs.len()];
    (0..needs.len()).find(|&s| visit(s, needs, &mut state))
}

/// The stages an ONBUILD trigger of stage `s`'s base reads from (`COPY --from=`, `RUN
/// --mount=from=`), named in this Dockerfile, and how many images its COPYs name. Triggers that
/// do not parse are reported when they are dispatched.
fn trigger_needs(
    lw: &mut Lowering<'_>,
    ins: &Instructions,
    bases: &[Base],
    s: usize,
) -> Result<(Vec<usize>, usize), FrontendError> {
    let triggers: Vec<String> = match &bases[s] {
        Base::Scratch | Base::Local(_) => Vec::new(),
        Base::Stage(j) => ins.stages[*j]
            .commands
            .iter()
            .filter_map(|c| match &c.kind {
                CommandKind::Onbuild(t) => Some(t.trigger.clone()),
                _ => None,
            })
            .collect(),
        Base::Image(name) => lw
            .resolve(name, ins.stages[s].span)?
            .config
            .config
            .on_build
            .unwrap_or_default(),
    };
    let (mut stages, mut images) = (Vec::new(), 0);
    for t in &triggers {
        let Ok(cmd) = dispatch::parse_trigger(t) else {
            continue;
        };
        let froms: Vec<(String, bool)> = match &cmd.kind {
            CommandKind::Copy(c) => c.from.iter().map(|f| (f.clone(), true)).collect(),
            CommandKind::Run(r) => r
                .mounts
                .iter()
                .flat_map(|m| &m.fields)
                .filter(|f| f.key == "from")
                .filter_map(|f| f.value.clone().map(|v| (v, false)))
                .collect(),
            _ => Vec::new(),
        };
        for (from, is_copy) in froms {
            match resolve_from(&from, &lw.stage_names, &lw.opts.named_contexts) {
                Ok(FromRef::Stage(j)) => stages.push(j),
                Ok(FromRef::Image(_) | FromRef::Local(_)) if is_copy => images += 1,
                _ => {}
            }
        }
    }
    Ok((stages, images))
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
    // A global `ARG SOURCE_DATE_EPOCH` (default or build-arg), else the build-arg alone.
    let source_date_epoch = global_args
        .iter()
        .find(|(k, _)| k == "SOURCE_DATE_EPOCH")
        .map(|(_, v)| v)
        .or_else(|| opts.build_args.get("SOURCE_DATE_EPOCH"))
        .filter(|v| !v.is_empty())
        .and_then(|v| v.parse::<i64>().ok());

    // Expand FROM lines and find each stage's base. A stage named like a named context is
    // that context (`replaced`): its instructions are not run.
    let named = &opts.named_contexts;
    let mut bases = Vec::with_capacity(ins.stages.len());
    let mut replaced = vec![false; ins.stages.len()];
    let mut names: Vec<String> = Vec::new();
    for (i, st) in ins.stages.iter().enumerate() {
        if let Some(p) = &st.platform {
            check_platform(p, &lexer, &global_args, st.span)?;
        }
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
        let of_context = |(key, c): (String, &NamedContext)| match c {
            NamedContext::Local => Base::Local(key),
            // BuildKit's `docker-image://scratch` is the empty image.
            NamedContext::Image(r) if r == "scratch" => Base::Scratch,
            NamedContext::Image(r) => Base::Image(r.clone()),
        };
        let own = st.name.as_deref().and_then(|n| named::lookup(named, n));
        replaced[i] = own.is_some();
        let base = match own {
            Some(c) => of_context(c),
            None => match ins.stages[..i]
                .iter()
                .rposition(|s| s.name.as_deref() == Some(lower.as_str()))
            {
                Some(j) => Base::Stage(j),
                None if lower == "scratch" => Base::Scratch,
                None => named::lookup(named, &name).map_or(Base::Image(name), of_context),
            },
        };
        bases.push(base);
        names.push(st.name.clone().unwrap_or_else(|| format!("stage-{i}")));
    }

    // COPY --from dependencies.
    let mut implicit = 0;
    let mut stage_deps = Vec::with_capacity(ins.stages.len());
    let mut mount_deps: Vec<Vec<usize>> = Vec::with_capacity(ins.stages.len());
    let stage_names: Vec<Option<String>> = ins.stages.iter().map(|s| s.name.clone()).collect();
    for (i, st) in ins.stages.iter().enumerate() {
        let mut deps = Vec::with_capacity(st.commands.len());
        let mut extra = Vec::new();
        for c in &st.commands {
            if replaced[i] {
                deps.push(None);
                continue;
            }
            if let CommandKind::Run(r) = &c.kind {
                for f in r.mounts.iter().flat_map(|m| &m.fields) {
                    if let (Some(v), "from") = (&f.value, f.key.as_str()) {
                        if let Ok(FromRef::Stage(j)) = resolve_from(v, &stage_names, named) {
                            extra.push(j);
                        }
                    }
                }
            }
            let from = match &c.kind {
                CommandKind::Copy(copy) => &copy.from,
                _ => &None,
            };
            let Some(from) = from else {
                deps.push(None);
                continue;
            };
            if lexer.expand(from, &Vec::new()).ok().as_deref() != Some(from.as_str()) {
                return Err(FrontendError::at(
                    "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
                    Some(c.span),
                ));
            }
            let dep = resolve_from(from, &stage_names, named)
                .map_err(|e| FrontendError::at(e, Some(c.span)))?;
            if matches!(dep, FromRef::Image(_) | FromRef::Local(_)) {
                implicit += 1;
            }
            if dep == FromRef::Stage(i) {
                return Err(FrontendError::at(
                    format!("circular dependency detected on stage: {}", names[i]),
                    Some(c.span),
                ));
            }
            deps.push(Some(dep));
        }
        stage_deps.push(deps);
        mount_deps.push(extra);
    }
    // Every stage a stage needs: its base, COPY --from and RUN --mount from= stages.
    let needs: Vec<Vec<usize>> = (0..ins.stages.len())
        .map(|s| {
            let mut n: Vec<usize> = stage_deps[s]
                .iter()
                .filter_map(|d| match d {
                    Some(FromRef::Stage(j)) => Some(*j),
                    _ => None,
                })
                .collect();
            n.extend(&mount_deps[s]);
            if let Base::Stage(j) = bases[s] {
                n.push(j);
            }
            n
        })
        .collect();
    if let Some(s) = find_cycle(&needs) {
        return Err(FrontendError::at(
            format!("circular dependency detected on stage: {}", names[s]),
            Some(ins.stages[s].span),
        ));
    }

    // The target.
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
    let mut lw = Lowering {
        lexer,
        opts,
        resolver,
        global_args,
        nodes: Vec::new(),
        resolved: HashMap::new(),
        image_nodes: HashMap::new(),
        context_node: None,
        named_nodes: HashMap::new(),
        named_rootfs: HashMap::new(),
        done: vec![None; ins.stages.len()],
        stage_deps,
        stage_names: ins.stages.iter().map(|s| s.name.clone()).collect(),
        labels: names.clone(),
    };
    // The target and what it needs, including what the ONBUILD triggers of each needed
    // stage's base name (BuildKit resolves a base image's config to find them).
    let mut reachable = vec![false; ins.stages.len()];
    let mut todo = vec![target];
    while let Some(s) = todo.pop() {
        if std::mem::replace(&mut reachable[s], true) {
            continue;
        }
        todo.extend(&needs[s]);
        if replaced[s] {
            continue;
        }
        let (stages, images) = trigger_needs(&mut lw, &ins, &bases, s)?;
        todo.extend(stages);
        implicit += images;
    }

    let multi = ins.stages.len() + implicit > 1;
    for (i, st) in ins.stages.iter().enumerate() {
        if !reachable[i] {
            continue;
        }
        let label = if multi {
            names[i].clone()
        } else {
            String::new()
        };
        let mut state = start_stage(&mut lw, i, st, &bases[i], label)?;
        if replaced[i] {
            // BuildKit clears a replaced stage's ONBUILD triggers without running them.
            state.config.config.on_build = None;
        } else {
            state = dispatch::run_stage(&mut lw, i, st, state)?;
        }
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
        source_date_epoch,
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
                CommandKind::Run(_)
                    | CommandKind::Copy(_)
                    | CommandKind::Add(_)
                    | CommandKind::Workdir(_)
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
            // The parent's ONBUILD triggers stay in the config: run_stage runs and clears them.
            let config = parent.config;
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
        Base::Local(key) => {
            let node = lw.named_rootfs(key, i, st.span);
            StageState {
                env: Vec::new(),
                config: empty_config(),
                build_args: Vec::new(),
                cwd: "/".into(),
                last: node,
                base_node: node,
                history: vec![named::base_history(key, node)],
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
