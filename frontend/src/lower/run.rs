//! RUN: the command line (shell wrapping, heredocs), `--mount`s, `--security`, and the
//! environment (stage ENV and ARGs plus proxy build-args), as BuildKit's `dispatchRun`.

use kiln_ir::{CacheSharing, ExecMount, ExecOp, NodeId, Op};

use super::dispatch::Ctx;
use super::format::{self, normalize_workdir};
use super::{FromRef, StageState};
use crate::error::FrontendError;
use crate::instructions::{CommandLine, InlineFile, MountType, Run};

/// Where heredoc scripts with a shebang are mounted (BuildKit's `/dev/pipes/`).
const PIPES: &str = "/dev/pipes/";

/// Proxy build-args BuildKit passes to every RUN, upper- and lower-case, outside history.
const PROXY_ARGS: [&str; 5] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
];

/// A whole command that is one heredoc marker (`<<EOF`, `<<-"EOF"`, `3<<EOF`).
fn is_lone_heredoc(cmd: &str) -> bool {
    let s = cmd.trim();
    let s = s.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(s) = s.strip_prefix("<<") else {
        return false;
    };
    let s = s.strip_prefix('-').unwrap_or(s).trim_start();
    let s = s
        .strip_prefix(['\'', '"'])
        .map_or(s, |r| r.strip_suffix(['\'', '"']).unwrap_or(r));
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// BuildKit's `summarizeHeredoc`: the first line of the trimmed body, `...` if there is more.
fn summarize(data: &str) -> String {
    let doc = data.trim();
    let mut lines = doc.split('\n');
    let first = lines.next().unwrap_or_default().trim_end_matches('\r');
    if lines.next().is_some() {
        format!("{first}...")
    } else {
        first.to_string()
    }
}

/// The argv before shell wrapping, any file mounts, and the label suffix.
fn command(
    cmd: &CommandLine,
    heredocs: &[InlineFile],
) -> (CommandLine, Vec<ExecMount>, Option<String>) {
    let (CommandLine::Shell(text), Some(first)) = (cmd, heredocs.first()) else {
        return (cmd.clone(), Vec::new(), None);
    };
    if !is_lone_heredoc(text) {
        // The shell reads the heredocs itself: hand it the whole text back.
        let mut full = text.clone();
        for h in heredocs {
            full.push('\n');
            full.push_str(&h.data);
            full.push_str(&h.name);
        }
        return (CommandLine::Shell(full), Vec::new(), None);
    }
    let summary = Some(summarize(&first.data));
    if first.data.starts_with("#!") {
        let target = format!("{PIPES}{}", first.name);
        let mount = ExecMount::File {
            target: target.clone(),
            data: first.data.clone(),
            mode: 0o755,
        };
        return (CommandLine::Shell(target), vec![mount], summary);
    }
    (CommandLine::Shell(first.data.clone()), Vec::new(), summary)
}

/// Proxy variables from the build-args, both spellings of each, for RUN's environment.
pub(super) fn proxy_env(cx: &Ctx<'_, '_>) -> Vec<String> {
    let mut out = Vec::new();
    for name in PROXY_ARGS {
        let value = cx
            .lw
            .opts
            .build_args
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .next_back();
        if let Some(v) = value {
            out.push(format!("{name}={v}"));
            out.push(format!("{}={v}", name.to_ascii_lowercase()));
        }
    }
    out
}

/// The node a mount's `from=` names, added to `inputs`; its index there.
fn mount_input(
    cx: &mut Ctx<'_, '_>,
    inputs: &mut Vec<NodeId>,
    from: &Option<String>,
) -> Result<Option<usize>, FrontendError> {
    let Some(f) = from else {
        return Ok(None);
    };
    let node = match cx.lw.resolve_from_ref(f).map_err(|e| cx.err(e))? {
        FromRef::Stage(j) => match &cx.lw.done[j] {
            Some(s) if j != cx.stage => s.last,
            _ => {
                return Err(cx.err(format!(
                    "cannot mount from stage \"{f}\", it needs to be defined before current stage"
                )))
            }
        },
        FromRef::Image(img) => cx.lw.implicit_image(&img, cx.cmd.span, cx.stage)?,
        FromRef::Local(key) => cx.lw.named_context(&key, cx.stage),
    };
    inputs.push(node);
    Ok(Some(inputs.len() - 1))
}

/// Lowers one RUN.
pub(super) fn run(cx: &mut Ctx<'_, '_>, st: &mut StageState, r: &Run) -> Result<(), FrontendError> {
    let (cmd, mut mounts, summary) = command(&r.cmd, &r.heredocs);
    let args = st.args(&cmd);
    let mut inputs: Vec<NodeId> = vec![st.last];
    for spec in &r.mounts {
        let mut expand = |w: &str| cx.expand(st, w).map_err(|e| e.to_string());
        let m = spec.resolve(&mut expand).map_err(|e| cx.err(e))?;
        let target = m.target.clone().map(|t| normalize_workdir(&st.cwd, &t));
        let need_target = |t: Option<String>, cx: &Ctx<'_, '_>| {
            t.ok_or_else(|| cx.err("mount target must be specified"))
        };
        let mount = match m.kind {
            MountType::Bind => {
                let source_input = match mount_input(cx, &mut inputs, &m.from)? {
                    Some(i) => i,
                    None => {
                        let ctx = cx.lw.context(cx.stage);
                        inputs.push(ctx);
                        inputs.len() - 1
                    }
                };
                ExecMount::Bind {
                    source_input,
                    source: m.source.clone().unwrap_or_else(|| "/".into()),
                    target: need_target(target, cx)?,
                    readonly: m.readonly,
                }
            }
            MountType::Cache => {
                let target = need_target(target, cx)?;
                ExecMount::Cache {
                    id: m.id.clone().unwrap_or_else(|| target.clone()),
                    source_input: mount_input(cx, &mut inputs, &m.from)?,
                    source: m.source.clone().unwrap_or_else(|| "/".into()),
                    target,
                    sharing: m.sharing.unwrap_or(CacheSharing::Shared),
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                    mode: m.mode.unwrap_or(0o755),
                    readonly: m.readonly,
                }
            }
            MountType::Tmpfs => ExecMount::Tmpfs {
                target: need_target(target, cx)?,
                size: m.size,
            },
            MountType::Secret => {
                let id = match (&m.id, &target) {
                    (Some(id), _) => id.clone(),
                    (None, Some(t)) => t.rsplit('/').next().unwrap_or_default().to_string(),
                    (None, None) => return Err(cx.err("one of source, target required")),
                };
                let target = match (&target, &m.env) {
                    (None, None) => Some(format!("/run/secrets/{id}")),
                    _ => target,
                };
                ExecMount::Secret {
                    id,
                    target,
                    env: m.env.clone(),
                    required: m.required,
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                    mode: m.mode.unwrap_or(0o400),
                }
            }
            MountType::Ssh => ExecMount::Ssh {
                id: m.id.clone().unwrap_or_else(|| "default".into()),
                target,
                required: m.required,
                uid: m.uid.unwrap_or(0),
                gid: m.gid.unwrap_or(0),
                mode: m.mode.unwrap_or(0o600),
            },
        };
        mounts.push(mount);
    }
    let mut text = cx.label_text(st, true);
    if let Some(s) = summary {
        text.push_str(&format!(" ({s})"));
    }
    let name = st.next_label(&text);
    let mut env = st.env_strings();
    env.extend(proxy_env(cx));
    let op = ExecOp {
        args: args.clone(),
        env,
        cwd: st.cwd.clone(),
        user: st.config.config.user.clone().unwrap_or_default(),
        network: r.network_mode(),
        mounts,
        security: r.security,
        hostname: cx
            .lw
            .opts
            .build_args
            .get("BUILDKIT_SANDBOX_HOSTNAME")
            .filter(|h| !h.is_empty())
            .cloned(),
        extra_hosts: Vec::new(),
    };
    let node = cx
        .lw
        .add_node(Op::Exec(op), inputs, name, Some(cx.cmd.span), cx.stage);
    st.last = node;
    let msg = format!(
        "RUN {} # buildkit",
        format::run_command_string(&args, &st.build_args, &st.env)
    );
    st.commit(msg, Some(node));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_heredocs() {
        for s in ["<<EOF", " <<-EOF ", "3<<'EOF'", "<<\"E_1\""] {
            assert!(is_lone_heredoc(s), "{s}");
        }
        for s in ["cat <<EOF", "<<EOF > x", "<<1", "<<"] {
            assert!(!is_lone_heredoc(s), "{s}");
        }
        assert_eq!(summarize("\n  a\nb\n"), "a...");
        assert_eq!(summarize("one\n"), "one");
    }
}
