//! A dry run of BuildKit's dispatch, without images or layers: ARG and ENV scoping of the
//! stages the target needs, which feeds both the checks BuildKit runs while dispatching
//! (UndefinedVar, WorkdirRelativePath, …) and the outline's ARGs, secrets and ssh ids.

use std::collections::HashMap;

use kiln_ir::Span;

use super::rules::{self, Rule};
use super::stages::{self, AstStages};
use crate::ast::{Args, Dockerfile, Instruction};
use crate::error::{suggest, FrontendError};
use crate::lower::{
    add_or_replace, lookup_named, ImageResolver, LowerOptions, NamedContext, DEFAULT_PATH,
};
use crate::shell::{EnvLookup, Expansion, Lexer};

/// A check that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fired {
    pub(crate) rule: Rule,
    pub(crate) detail: String,
    pub(crate) span: Span,
}

/// An ARG as the outline shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgInfo {
    pub(crate) name: String,
    pub(crate) value: Option<String>,
    pub(crate) comment: String,
    pub(crate) span: Span,
    /// Global ARGs its default referenced.
    pub(crate) deps: Vec<String>,
}

/// A secret or ssh id a RUN mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountUse {
    pub(crate) id: String,
    pub(crate) required: bool,
    pub(crate) span: Span,
}

/// What one stage contributes to the outline (BuildKit's `outlineCapture`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Capture {
    pub(crate) all: HashMap<String, ArgInfo>,
    pub(crate) used: Vec<String>,
    pub(crate) secrets: Vec<MountUse>,
    pub(crate) ssh: Vec<MountUse>,
}

impl Capture {
    fn use_arg(&mut self, name: &str) {
        if !self.used.iter().any(|u| u == name) {
            self.used.push(name.to_string());
        }
    }
}

/// The result of the dry run.
pub(crate) struct Simulation<'a> {
    pub(crate) stages: AstStages<'a>,
    pub(crate) comments: Vec<Vec<String>>,
    pub(crate) fired: Vec<Fired>,
    pub(crate) captures: Vec<Capture>,
    pub(crate) bases: Vec<Option<usize>>,
    pub(crate) deps: Vec<Vec<usize>>,
    pub(crate) target: usize,
}

/// ENV a dispatched stage has.
#[derive(Debug, Clone, Default)]
struct State {
    env: Vec<(String, String)>,
    /// Base image ENV unknown (no resolver): variables cannot be called undefined.
    unknown_env: bool,
    shell_set: bool,
    workdir_set: bool,
}

/// BuildKit's args that never reach the environment.
const NON_ENV_ARGS: &[&str] = &["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

struct Run<'a> {
    lexer: Lexer,
    opts: &'a LowerOptions,
    fired: Vec<Fired>,
    meta: Vec<(String, Option<String>)>,
}

impl Run<'_> {
    fn fire(&mut self, rule: Rule, detail: String, span: Span) {
        self.fired.push(Fired { rule, detail, span });
    }

    fn process(
        &self,
        word: &str,
        env: &dyn EnvLookup,
        span: Span,
    ) -> Result<Expansion, FrontendError> {
        self.lexer
            .process(word, env)
            .map_err(|e| FrontendError::at(e.to_string(), Some(span)))
    }

    /// Expands a word of a dispatched instruction, reporting variables that are not set.
    fn expand(
        &mut self,
        st: &State,
        declared: &[String],
        word: &str,
        span: Span,
    ) -> Result<String, FrontendError> {
        let e = self.process(word, &st.env, span)?;
        if !st.unknown_env {
            let keys: Vec<&str> = st.env.iter().map(|(k, _)| k.as_str()).collect();
            for name in &e.unmatched {
                if declared.contains(name) || NON_ENV_ARGS.contains(&name.as_str()) {
                    continue;
                }
                let s = suggest(name, &keys, true);
                self.fire(rules::UNDEFINED_VAR, rules::undefined_var(name, s), span);
            }
        }
        Ok(e.result)
    }

    fn meta_env(&self) -> Vec<(String, String)> {
        self.meta
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
            .collect()
    }
}

/// The platform ARGs BuildKit defines for every build (linux/amd64).
fn platform_args(opts: &LowerOptions) -> Vec<(String, Option<String>)> {
    [
        ("BUILDPLATFORM", "linux/amd64"),
        ("BUILDOS", "linux"),
        ("BUILDARCH", "amd64"),
        ("BUILDVARIANT", ""),
        ("TARGETPLATFORM", "linux/amd64"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "amd64"),
        ("TARGETVARIANT", ""),
    ]
    .iter()
    .map(|(k, v)| {
        let v = opts.build_args.get(*k).map_or(*v, String::as_str);
        (k.to_string(), Some(v.to_string()))
    })
    .collect()
}

fn set_meta(meta: &mut Vec<(String, Option<String>)>, k: &str, v: Option<String>) {
    meta.retain(|(m, _)| m != k);
    meta.push((k.to_string(), v));
}

/// Runs the dry run for `opts.target`. Without a resolver, images' ENV and SHELL are unknown.
pub(crate) fn simulate<'a>(
    df: &'a Dockerfile,
    text: &str,
    opts: &LowerOptions,
    resolver: Option<&dyn ImageResolver>,
) -> Result<Simulation<'a>, FrontendError> {
    let st = AstStages::new(df)?;
    let comments = stages::prev_comments(text, df);
    let mut run = Run {
        lexer: Lexer::new(df.escape),
        opts,
        fired: Vec::new(),
        meta: platform_args(opts),
    };

    // Global ARGs, with build-arg overrides; and the same with defaults only.
    let mut meta_info: HashMap<String, ArgInfo> = HashMap::new();
    let mut defaults = platform_args(&LowerOptions::default());
    let mut defaults_ok = true;
    for (idx, ins) in &st.meta {
        for (k, v) in stages::pairs(ins).0 {
            let mut info = ArgInfo {
                name: k.clone(),
                value: None,
                comment: stages::description(&comments[*idx], &k),
                span: ins.span,
                deps: Vec::new(),
            };
            if let Some(d) = &v {
                let denv: Vec<(String, String)> = defaults
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
                    .collect();
                match run.lexer.process(d, &denv) {
                    Ok(e) => set_meta(&mut defaults, &k, Some(e.result)),
                    Err(_) => defaults_ok = false,
                }
            } else {
                set_meta(&mut defaults, &k, None);
            }
            info.value = match (opts.build_args.get(&k), &v) {
                (Some(b), _) => Some(b.clone()),
                (None, Some(d)) => {
                    let e = run.process(d, &run.meta_env(), ins.span)?;
                    info.deps = e.matched.into_iter().collect();
                    Some(e.result)
                }
                (None, None) => None,
            };
            set_meta(&mut run.meta, &k, info.value.clone());
            meta_info.insert(k, info);
        }
    }
    let meta_keys: Vec<String> = run.meta.iter().map(|(k, _)| k.clone()).collect();
    let key_refs: Vec<&str> = meta_keys.iter().map(String::as_str).collect();

    // FROM lines: expansion with the global ARGs, base stages, FROM-level checks.
    let mut bases = Vec::with_capacity(st.stages.len());
    let mut captures = Vec::with_capacity(st.stages.len());
    let mut base_names = Vec::with_capacity(st.stages.len());
    for (i, s) in st.stages.iter().enumerate() {
        let span = s.from.span;
        let mut cap = Capture {
            all: meta_info.clone(),
            ..Default::default()
        };
        let menv = run.meta_env();
        let mut words = vec![s.base.as_str()];
        words.extend(s.platform.as_deref());
        let mut expanded_base = String::new();
        for (n, w) in words.into_iter().enumerate() {
            let e = run.process(w, &menv, span)?;
            for name in &e.unmatched {
                if !meta_keys.contains(name) {
                    let sug = suggest(name, &key_refs, true);
                    run.fire(
                        rules::UNDEFINED_ARG_IN_FROM,
                        rules::undefined_arg_in_from(name, sug),
                        span,
                    );
                }
            }
            for name in &e.matched {
                cap.use_arg(name);
            }
            if n == 0 {
                expanded_base = e.result;
            }
        }
        if expanded_base.is_empty() {
            return Err(FrontendError::at(
                format!("base name ({}) should not be blank", s.base),
                Some(span),
            ));
        }
        if defaults_ok {
            let denv: Vec<(String, String)> = defaults
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
                .collect();
            if let Ok(r) = run.lexer.expand(&s.base, &denv) {
                if r.parse::<kiln_oci::ImageRef>().is_err() {
                    run.fire(
                        rules::INVALID_DEFAULT_ARG_IN_FROM,
                        rules::invalid_default_arg_in_from(&s.base),
                        span,
                    );
                }
            }
        }
        from_checks(&mut run, s.from);
        bases.push(st.base_stage(i, &expanded_base));
        base_names.push(expanded_base);
        captures.push(cap);
    }

    let target = st.target(opts.target.as_deref())?;
    let deps: Vec<Vec<usize>> = (0..st.stages.len()).map(|i| st.deps(i)).collect();
    let mut reachable = vec![false; st.stages.len()];
    let mut todo = vec![target];
    while let Some(s) = todo.pop() {
        if std::mem::replace(&mut reachable[s], true) {
            continue;
        }
        todo.extend(bases[s]);
        todo.extend(deps[s].iter().copied());
    }

    // Dispatch the reachable stages in order (bases come first).
    let mut states: Vec<Option<State>> = vec![None; st.stages.len()];
    for i in 0..st.stages.len() {
        if !reachable[i] {
            continue;
        }
        // A stage named like a named context is that context; its instructions do not run.
        let own = st.stages[i]
            .name
            .as_deref()
            .and_then(|n| lookup_named(&opts.named_contexts, n));
        let mut state = match (own.as_ref().map(|o| o.1), bases[i]) {
            (Some(NamedContext::Local), _) => State::default(),
            (Some(NamedContext::Image(r)), _) => image_state(resolver, r, st.stages[i].from.span)?,
            (None, Some(j)) => states[j].clone().unwrap_or_default(),
            (None, None) if base_names[i].eq_ignore_ascii_case("scratch") => State::default(),
            // A named context: a local one starts empty, an image one is that image.
            (None, None) => match lookup_named(&opts.named_contexts, &base_names[i]) {
                Some((_, NamedContext::Local)) => State::default(),
                Some((_, NamedContext::Image(r))) => {
                    image_state(resolver, r, st.stages[i].from.span)?
                }
                None => image_state(resolver, &base_names[i], st.stages[i].from.span)?,
            },
        };
        if !state.env.iter().any(|(k, _)| k == "PATH") {
            state.env.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        if own.is_some() {
            states[i] = Some(state);
            continue;
        }
        let mut cap = std::mem::take(&mut captures[i]);
        dispatch_stage(&mut run, &st, i, &comments, &mut state, &mut cap)?;
        captures[i] = cap;
        states[i] = Some(state);
    }

    let mut fired = run.fired;
    global_checks(&mut fired, df, &st);
    fired.sort_by_key(|f| (f.span.start, phase(f.rule)));
    Ok(Simulation {
        stages: st,
        comments,
        fired,
        captures,
        bases,
        deps,
        target,
    })
}

/// When BuildKit reports a rule, for the order of warnings on one line: parser, instruction
/// parsing, whole-file checks, FROM expansion, dispatch.
fn phase(rule: Rule) -> u8 {
    match rule.name {
        "NoEmptyContinuation" => 0,
        "StageNameCasing" | "FromAsCasing" | "MaintainerDeprecated" => 1,
        "ConsistentInstructionCasing" => 2,
        "DuplicateStageName" | "ReservedStageName" => 3,
        "UndefinedArgInFrom" | "InvalidDefaultArgInFrom" => 4,
        _ => 5,
    }
}

fn image_state(
    resolver: Option<&dyn ImageResolver>,
    name: &str,
    span: Span,
) -> Result<State, FrontendError> {
    let Some(r) = resolver else {
        return Ok(State {
            unknown_env: true,
            ..Default::default()
        });
    };
    let img = r.resolve(name).map_err(|e| FrontendError::Resolve {
        reference: name.to_string(),
        message: format!("{name}: {e}"),
        span: Some(span),
    })?;
    let env = img
        .config
        .config
        .env
        .unwrap_or_default()
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect();
    Ok(State {
        env,
        unknown_env: false,
        shell_set: img.config.config.shell.is_some_and(|s| !s.is_empty()),
        workdir_set: false,
    })
}

/// StageNameCasing and FromAsCasing (BuildKit checks them while parsing every FROM).
fn from_checks(run: &mut Run<'_>, from: &Instruction) {
    let w = stages::words(from);
    if w.len() != 3 {
        return;
    }
    if w[2] != w[2].to_lowercase() {
        run.fire(
            rules::STAGE_NAME_CASING,
            rules::stage_name_casing(&w[2]),
            from.span,
        );
    }
    let kw = stages::keyword_written(from);
    let (lower, upper) = (kw == kw.to_lowercase(), kw == kw.to_uppercase());
    let ok = if lower {
        w[1] == w[1].to_lowercase()
    } else if upper {
        w[1] == w[1].to_uppercase()
    } else {
        true
    };
    if !ok {
        run.fire(
            rules::FROM_AS_CASING,
            rules::from_as_casing(kw, &w[1]),
            from.span,
        );
    }
}

/// BuildKit's secret-looking names: a `_`-separated part is a secret word and none is an
/// allowed one.
fn looks_secret(key: &str) -> bool {
    const DENY: &[&str] = &[
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const ALLOW: &[&str] = &["public", "file", "version"];
    let parts: Vec<String> = key.split('_').map(str::to_lowercase).collect();
    parts.iter().any(|p| DENY.contains(&p.as_str()))
        && !parts.iter().any(|p| ALLOW.contains(&p.as_str()))
}

/// (ip, host port, container port) of an EXPOSE word, as BuildKit's `splitParts`.
fn split_port(raw: &str) -> (String, String, String) {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.len() {
        1 => (String::new(), String::new(), parts[0].into()),
        2 => (String::new(), parts[0].into(), parts[1].into()),
        3 => (parts[0].into(), parts[1].into(), parts[2].into()),
        n => (
            parts[..n - 2].join(":"),
            parts[n - 2].into(),
            parts[n - 1].into(),
        ),
    }
}

/// Text words of an instruction that expand one by one (COPY/ADD/VOLUME).
fn expand_list(ins: &Instruction) -> Vec<String> {
    match &ins.args {
        Args::Json(v) => v.clone(),
        Args::Words(w) => w
            .iter()
            .map(|w| w.text.clone())
            .filter(|t| !t.starts_with("<<"))
            .collect(),
        Args::Shell(s) | Args::Text(s) => vec![s.clone()],
    }
}

fn dispatch_stage(
    run: &mut Run<'_>,
    st: &AstStages<'_>,
    i: usize,
    comments: &[Vec<String>],
    state: &mut State,
    cap: &mut Capture,
) -> Result<(), FrontendError> {
    let mut declared: Vec<String> = Vec::new();
    let mut last: HashMap<&str, Span> = HashMap::new();
    for (idx, ins) in &st.stages[i].commands {
        let span = ins.span;
        let kw = ins.keyword.as_str();
        match kw {
            "ARG" => {
                for (k, v) in stages::pairs(ins).0 {
                    if looks_secret(&k) {
                        run.fire(
                            rules::SECRETS_USED_IN_ARG_OR_ENV,
                            rules::secrets_used_in_arg_or_env("ARG", &k),
                            span,
                        );
                    }
                    let build = run.opts.build_args.get(&k).cloned();
                    let mut value = None;
                    let mut skip_info = false;
                    if v.is_none() && build.is_none() {
                        if let Some((_, mv)) = run.meta.iter().find(|(m, _)| *m == k) {
                            value = mv.clone();
                            skip_info = true;
                        }
                    }
                    if build.is_some() {
                        value = build;
                    } else if let Some(d) = &v {
                        value = Some(run.expand(state, &declared, d, span)?);
                    }
                    if let Some(val) = &value {
                        if !NON_ENV_ARGS.contains(&k.as_str()) {
                            add_or_replace(&mut state.env, &k, val);
                        }
                    }
                    if !skip_info {
                        let comment = stages::description(&comments[*idx], &k);
                        cap.all.insert(
                            k.clone(),
                            ArgInfo {
                                name: k.clone(),
                                value,
                                comment,
                                span,
                                deps: Vec::new(),
                            },
                        );
                    }
                    cap.use_arg(&k);
                    declared.push(k);
                }
            }
            "ENV" => {
                let (pairs, legacy) = stages::pairs(ins);
                let before = state.clone();
                for (k, v) in pairs {
                    if legacy {
                        run.fire(
                            rules::LEGACY_KEY_VALUE_FORMAT,
                            rules::legacy_key_value_format(stages::keyword_written(ins)),
                            span,
                        );
                    }
                    let key = run.expand(&before, &declared, &k, span)?;
                    let val =
                        run.expand(&before, &declared, v.as_deref().unwrap_or_default(), span)?;
                    if looks_secret(&key) {
                        run.fire(
                            rules::SECRETS_USED_IN_ARG_OR_ENV,
                            rules::secrets_used_in_arg_or_env("ENV", &key),
                            span,
                        );
                    }
                    add_or_replace(&mut state.env, &key, &val);
                }
            }
            "LABEL" => {
                for (k, v) in stages::pairs(ins).0 {
                    run.expand(state, &declared, &k, span)?;
                    run.expand(state, &declared, v.as_deref().unwrap_or_default(), span)?;
                }
            }
            "COPY" | "ADD" => {
                for w in expand_list(ins) {
                    run.expand(state, &declared, &w, span)?;
                }
                for f in ["chown", "chmod"] {
                    if let Some(v) = stages::flag(ins, f) {
                        run.expand(state, &declared, v, span)?;
                    }
                }
            }
            "VOLUME" => {
                for w in expand_list(ins) {
                    run.expand(state, &declared, &w, span)?;
                }
            }
            "USER" | "STOPSIGNAL" => {
                run.expand(state, &declared, &ins.rest.text, span)?;
            }
            "WORKDIR" => {
                let wd = run.expand(state, &declared, &ins.rest.text, span)?;
                if !state.workdir_set && !wd.starts_with('/') {
                    run.fire(
                        rules::WORKDIR_RELATIVE_PATH,
                        rules::workdir_relative_path(&wd),
                        span,
                    );
                }
                state.workdir_set = true;
            }
            "EXPOSE" => {
                for w in stages::words(ins) {
                    let ports = run.process(&w, &state.env, span)?.words;
                    for p in ports {
                        let (ip, host, container) = split_port(&p);
                        let proto = container.split_once('/').map(|(_, p)| p).unwrap_or("");
                        if proto != proto.to_lowercase() {
                            run.fire(
                                rules::EXPOSE_PROTO_CASING,
                                rules::expose_proto_casing(&p),
                                span,
                            );
                        }
                        if !ip.is_empty() || !host.is_empty() {
                            run.fire(
                                rules::EXPOSE_INVALID_FORMAT,
                                rules::expose_invalid_format(&p),
                                span,
                            );
                        }
                    }
                }
            }
            "CMD" | "ENTRYPOINT" | "HEALTHCHECK" => {
                let name = stages::keyword_written(ins);
                if let Some(prev) = last.insert(kw, span) {
                    run.fire(
                        rules::MULTIPLE_INSTRUCTIONS_DISALLOWED,
                        rules::multiple_instructions_disallowed(name),
                        prev,
                    );
                }
                if kw != "HEALTHCHECK" && matches!(ins.args, Args::Shell(_)) && !state.shell_set {
                    run.fire(
                        rules::JSON_ARGS_RECOMMENDED,
                        rules::json_args_recommended(name),
                        span,
                    );
                }
            }
            "SHELL" => state.shell_set = true,
            "RUN" => {
                for m in stages::mounts(ins) {
                    let u = MountUse {
                        id: m.id,
                        required: m.required,
                        span,
                    };
                    let list = match m.kind.as_str() {
                        "secret" => &mut cap.secrets,
                        "ssh" => &mut cap.ssh,
                        _ => continue,
                    };
                    list.retain(|x| x.id != u.id);
                    list.push(u);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks BuildKit runs on the whole file, reachable or not.
fn global_checks(fired: &mut Vec<Fired>, df: &Dockerfile, st: &AstStages<'_>) {
    let mut push =
        |rule: Rule, detail: String, span: Span| fired.push(Fired { rule, detail, span });

    // Instruction casing, counted over the stages (FROM and what follows it).
    let all: Vec<&Instruction> = st
        .stages
        .iter()
        .flat_map(|s| std::iter::once(s.from).chain(s.commands.iter().map(|(_, c)| *c)))
        .collect();
    let (mut lower, mut upper) = (0, 0);
    for ins in &all {
        let k = stages::keyword_written(ins);
        if k == k.to_lowercase() {
            lower += 1;
        } else if k == k.to_uppercase() {
            upper += 1;
        }
    }
    let majority_lower = lower > upper;
    for ins in &all {
        let k = stages::keyword_written(ins);
        let casing = if majority_lower && k != k.to_lowercase() {
            "lowercase"
        } else if !majority_lower && k != k.to_uppercase() {
            "uppercase"
        } else {
            continue;
        };
        push(
            rules::CONSISTENT_INSTRUCTION_CASING,
            rules::consistent_instruction_casing(k, casing),
            ins.span,
        );
    }

    // Stage names.
    let mut seen: Vec<&str> = Vec::new();
    for s in &st.stages {
        let Some(n) = s.name.as_deref() else { continue };
        if matches!(n, "context" | "scratch") {
            push(
                rules::RESERVED_STAGE_NAME,
                rules::reserved_stage_name(n),
                s.from.span,
            );
        }
        if seen.contains(&n) {
            push(
                rules::DUPLICATE_STAGE_NAME,
                rules::duplicate_stage_name(n),
                s.from.span,
            );
        }
        seen.push(n);
    }

    for w in df
        .warnings
        .iter()
        .filter(|w| w.rule == rules::NO_EMPTY_CONTINUATION.name)
    {
        push(
            rules::NO_EMPTY_CONTINUATION,
            rules::no_empty_continuation(),
            w.span,
        );
    }
    for ins in &df.instructions {
        match ins.keyword.as_str() {
            "MAINTAINER" => push(
                rules::MAINTAINER_DEPRECATED,
                rules::maintainer_deprecated(),
                ins.span,
            ),
            "LABEL" if stages::pairs(ins).1 => push(
                rules::LEGACY_KEY_VALUE_FORMAT,
                rules::legacy_key_value_format(stages::keyword_written(ins)),
                ins.span,
            ),
            _ => {}
        }
    }
}
