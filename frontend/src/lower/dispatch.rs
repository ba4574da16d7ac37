//! One instruction at a time: how each updates the stage's config, history and nodes
//! (BuildKit's `dispatch*` functions).

use kiln_ir::{
    Chown, CopyAction, ExecOp, FileAction, FileOp, HistoryStep, MkdirAction, NodeId, Op,
};
use kiln_oci::config::EmptyObject;

use super::format::{self, go_list, go_quote_list, prefix, uppercase_cmd};
use super::{add_or_replace, FromRef, Lowering, StageState, HISTORY_COMMENT};
use crate::error::FrontendError;
use crate::instructions::{self, Command, CommandKind, CommandLine, KeyValue};
use crate::shell::Lexer;

impl StageState {
    fn commit(&mut self, created_by: String, node: Option<NodeId>) {
        self.history.push(HistoryStep {
            created_by,
            node,
            comment: Some(HISTORY_COMMENT.into()),
        });
    }

    fn next_label(&mut self, text: &str) -> String {
        if self.total == 0 {
            return text.to_string();
        }
        self.index += 1;
        prefix(&self.label, self.index, self.total, text)
    }

    fn env_strings(&self) -> Vec<String> {
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

    fn args(&self, cmd: &CommandLine) -> Vec<String> {
        match cmd {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(s) => self.with_shell(s),
        }
    }
}

fn chown(spec: &str) -> Chown {
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

struct Ctx<'c, 'l> {
    lw: &'c mut Lowering<'l>,
    stage: usize,
    cmd: &'c Command,
}

impl Ctx<'_, '_> {
    fn err(&self, message: impl Into<String>) -> FrontendError {
        FrontendError::at(message, Some(self.cmd.span))
    }

    fn expand(&self, st: &StageState, word: &str) -> Result<String, FrontendError> {
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
    fn label_text(&self, st: &StageState, raw: bool) -> String {
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

/// Dispatches every instruction of a stage.
pub(super) fn run_stage(
    lw: &mut Lowering<'_>,
    stage: usize,
    def: &instructions::Stage,
    mut st: StageState,
) -> Result<StageState, FrontendError> {
    for (ci, cmd) in def.commands.iter().enumerate() {
        let dep = lw.stage_deps[stage].get(ci).cloned().flatten();
        let mut cx = Ctx { lw, stage, cmd };
        dispatch(&mut cx, &mut st, dep)?;
    }
    Ok(st)
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
        CommandKind::Run(run) => {
            let (cmd, network) = (&run.cmd, &run.network_mode());
            let args = st.args(cmd);
            let name = st.next_label(&cx.label_text(st, true));
            let op = ExecOp {
                args: args.clone(),
                env: st.env_strings(),
                cwd: st.cwd.clone(),
                user: st.config.config.user.clone().unwrap_or_default(),
                network: *network,
                mounts: Vec::new(),
                security: Default::default(),
            };
            let node = cx.lw.add_node(
                Op::Exec(op),
                vec![st.last],
                name,
                Some(cx.cmd.span),
                cx.stage,
            );
            st.last = node;
            let msg = format!(
                "RUN {} # buildkit",
                format::run_command_string(&args, &st.build_args, &st.env)
            );
            st.commit(msg, Some(node));
        }
        CommandKind::Copy(c) => copy(cx, st, c, dep)?,
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
        CommandKind::Add(_) => {
            return Err(cx.err("ADD is not supported by kiln yet"));
        }
        CommandKind::Healthcheck(_) => {
            return Err(cx.err("HEALTHCHECK is not supported by kiln yet"));
        }
        CommandKind::Unsupported(k) => {
            return Err(cx.err(format!("{k} is not supported by kiln yet")));
        }
    }
    Ok(())
}

fn copy(
    cx: &mut Ctx<'_, '_>,
    st: &mut StageState,
    c: &instructions::Copy,
    dep: Option<FromRef>,
) -> Result<(), FrontendError> {
    let source = match (&c.from, dep) {
        (None, _) | (Some(_), None) => cx.lw.context(cx.stage),
        (Some(from), Some(FromRef::Stage(j))) => match &cx.lw.done[j] {
            Some(s) if j < cx.stage => s.last,
            _ => {
                return Err(cx.err(format!(
                    "cannot copy from stage \"{from}\", it needs to be defined before current stage \"{}\"",
                    if st.label.is_empty() { format!("stage-{}", cx.stage) } else { st.label.clone() }
                )));
            }
        },
        (Some(_), Some(FromRef::Image(r))) => cx.lw.implicit_image(&r, cx.cmd.span, cx.stage)?,
    };
    let sources = c
        .sources
        .iter()
        .map(|s| cx.expand(st, s))
        .collect::<Result<Vec<_>, _>>()?;
    for s in &sources {
        if s.starts_with("http://") || s.starts_with("https://") {
            return Err(cx.err("source can't be a URL for COPY"));
        }
    }
    let dest_raw = cx.expand(st, &c.dest)?;
    let chown_spec = c.chown.as_deref().map(|s| cx.expand(st, s)).transpose()?;
    let chmod_spec = c.chmod.as_deref().map(|s| cx.expand(st, s)).transpose()?;
    let chmod = match &chmod_spec {
        None => None,
        Some(m) => match u32::from_str_radix(m, 8) {
            Ok(v) if v <= 0o7777 => Some(v),
            _ => {
                return Err(cx.err(format!(
                "invalid chmod parameter: '{m}'. it should be octal string and between 0 and 07777"
            )))
            }
        },
    };
    let mut msg = String::from("COPY");
    if let Some(o) = &chown_spec {
        msg.push_str(&format!(" --chown={o}"));
    }
    if let Some(m) = &chmod_spec {
        msg.push_str(&format!(" --chmod={m}"));
    }
    for s in &sources {
        msg.push_str(&format!(" {s}"));
    }
    msg.push_str(&format!(" {dest_raw} # buildkit"));

    let name = st.next_label(&cx.label_text(st, false));
    let action = CopyAction {
        source_input: 1,
        sources,
        dest: format::copy_dest(&st.cwd, &dest_raw),
        chown: chown_spec.as_deref().filter(|s| !s.is_empty()).map(chown),
        chmod,
    };
    let op = FileOp {
        actions: vec![FileAction::Copy(action)],
    };
    let node = cx.lw.add_node(
        Op::File(op),
        vec![st.last, source],
        name,
        Some(cx.cmd.span),
        cx.stage,
    );
    st.last = node;
    st.commit(msg, Some(node));
    Ok(())
}
