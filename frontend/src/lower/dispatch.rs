//! One instruction at a time: how each updates the stage's config, history and nodes
//! (BuildKit's `dispatch*` functions).

use kiln_ir::{Chown, FileAction, FileOp, HistoryStep, MkdirAction, NodeId, Op};
use kiln_oci::config::EmptyObject;

use super::format::{self, go_list, go_quote_list, prefix, uppercase_cmd};
use super::{add_or_replace, FromRef, Lowering, StageState, HISTORY_COMMENT};
use super::{copy, run};
use crate::error::FrontendError;
use crate::instructions::{self, Command, CommandKind, CommandLine, Healthcheck, KeyValue};
use crate::shell::Lexer;

impl StageState {
    pub(super) fn commit(&mut self, created_by: String, node: Option<NodeId>) {
        self.history.push(HistoryStep {
            created_by,
            node,
            comment: Some(HISTORY_COMMENT.into()),
        });
    }

    pub(super) fn next_label(&mut self, text: &str) -> String {
        if self.total == 0 {
            return text.to_string();
        }
        self.index += 1;
        prefix(&self.label, self.index, self.total, text)
    }

    pub(super) fn env_strings(&self) -> Vec<String> {
        self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// SHELL, or BuildKit's linux default.
    fn with_shell(&self, text: &str) -> Vec<String> {
        let mut args = match &self.config.config.shell {
            Some(s) if !s.is_empty() => s.clone(),
            _ => vec!["/bin/sh".into(), "-c".into()],
        };
        args.push(text.to_string());
        args
    }

    pub(super) fn args(&self, cmd: &CommandLine) -> Vec<String> {
        match cmd {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(s) => self.with_shell(s),
        }
    }
}

/// `user[:group]` as written.
pub(super) fn chown(spec: &str) -> Chown {
    match spec.split_once(':') {
        Some((u, g)) => Chown {
            user: u.into(),
            group: Some(g.into()),
        },
        None => Chown {
            user: spec.into(),
            group: None,
        },
    }
}

/// What dispatching one instruction needs besides the stage state.
pub(super) struct Ctx<'c, 'l> {
    pub(super) lw: &'c mut Lowering<'l>,
    pub(super) stage: usize,
    pub(super) cmd: &'c Command,
}

impl Ctx<'_, '_> {
    pub(super) fn err(&self, message: impl Into<String>) -> FrontendError {
        FrontendError::at(message, Some(self.cmd.span))
    }

    pub(super) fn expand(&self, st: &StageState, word: &str) -> Result<String, FrontendError> {
        self.lw
            .lexer
            .expand(word, &st.env)
            .map_err(|e| self.err(e.to_string()))
    }

    fn expand_pairs(
        &self,
        st: &StageState,
        kvs: &[KeyValue],
    ) -> Result<Vec<(String, String)>, FrontendError> {
        kvs.iter()
            .map(|kv| {
                Ok((
                    self.expand(st, &kv.key)?,
                    self.expand(st, kv.value.as_deref().unwrap_or(""))?,
                ))
            })
            .collect()
    }

    /// BuildKit's progress text: the original line with variables expanded.
    pub(super) fn label_text(&self, st: &StageState, raw: bool) -> String {
        let lex = Lexer {
            raw_quotes: raw,
            skip_unset: raw,
            ..Lexer::new(self.lw.lexer.escape)
        };
        let text = lex
            .expand(&self.cmd.original, &st.env)
            .unwrap_or_else(|_| self.cmd.original.clone());
        uppercase_cmd(&text)
    }
}

/// Dispatches a stage: its base's ONBUILD triggers first, then its own instructions.
pub(super) fn run_stage(
    lw: &mut Lowering<'_>,
    stage: usize,
    def: &instructions::Stage,
    mut st: StageState,
) -> Result<StageState, FrontendError> {
    let triggers = st.config.config.on_build.take().unwrap_or_default();
    for trigger in &triggers {
        let cmd = parse_trigger(trigger)
            .map_err(|e| FrontendError::at(format!("ONBUILD {trigger}: {e}"), Some(def.span)))?;
        let cmd = Command {
            span: def.span,
            ..cmd
        };
        let mut cx = Ctx {
            lw,
            stage,
            cmd: &cmd,
        };
        dispatch(&mut cx, &mut st, None)?;
    }
    for (ci, cmd) in def.commands.iter().enumerate() {
        let dep = lw.stage_deps[stage].get(ci).cloned().flatten();
        let mut cx = Ctx { lw, stage, cmd };
        dispatch(&mut cx, &mut st, dep)?;
    }
    Ok(st)
}

/// An ONBUILD trigger from a config, parsed as the single instruction it must be.
pub(super) fn parse_trigger(trigger: &str) -> Result<Command, String> {
    let df = crate::ast::parse(trigger).map_err(|e| e.message)?;
    match df.instructions.as_slice() {
        [one] => instructions::parse_command(one).map_err(|e| e.message),
        _ => Err("onbuild trigger should be a single expression".into()),
    }
}

fn dispatch(
    cx: &mut Ctx<'_, '_>,
    st: &mut StageState,
    dep: Option<FromRef>,
) -> Result<(), FrontendError> {
    match &cx.cmd.kind {
        CommandKind::Env(kvs) => {
            let pairs = cx.expand_pairs(st, kvs)?;
            let mut msg = String::from("ENV");
            for (k, v) in pairs {
                msg.push_str(&format!(" {k}={v}"));
                add_or_replace(&mut st.env, &k, &v);
                let env = st.config.config.env.get_or_insert_with(Vec::new);
                match env
                    .iter_mut()
                    .find(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) == k)
                {
                    Some(e) => *e = format!("{k}={v}"),
                    None => env.push(format!("{k}={v}")),
                }
            }
            st.commit(msg, None);
        }
        CommandKind::Label(kvs) => {
            let pairs = cx.expand_pairs(st, kvs)?;
            let mut msg = String::from("LABEL");
            let labels = st.config.config.labels.get_or_insert_with(Default::default);
            for (k, v) in pairs {
                msg.push_str(&format!(" {k}={v}"));
                labels.insert(k, v);
            }
            st.commit(msg, None);
        }
        CommandKind::Arg(kvs) => {
            let mut parts = Vec::new();
            for kv in kvs {
                let build_arg = cx.lw.opts.build_args.get(&kv.key).cloned();
                let value = match (&build_arg, &kv.value) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(d)) => Some(cx.expand(st, d)?),
                    // A bare `ARG name` takes the global value, if there is one.
                    (None, None) => cx
                        .lw
                        .global_args
                        .iter()
                        .find(|(k, _)| *k == kv.key)
                        .map(|(_, v)| v.clone()),
                };
                if let Some(v) = &value {
                    add_or_replace(&mut st.env, &kv.key, v);
                    parts.push(format!("{}={v}", kv.key));
                } else {
                    parts.push(kv.key.clone());
                }
                st.build_args.push((kv.key.clone(), value));
            }
            st.commit(format!("ARG {}", parts.join(" ")), None);
        }
        CommandKind::Run(r) => run::run(cx, st, r)?,
        CommandKind::Copy(c) => copy::copy(cx, st, c, dep, None)?,
        CommandKind::Add(a) => copy::copy(cx, st, &a.files, None, Some(a))?,
        CommandKind::Healthcheck(h) => {
            let hc = match h {
                Healthcheck::None => kiln_oci::config::Healthcheck {
                    test: Some(vec!["NONE".into()]),
                    ..Default::default()
                },
                Healthcheck::Check(c) => {
                    let nanos = |d: Option<std::time::Duration>| {
                        d.map(|d| d.as_nanos() as i64).filter(|n| *n != 0)
                    };
                    kiln_oci::config::Healthcheck {
                        test: Some(c.test()),
                        interval: nanos(c.interval),
                        timeout: nanos(c.timeout),
                        start_period: nanos(c.start_period),
                        start_interval: nanos(c.start_interval),
                        retries: Some(i64::from(c.retries)).filter(|r| *r != 0),
                    }
                }
            };
            let msg = format!("HEALTHCHECK {}", format::go_healthcheck(&hc));
            st.config.config.healthcheck = Some(hc);
            st.commit(msg, None);
        }
        CommandKind::Workdir(p) => {
            let path = cx.expand(st, p)?;
            let current = st.config.config.working_dir.clone().unwrap_or_default();
            let wd = format::normalize_workdir(&current, &path);
            st.config.config.working_dir = Some(wd.clone());
            st.cwd = wd.clone();
            if wd == "/" {
                st.commit(format!("WORKDIR {wd}"), None);
            } else {
                let name = st.next_label(&cx.label_text(st, false));
                let user = st.config.config.user.clone().filter(|u| !u.is_empty());
                let op = FileOp {
                    actions: vec![FileAction::Mkdir(MkdirAction {
                        path: wd.clone(),
                        mode: 0o755,
                        chown: user.as_deref().map(chown),
                    })],
                };
                let node = cx.lw.add_node(
                    Op::File(op),
                    vec![st.last],
                    name,
                    Some(cx.cmd.span),
                    cx.stage,
                );
                st.last = node;
                st.commit(format!("WORKDIR {wd}"), Some(node));
            }
        }
        CommandKind::User(u) => {
            let user = cx.expand(st, u)?;
            st.config.config.user = Some(user.clone());
            st.commit(format!("USER {user}"), None);
        }
        CommandKind::Expose(words) => {
            let mut ports = Vec::new();
            for w in words {
                for p in cx
                    .lw
                    .lexer
                    .expand_words(w, &st.env)
                    .map_err(|e| cx.err(e.to_string()))?
                {
                    ports.extend(format::parse_port(&p).map_err(|e| cx.err(e))?);
                }
            }
            let exposed = st
                .config
                .config
                .exposed_ports
                .get_or_insert_with(Default::default);
            for p in &ports {
                exposed.insert(p.clone(), EmptyObject {});
            }
            // BuildKit prints the port set sorted, each port once.
            ports.sort();
            ports.dedup();
            st.commit(format!("EXPOSE {}", go_list(&ports)), None);
        }
        CommandKind::Cmd(c) => {
            let args = st.args(c);
            st.config.config.cmd = Some(args.clone());
            st.config.config.args_escaped = Some(true);
            st.cmd_set = true;
            st.commit(format!("CMD {}", go_quote_list(&args)), None);
        }
        CommandKind::Entrypoint(c) => {
            let args = st.args(c);
            st.config.config.entrypoint = Some(args.clone());
            if !st.cmd_set {
                st.config.config.cmd = None;
            }
            st.commit(format!("ENTRYPOINT {}", go_quote_list(&args)), None);
        }
        CommandKind::Shell(v) => {
            st.config.config.shell = Some(v.clone());
            st.commit(format!("SHELL {}", go_list(v)), None);
        }
        CommandKind::Maintainer(m) => {
            st.config.author = Some(m.clone());
            st.commit(format!("MAINTAINER {m}"), None);
        }
        CommandKind::StopSignal(s) => {
            let sig = cx.expand(st, s)?;
            st.config.config.stop_signal = Some(sig.clone());
            st.commit(format!("STOPSIGNAL {sig}"), None);
        }
        CommandKind::Volume(vs) => {
            let mut vols = Vec::new();
            for v in vs {
                let v = cx.expand(st, v)?;
                if v.is_empty() {
                    return Err(cx.err("VOLUME specified can not be an empty string"));
                }
                vols.push(v);
            }
            let map = st
                .config
                .config
                .volumes
                .get_or_insert_with(Default::default);
            for v in &vols {
                map.insert(v.clone(), EmptyObject {});
            }
            st.commit(format!("VOLUME {}", go_list(&vols)), None);
        }
        CommandKind::Onbuild(t) => {
            st.config
                .config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(t.trigger.clone());
        }
        CommandKind::Unsupported(k) => {
            return Err(cx.err(format!("{k} is not supported by kiln yet")));
        }
    }
    Ok(())
}
