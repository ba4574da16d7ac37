//! COPY and ADD (local files, stages, images, heredoc files), as BuildKit's `dispatchCopy`.

use kiln_ir::{CopyAction, FileAction, FileOp, MkfileAction, NodeId, Op, SourceOp};

use super::dispatch::{chown, Ctx};
use super::format;
use super::remote::{self, Remote};
use super::{FromRef, StageState};
use crate::error::FrontendError;
use crate::instructions::{Add, Chmod, Copy};
use crate::shell::Lexer;

/// Mode of a heredoc file without `--chmod` (BuildKit's Mkfile 0644).
const HEREDOC_MODE: u32 = 0o644;

/// Where a heredoc file lands: into `dest` when it is a directory (`/`-terminated).
fn heredoc_path(dest: &str, name: &str) -> String {
    if dest.ends_with('/') {
        format!("{dest}{name}")
    } else {
        dest.to_string()
    }
}

/// `algorithm:hex` as an OCI digest (`sha256:` plus 64 hex digits, or another algorithm).
/// Checks an `ADD --checksum` for a URL as go-digest's `Parse` does: `sha256`, `sha384` or
/// `sha512` with that many lowercase hex digits.
fn check_digest(s: &str) -> Result<(), String> {
    let invalid = || format!("invalid checksum digest format: {s}");
    let (alg, hex) = s.split_once(':').ok_or_else(invalid)?;
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        a if !a.is_empty()
            && a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
        {
            return Err(format!("unsupported digest algorithm: {s}"))
        }
        _ => return Err(invalid()),
    };
    if hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// Lowers one COPY (`add: None`) or local ADD (`add: Some(flags)`).
pub(super) fn copy(
    cx: &mut Ctx<'_, '_>,
    st: &mut StageState,
    c: &Copy,
    dep: Option<FromRef>,
    add_flags: Option<&Add>,
) -> Result<(), FrontendError> {
    let add = add_flags.is_some();
    let keyword = if add { "ADD" } else { "COPY" };
    let dep = match (&c.from, dep) {
        (Some(from), None) => Some(cx.lw.resolve_from_ref(from).map_err(|e| cx.err(e))?),
        (_, d) => d,
    };
    let sources = c
        .sources
        .iter()
        .map(|s| cx.expand(st, s))
        .collect::<Result<Vec<_>, _>>()?;
    // ADD's URLs and git repositories each become a source node of their own.
    let mut remotes = Vec::new();
    let mut locals = Vec::new();
    for s in &sources {
        if !add {
            if remote::is_remote(s) {
                return Err(cx.err("source can't be a URL for COPY"));
            }
            locals.push(s.clone());
            continue;
        }
        match remote::classify(s).map_err(|e| cx.err(e))? {
            Remote::Local => locals.push(s.clone()),
            r => remotes.push(r),
        }
    }
    let checksum = add_flags
        .and_then(|a| a.checksum.as_deref())
        .map(|s| cx.expand(st, s))
        .transpose()?;
    if checksum.is_some() && (!locals.is_empty() || remotes.is_empty()) {
        return Err(cx.err("checksum requires HTTP(S) or Git sources"));
    }
    if let Some(sum) = checksum.as_deref() {
        if remotes.iter().any(|r| matches!(r, Remote::Http(_))) {
            check_digest(sum).map_err(|e| cx.err(e))?;
        }
    }
    let unpack = add_flags.is_some_and(|a| a.unpack.unwrap_or(true));
    let unpack_remote = add_flags.is_some_and(|a| a.unpack.unwrap_or(false));
    let keep_git_dir = add_flags.is_some_and(|a| a.keep_git_dir.unwrap_or(false));
    let exclude = c
        .exclude
        .iter()
        .map(|s| cx.expand(st, s))
        .collect::<Result<Vec<_>, _>>()?;
    let source = if locals.is_empty() {
        None
    } else {
        Some(match (&c.from, dep) {
            (None, _) | (Some(_), None) => cx.lw.context(cx.stage),
            (Some(from), Some(FromRef::Stage(j))) => match &cx.lw.done[j] {
                Some(s) if j != cx.stage => s.last,
                _ => {
                    return Err(cx.err(format!(
                        "cannot copy from stage \"{from}\", it needs to be defined before current stage \"{}\"",
                        cx.lw.stage_label(cx.stage)
                    )));
                }
            },
            (Some(_), Some(FromRef::Image(r))) => {
                cx.lw.implicit_image(&r, cx.cmd.span, cx.stage)?
            }
            (Some(_), Some(FromRef::Local(key))) => cx.lw.named_context(&key, cx.stage),
        })
    };
    let dest_raw = cx.expand(st, &c.dest)?;
    let chown_spec = c.chown.as_deref().map(|s| cx.expand(st, s)).transpose()?;
    let chmod_spec = c.chmod.as_deref().map(|s| cx.expand(st, s)).transpose()?;
    let parsed = chmod_spec
        .as_deref()
        .map(Chmod::parse)
        .transpose()
        .map_err(|e| cx.err(e))?;
    let (chmod, chmod_symbolic) = match (&parsed, &chmod_spec) {
        (Some(Chmod::Octal(bits)), _) => (Some(*bits), None),
        (Some(Chmod::Symbolic(_)), Some(m)) => (None, Some(m.clone())),
        _ => (None, None),
    };
    let heredoc_mode = parsed
        .as_ref()
        .map_or(HEREDOC_MODE, |m| m.apply(HEREDOC_MODE, false));
    let mut msg = String::from(keyword);
    if c.parents {
        msg.push_str(" --parents");
    }
    if let Some(o) = &chown_spec {
        msg.push_str(&format!(" --chown={o}"));
    }
    if let Some(m) = &chmod_spec {
        msg.push_str(&format!(" --chmod={m}"));
    }
    for s in &sources {
        msg.push_str(&format!(" {s}"));
    }
    for h in &c.contents {
        msg.push_str(&format!(" <<{}", h.name));
    }
    msg.push_str(&format!(" {} # buildkit", dest_raw));

    let dest = format::copy_dest(&st.cwd, &dest_raw);
    if remotes.len() + locals.len() > 1 && !dest.ends_with('/') {
        return Err(cx.err(format!(
            "When using {keyword} with more than one source file, the destination must be a directory and end with a /"
        )));
    }
    let owner = chown_spec.as_deref().filter(|s| !s.is_empty()).map(chown);
    let mut actions = Vec::new();
    let mut inputs: Vec<NodeId> = vec![st.last];
    if let Some(src) = source {
        inputs.push(src);
        actions.push(FileAction::Copy(CopyAction {
            source_input: 1,
            sources: locals,
            dest: dest.clone(),
            chown: owner.clone(),
            chmod,
            chmod_symbolic: chmod_symbolic.clone(),
            exclude: exclude.clone(),
            parents: c.parents,
            link: c.link,
            unpack,
        }));
    }
    for r in remotes {
        let (op, copied, unpack) = match r {
            Remote::Http(mut h) => {
                h.checksum = checksum.clone();
                let name = h.filename.clone();
                (SourceOp::Http(h), name, unpack_remote)
            }
            Remote::Git(mut g) => {
                g.checksum = checksum.clone();
                g.keep_git_dir = keep_git_dir;
                (SourceOp::Git(g), ".".to_string(), false)
            }
            Remote::Local => continue,
        };
        let label = match &op {
            SourceOp::Http(h) => h.url.clone(),
            SourceOp::Git(g) => g.remote.clone(),
            _ => String::new(),
        };
        let src = cx
            .lw
            .add_node(Op::Source(op), vec![], label, Some(cx.cmd.span), cx.stage);
        inputs.push(src);
        actions.push(FileAction::Copy(CopyAction {
            source_input: inputs.len() - 1,
            sources: vec![copied],
            dest: dest.clone(),
            chown: owner.clone(),
            chmod,
            chmod_symbolic: chmod_symbolic.clone(),
            exclude: exclude.clone(),
            parents: false,
            link: c.link,
            unpack,
        }));
    }
    // Heredoc bodies: unquoted delimiters expand variables (quotes kept, `\` escapes).
    let raw = Lexer {
        skip_process_quotes: true,
        ..Lexer::new('\\')
    };
    for h in &c.contents {
        let data = if h.expand {
            raw.expand(&h.data, &st.env)
                .map_err(|e| cx.err(e.to_string()))?
        } else {
            h.data.clone()
        };
        actions.push(FileAction::Mkfile(MkfileAction {
            path: heredoc_path(&dest, &h.name),
            data,
            mode: heredoc_mode,
            chown: owner.clone(),
        }));
    }
    let name = st.next_label(&cx.label_text(st, false));
    let node = cx.lw.add_node(
        Op::File(FileOp { actions }),
        inputs,
        name,
        Some(cx.cmd.span),
        cx.stage,
    );
    st.last = node;
    st.commit(msg, Some(node));
    Ok(())
}
